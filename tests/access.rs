//! Access rules, pure: token files (hashed tokens with permissions) and the
//! decision for a request: allow, 401 or 403.

use berth::core::access::{parse_tokens, token_entry, Decision, Permission, Tokens};

fn tokens() -> Tokens {
    let text = format!(
        "tokens:\n{}{}",
        token_entry("viewer", "secret-v", &[Permission::ServicesView]),
        token_entry(
            "deployer",
            "secret-d",
            &[Permission::ServicesDeploy, Permission::LogsView]
        )
    );
    parse_tokens("tokens.yaml", &text).unwrap()
}

fn check(presented: Option<&str>, needed: Permission, expect: Decision) {
    assert_eq!(
        tokens().decide(presented, needed),
        expect,
        "{presented:?} for {}",
        needed.name()
    );
}

#[test]
fn a_token_is_allowed_what_its_permissions_say_and_forbidden_the_rest() {
    check(
        Some("secret-v"),
        Permission::ServicesView,
        Decision::Allow("viewer".into()),
    );
    check(
        Some("secret-v"),
        Permission::ServicesDeploy,
        Decision::Forbidden("viewer".into()),
    );
    check(
        Some("secret-d"),
        Permission::LogsView,
        Decision::Allow("deployer".into()),
    );
    check(
        Some("secret-d"),
        Permission::ServicesView,
        Decision::Forbidden("deployer".into()),
    );
}

#[test]
fn no_token_or_an_unknown_one_is_unauthenticated() {
    check(None, Permission::ServicesView, Decision::Unauthenticated);
    check(
        Some("secret-x"),
        Permission::ServicesView,
        Decision::Unauthenticated,
    );
    check(
        Some(""),
        Permission::ServicesView,
        Decision::Unauthenticated,
    );
}

#[test]
fn a_token_given_in_clear_may_do_anything() {
    let t = Tokens::default().with_root("root-token");
    for p in Permission::ALL {
        assert_eq!(
            t.decide(Some("root-token"), p),
            Decision::Allow("root".into())
        );
    }
}

#[test]
fn the_file_holds_the_hash_never_the_token() {
    let entry = token_entry("viewer", "secret-v", &[Permission::ServicesView]);
    assert!(!entry.contains("secret-v"), "{entry}");
    assert!(entry.contains("permissions: [services:view]"), "{entry}");
}

/// A token file with problems: every one reported, with its line and column.
fn check_refused(text: &str, expect: &[&str]) {
    let err = parse_tokens("tokens.yaml", text).unwrap_err().to_string();
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
}

#[test]
fn a_bad_token_file_reports_every_problem_where_it_is() {
    check_refused(
        "tokens:\n  - name: a\n    sha256: nothex\n    permissions: [services:fly]\n  - name: a\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
        &[
            "tokens.yaml:3:",
            "`sha256` is not 64 hex digits",
            "tokens.yaml:4:",
            "unknown permission `services:fly`",
            "tokens.yaml:5:",
            "token `a` is listed twice",
        ],
    );
    check_refused(
        "tokens:\n  - name: a\n    token: x\n",
        &["tokens.yaml:3:", "unknown field"],
    );
}
