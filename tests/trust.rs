//! Issue 26's breaks, each reproduced against the real binary and engine: a
//! credential in any form kept from services, berth's session cookie kept
//! from routes, state records that cannot be read, a saved plan that creates
//! a foreign volume, secrets printed by a failing service, and the floods
//! (slow bodies, big log tails, sign-ins), bounded in time, to loopback only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{add_token, docker, eventually, fds_and_rss, raw_get, text, Project, Serve, DUMP};

/// What a service saw of one request with `headers` (its CGI environment)
/// and what the client got back (status line and head).
fn through(gw: &Serve, path: &str, headers: &str) -> String {
    raw_get(gw.port, path, headers)
}

/// One header form a client may send a berth credential in, and the
/// secret it carries (the service must not see it).
fn check_kept_from_service(gw: &Serve, header: &str, secret: &str) {
    let env = through(gw, "/dump/cgi-bin/env", &format!("{header}\r\n"));
    assert!(
        env.contains("HTTP_X_FORWARDED_PROTO=http"),
        "the dump ran: {env}"
    );
    assert!(
        !env.contains(secret),
        "{header:?} reached the service:\n{env}"
    );
}

#[test]
fn no_form_of_a_berth_credential_or_session_reaches_a_public_service() {
    use base64::Engine as _;
    let Some(p) = Project::new("creds") else {
        return;
    };
    p.write(DUMP);
    p.ok(&["apply"]);
    let viewer = add_token(&p, "viewer", &["services:view"]);
    let gw = Serve::start(&p, &["--tokens", "tokens.yaml"]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/dump/", None)),
        || gw.get("/dump/", None) == (200, "ok".into()),
    );
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let revoked = "berth_0123456789abcdef0123456789abcdef";
    let header_forms = [
        format!("Authorization: bearer {viewer}"),
        format!("Authorization: BEARER {viewer}"),
        format!("Authorization: Bearer    {viewer}  "),
        format!("Authorization: Basic {}", b64(&format!("x:{viewer}"))),
        format!("Authorization: Basic {}", b64(&format!("{viewer}:"))),
        format!("Authorization: Bearer theirs\r\nAuthorization: Bearer {viewer}"),
        format!("Authorization: Bearer {revoked}"),
        format!("X-Api-Key: {viewer}"),
        format!("X-Token: token={revoked}"),
    ];
    for header in &header_forms {
        let secret = if header.contains(revoked) {
            revoked
        } else {
            &viewer
        };
        check_kept_from_service(&gw, header, secret);
        // Basic's encoded form must not pass either.
        check_kept_from_service(&gw, header, &b64(&format!("x:{viewer}")));
    }
    // The dashboard's session cookie is taken out; the service's own stay.
    let env = through(
        &gw,
        "/dump/cgi-bin/env",
        "Cookie: theme=dark; berth_session=live-session-id; __Host-berth_x=1; sid=7\r\n",
    );
    assert!(env.contains("HTTP_COOKIE=theme=dark; sid=7"), "{env}");
    assert!(!env.contains("live-session-id"), "{env}");
    // A service cannot plant berth's session cookie through the gateway.
    let answer = through(&gw, "/dump/cgi-bin/setcookie", "");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(head.contains("set-cookie: theme=dark"), "{answer}");
    assert!(!head.contains("berth_session"), "{answer}");
}

/// The records under the state directory, by file name.
fn record(p: &Project, name: &str) -> std::path::PathBuf {
    p.dir
        .path()
        .join(".state/projects")
        .join(&p.name)
        .join(name)
}

const TWO: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"$BERTH_VERSION\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.1.0\"\n    health: { interval: 50ms }\n";

/// Which container of web the engine's routes record marks active (read
/// with the docker CLI: berth refuses to run with a broken record of its own).
fn active(p: &Project) -> Vec<String> {
    let project = format!("label=berth.project={}", p.name);
    let records = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &project,
        "--filter",
        "label=berth.routes",
    ]);
    records
        .split_whitespace()
        .map(|v| {
            let version = docker(&[
                "volume",
                "inspect",
                "-f",
                "{{index .Labels \"berth.active.web\"}}",
                v,
            ]);
            format!("{}-web-{version}", p.name)
        })
        .collect()
}

#[test]
fn a_state_record_that_cannot_be_read_refuses_plan_and_apply_and_changes_nothing() {
    let Some(p) = Project::new("records") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    p.ok(&["rollback", "web", "--to", "1.0.0"]);
    let held = vec![format!("{}-web-1.0.0", p.name)];
    assert_eq!(active(&p), held);
    let holds = std::fs::read_to_string(record(&p, "holds.json")).unwrap();
    let before = p.containers();
    for (file, broken) in [
        ("holds.json", holds[..holds.len() / 2].to_string()),
        ("holds.json", String::new()),
        ("holds.json", "\u{0}garbage".to_string()),
        ("holds.json", "[1, 2]".to_string()),
        ("history.json", "{\"web\": ".to_string()),
        ("images.json", "not json".to_string()),
    ] {
        let good = std::fs::read(record(&p, file)).ok();
        std::fs::write(record(&p, file), &broken).unwrap();
        for command in [&["plan"][..], &["apply"]] {
            let out = p.berth(command);
            let err = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command:?} with {file} {broken:?}: {err}"
            );
            assert!(
                err.contains(file) && err.contains("cannot read berth's record"),
                "{command:?} names the file: {err}"
            );
            assert!(err.contains("help:"), "{err}");
        }
        assert_eq!(
            p.containers(),
            before,
            "nothing changed ({file} {broken:?})"
        );
        assert_eq!(active(&p), held, "the rollback still holds");
        match good {
            Some(g) => std::fs::write(record(&p, file), g).unwrap(),
            None => std::fs::remove_file(record(&p, file)).unwrap(),
        }
    }
    // A record that does not exist is an empty one.
    std::fs::remove_file(record(&p, "history.json")).unwrap();
    p.ok(&["plan"]);
    p.ok(&["destroy"]);
}

const KEPT: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo hi > /www/index.html && exec httpd -f -p 8000 -h /www']\n    keeps: [/data]\n";

#[test]
fn a_saved_plan_edited_to_create_a_volume_that_is_not_ours_is_refused_before_any_action() {
    let Some(p) = Project::new("foreignvol") else {
        return;
    };
    // Someone else's volume under the project's prefix, with no berth labels:
    // the plan sees it (its fingerprint holds it) and must still never take it.
    let loot = format!("{}-loot", p.name);
    docker(&["volume", "create", &loot]);
    p.write(KEPT);
    p.ok(&["plan", "--out", "plan.json"]);
    let path = p.dir.path().join("plan.json");
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The edit: the keep's volume renamed to the foreign one, in the
    // create-volume step and the container's mount, its hash made again.
    for step in plan["steps"].as_array_mut().unwrap() {
        match step["action"].as_str() {
            Some("create_volume") => step["volume"]["name"] = loot.clone().into(),
            Some("create_container") => {
                step["container"]["config"]["mounts"]["/data"] = loot.clone().into();
                let c: berth::core::desired::DesiredContainer =
                    serde_json::from_value(step["container"].clone()).unwrap();
                step["container"]["hash"] = c.config.hash().into();
            }
            _ => {}
        }
    }
    std::fs::write(&path, plan.to_string()).unwrap();
    let out = p.berth(&["apply", "--plan", "plan.json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{err}", text(&out.stdout));
    assert!(
        err.contains(&loot) && err.contains("exists and is not project"),
        "names the volume: {err}"
    );
    assert!(p.containers().is_empty(), "no container was created");
    let labels = docker(&["volume", "inspect", "-f", "{{json .Labels}}", &loot]);
    assert!(
        !labels.contains("berth."),
        "the volume is untouched: {labels}"
    );
    docker(&["volume", "rm", &loot]);
    p.ok(&["destroy"]);
}

/// A service that prints its secret (and its encodings) and never answers.
const LEAKY: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"connecting with $DB_PASSWORD\"; echo \"encoded $(printf %s \"$DB_PASSWORD\" | base64)\"; echo \"error: database refused\"; exec sleep 1000']\n    secrets: { DB_PASSWORD: { from_env: LEAKY_PW } }\n    health: { timeout: 2s, interval: 100ms }\n";

#[test]
fn a_secret_a_failing_service_prints_is_masked_everywhere_and_its_lines_need_logs_view() {
    let Some(p) = Project::new("leaky") else {
        return;
    };
    let secret = "s3cr3t-Value-42";
    p.write(LEAKY);
    let viewer = add_token(&p, "viewer", &["services:view"]);
    let reader = add_token(&p, "reader", &["services:view", "logs:view"]);
    let d = Daemon::start_env(
        &p,
        &[
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--tokens",
            "tokens.yaml",
        ],
        &[("LEAKY_PW", secret)],
    );
    let s = d.wait_for(Duration::from_secs(40), |s| s["rollout_error"].is_string());
    let as_reader = |token: &str| {
        d.curl(&["/status", "-H", &format!("Authorization: Bearer {token}")])
            .1
    };
    let full = as_reader(&reader);
    assert!(
        full.contains("error: database refused"),
        "logs:view reads the lines: {full}"
    );
    assert!(full.contains("(sensitive)"), "{full}");
    let seen = as_reader(&viewer);
    assert!(
        !seen.contains("database refused"),
        "services:view alone: {seen}"
    );
    assert!(seen.contains("shown to tokens with logs:view"), "{seen}");
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(secret)
    };
    let log = std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap();
    for (what, body) in [
        ("status", s.to_string()),
        ("reader", full),
        ("viewer", seen),
        ("log", log),
    ] {
        assert!(!body.contains(secret), "{what} holds the secret: {body}");
        assert!(!body.contains(&b64), "{what} holds it encoded: {body}");
    }
    drop(d);
    p.ok(&["destroy"]);
}

/// Opens `n` loopback connections to `port`, each sending a request head
/// that promises a body and then nothing.
fn slow_bodies(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
            s.write_all(b"POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n").ok()?;
            Some(s)
        })
        .collect()
}

#[test]
fn a_flood_of_heads_without_bodies_leaves_health_and_callers_with_tokens_served() {
    let Some(p) = Project::new("slowbody") else {
        return;
    };
    let _ = rlimit::increase_nofile_limit(8192);
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo one > /www/index.html && exec httpd -f -p 8000 -h /www']\n");
    let d = Daemon::start(
        &p,
        &[
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--max-connections",
            "100",
        ],
    );
    let pid = d.child.id();
    let idle = fds_and_rss(pid);
    // Twice the cap: the first 100 hold every ordinary slot.
    let started = Instant::now();
    let flood = slow_bodies(d.port, 200);
    std::thread::sleep(Duration::from_secs(1));
    let during = fds_and_rss(pid);
    // Health and a caller with a token are served from the reserve.
    assert_eq!(
        d.curl(&["/healthz", "--max-time", "5"]),
        (200, "ok\n".to_string())
    );
    let (code, _) = d.curl(&[
        "/status",
        "--max-time",
        "5",
        "-H",
        "Authorization: Bearer test-token",
    ]);
    assert_eq!(code, 200, "an authenticated caller gets through the flood");
    // A slow body whose form is read gets 408 within the body bound (the
    // sign-ins past the address's limit get 429 unread), and is closed.
    let answers: Vec<String> = flood[..5]
        .iter()
        .map(|c| {
            let mut c = c.try_clone().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
            let mut answer = String::new();
            let _ = c.read_to_string(&mut answer);
            answer
        })
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.starts_with("HTTP/1.1 408") || a.starts_with("HTTP/1.1 429")),
        "{answers:?}"
    );
    assert!(
        answers.iter().any(|a| a.starts_with("HTTP/1.1 408")),
        "{answers:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    drop(flood);
    eventually(
        Duration::from_secs(40),
        || format!("descriptors fall back: {:?} vs {idle:?}", fds_and_rss(pid)),
        || fds_and_rss(pid).0 <= idle.0 + 10,
    );
    let after = fds_and_rss(pid);
    eprintln!(
        "slow-body flood figures: descriptors {} idle, {} during, {} after; RSS {} KiB idle, {} KiB during, {} KiB after",
        idle.0, during.0, after.0, idle.1, during.1, after.1
    );
    // Strangers that fill the cap and the reserve with idle connections (no
    // head at all) hold the reserve 2 s at most: /healthz and a token get in
    // well before the 10 s an ordinary slot waits for a head.
    let idle_flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], d.port));
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
        })
        .collect();
    assert!(
        idle_flood.len() > 132,
        "the flood fills the cap and the reserve"
    );
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    assert_eq!(
        d.curl(&["/healthz", "--max-time", "6"]),
        (200, "ok\n".to_string())
    );
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "{:?}",
        asked.elapsed()
    );
    drop(idle_flood);
    // A body over the bound is refused unread.
    let (code, _) = d.curl(&[
        "/ui/login",
        "-X",
        "POST",
        "-H",
        "Content-Length: 2000000",
        "--data-binary",
        "@/dev/null",
    ]);
    assert_eq!(code, 413);
    drop(d);
    p.ok(&["destroy"]);
}

#[test]
fn log_requests_stream_and_a_tail_past_the_bound_is_refused() {
    let Some(p) = Project::new("logflood") else {
        return;
    };
    // About 20 MB of log, then a server.
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -n 200000; echo one > /www/index.html; exec httpd -f -p 8000 -h /www']\n    health: { timeout: 60s }\n");
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    d.wait_for(Duration::from_secs(60), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
    let pid = d.child.id();
    let idle = fds_and_rss(pid);
    let (code, body) = d.curl(&[
        "/logs/web?tail=100000",
        "-H",
        "Authorization: Bearer test-token",
    ]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("10000"), "{body}");
    // 32 requests for the most lines at once.
    let port = d.port;
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                peak.fetch_max(fds_and_rss(pid).1, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let readers: Vec<_> = (0..32)
        .map(|_| {
            std::thread::spawn(move || {
                let out = std::process::Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "60",
                        "-H",
                        "Authorization: Bearer test-token",
                    ])
                    .arg(format!("http://127.0.0.1:{port}/logs/web?tail=10000"))
                    .output()
                    .unwrap();
                out.stdout.iter().filter(|&&b| b == b'\n').count()
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), 10_000, "each request gets its lines");
    }
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "log flood figures: RSS {} KiB idle, {peak} KiB at the peak of 32 requests",
        idle.1
    );
    assert!(
        peak < idle.1 + 100 * 1024,
        "peak {peak} KiB vs idle {} KiB",
        idle.1
    );
    drop(d);
    p.ok(&["destroy"]);
}

/// Signs in over plain HTTP: the form's CSRF value and cookie first, then the
/// token. Returns the status and the head of the answer.
fn sign_in(port: u16, token: &str, origin: Option<&str>) -> (u16, String) {
    let form = raw_get(port, "/ui/login", "");
    let cookie = form
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .to_string();
    let csrf = cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let body = format!("token={token}&csrf={csrf}");
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{origin}Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, raw)
}

#[test]
fn sign_ins_are_limited_per_address_and_need_the_forms_own_csrf_value() {
    let Some(p) = Project::new("signins") else {
        return;
    };
    p.write(common::daemon::ONE);
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    // Another site's form: no CSRF cookie of ours, or a foreign Origin.
    let (code, _) = sign_in(d.port, "test-token", Some("http://evil.example"));
    assert_eq!(code, 403);
    let (code, raw) = d.curl(&["/ui/login", "-X", "POST", "--data", "token=test-token"]);
    assert_eq!(code, 403, "no CSRF value: {raw}");
    // The form's own value signs in, until the address's limit.
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(sign_in(d.port, "test-token", None).0);
    }
    assert!(codes.contains(&303), "{codes:?}");
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
    let log = std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap();
    assert!(log.matches("dashboard sign-in").count() <= 10, "{log}");
}
