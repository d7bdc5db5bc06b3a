//! Crash injection: `berth apply` SIGKILLed at every step boundary of a rollout
//! (the debug build's `BERTH_CRASH_AT` points: after each create, start, gate,
//! rename, stop, inside a switch of the active version and after every step
//! of the plan), for a create from nothing, a
//! side-by-side replace, a stop-first replace, an active switch and a removal.
//! After each kill, the next `apply` must converge: exactly the declared
//! containers under their canonical names, no `-next-`/`-old-`/`-failed-` left,
//! the keep's data intact, the new content served, and `plan` empty. Where the
//! replace runs side by side, some version serves at every kill.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{docker, text, Project, BERTH};

/// The kill points inside a rollout, in the order a replace passes them.
const POINTS: [&str; 6] = [
    "created",
    "started",
    "gated",
    "stopped-old",
    "moved-aside",
    "renamed",
];

struct Scenario {
    name: &'static str,
    /// The file converged before the kill; `None`: an empty engine.
    before: Option<String>,
    after: String,
    /// Canonical container (without the project prefix) -> what it serves after.
    serves: &'static [(&'static str, &'static str)],
    /// The container whose keep holds data that must survive.
    keeps: Option<&'static str>,
    /// A container of this service (`-web-`) serves at every kill point.
    always_serving: Option<&'static str>,
}

fn web(greeting: &str, keeps: bool) -> String {
    format!(
        "project: {{p}}
services:
  web:
    image: berth-local/busybox:stable
    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']
    env: {{ GREETING: {greeting} }}
    health: {{ timeout: 10s, interval: 100ms }}
{}",
        if keeps { "    keeps: [/data]\n" } else { "" }
    )
}

fn versions(active: &str) -> String {
    format!(
        "project: {{p}}
services:
  web:
    image: berth-local/busybox:stable
    command: [sh, -c, 'echo $BERTH_VERSION > /www/index.html && exec httpd -f -p 8000 -h /www']
    health: {{ timeout: 10s, interval: 100ms }}
    versions: {{ \"1.0.0\": {{}}, \"2.0.0\": {{}} }}
    active: \"{active}\"
"
    )
}

fn scenarios() -> Vec<Scenario> {
    let two = format!(
        "{}  extra:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo extra > /www/index.html && exec httpd -f -p 8000 -h /www']\n",
        web("one", false)
    );
    vec![
        Scenario {
            name: "create",
            before: None,
            after: web("one", false),
            serves: &[("web-0.0.0", "one")],
            keeps: None,
            always_serving: None,
        },
        Scenario {
            name: "side-by-side",
            before: Some(web("one", false)),
            after: web("two", false),
            serves: &[("web-0.0.0", "two")],
            keeps: None,
            always_serving: Some("web-0.0.0"),
        },
        Scenario {
            name: "stop-first",
            before: Some(web("one", true)),
            after: web("two", true),
            serves: &[("web-0.0.0", "two")],
            keeps: Some("web-0.0.0"),
            always_serving: None,
        },
        Scenario {
            name: "active-switch",
            before: Some(versions("1.0.0")),
            after: versions("2.0.0"),
            serves: &[("web-1.0.0", "1.0.0"), ("web-2.0.0", "2.0.0")],
            keeps: None,
            always_serving: Some("web-"),
        },
        Scenario {
            name: "removal",
            before: Some(two),
            after: web("one", false),
            serves: &[("web-0.0.0", "one")],
            keeps: None,
            always_serving: Some("web-0.0.0"),
        },
    ]
}

/// Runs `berth apply` with a crash point armed; `true` when it was killed there.
fn apply_killed_at(p: &Project, point: &str) -> bool {
    let out = Command::new(BERTH)
        .arg("apply")
        .current_dir(p.dir.path())
        .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
        .env("BERTH_CRASH_AT", point)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => false,
        None => true,
        Some(code) => panic!(
            "apply with {point} armed failed with {code}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        ),
    }
}

/// Whether a running container named like `<project>-<prefix>...` answers.
fn something_serves(p: &Project, prefix: &str) -> bool {
    let wanted = format!("{}-{prefix}", p.name);
    p.containers().keys().any(|name| {
        name.starts_with(&wanted)
            && !name.contains("-next-")
            && !name.contains("-failed-")
            && p.inspect(name, "{{.State.Status}}") == "running"
    })
}

fn converged(p: &Project, s: &Scenario, point: &str) {
    let out = p.berth(&["apply"]);
    assert!(
        out.status.success(),
        "{} killed at {point}: the next apply failed:\n{}{}",
        s.name,
        text(&out.stdout),
        text(&out.stderr)
    );
    let names: BTreeSet<String> = p.containers().into_keys().collect();
    let expected: BTreeSet<String> = s
        .serves
        .iter()
        .map(|(c, _)| format!("{}-{c}", p.name))
        .collect();
    assert_eq!(names, expected, "{} killed at {point}", s.name);
    for (c, greeting) in s.serves {
        let name = format!("{}-{c}", p.name);
        assert_eq!(
            docker(&["exec", &name, "cat", "/www/index.html"]),
            *greeting,
            "{} killed at {point}: {name}",
            s.name
        );
    }
    if let Some(c) = s.keeps {
        let name = format!("{}-{c}", p.name);
        assert_eq!(
            docker(&["exec", &name, "cat", "/data/file"]),
            "precious",
            "{} killed at {point}: the keep's data",
            s.name
        );
    }
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains("No changes"),
        "{} killed at {point}: {plan}",
        s.name
    );
}

fn reset(p: &Project, s: &Scenario) {
    match &s.before {
        None => {
            p.write(&s.after);
            p.ok(&["destroy"]);
        }
        Some(before) => {
            p.write(before);
            p.ok(&["apply"]);
            if let Some(c) = s.keeps {
                let name = format!("{}-{c}", p.name);
                docker(&["exec", &name, "sh", "-c", "echo precious > /data/file"]);
            }
        }
    }
    p.write(&s.after);
}

#[test]
fn an_apply_killed_at_any_step_boundary_converges_on_the_next_apply() {
    let Some(p) = Project::new("crashes") else {
        return;
    };
    let started = Instant::now();
    let mut kills = Vec::new();
    for s in scenarios() {
        let mut points: Vec<String> = POINTS.iter().map(|p| p.to_string()).collect();
        // The second rollout of an apply (the active switch has two).
        points.extend(["created#2", "gated#2", "renamed#2"].map(String::from));
        // Inside an active switch: the new version has the name, the record
        // says it is releasing the old one, the record is final.
        points.extend(["aliased", "route-recorded", "route-recorded#2"].map(String::from));
        points.extend((1..=8).map(|n| format!("step#{n}")));
        for point in points {
            reset(&p, &s);
            if !apply_killed_at(&p, &point) {
                // This rollout never passes that point (or has fewer steps).
                continue;
            }
            if let Some(prefix) = s.always_serving {
                assert!(
                    something_serves(&p, prefix),
                    "{} killed at {point}: nothing serves {:?}",
                    s.name,
                    p.containers()
                );
            }
            converged(&p, &s, &point);
            kills.push(format!("{}@{point}", s.name));
        }
    }
    eprintln!(
        "crash injection: {} kill points covered in {:?}: {kills:?}",
        kills.len(),
        started.elapsed()
    );
    // Every scenario was killed somewhere inside its rollout, not only between steps.
    for s in [
        "create",
        "side-by-side",
        "stop-first",
        "active-switch",
        "removal",
    ] {
        assert!(
            kills.iter().any(|k| k.starts_with(&format!("{s}@"))),
            "{s}: no kill point reached: {kills:?}"
        );
    }
    assert!(kills.len() >= 25, "{kills:?}");
}

#[test]
fn an_apply_killed_at_random_times_without_armed_points_converges_on_the_next_apply() {
    let Some(p) = Project::new("randkill") else {
        return;
    };
    // A cheap deterministic spread of kill times over a rollout's few seconds,
    // different in every run (seeded from the clock), printed for a rerun.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("random kills: seed {seed}");
    let mut x = seed | 1;
    for round in 0..6 {
        let s = &scenarios()[2 + round % 2];
        reset(&p, s);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(100 + x % 2500);
        let mut child = Command::new(BERTH)
            .arg("apply")
            .current_dir(p.dir.path())
            .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
            .env_remove("BERTH_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let _ = child.kill();
        let _ = child.wait();
        converged(&p, s, &format!("{after:?} (seed {seed})"));
    }
}
