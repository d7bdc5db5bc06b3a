//! Notifications, pure: a failure's kind from berth's own words, the notify
//! file's checks, the retry pauses, and each sink's form of a notice.

use berth_core::notice::{backoff_ms, kind_of_failure, Kind, Notice, Retry, Sinks, SCHEMA};

#[test]
fn a_failed_apply_is_told_by_what_failed() {
    for (details, kind) in [
        (
            "  shop/web@2.0.0: Swarm rolled the update back: its new tasks failed",
            Kind::RolledBack,
        ),
        (
            "  shop/web@2.0.0: web@2.0.0 never became healthy within 3s",
            Kind::GateFailed,
        ),
        ("  shop/web@2.0.0: failed its health gate", Kind::GateFailed),
        (
            "  shop/web@2.0.0: cannot create container shop-web-2.0.0: no space",
            Kind::Failed,
        ),
    ] {
        assert_eq!(kind_of_failure(details), kind, "{details}");
    }
}

#[test]
fn a_notify_file_is_checked_before_anything_is_sent() {
    let ok = Sinks::parse("sinks:\n  - { kind: slack, url: https://hooks.example/x }\n").unwrap();
    assert_eq!(ok.retry, Retry::default());
    for (text, says) in [
        (
            "sinks:\n  - { kind: email, url: https://x.example }\n",
            "email",
        ),
        (
            "sinks:\n  - { kind: slack, url: ftp://x.example }\n",
            "is not an http(s) URL",
        ),
        (
            "sinks:\n  - { kind: slack, url: https:// }\n",
            "is not an http(s) URL",
        ),
        (
            "sinks:\n  - { kind: ntfy, url: https://n.example/t, secret_file: s }\n",
            "takes no secret_file",
        ),
        (
            "sinks:\n  - { kind: webhook, url: https://w.example, sercet_file: s }\n",
            "sercet_file",
        ),
        (
            "sinks: []\nretry: { attempts: 0, first_ms: 10 }\n",
            "attempts must be 1 to 20",
        ),
    ] {
        let e = Sinks::parse(text).expect_err(text).to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
}

#[test]
fn the_pause_between_tries_doubles_up_to_a_minute() {
    let r = Retry {
        attempts: 20,
        first_ms: 1000,
    };
    let pauses: Vec<u64> = (1..=8).map(|n| backoff_ms(&r, n)).collect();
    assert_eq!(pauses, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
}

#[test]
fn each_sink_form_says_the_kind_and_a_rollback_is_never_a_success() {
    let n = Notice {
        schema: SCHEMA.into(),
        kind: Kind::RolledBack,
        project: "shop".into(),
        at: 0,
        trigger: "api".into(),
        revision: Some("0123456789abcdef".into()),
        subject: Some("bump".into()),
        services: vec!["web".into()],
        summary: "web rolled back to 1.0.0".into(),
        detail: None,
    };
    assert_eq!(
        n.slack()["text"],
        "[berth] shop: rolled-back at 0123456789ab — web rolled back to 1.0.0\ncommit: bump"
    );
    assert_eq!(
        n.ntfy(),
        (
            "berth shop: rolled-back".into(),
            4,
            "warning,rolled-back".into()
        )
    );
    for kind in Kind::ALL {
        let n = Notice { kind, ..n.clone() };
        assert!(!n.text().to_lowercase().contains("success"), "{kind:?}");
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["kind"], kind.word());
    }
}

#[test]
fn a_sink_is_logged_by_its_host_alone() {
    let sinks = Sinks::parse(
        "sinks:\n  - { kind: slack, url: 'https://hooks.slack.com/services/T0/B0/SECRETKEY' }\n  - { kind: ntfy, url: 'http://user:pass@ntfy.example:8080/topic?x=1' }\n",
    )
    .unwrap();
    let shown: Vec<String> = sinks.sinks.iter().map(|s| s.shown()).collect();
    assert_eq!(
        shown,
        ["https://hooks.slack.com/…", "http://ntfy.example:8080/…"]
    );
}
