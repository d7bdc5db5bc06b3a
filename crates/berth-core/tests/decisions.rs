//! The decisions that live in the core, each checked over a table of cases:
//! health classification, container roles, the rollback target, the stale-plan
//! diff, the build-only plan and the gateway's admission rule.
#![allow(clippy::type_complexity)] // the case tables are the point

use std::collections::BTreeMap;

use berth_core::desired::{BuildFact, BuildInput};
use berth_core::health::{classify, reason, Health, HealthFacts};
use berth_core::plan::{builds_only, stale_changes, Action};
use berth_core::role::ContainerRole;
use berth_core::rollback;
use berth_core::spec::Runtime;

/// The facts of a container with a health check.
fn facts_of(
    state: &str,
    role: Option<ContainerRole>,
    restarts: i64,
    up_secs: u64,
    answered: Option<bool>,
) -> HealthFacts<'_> {
    HealthFacts {
        state,
        role,
        restarts,
        up_secs,
        answered,
        unchecked: false,
        job: None,
    }
}

/// (state, role, restarts, up_secs, answered) -> the word status shows.
fn check_health(
    cases: &[(
        (&str, Option<ContainerRole>, i64, u64, Option<bool>),
        Health,
    )],
) {
    for ((state, role, restarts, up_secs, answered), want) in cases {
        let got = classify(facts_of(state, *role, *restarts, *up_secs, *answered));
        assert_eq!(
            got, *want,
            "state {state}, role {role:?}, {restarts} restarts, up {up_secs}s, answered {answered:?}"
        );
    }
}

#[test]
fn a_container_the_engine_keeps_restarting_is_a_crash_loop_whatever_a_probe_says() {
    use ContainerRole::Canonical as C;
    check_health(&[
        (("restarting", Some(C), 1, 0, None), Health::CrashLooping),
        (("exited", Some(C), 5, 0, None), Health::CrashLooping),
        // Healthy between two crashes is still a crash loop.
        (("running", Some(C), 5, 2, Some(true)), Health::CrashLooping),
        // Up ten minutes since: recovered.
        (("running", Some(C), 5, 600, Some(true)), Health::Healthy),
        // Not answering yet, but young.
        (("running", Some(C), 1, 2, Some(false)), Health::Starting),
        (("running", Some(C), 1, 600, Some(false)), Health::Unhealthy),
        (("running", Some(C), 0, 2, None), Health::Unknown),
        (("exited", Some(C), 0, 0, None), Health::NotRunning),
    ]);
}

#[test]
fn a_version_declared_without_a_check_is_unchecked_while_it_runs_and_still_a_crash_loop_when_it_loops(
) {
    let facts = |state, restarts| HealthFacts {
        state,
        role: Some(ContainerRole::Canonical),
        restarts,
        up_secs: 5,
        answered: None,
        unchecked: true,
        job: None,
    };
    assert_eq!(classify(facts("running", 0)), Health::Unchecked);
    assert_eq!(Health::Unchecked.word(), "unchecked");
    assert_eq!(classify(facts("running", 4)), Health::CrashLooping);
    assert_eq!(classify(facts("exited", 0)), Health::NotRunning);
}

#[test]
fn a_failed_container_is_failed_and_a_successor_on_probation_is_starting() {
    check_health(&[
        (
            ("exited", Some(ContainerRole::Failed), 0, 0, None),
            Health::Failed,
        ),
        (
            ("running", Some(ContainerRole::Failed), 0, 900, Some(true)),
            Health::Failed,
        ),
        (
            ("running", Some(ContainerRole::Next), 0, 900, Some(false)),
            Health::Starting,
        ),
        (
            ("exited", Some(ContainerRole::Next), 0, 0, None),
            Health::NotRunning,
        ),
        (
            ("running", Some(ContainerRole::Old), 0, 900, Some(true)),
            Health::Healthy,
        ),
    ]);
}

#[test]
fn health_words_are_the_ones_status_has_always_printed() {
    let words: Vec<String> = [
        Health::Healthy,
        Health::Starting,
        Health::Unhealthy,
        Health::Failed,
        Health::CrashLooping,
        Health::Unknown,
        Health::NotRunning,
    ]
    .iter()
    .map(|h| {
        serde_json::to_value(h)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    assert_eq!(
        words,
        [
            "healthy",
            "starting",
            "unhealthy",
            "failed",
            "crash-looping",
            "unknown",
            "-"
        ]
    );
}

#[test]
fn every_role_name_reads_back_as_its_role() {
    let canonical = "shop-web-1.2.0";
    for role in ContainerRole::ALL {
        let name = role.name(canonical, "0123456789abcdef");
        assert_eq!(ContainerRole::of(&name, canonical), Some(role), "{name}");
    }
    assert_eq!(
        ContainerRole::Next.name(canonical, "0123456789abcdef"),
        "shop-web-1.2.0-next-0123456789ab"
    );
    assert_eq!(ContainerRole::Canonical.name(canonical, "x"), canonical);
}

#[test]
fn names_berth_does_not_make_have_no_role() {
    let canonical = "shop-web-1.2.0";
    for name in [
        "shop-web-1.2.0-next-",
        "shop-web-1.2.0-other-abc",
        "shop-web-1.2.0-old-a-b",
        "shop-web-1.2.00",
        "shop-web-1.2",
        "shop-web-next-1.2.0",
    ] {
        assert_eq!(ContainerRole::of(name, canonical), None, "{name}");
    }
    assert_eq!(
        ContainerRole::of_labelled("shop-web-1.2.0-failed-abc", "shop", "web", "1.2.0"),
        Some(ContainerRole::Failed)
    );
    assert!(ContainerRole::Old.may_serve() && ContainerRole::Canonical.may_serve());
    assert!(!ContainerRole::Next.may_serve() && !ContainerRole::Failed.may_serve());
}

/// (declared, current, history, --to) -> the target, or the refusal's reason.
fn check_rollback(cases: &[(&[&str], &str, &[&str], Option<&str>, Result<&str, &str>)]) {
    for (declared, current, history, to, want) in cases {
        let declared: Vec<String> = declared.iter().map(|s| s.to_string()).collect();
        let history: Vec<String> = history.iter().map(|s| s.to_string()).collect();
        let got = rollback::target("web", &declared, current, &history, *to);
        match (got, want) {
            (Ok(t), Ok(w)) => assert_eq!(t, *w),
            (Err(r), Err(w)) => assert!(r.why.contains(w), "{} should say {w}", r.why),
            (got, want) => {
                panic!("{declared:?} {current} {history:?} {to:?}: got {got:?}, want {want:?}")
            }
        }
    }
}

#[test]
fn rollback_picks_the_newest_earlier_version_still_declared() {
    check_rollback(&[
        (
            &["1.0.0", "2.0.0"],
            "2.0.0",
            &["1.0.0", "2.0.0"],
            None,
            Ok("1.0.0"),
        ),
        (
            &["1.0.0", "2.0.0", "3.0.0"],
            "3.0.0",
            &["1.0.0", "2.0.0", "3.0.0"],
            None,
            Ok("2.0.0"),
        ),
        // 2.0.0 is no longer declared: the one before it.
        (
            &["1.0.0", "3.0.0"],
            "3.0.0",
            &["1.0.0", "2.0.0", "3.0.0"],
            None,
            Ok("1.0.0"),
        ),
        (
            &["1.0.0", "2.0.0"],
            "2.0.0",
            &[],
            Some("1.0.0"),
            Ok("1.0.0"),
        ),
    ]);
}

#[test]
fn rollback_refuses_what_it_cannot_do() {
    check_rollback(&[
        (
            &["1.0.0", "2.0.0"],
            "2.0.0",
            &["2.0.0"],
            None,
            Err("no version of `web` other than 2.0.0"),
        ),
        (
            &["1.0.0", "2.0.0"],
            "2.0.0",
            &[],
            Some("9.9.9"),
            Err("declares no version 9.9.9"),
        ),
    ]);
}

#[test]
fn rollback_to_the_active_version_names_it_and_the_command_says_nothing_to_do() {
    check_rollback(&[(
        &["1.0.0", "2.0.0"],
        "2.0.0",
        &[],
        Some("2.0.0"),
        Ok("2.0.0"),
    )]);
}

#[test]
fn a_stale_plan_says_what_went_and_what_came() {
    let was = vec!["container a".to_string(), "container b".to_string()];
    let now = vec!["container b".to_string(), "container c".to_string()];
    assert_eq!(
        stale_changes(&was, &now),
        ["- was: container a", "+ now: container c"]
    );
    assert!(stale_changes(&was, &was).is_empty());
}

fn fact(id: &str, runtime: Runtime, base_missing: bool, built: bool) -> BuildFact {
    BuildFact {
        input: BuildInput {
            id: id.into(),
            package: "pkg".into(),
            runtime,
            extras: vec![],
            vendored: false,
            command: None,
            cuda: None,
            registry: None,
            keeps: vec![],
        },
        source_hash: "s".repeat(64),
        base: format!("berth-local/{}:stable", runtime.name()),
        base_missing,
        tag: Some(format!("berth/p-{id}")),
        image_id: built.then(|| "sha256:1".to_string()),
        stripped: None,
        entry: None,
    }
}

/// target -> (build steps as `verb subject`, cached tags), or None.
fn check_builds(
    facts: &BTreeMap<String, BuildFact>,
    cases: &[(Option<&str>, Option<(&[&str], &[&str])>)],
) {
    for (target, want) in cases {
        let got = builds_only("p", facts, *target).map(|(plan, cached)| {
            let steps: Vec<String> = plan
                .steps
                .iter()
                .map(|s| match &s.action {
                    Action::BuildBase { tag, .. } => format!("base {tag}"),
                    Action::BuildImage {
                        service, version, ..
                    } => format!("image {service}@{version}"),
                    other => panic!("a build-only plan has only builds: {other:?}"),
                })
                .collect();
            (steps, cached)
        });
        let want = want.map(|(s, c)| {
            (
                s.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                c.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
            )
        });
        assert_eq!(got, want, "target {target:?}");
    }
}

#[test]
fn a_build_only_plan_builds_the_target_and_its_missing_base_once() {
    let facts = BTreeMap::from([
        (
            "api@1.0.0".to_string(),
            fact("api@1.0.0", Runtime::Python311, true, false),
        ),
        (
            "api@2.0.0".to_string(),
            fact("api@2.0.0", Runtime::Python311, true, true),
        ),
        (
            "web@1.0.0".to_string(),
            fact("web@1.0.0", Runtime::Node20, false, false),
        ),
    ]);
    check_builds(
        &facts,
        &[
            (
                None,
                Some((
                    &[
                        "base berth-local/python3.11:stable",
                        "image api@1.0.0",
                        "image web@1.0.0",
                    ],
                    &["berth/p-api@2.0.0"],
                )),
            ),
            (
                Some("api"),
                Some((
                    &["base berth-local/python3.11:stable", "image api@1.0.0"],
                    &["berth/p-api@2.0.0"],
                )),
            ),
            (
                Some("api@2.0.0"),
                Some((
                    &["base berth-local/python3.11:stable"],
                    &["berth/p-api@2.0.0"],
                )),
            ),
            (Some("web@1.0.0"), Some((&["image web@1.0.0"], &[]))),
            (Some("db"), None),
            (Some("api@9.0.0"), None),
        ],
    );
}

#[test]
fn status_shows_how_long_a_container_is_up_in_the_largest_whole_unit() {
    use berth_core::render::ago;
    for (secs, shown) in [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (90_000, "1d"),
    ] {
        assert_eq!(ago(secs), shown, "{secs}");
    }
}

#[test]
fn a_version_keeps_its_running_and_previous_image_and_only_gc_takes_caches() {
    use berth_core::retain::{advance, removable, ProjectImage, Record};
    let running = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(v, i)| (v.to_string(), i.to_string()))
            .collect()
    };
    let mut record = Record::new();
    for (step, now, want) in [
        ("first apply", "a", vec!["a"]),
        ("a change", "b", vec!["b", "a"]),
        ("another", "c", vec!["c", "b"]),
        ("a revert to b", "b", vec!["b", "c"]),
        ("no change", "b", vec!["b", "c"]),
    ] {
        record = advance(&record, &running(&[("web@1.0.0", now)]));
        assert_eq!(record["web@1.0.0"], want, "{step}");
    }
    record = advance(&record, &running(&[]));
    assert!(
        record.is_empty(),
        "a version no longer running is forgotten"
    );

    let image = |id: &str, tag: &str| ProjectImage {
        id: id.into(),
        tags: vec![tag.into()],
    };
    let images = [
        image("a", "berth/p-web:aaa"),
        image("b", "berth/p-web:bbb"),
        image("c", "berth/p-web:ccc"),
        image("d", "berth-deps/p:ddd"),
    ];
    let record = advance(
        &advance(&Record::new(), &running(&[("web@1.0.0", "b")])),
        &running(&[("web@1.0.0", "c")]),
    );
    let in_use = ["c".to_string()].into_iter().collect();
    let ids = |v: Vec<&ProjectImage>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(removable(&images, &in_use, &record, false)),
        ["a"],
        "after a converge"
    );
    assert_eq!(
        ids(removable(&images, &in_use, &Record::new(), true)),
        ["a", "b", "d"],
        "berth gc"
    );
}

#[test]
fn the_reason_shown_on_hover_names_what_decided_the_health() {
    use ContainerRole::Canonical as C;
    // (state, role, restarts, up_secs, answered, the probe's error) -> words the reason holds.
    let cases: &[(
        (
            &str,
            Option<ContainerRole>,
            i64,
            u64,
            Option<bool>,
            Option<&str>,
        ),
        &str,
    )] = &[
        (
            (
                "running",
                Some(C),
                0,
                90,
                Some(false),
                Some("GET /health answered 500"),
            ),
            "up 90s and GET /health answered 500",
        ),
        (
            (
                "running",
                Some(C),
                0,
                3,
                Some(false),
                Some("GET / failed: refused"),
            ),
            "grace before it counts as unhealthy: GET / failed: refused",
        ),
        (
            ("running", Some(C), 5, 2, Some(true), None),
            "restarted 5 times, and up only 2s",
        ),
        (
            ("restarting", Some(C), 2, 0, None, None),
            "the engine is restarting it (2 restarts",
        ),
        (
            ("exited", Some(ContainerRole::Failed), 0, 0, None, None),
            "failed the health gate",
        ),
        (
            (
                "running",
                Some(ContainerRole::Next),
                0,
                1,
                Some(false),
                None,
            ),
            "on probation",
        ),
        (("running", Some(C), 0, 2, None, None), "no port"),
        (("exited", Some(C), 0, 0, None, None), "it is exited"),
        (
            ("running", Some(C), 0, 40, Some(true), None),
            "health check passes",
        ),
    ];
    for ((state, role, restarts, up_secs, answered, error), want) in cases {
        let facts = facts_of(state, *role, *restarts, *up_secs, *answered);
        let got = reason(classify(facts), &facts, *error);
        assert!(
            got.contains(want),
            "{state} {role:?}: {got:?} lacks {want:?}"
        );
    }
}

#[test]
fn a_job_is_running_while_it_runs_completed_after_exit_zero_and_failed_after_any_other_exit() {
    let job = |state, exit: Option<i64>| HealthFacts {
        state,
        role: Some(ContainerRole::Canonical),
        restarts: 0,
        up_secs: 3,
        answered: None,
        unchecked: true,
        job: Some(exit),
    };
    assert_eq!(classify(job("running", None)), Health::Running);
    assert_eq!(classify(job("exited", Some(0))), Health::Completed);
    assert_eq!(classify(job("exited", Some(3))), Health::Failed);
    assert_eq!(
        reason(Health::Failed, &job("exited", Some(3)), None),
        "the job exited with code 3"
    );
    assert_eq!(Health::Completed.word(), "completed");
}
