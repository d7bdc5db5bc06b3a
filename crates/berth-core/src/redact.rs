//! What container output may carry into berth's own documents (errors, the
//! `/status` document, the dashboard, berth's log): every excerpt is made here,
//! once, with the secret values berth injected masked, and every excerpt line
//! carries [`EXCERPT`] in front, so a reader without `logs:view` gets the
//! document with the excerpts taken out ([`without_excerpts`]).
//!
//! The rule (docs/contract.md, "Secrets in reports"): a secret value of at
//! least [`MIN_SECRET`] characters is masked as `(sensitive)` wherever it
//! appears in an excerpt, as written, base64-encoded (with or without
//! padding, standard or URL alphabet) or hex-encoded.

use base64::Engine as _;

/// What every line of container output starts with inside berth's documents.
pub const EXCERPT: &str = "    | ";
/// What a secret value is replaced with.
pub const MASK: &str = "(sensitive)";
/// Shorter values are not masked: they would mask ordinary words.
pub const MIN_SECRET: usize = 4;

/// The forms a secret value may be printed in.
fn forms(value: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let b = value.as_bytes();
    let mut all = vec![
        value.to_string(),
        STANDARD.encode(b),
        STANDARD_NO_PAD.encode(b),
        URL_SAFE.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        hex::encode(b),
        hex::encode_upper(b),
    ];
    // Longest first, so a form that holds another is masked whole.
    all.sort_by_key(|f| std::cmp::Reverse(f.len()));
    all.dedup();
    all
}

/// `text` with every secret value (in every form) masked.
pub fn mask<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for value in secrets {
        if value.chars().count() < MIN_SECRET {
            continue;
        }
        for form in forms(value) {
            if out.contains(&form) {
                out = out.replace(&form, MASK);
            }
        }
    }
    out
}

/// The excerpt of container output berth's documents hold: the lines `pick`
/// chose, secrets masked, each line behind [`EXCERPT`] (a line of output
/// that holds a carriage return or other line break is cut there too, so no
/// output line stands in a document without the mark).
pub fn excerpt<'a>(lines: &[&str], secrets: impl IntoIterator<Item = &'a str> + Clone) -> String {
    lines
        .iter()
        .flat_map(|l| {
            l.split([
                '\r', '\n', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}',
            ])
        })
        .map(|l| format!("{EXCERPT}{}", mask(l, secrets.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with every run of excerpt lines replaced by one line saying how many
/// there were and who may read them.
pub fn without_excerpts(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run = 0usize;
    let flush = |run: &mut usize, out: &mut Vec<String>| {
        if *run > 0 {
            out.push(format!(
                "{EXCERPT}({run} log lines, shown to tokens with logs:view)"
            ));
            *run = 0;
        }
    };
    for line in text.split('\n') {
        if line.starts_with(EXCERPT) {
            run += 1;
        } else {
            flush(&mut run, &mut out);
            out.push(line.to_string());
        }
    }
    flush(&mut run, &mut out);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_as_written_and_encoded() {
        let secrets = ["hunter2-pw"];
        let b64 = base64::engine::general_purpose::STANDARD.encode("hunter2-pw");
        for line in [
            "password is hunter2-pw".to_string(),
            format!("encoded {b64}"),
            format!("hex {}", hex::encode("hunter2-pw")),
        ] {
            let got = mask(&line, secrets);
            assert!(!got.contains("hunter2-pw") && got.contains(MASK), "{got}");
            assert!(!got.contains(&b64), "{got}");
        }
        assert_eq!(mask("abc abc", ["abc"]), "abc abc", "too short to mask");
    }

    #[test]
    fn every_output_line_carries_the_mark_and_readers_without_logs_view_get_none() {
        let e = excerpt(&["one\rtwo", "three"], ["secret-value"]);
        assert_eq!(e.lines().count(), 3);
        assert!(e.lines().all(|l| l.starts_with(EXCERPT)), "{e}");
        let doc = format!("web@1 never became healthy\n{e}\n  help: fix it");
        assert_eq!(
            without_excerpts(&doc),
            format!("web@1 never became healthy\n{EXCERPT}(3 log lines, shown to tokens with logs:view)\n  help: fix it")
        );
    }
}
