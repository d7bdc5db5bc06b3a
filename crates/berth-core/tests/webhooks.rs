//! Push webhooks as each host sends them: what is believed, what is refused,
//! and what a believed delivery says. Table-driven; every form of a header
//! a host (or an attacker) may write.

use berth_core::webhook::{is_followed, sign, verify, Event, HookRefusal, Host, Seen};

const SECRET: &[u8] = b"s3cret";
const BODY: &[u8] =
    br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}"#;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `Ok(host)` when believed as a push to main, `Err(refusal)` otherwise.
fn check(headers: &[(&str, &str)], body: &[u8], expect: Result<Host, HookRefusal>) {
    let got = verify(&h(headers), body, SECRET);
    match (&got, &expect) {
        (Ok(d), Ok(host)) => {
            assert_eq!(d.host, *host, "{headers:?}");
            assert!(
                matches!(&d.event, Event::Push { reference, .. } if reference == "refs/heads/main"),
                "{headers:?}: {d:?}"
            );
        }
        (Err(e), Err(want)) => assert_eq!(e, want, "{headers:?}"),
        _ => panic!("{headers:?}: got {got:?}, want {expect:?}"),
    }
}

#[test]
fn each_host_is_believed_when_its_credential_holds_in_any_spelling() {
    let sig = sign(SECRET, BODY);
    let hex = sig.trim_start_matches("sha256=").to_string();
    let upper = format!("SHA256={}", hex.to_uppercase());
    let spaced = format!(" {sig} ");
    let cases: Vec<(Vec<(&str, &str)>, Host)> = vec![
        (
            vec![("X-Hub-Signature-256", &sig), ("X-GitHub-Event", "push")],
            Host::GitHub,
        ),
        (
            vec![("x-hub-signature-256", &upper), ("x-github-event", "push")],
            Host::GitHub,
        ),
        (
            vec![
                ("X-Gitlab-Token", "s3cret"),
                ("X-Gitlab-Event", "Push Hook"),
            ],
            Host::GitLab,
        ),
        (
            vec![("X-Gitea-Signature", &hex), ("X-Gitea-Event", "push")],
            Host::Gitea,
        ),
        (
            vec![("X-Forgejo-Signature", &hex), ("X-Forgejo-Event", "push")],
            Host::Gitea,
        ),
        (vec![("X-Berth-Signature-256", &sig)], Host::Generic),
        (vec![("X-BERTH-SIGNATURE-256", &spaced)], Host::Generic),
    ];
    for (headers, host) in cases {
        check(&headers, BODY, Ok(host));
    }
}

#[test]
fn a_wrong_missing_or_contradicted_credential_is_refused() {
    let sig = sign(SECRET, BODY);
    let other = sign(b"other", BODY);
    let tampered = sign(SECRET, b"{\"ref\":\"refs/heads/evil\"}");
    let cases: Vec<(Vec<(&str, &str)>, HookRefusal)> = vec![
        (vec![], HookRefusal::CredentialMissing),
        (
            vec![("X-GitHub-Event", "push")],
            HookRefusal::CredentialMissing,
        ),
        (
            vec![("X-Hub-Signature", "sha1=abc")],
            HookRefusal::CredentialMissing,
        ),
        (
            vec![("X-Hub-Signature-256", &other)],
            HookRefusal::CredentialWrong(Host::GitHub),
        ),
        (
            vec![("X-Hub-Signature-256", &tampered)],
            HookRefusal::CredentialWrong(Host::GitHub),
        ),
        (
            vec![("X-Hub-Signature-256", "sha256=zz")],
            HookRefusal::CredentialWrong(Host::GitHub),
        ),
        (
            vec![("X-Hub-Signature-256", "")],
            HookRefusal::CredentialWrong(Host::GitHub),
        ),
        (
            vec![("X-Gitlab-Token", "s3cre")],
            HookRefusal::CredentialWrong(Host::GitLab),
        ),
        (
            vec![("X-Gitlab-Token", "S3CRET")],
            HookRefusal::CredentialWrong(Host::GitLab),
        ),
        (
            vec![("X-Gitea-Signature", &other)],
            HookRefusal::CredentialWrong(Host::Gitea),
        ),
        // A good credential beside a bad one is not enough: every one must hold.
        (
            vec![("X-Hub-Signature-256", &sig), ("X-Gitlab-Token", "guess")],
            HookRefusal::CredentialWrong(Host::GitLab),
        ),
        (
            vec![
                ("X-Hub-Signature-256", &sig),
                ("x-hub-signature-256", &other),
            ],
            HookRefusal::CredentialWrong(Host::GitHub),
        ),
    ];
    for (headers, refusal) in cases {
        check(&headers, BODY, Err(refusal));
    }
}

#[test]
fn an_empty_secret_believes_nothing() {
    let got = verify(&h(&[("X-Gitlab-Token", "")]), BODY, b"");
    assert_eq!(got, Err(HookRefusal::CredentialWrong(Host::GitLab)));
}

#[test]
fn a_believed_delivery_says_its_event_ref_commit_and_id() {
    let ping = br#"{"zen":"Keep it logically awesome."}"#;
    let d = verify(
        &h(&[
            ("X-Hub-Signature-256", &sign(SECRET, ping)),
            ("X-GitHub-Event", "ping"),
            ("X-GitHub-Delivery", "d-1"),
        ]),
        ping,
        SECRET,
    )
    .unwrap();
    assert_eq!(d.event, Event::Other("ping".into()));
    assert_eq!(d.id.as_deref(), Some("d-1"));
    let d = verify(
        &h(&[("X-Gitlab-Token", "s3cret"), ("X-Gitlab-Event-UUID", "u-2")]),
        BODY,
        SECRET,
    )
    .unwrap();
    assert_eq!(
        d.event,
        Event::Push {
            reference: "refs/heads/main".into(),
            after: Some("0123456789abcdef0123456789abcdef01234567".into())
        }
    );
    assert_eq!(d.id.as_deref(), Some("u-2"));
    // A signed body that is not a push is nothing to do, never an error.
    let junk = b"not json";
    let d = verify(
        &h(&[("X-Berth-Signature-256", &sign(SECRET, junk))]),
        junk,
        SECRET,
    )
    .unwrap();
    assert!(matches!(d.event, Event::Other(_)), "{d:?}");
}

#[test]
fn only_the_followed_branch_is_followed() {
    for (reference, followed, expect) in [
        ("refs/heads/main", "main", true),
        ("refs/heads/main", "refs/heads/main", true),
        ("refs/heads/main-2", "main", false),
        ("refs/tags/main", "main", false),
        ("refs/heads/release/1", "release/1", true),
        ("main", "main", false),
    ] {
        assert_eq!(
            is_followed(reference, followed),
            expect,
            "{reference} vs {followed}"
        );
    }
}

#[test]
fn a_delivery_id_is_new_once_and_the_oldest_is_forgotten_past_the_capacity() {
    let mut seen = Seen::new(2);
    assert!(seen.first_time("a"));
    assert!(!seen.first_time("a"), "a replay");
    assert!(seen.first_time("b"));
    assert!(seen.first_time("c"));
    assert!(seen.first_time("a"), "forgotten past the capacity");
    assert!(!seen.first_time("c"));
}
