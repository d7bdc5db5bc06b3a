//! berth's credentials as a request carries them: the one reader of a
//! request's headers for a token, used by the gateway (to admit and to strip),
//! the API and the dashboard alike, so no side reads a form the others miss.
//!
//! The rules (docs/contract.md, "Credentials"):
//! - A token is presented in `Authorization`, with the scheme in any case and
//!   any spaces around (RFC 9110 §11.1: schemes are case-insensitive):
//!   `Bearer <token>`, or `Basic` with the token as the password (or as the
//!   user when the password is empty), as git and curl send a token.
//! - Two `Authorization` headers naming different tokens present none.
//! - A header *carries* a berth credential when any word of its value (or of
//!   a `Basic` value decoded) is a token berth knows, or starts with `berth_`
//!   (in any case: revoked tokens and other daemons' too). The gateway removes
//!   every such header, whatever its name or position, before a request goes on.
//! - berth's own cookies (any name starting `berth_`, or `__Host-berth_`,
//!   `__Secure-berth_`, in any case) never reach a service, and a service may
//!   not set one.

use base64::Engine as _;

use super::access::{Tokens, TOKEN_PREFIX};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "berth_session";

/// Words shorter than this are never hashed against the token list: no token
/// `berth token add` makes is that short, and it keeps a request's cost small.
const MIN_WORD: usize = 8;

/// The token an `Authorization` value presents, if it reads as one:
/// `Bearer <token>` or `Basic base64(user:password)` (the password, or the
/// user when the password is empty), the scheme in any case.
pub fn from_authorization(value: &str) -> Option<String> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty() && !rest.contains(char::is_whitespace)).then(|| rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = basic(rest)?;
        let token = if password.is_empty() { user } else { password };
        return (!token.is_empty()).then_some(token);
    }
    None
}

/// `Basic`'s user and password, decoded.
fn basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
    Some((user.to_string(), password.to_string()))
}

/// The token a request presents, from its `Authorization` values: one token,
/// or none when there is none or they disagree.
pub fn presented<'a>(authorization: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut found: Option<String> = None;
    for value in authorization {
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(from_authorization)?;
        match &found {
            Some(f) if *f != token => return None,
            _ => found = Some(token),
        }
    }
    found
}

/// The token a person pasted into the dashboard's sign-in form: the value
/// itself, or a whole `Bearer …` value.
pub fn from_form(text: &str) -> String {
    from_authorization(text).unwrap_or_else(|| text.trim().to_string())
}

/// Whether one word is a berth credential: a token berth knows, or one of
/// berth's shape (the prefix, in any case).
pub fn is_credential(tokens: &Tokens, word: &str) -> bool {
    let w = word.trim();
    w.len() >= TOKEN_PREFIX.len()
        && w.as_bytes()[..TOKEN_PREFIX.len()].eq_ignore_ascii_case(TOKEN_PREFIX.as_bytes())
        || (w.len() >= MIN_WORD && tokens.knows(w))
}

/// The words a header value may hide a token in: split on whitespace and
/// the separators headers use, and a `Basic` value's user and password.
fn words(value: &str) -> impl Iterator<Item = String> + '_ {
    let decoded = value
        .split_ascii_whitespace()
        .filter_map(basic)
        .flat_map(|(u, p)| [u, p]);
    value
        .split(|c: char| c.is_ascii_whitespace() || ",;=:\"'()<>[]{}&?".contains(c))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .chain(std::iter::once(value.trim().to_string()))
        .chain(decoded)
}

/// Whether a header's value carries a berth credential anywhere. A value that
/// is not text is searched as Latin-1, so no byte hides a token.
pub fn carries(tokens: &Tokens, value: &[u8]) -> bool {
    let text: String = match std::str::from_utf8(value) {
        Ok(t) => t.to_string(),
        Err(_) => value.iter().map(|&b| b as char).collect(),
    };
    let found = words(&text).any(|w| is_credential(tokens, &w));
    found
}

/// Whether a cookie name is berth's own: a service never receives one, and
/// never sets one.
pub fn is_berth_cookie(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("__host-")
        .or_else(|| lower.strip_prefix("__secure-"))
        .unwrap_or(&lower);
    bare.starts_with(TOKEN_PREFIX)
}

/// A `Cookie` value without berth's cookies and without any cookie whose value
/// carries a credential; `None` when nothing is left.
pub fn cookie_for_service(tokens: &Tokens, value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            !is_berth_cookie(name) && !carries(tokens, v.as_bytes())
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Whether a service's `Set-Cookie` names one of berth's cookies (or carries a
/// credential): the gateway drops it, so no route can claim the session.
pub fn set_cookie_refused(tokens: &Tokens, value: &[u8]) -> bool {
    let text = String::from_utf8_lossy(value);
    let first = text.split(';').next().unwrap_or("");
    let (name, v) = first.split_once('=').unwrap_or((first, ""));
    is_berth_cookie(name) || carries(tokens, v.as_bytes())
}

/// The dashboard's session ID from a request's `Cookie` values: one session
/// cookie, or none when there is none or two disagree (a cookie planted
/// beside berth's own, for another path, is not taken for it).
pub fn session_id<'a>(cookies: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut found: Option<String> = None;
    for value in cookies {
        let text = std::str::from_utf8(value).ok()?;
        for pair in text.split(';') {
            let Some((name, id)) = pair.trim().split_once('=') else {
                continue;
            };
            if name != SESSION_COOKIE {
                continue;
            }
            match &found {
                Some(f) if f != id => return None,
                _ => found = Some(id.to_string()),
            }
        }
    }
    found
}

/// What becomes of one request header on its way to a service: every header
/// that carries a credential removed, berth's cookies taken out of `Cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scrub {
    Keep,
    Remove,
    /// A `Cookie` header with only the service's own cookies left.
    Replace(String),
}

/// What the gateway does with one request header.
pub fn scrub(tokens: &Tokens, name: &str, value: &[u8]) -> Scrub {
    if name.eq_ignore_ascii_case("cookie") {
        return match cookie_for_service(tokens, value) {
            Some(kept) if kept.as_bytes() == value => Scrub::Keep,
            Some(kept) => Scrub::Replace(kept),
            None => Scrub::Remove,
        };
    }
    if carries(tokens, value) {
        Scrub::Remove
    } else {
        Scrub::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Tokens;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn an_authorization_value_reads_in_any_case_and_spacing() {
        for (value, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc  ", Some("abc")),
            ("  Bearer\tabc", Some("abc")),
            (&format!("Basic {}", b64("x:tok")), Some("tok")),
            (&format!("basic {}", b64("tok:")), Some("tok")),
            (&format!("BASIC {}", b64("tok")), Some("tok")),
            ("Bearer", None),
            ("Bearer a b", None),
            ("Digest x", None),
        ] {
            assert_eq!(from_authorization(value).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn two_authorization_headers_that_disagree_present_no_token() {
        let one: [&[u8]; 2] = [b"Bearer a1234567", b"bearer a1234567"];
        assert_eq!(presented(one).as_deref(), Some("a1234567"));
        let two: [&[u8]; 2] = [b"Bearer a1234567", b"Bearer b1234567"];
        assert_eq!(presented(two), None);
        let bad: [&[u8]; 2] = [b"Bearer a1234567", b"Negotiate x"];
        assert_eq!(presented(bad), None);
    }

    #[test]
    fn a_credential_is_found_in_any_word_of_any_header() {
        let tokens = Tokens::default().with_root("rootsecret-1");
        for (value, carries_one) in [
            ("Bearer berth_abc", true),
            ("token BERTH_abc", true),
            ("x=1, key=berth_zz", true),
            ("rootsecret-1", true),
            ("Bearer rootsecret-1", true),
            (&format!("Basic {}", b64("u:berth_pw")), true),
            (&format!("Basic {}", b64("rootsecret-1:")), true),
            ("Bearer theirs-own-token", false),
            ("text/html", false),
        ] {
            assert_eq!(carries(&tokens, value.as_bytes()), carries_one, "{value:?}");
        }
    }

    #[test]
    fn berths_cookies_leave_the_cookie_header_and_the_services_stay() {
        let tokens = Tokens::default();
        assert_eq!(
            scrub(&tokens, "Cookie", b"theme=dark; berth_session=abc; sid=1"),
            Scrub::Replace("theme=dark; sid=1".into())
        );
        assert_eq!(
            scrub(&tokens, "cookie", b"__Host-Berth_Session=abc"),
            Scrub::Remove
        );
        assert_eq!(scrub(&tokens, "cookie", b"a=1; b=2"), Scrub::Keep);
        assert_eq!(
            scrub(&tokens, "cookie", b"a=1; stolen=berth_x"),
            Scrub::Replace("a=1".into())
        );
        assert!(set_cookie_refused(&tokens, b"berth_session=evil; Path=/ui"));
        assert!(set_cookie_refused(&tokens, b"__Secure-BERTH_x=1"));
        assert!(!set_cookie_refused(&tokens, b"sid=1; Path=/"));
    }

    #[test]
    fn one_session_cookie_names_a_session_and_two_that_disagree_name_none() {
        let one: [&[u8]; 1] = [b"a=1; berth_session=s1"];
        assert_eq!(session_id(one).as_deref(), Some("s1"));
        let two: [&[u8]; 1] = [b"berth_session=planted; berth_session=s1"];
        assert_eq!(session_id(two), None);
    }
}
