//! `berth watch` as a daemon against the real engine: drift repair, health
//! looked at again, the API and its tokens, a clean stop, an engine that goes
//! away and comes back, a failed rollout, builds on request, floods of idle
//! connections, and the engine's own restarts.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use common::daemon::{wait_greeting, Daemon, ONE};
use common::{docker, eventually, fds_and_rss, http_get, Project};

#[test]
fn a_removed_or_stopped_container_is_put_back_and_counted_as_drift() {
    let Some(p) = Project::new("wdrift") else {
        return;
    };
    p.write(ONE);
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    wait_greeting(&p, "one");
    let web = format!("{}-web-0.0.0", p.name);
    docker(&["rm", "-f", &web]);
    eventually(
        Duration::from_secs(20),
        || "the removed container came back".to_string(),
        || !p.containers().is_empty(),
    );
    // Stopping it while the daemon still waits for it to be healthy would be a
    // failed rollout, not drift: wait until the repair is over.
    let repaired = |want: f64| {
        eventually(
            Duration::from_secs(20),
            || {
                format!(
                    "repair number {want} is done and counted as drift; the daemon said:\n{}",
                    std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap_or_default()
                )
            },
            || {
                d.metric("berth_drift_corrections_total") >= want
                    && p.try_inspect(&web, "{{.State.Status}}").as_deref() == Some("running")
            },
        );
    };
    repaired(1.0);
    docker(&["stop", "-t", "1", &web]);
    repaired(2.0);
    eventually(
        Duration::from_secs(20),
        || "both repairs are counted as drift".to_string(),
        || d.metric("berth_drift_corrections_total") >= 2.0,
    );
}

#[test]
fn a_container_put_back_reads_healthy_once_it_answers_without_waiting_for_the_resync() {
    // A start passes no health gate, and the look right after it comes before
    // the service listens (here, a second later): the daemon must look again.
    let Some(p) = Project::new("wrelook") else {
        return;
    };
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo hi > /www/index.html; sleep 1; exec httpd -f -p 8000 -h /www']\n");
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    d.wait_for(Duration::from_secs(30), |s| {
        s["services"][0]["health"] == "healthy"
    });
    docker(&["stop", "-t", "1", &format!("{}-web-0.0.0", p.name)]);
    let put_back = d.wait_for(Duration::from_secs(30), |s| {
        s["drift_corrections"].as_u64() >= Some(1)
    });
    assert_eq!(put_back["services"][0]["health"], "starting", "{put_back}");
    let reconciles = put_back["recent"].as_array().map_or(0, Vec::len);
    let s = d.wait_for(Duration::from_secs(15), |s| {
        s["services"][0]["health"] == "healthy"
    });
    // Only a look: the reconcile history is the same.
    assert_eq!(
        s["recent"].as_array().map_or(0, Vec::len),
        reconciles,
        "{s}"
    );
    assert_eq!(s["drift_corrections"], 1, "{s}");
    drop(d);
    p.ok(&["destroy"]);
}

#[test]
fn the_api_serves_status_metrics_logs_and_reconcile_only_to_tokens_with_the_permission() {
    let Some(p) = Project::new("wapi") else {
        return;
    };
    p.write(ONE);
    let viewer = p.ok(&["token", "add", "viewer", "-p", "services:view"]);
    let deployer = p.ok(&["token", "add", "deployer", "-p", "services:deploy"]);
    let reader = p.ok(&["token", "add", "reader", "-p", "logs:view"]);
    let builder = p.ok(&["token", "add", "builder", "-p", "images:build"]);
    let bearer = |t: &str| format!("Authorization: Bearer {}", t.trim());
    let (d, gateway_port) = Daemon::with_gateway(&p, &["--tokens", "tokens.yaml"]);
    let s = d.status();
    // Each endpoint asks for its permission: 403 for a token without it.
    assert_eq!(d.curl(&["/status", "-H", &bearer(&viewer)]).0, 200);
    assert_eq!(d.curl(&["/status", "-H", &bearer(&deployer)]).0, 403);
    assert_eq!(
        d.curl(&["/reconcile", "-X", "POST", "-H", &bearer(&viewer)])
            .0,
        403
    );
    assert_eq!(
        d.curl(&["/reconcile", "-X", "POST", "-H", &bearer(&deployer)])
            .0,
        200
    );
    // A rollback needs services:deploy; one to a version not declared is
    // refused with the reason and changes nothing.
    assert_eq!(
        d.curl(&["/rollback/web", "-X", "POST", "-H", &bearer(&viewer)])
            .0,
        403
    );
    let (code, body) = d.curl(&[
        "/rollback/web?to=9.9.9",
        "-X",
        "POST",
        "-H",
        &bearer(&deployer),
    ]);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("`web` declares no version 9.9.9"), "{body}");
    let (code, body) = d.curl(&["/rollback/web", "-X", "POST", "-H", &bearer(&deployer)]);
    assert!(
        body.contains("no version of `web` other than"),
        "{code} {body}"
    );
    assert_eq!(d.curl(&["/logs/web", "-H", &bearer(&viewer)]).0, 403);
    let (code, logs) = d.curl(&["/logs/web?tail=5", "-H", &bearer(&reader)]);
    assert_eq!(code, 200, "{logs}");
    assert_eq!(d.curl(&["/logs/nope", "-H", &bearer(&reader)]).0, 404);
    assert_eq!(
        d.curl(&["/build", "-X", "POST", "-H", &bearer(&deployer)])
            .0,
        403
    );
    let (code, body) = d.curl(&["/build", "-X", "POST", "-H", &bearer(&builder)]);
    assert_eq!(
        (code, body.trim()),
        (200, "nothing to build: no service is built from a package")
    );
    // The daemon's gateway routes to what it converged (private: a token is needed).
    assert_eq!(
        http_get(gateway_port, "/web/", Some("test-token")),
        (200, "one".to_string())
    );
    assert_eq!(s["source"]["kind"], "file");
    // RFC 3339, and recent.
    let at = s["last_reconcile"]["at"].as_str().unwrap();
    let at = humantime::parse_rfc3339(at).expect("an RFC 3339 time");
    assert!(
        at.elapsed().unwrap_or_default() < std::time::Duration::from_secs(600),
        "{at:?}"
    );
    let svc = &s["services"][0];
    assert_eq!(svc["service"], "web");
    assert_eq!(svc["state"], "running");
    assert!(svc["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(d.metric("berth_reconcile_total") >= 1.0);
    assert_eq!(d.metric("berth_managed_containers"), 1.0);
    assert_eq!(d.curl(&["/healthz"]), (200, "ok\n".to_string()));
    assert_eq!(d.curl(&["/status"]).0, 401, "status needs services:view");
    assert_eq!(d.curl(&["/metrics"]).0, 401, "metrics need services:view");

    assert_eq!(d.curl(&["/reconcile", "-X", "POST"]).0, 401);
    assert_eq!(
        d.curl(&[
            "/reconcile",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer wrong"
        ])
        .0,
        401
    );
    let before = d.metric("berth_reconcile_total");
    let (code, body) = d.reconcile();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("converged"), "{body}");
    assert!(d.metric("berth_reconcile_total") > before);
    let log = std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap();
    assert!(!log.contains("test-token"), "the token is never logged");
    for t in [&viewer, &deployer, &reader, &builder] {
        assert!(!log.contains(t.trim()), "no token is ever logged");
    }
}

#[test]
fn sigterm_stops_the_daemon_and_leaves_the_services_running() {
    let Some(p) = Project::new("wterm") else {
        return;
    };
    p.write(ONE);
    let mut d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    wait_greeting(&p, "one");
    let ids = p.containers();
    let pid = d.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = d.child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0: {status}");
    assert_eq!(p.containers(), ids);
    assert_eq!(
        p.inspect(&format!("{}-web-0.0.0", p.name), "{{.State.Status}}"),
        "running"
    );

    // Starting it again changes nothing that is already right.
    let d2 = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    d2.wait_for(Duration::from_secs(20), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
    assert_eq!(p.containers(), ids);
    let log = BufReader::new(std::fs::File::open(p.dir.path().join("daemon.log")).unwrap());
    assert!(log
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("converged")));
}

/// A unix-socket proxy in front of the engine that can be cut and restored, to
/// play an engine that goes away and comes back.
struct EngineProxy {
    path: std::path::PathBuf,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl EngineProxy {
    fn start(path: &std::path::Path) -> EngineProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<UnixStream>::new()));
        let (p, u, c) = (path.to_path_buf(), up.clone(), conns.clone());
        std::thread::spawn(move || loop {
            let _ = std::fs::remove_file(&p);
            let listener = UnixListener::bind(&p).unwrap();
            listener.set_nonblocking(true).unwrap();
            while u.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let engine = UnixStream::connect("/var/run/docker.sock").unwrap();
                        c.lock()
                            .unwrap()
                            .extend([client.try_clone().unwrap(), engine.try_clone().unwrap()]);
                        let (mut a, mut b) =
                            (client.try_clone().unwrap(), engine.try_clone().unwrap());
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut a, &mut b);
                            let _ = b.shutdown(std::net::Shutdown::Both);
                        });
                        let (mut a, mut b) = (engine, client);
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut a, &mut b);
                            let _ = b.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            drop(listener);
            let _ = std::fs::remove_file(&p);
            while !u.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        EngineProxy {
            path: path.to_path_buf(),
            up,
            conns,
        }
    }

    /// Closes every connection and stops accepting: the engine is gone.
    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_engine_that_goes_away_and_comes_back_is_reconnected_and_converged() {
    let Some(p) = Project::new("wengine") else {
        return;
    };
    p.write(ONE);
    let sock = p.dir.path().join("engine.sock");
    let proxy = EngineProxy::start(&sock);
    let host = format!("unix://{}", proxy.path.display());
    let d = Daemon::start_env(
        &p,
        &["-f", "services.yaml", "--interval", "1h"],
        &[("DOCKER_HOST", &host)],
    );
    wait_greeting(&p, "one");
    assert_eq!(d.curl(&["/healthz"]), (200, "ok\n".to_string()));
    proxy.cut();
    // `/healthz` says so within a ping or two, with the reason.
    eventually(
        Duration::from_secs(15),
        || format!("healthz reports the engine: {:?}", d.curl(&["/healthz"])),
        || {
            let (code, body) = d.curl(&["/healthz"]);
            code == 503 && body.starts_with("engine unreachable: ")
        },
    );
    // While the engine is unreachable for the daemon, the service disappears.
    docker(&["rm", "-f", &format!("{}-web-0.0.0", p.name)]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.containers().is_empty());
    proxy.restore();
    eventually(
        Duration::from_secs(30),
        || "reconnected and converged".to_string(),
        || p.containers().len() == 1,
    );
    d.wait_for(Duration::from_secs(20), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(p.containers().len(), 1, "no duplicates");
    eventually(
        Duration::from_secs(15),
        || format!("healthz is ok again: {:?}", d.curl(&["/healthz"])),
        || d.curl(&["/healthz"]).0 == 200,
    );
}

#[test]
fn a_rollout_that_fails_its_health_gate_shows_as_failed_and_the_old_one_keeps_serving() {
    let Some(p) = Project::new("wfail") else {
        return;
    };
    p.write(ONE);
    let (d, gateway_port) = Daemon::with_gateway(&p, &[]);
    // Serves an empty directory: GET / answers 404, which is not healthy.
    p.write(&ONE.replace(
        "command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']\n    env: { GREETING: one }",
        "command: [sh, -c, 'exec httpd -f -p 8000 -h /tmp']\n    env: { GREETING: two }\n    health: { timeout: 2s, interval: 100ms }",
    ));
    let s = d.wait_for(Duration::from_secs(30), |s| {
        s["last_reconcile"]["result"] == "error"
            && s["services"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["health"] == "failed"))
    });
    let error = s["last_reconcile"]["error"].as_str().unwrap();
    assert!(error.contains("web@0.0.0 never became healthy"), "{error}");
    // The health gate's own report stays, whatever reconciles followed.
    let why = d.wait_for(Duration::from_secs(10), |s| s["rollout_error"].is_string());
    let why = why["rollout_error"].as_str().unwrap();
    assert!(why.contains("GET / answered 404"), "{why}");
    assert_eq!(
        http_get(gateway_port, "/web/", Some("test-token")),
        (200, "one".to_string()),
        "the old one still serves"
    );
}

#[test]
fn post_build_builds_the_images_of_a_changed_package_for_a_token_with_images_build() {
    let Some(p) = Project::new("wbuild") else {
        return;
    };
    let pkg = p.dir.path().join("api");
    std::fs::create_dir_all(&pkg).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-stdlib");
    for e in std::fs::read_dir(example).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pkg.join(e.file_name())).unwrap();
    }
    p.write("project: {p}\nservices:\n  api:\n    runtime: python3.11\n    package: api\n");
    let builder = p.ok(&["token", "add", "builder", "-p", "images:build"]);
    let d = Daemon::start(
        &p,
        &[
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--tokens",
            "tokens.yaml",
        ],
    );
    d.wait_for(Duration::from_secs(300), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
    // The build's own intermediate containers carry the project's label; their
    // create/destroy is no drift and must not start a second reconcile (which
    // would build the package changed below before `POST /build` asks).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.metric("berth_reconcile_total"), 1.0, "one reconcile only");
    let images = || docker(&["images", "-q", &format!("berth/{}-api", p.name)]);
    let before = images().lines().count();
    // The package changes; the file does not, so nothing else wakes the daemon.
    std::fs::write(pkg.join("VERSION"), "2\n").unwrap();
    let (code, body) = d.curl(&[
        "/build",
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {}", builder.trim()),
        "--max-time",
        "300",
    ]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.trim(), "built 1 image(s); 0 already there");
    assert_eq!(images().lines().count(), before + 1, "a new image exists");
    // The reconcile that follows the build runs to its end before the test
    // does: a daemon killed mid-create leaves a container its engine makes
    // after `destroy` has looked.
    eventually(
        Duration::from_secs(300),
        || "the reconcile after the build ended".into(),
        || {
            d.metric("berth_reconcile_total") >= 2.0
                && d.status()["last_reconcile"]["result"] == "ok"
        },
    );
}

#[test]
fn a_flood_of_idle_connections_is_capped_and_the_daemon_keeps_answering_and_converging() {
    let Some(p) = Project::new("wflood") else {
        return;
    };
    let _ = rlimit::increase_nofile_limit(8192);
    p.write(ONE);
    let (d, gateway_port) = Daemon::with_gateway(&p, &["--max-connections", "100"]);
    let pid = d.child.id();
    let idle = fds_and_rss(pid);
    // 300 connections (three times the cap) that never send a byte, only to
    // loopback, opened side by side; those over the cap wait in the kernel's
    // queue, or are given up after a moment when even that is full.
    let flood: Vec<std::net::TcpStream> = (0..30)
        .map(|_| {
            std::thread::spawn(move || {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port));
                (0..10)
                    .filter_map(|_| {
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        flood.len() > 100,
        "the flood is over the cap: {}",
        flood.len()
    );
    std::thread::sleep(Duration::from_secs(1));
    let during = fds_and_rss(pid);
    assert!(
        during.0 <= idle.0 + 100 + 32 + 10,
        "the daemon holds at most the cap and its reserve of 32: {} descriptors before, {} during",
        idle.0,
        during.0
    );
    // The API still answers, and a reconcile still works.
    assert_eq!(d.curl(&["/healthz"]), (200, "ok\n".to_string()));
    let (code, body) = d.reconcile();
    assert_eq!(code, 200, "{body}");
    // A connection that sends nothing is closed by the gateway within the
    // header timeout (10 s), freeing its slot.
    let mut first = flood[0].try_clone().unwrap();
    first.set_nonblocking(false).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    let closed = std::io::Read::read(&mut first, &mut byte);
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    drop(flood);
    std::thread::sleep(Duration::from_secs(2));
    // Once the flood is gone, the gateway answers again and lets go of it all.
    eventually(
        Duration::from_secs(40),
        || {
            format!(
                "the gateway answers after the flood: {:?}",
                http_get(gateway_port, "/web/", Some("test-token"))
            )
        },
        || http_get(gateway_port, "/web/", Some("test-token")) == (200, "one".to_string()),
    );
    let after = fds_and_rss(pid);
    eprintln!(
        "flood figures: descriptors {} idle, {} during, {} after; RSS {} KiB idle, {} KiB during, {} KiB after",
        idle.0, during.0, after.0, idle.1, during.1, after.1
    );
    assert!(
        after.0 <= idle.0 + 10,
        "descriptors after: {after:?}, idle {idle:?}"
    );
}

#[test]
fn the_daemon_follows_the_engines_restarts_of_a_container_it_has_already_looked_at() {
    // The daemon keeps each container's restart count between looks (an idle
    // daemon inspects nothing); an engine event must make it look again.
    let Some(p) = Project::new("dcrash") else {
        return;
    };
    p.write("project: {p}\nservices:\n  bad:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo ok > /www/index.html; httpd -p 8000 -h /www; sleep 2; echo failing; exit 3']\n");
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    let s = d.wait_for(Duration::from_secs(60), |s| {
        let r = &s["services"][0];
        r["health"] == "crash-looping" && r["restarts"].as_i64().unwrap_or(0) >= 3
    });
    assert_eq!(s["services"].as_array().unwrap().len(), 1, "{s}");
    drop(d);
    p.ok(&["destroy"]);
}

#[test]
fn destroy_warns_that_a_watch_daemon_follows_the_project_and_stops_warning_once_it_is_gone() {
    let Some(p) = Project::new("wdestroy") else {
        return;
    };
    p.write(ONE);
    let mut d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    wait_greeting(&p, "one");
    let out = p.berth(&["destroy"]);
    let said = common::text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "a `berth watch` daemon (pid {}) follows project {}: it will create everything again",
            d.child.id(),
            p.name
        )),
        "{said}"
    );
    // Killed: the kernel drops its mark, and nothing is said any more.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let out = p.berth(&["destroy"]);
    assert!(out.status.success());
    assert!(
        !common::text(&out.stderr).contains("follows project"),
        "{}",
        common::text(&out.stderr)
    );
}
