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
        tokens().decide(presented, needed, berth::core::access::Scope::Any),
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
            t.decide(Some("root-token"), p, berth::core::access::Scope::Any),
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

/// Runs `berth token add` in `dir` on a token file holding `content`; returns
/// the exit code, stderr, and the file's bytes afterwards.
fn token_add_on(content: &[u8]) -> (i32, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.yaml");
    std::fs::write(&file, content).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(dir.path())
        .args(["token", "add", "carol", "-p", "services:view"])
        .env("BERTH_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read(&file).unwrap(),
    )
}

#[test]
fn token_add_refuses_a_token_file_that_is_not_utf8_and_leaves_it_untouched() {
    let mut content = format!(
        "tokens:\n{}{}",
        token_entry("alice", "secret-a", &[Permission::ServicesView]),
        token_entry("bob", "secret-b", &[Permission::ServicesView])
    )
    .into_bytes();
    content.extend_from_slice(b"# caf\xe9\n");
    let (code, stderr, after) = token_add_on(&content);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    assert!(stderr.contains("tokens.yaml"), "{stderr}");
    assert_eq!(
        after, content,
        "alice and bob are still there, byte for byte"
    );
}

#[test]
fn token_add_appends_to_an_existing_file_and_leaves_no_temporary_file() {
    let content = format!(
        "tokens:\n{}",
        token_entry("alice", "secret-a", &[Permission::ServicesView])
    );
    let (code, stderr, after) = token_add_on(content.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let after = String::from_utf8(after).unwrap();
    assert!(after.starts_with(&content), "{after}");
    assert!(after.contains("name: carol"), "{after}");
}

#[test]
fn a_grant_for_one_project_holds_there_alone_and_a_bare_one_everywhere() {
    use berth::core::access::{Grant, Scope};
    let grants =
        |list: &[&str]| -> Vec<Grant> { list.iter().map(|g| Grant::parse(g).unwrap()).collect() };
    let text = format!(
        "tokens:\n{}{}",
        token_entry(
            "shop-team",
            "secret-s",
            &grants(&["services:view", "services:deploy@shop", "logs:view@shop"])
        ),
        token_entry("ops", "secret-o", &grants(&["services:deploy"])),
    );
    let t = parse_tokens("tokens.yaml", &text).unwrap();
    let allow = |n: &str| Decision::Allow(n.into());
    let forbid = |n: &str| Decision::Forbidden(n.into());
    for (token, needed, scope, want) in [
        (
            "secret-s",
            Permission::ServicesDeploy,
            Scope::Project("shop"),
            allow("shop-team"),
        ),
        (
            "secret-s",
            Permission::ServicesDeploy,
            Scope::Project("billing"),
            forbid("shop-team"),
        ),
        (
            "secret-s",
            Permission::ServicesView,
            Scope::Project("billing"),
            allow("shop-team"),
        ),
        (
            "secret-s",
            Permission::LogsView,
            Scope::Project("billing"),
            forbid("shop-team"),
        ),
        // Before the one project's file parses, only a bare grant holds.
        (
            "secret-s",
            Permission::ServicesDeploy,
            Scope::Unknown,
            forbid("shop-team"),
        ),
        (
            "secret-s",
            Permission::ServicesDeploy,
            Scope::Any,
            allow("shop-team"),
        ),
        (
            "secret-o",
            Permission::ServicesDeploy,
            Scope::Project("billing"),
            allow("ops"),
        ),
        (
            "secret-o",
            Permission::ServicesDeploy,
            Scope::Unknown,
            allow("ops"),
        ),
        (
            "secret-o",
            Permission::ServicesView,
            Scope::Any,
            forbid("ops"),
        ),
    ] {
        assert_eq!(
            t.decide(Some(token), needed, scope),
            want,
            "{token} {} {scope:?}",
            needed.name()
        );
    }
}

#[test]
fn a_grant_naming_no_project_or_an_invalid_one_is_refused_where_it_is() {
    check_refused(
        "tokens:\n  - name: a\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    permissions: [services:deploy@, services:view@Shop, services:fly@shop]\n",
        &[
            "tokens.yaml:4:",
            "`services:deploy@` names project ``",
            "`services:view@Shop` names project `Shop`",
            "unknown permission `services:fly`",
            "services:deploy@shop",
        ],
    );
}

#[test]
fn token_add_writes_a_grant_for_one_project_and_refuses_a_bad_one_as_usage() {
    let dir = tempfile::tempdir().unwrap();
    let run = |perm: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .current_dir(dir.path())
            .args(["token", "add", "shop", "-p", perm])
            .env("BERTH_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap()
    };
    let bad = run("services:deploy@Not_A_Project");
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(!dir.path().join("tokens.yaml").exists());
    let good = run("services:deploy@shop");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let file = std::fs::read_to_string(dir.path().join("tokens.yaml")).unwrap();
    assert!(
        file.contains("permissions: [services:deploy@shop]"),
        "{file}"
    );
    parse_tokens("tokens.yaml", &file).unwrap();
}
