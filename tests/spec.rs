//! Spec parsing and validation, data-driven: every file under tests/fixtures/spec
//! is parsed, and what berth says about it is compared with its snapshot.
//! Refresh the snapshots with `INSTA_UPDATE=always cargo test --test spec`.

use std::fmt::Write;

use berth::core::spec::{parse, Source, Spec};

/// What a user would see: the validated spec in brief, or every diagnostic.
fn check(name: &str, text: &str) -> String {
    match parse(name, text) {
        Ok(spec) => summary(&spec),
        Err(diags) => format!("error: {diags}"),
    }
}

fn summary(spec: &Spec) -> String {
    let mut out = format!("project {}\n", spec.project);
    if spec.engine != berth::core::spec::EngineKind::Docker {
        let _ = writeln!(
            out,
            "engine {} registry={:?}",
            spec.engine.name(),
            spec.registry
        );
    }
    for s in &spec.services {
        let _ = writeln!(out, "service {} active={}", s.name, s.active);
        for v in &s.versions {
            let source = match &v.source {
                Source::Image(i) => format!("image {i}"),
                Source::Package(p) => format!("package {p}"),
            };
            let _ = writeln!(
                out,
                "  {} {source} machine={} scope={} path={} port={} publish={:?} command={:?}",
                v.id(),
                v.machine.name(),
                v.scope.label(),
                v.path,
                v.port,
                v.publish,
                v.command
            );
            if v.replicas != 1 {
                let _ = writeln!(out, "    replicas={}", v.replicas);
            }
            let secrets: Vec<String> = v
                .secrets
                .iter()
                .map(|(k, s)| format!("{k}<-${}", s.key()))
                .collect();
            let _ = writeln!(
                out,
                "    env={:?} secrets={secrets:?} keeps={:?} health={}ms/{}ms",
                v.env, v.keeps, v.health.timeout_ms, v.health.interval_ms
            );
            if let Some(check) = v.health.check.label() {
                let _ = writeln!(out, "    health check: {check}");
            }
            if v.public || v.share_gpu {
                let _ = writeln!(out, "    public={} share_gpu={}", v.public, v.share_gpu);
            }
            for a in &v.assets {
                let _ = writeln!(out, "    asset {}={} sha256={:?}", a.env, a.url, a.sha256);
            }
        }
    }
    out
}

#[test]
fn every_spec_fixture_parses_or_reports_what_its_snapshot_says() {
    insta::glob!("fixtures/spec/*.yaml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("{}", path.file_name().unwrap().to_string_lossy());
        insta::assert_snapshot!(check(&name, &text));
    });
}

#[test]
fn validation_reports_every_problem_of_a_file_in_one_run() {
    let text = std::fs::read_to_string("tests/fixtures/spec/many_problems_at_once.yaml").unwrap();
    let diags = parse("f.yaml", &text).unwrap_err();
    // machine, keep, runtime-with-image, path, port, version: six problems, not one.
    assert_eq!(diags.items.len(), 6, "{diags}");
    assert!(
        diags.items.iter().all(|d| d.pos.is_some()),
        "every problem has a position: {diags}"
    );
}

#[test]
fn the_same_service_written_in_other_key_order_and_style_validates_the_same() {
    let a =
        "project: p\nservices:\n  s:\n    image: i\n    env: {A: '1', B: '2'}\n    keeps: [/d]\n";
    let b = "services:\n  s:\n    keeps:\n      - /d\n    env:\n      B: 2\n      A: 1\n    image: \"i\"\nproject: p\n";
    let (mut x, mut y) = (parse("a", a).unwrap(), parse("b", b).unwrap());
    // Positions differ by construction; everything else must not.
    for v in x
        .services
        .iter_mut()
        .chain(y.services.iter_mut())
        .flat_map(|s| s.versions.iter_mut())
    {
        v.pos = berth::core::diag::Pos { line: 0, column: 0 };
        v.path_pos = v.pos;
    }
    assert_eq!(x, y);
}

#[test]
fn the_committed_json_schema_equals_the_generated_one() {
    let committed = std::fs::read_to_string("schema/services.schema.json").unwrap();
    assert!(
        committed == berth::core::spec::json_schema(),
        "schema/services.schema.json is stale: run `cargo run -q -- schema > schema/services.schema.json`"
    );
}

/// A file whose one service has `env` built from `vars` (name, value length).
fn with_env(vars: &[(&str, usize)]) -> String {
    let mut text = "project: p\nservices:\n  s:\n    image: i\n    env:\n".to_string();
    for (name, len) in vars {
        let _ = writeln!(text, "      {name}: \"{}\"", "x".repeat(*len));
    }
    text
}

#[test]
fn an_env_value_of_fifty_megabytes_is_refused_where_it_stands() {
    let err = parse("f.yaml", &with_env(&[("SMALL", 3), ("HUGE", 50 << 20)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("f.yaml:7:13"), "{err}");
    assert!(err.contains("`HUGE` is 52428805 bytes"), "{err}");
    assert!(!err.contains("SMALL"), "{err}");
}

#[test]
fn env_values_each_allowed_but_too_many_together_are_refused() {
    let vars: Vec<(String, usize)> = (0..10).map(|i| (format!("V{i}"), 120_000)).collect();
    let vars: Vec<(&str, usize)> = vars.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let err = parse("f.yaml", &with_env(&vars)).unwrap_err().to_string();
    assert!(err.contains("`env` holds"), "{err}");
    assert!(err.contains("at most 1048576"), "{err}");
    assert!(parse("f.yaml", &with_env(&vars[..8])).is_ok());
}

/// The code literals at every place a diagnostic is made, in the core and
/// the binary: (code, file).
fn diagnostic_codes() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![
        std::path::PathBuf::from("src"),
        std::path::PathBuf::from("crates/berth-core/src"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for opener in ["self.err(", "Diagnostic::new("] {
                for (i, _) in text.match_indices(opener) {
                    let rest = text[i + opener.len()..].trim_start();
                    let code: String = rest
                        .strip_prefix('"')
                        .map(|r| r.chars().take_while(|c| *c != '"').collect())
                        .unwrap_or_default();
                    found.push((code, path.display().to_string()));
                }
            }
        }
    }
    found
}

#[test]
fn every_diagnostic_has_its_own_stable_code_and_the_contract_lists_each() {
    let found = diagnostic_codes();
    assert!(
        found.len() > 50,
        "the walk found the diagnostics: {found:?}"
    );
    let shaped = |c: &str| {
        c.len() == 4 && "SDPATFW".contains(&c[..1]) && c[1..].bytes().all(|b| b.is_ascii_digit())
    };
    let mut seen = std::collections::BTreeMap::new();
    for (code, file) in &found {
        // `fn err`'s own body hands its caller's code on.
        if code.is_empty() && file.ends_with("validate.rs") {
            continue;
        }
        assert!(
            shaped(code),
            "{file}: `{code}` is not a code (letter of its area, three digits)"
        );
        if let Some(other) = seen.insert(code.clone(), file.clone()) {
            panic!("{code} is used twice: in {other} and {file}");
        }
    }
    let contract = std::fs::read_to_string("docs/contract.md").unwrap();
    let listed: std::collections::BTreeSet<String> = contract
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.chars().take_while(|c| *c != '`').collect::<String>())
        .filter(|c| shaped(c))
        .collect();
    let used: std::collections::BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        used.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "codes docs/contract.md does not list"
    );
    assert_eq!(
        listed.difference(&used).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "codes docs/contract.md lists that no diagnostic uses"
    );
}
