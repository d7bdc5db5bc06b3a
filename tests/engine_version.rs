//! Connecting to the engine: a ping, no API version asked (the engine answers
//! every request in its own), and an engine that hangs later is still named
//! within the engine timeout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{text, BERTH};

/// An engine on a socket in a temp dir that answers `GET /_ping` and holds
/// every other request without a byte of answer. Returns the dir
/// (with a services file), the socket, and the request lines it was sent.
fn engine_that_only_answers_its_ping() -> (tempfile::TempDir, String, Arc<Mutex<Vec<String>>>) {
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
            if line.starts_with("GET /_ping ") {
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

#[test]
fn no_version_is_asked_and_an_engine_that_hangs_after_its_ping_is_named_within_the_timeout() {
    let (dir, address, seen) = engine_that_only_answers_its_ping();
    for command in [&["status"][..], &["plan"][..], &["apply"][..]] {
        let asked = check_named_within_timeout(dir.path(), &address, command, &seen);
        assert_eq!(
            asked.first().map(String::as_str),
            Some("GET /_ping HTTP/1.1"),
            "{command:?}: {asked:?}"
        );
        assert!(
            asked.iter().any(|l| l.starts_with("GET /containers/json")),
            "{command:?} did not list: {asked:?}"
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
