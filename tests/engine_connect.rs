//! Connecting to the engine: no API version asked (the engine answers every
//! request in its own), a plan's lists without a ping before them, an engine
//! that is not there named as such, and one that hangs named within the
//! engine timeout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{text, BERTH};

/// An engine on a socket in a temp dir that answers the requests starting with
/// `ping` (`GET /_ping `) and holds every other without a byte of answer. Returns the dir
/// (with a services file), the socket, and the request lines it was sent.
fn engine_that_only_answers(
    ping: Option<&'static str>,
) -> (tempfile::TempDir, String, Arc<Mutex<Vec<String>>>) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(256) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            log.lock().unwrap().push(line.trim().to_string());
            if ping.is_some_and(|p| line.starts_with(p)) {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nApi-Version: 1.41\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
                );
            } else {
                held.push(stream);
            }
        }
    });
    std::fs::write(
        dir.path().join("services.yaml"),
        "project: versioned\nservices:\n  a:\n    image: busybox\n",
    )
    .unwrap();
    let address = format!("unix://{}", sock.display());
    (dir, address, seen)
}

/// Runs `command` against the engine at `address`, expecting it to name the
/// engine as unanswered within the 1 s timeout, and returns what the engine
/// was asked meanwhile.
fn check_named_within_timeout(
    dir: &std::path::Path,
    address: &str,
    command: &[&str],
    seen: &Mutex<Vec<String>>,
) -> Vec<String> {
    let before = seen.lock().unwrap().len();
    let started = Instant::now();
    let out = Command::new(BERTH)
        .args(command)
        .current_dir(dir)
        .env("DOCKER_HOST", address)
        .env("BERTH_ENGINE_TIMEOUT", "1s")
        .env("BERTH_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
    assert!(
        err.contains(&format!(
            "the Docker engine at {address} did not answer within 1s"
        )),
        "{command:?}: {err}"
    );
    // Bounded, not timed: a request without the timeout waits 120 s.
    assert!(took < Duration::from_secs(20), "{command:?} took {took:?}");
    seen.lock().unwrap()[before..].to_vec()
}

/// A socket that accepts every connection and holds it, never writing a byte:
/// an engine that hangs.
fn hung_engine() -> (tempfile::TempDir, String, Arc<Mutex<Vec<String>>>) {
    let (dir, address, seen) = engine_that_only_answers(None);
    (dir, address, seen)
}

#[test]
fn an_engine_that_accepts_and_never_answers_is_named_within_the_timeout() {
    let (dir, address, seen) = hung_engine();
    for command in [&["status"][..], &["plan"][..], &["apply"][..]] {
        check_named_within_timeout(dir.path(), &address, command, &seen);
    }
}

#[test]
fn a_plan_asks_no_version_and_no_ping_before_its_lists_and_an_engine_that_hangs_is_named_within_the_timeout(
) {
    let (dir, address, seen) = engine_that_only_answers(Some("GET /_ping "));
    for command in [&["status"][..], &["plan"][..], &["apply"][..]] {
        let asked = check_named_within_timeout(dir.path(), &address, command, &seen);
        assert!(
            asked.iter().any(|l| l.starts_with("GET /containers/json")),
            "{command:?} did not list: {asked:?}"
        );
        // The lists say whether the engine is there: a ping first would be
        // one more round trip.
        assert!(
            !asked.iter().any(|l| l.starts_with("GET /_ping")),
            "{command:?}: {asked:?}"
        );
        // The engine answers in its own API version because no request names
        // one: if bollard ever sends `/vX.Y/...`, berth must agree a version
        // with the engine again (see `Docker::client`).
        assert!(
            asked
                .iter()
                .all(|l| !l.starts_with("GET /version") && !l.contains(" /v1.")),
            "{command:?}: {asked:?}"
        );
    }
}

#[test]
fn an_engine_that_is_not_there_is_named_with_how_to_fix_it_by_the_first_call_of_any_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        "project: absent\nservices:\n  a:\n    image: busybox\n",
    )
    .unwrap();
    let address = format!("unix://{}/no-engine.sock", dir.path().display());
    // `plan`, `status` and `apply` start with their lists (no ping); `gc`
    // and `logs` with a ping.
    let berth = |args: &[&str]| {
        Command::new(BERTH)
            .args(args)
            .current_dir(dir.path())
            .env("DOCKER_HOST", &address)
            .env("BERTH_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap()
    };
    for command in [
        &["plan"][..],
        &["status"][..],
        &["apply"][..],
        &["gc"][..],
        &["logs", "a"][..],
    ] {
        let out = berth(command);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: cannot reach the Docker engine at {address}: "
            )) && err.contains("help: start the Docker engine, or point DOCKER_HOST at it"),
            "{command:?}: {err}"
        );
    }
    // `doctor` says so as its engine check and goes on with the others.
    let out = berth(&["doctor"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with(&format!(
            "FAIL  engine: cannot reach the Docker engine at {address}: "
        )) && said.contains("GPUs: "),
        "{said}{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_and_serve_listen_while_the_engine_hangs_and_healthz_says_why() {
    let (dir, address, _) = hung_engine();
    let (api, gateway) = (common::free_port(), common::free_port());
    let spawn = |args: &[&str]| {
        Command::new(BERTH)
            .args(args)
            .current_dir(dir.path())
            .env("DOCKER_HOST", &address)
            .env("BERTH_ENGINE_TIMEOUT", "1s")
            .env("BERTH_STATE_DIR", dir.path().join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children = [
        spawn(&[
            "watch",
            "--listen",
            &format!("127.0.0.1:{api}"),
            "--interval",
            "1h",
        ]),
        spawn(&["serve", "--gateway", &format!("127.0.0.1:{gateway}")]),
    ];
    common::eventually(
        std::time::Duration::from_secs(15),
        || format!("healthz: {:?}", common::http_get(api, "/healthz", None)),
        || {
            let (code, body) = common::http_get(api, "/healthz", None);
            code == 503
                && body.contains("engine unreachable")
                && body.contains("did not answer within 1s")
        },
    );
    common::eventually(
        std::time::Duration::from_secs(15),
        || {
            format!(
                "the gateway answers: {:?}",
                common::http_get(gateway, "/a/", None)
            )
        },
        || common::http_get(gateway, "/a/", None).0 == 401,
    );
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
