//! `berth watch` against the real engine and real git repositories in temp dirs:
//! file saves of every kind, broken saves, git commits and force-pushes, drift
//! repair, the API, and a clean stop. Time-dependent logic runs on a paused clock.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{docker, eventually, free_port, http_get, text, Project, BERTH};

/// A running `berth watch`; killed (SIGKILL) if a test fails before stopping it.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Follows services.yaml (1 h resync) with the gateway on a free port, and
    /// `extra` arguments; returns the daemon and the gateway's port, once converged.
    fn with_gateway(p: &Project, extra: &[&str]) -> (Daemon, u16) {
        let port = free_port();
        let gateway = format!("127.0.0.1:{port}");
        let mut args = vec![
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--gateway",
            &gateway,
        ];
        args.extend_from_slice(extra);
        let d = Daemon::start(p, &args);
        d.wait_for(Duration::from_secs(20), |s| {
            s["last_reconcile"]["result"] == "ok"
        });
        (d, port)
    }

    fn start(p: &Project, args: &[&str]) -> Daemon {
        Daemon::start_env(p, args, &[])
    }

    fn start_env(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(p.dir.path().join("daemon.log")).unwrap();
        let child = Command::new(BERTH)
            .arg("watch")
            .args(args)
            .args(["--listen", &listen])
            .current_dir(p.dir.path())
            .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
            .env("BERTH_TOKEN", "test-token")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child, port };
        d.wait_for(Duration::from_secs(60), |s| {
            !s["last_reconcile"].is_null() || !s["last_error"].is_null()
        });
        d
    }

    fn curl(&self, args: &[&str]) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{}", self.port, args[0]);
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60"])
            .args(&args[1..])
            .arg(&url)
            .output()
            .unwrap();
        let body = text(&out.stdout);
        let (body, code) = body.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// `POST /reconcile` with the root token.
    fn reconcile(&self) -> (u16, String) {
        self.curl(&[
            "/reconcile",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer test-token",
        ])
    }

    fn status(&self) -> serde_json::Value {
        let (code, body) = self.curl(&["/status", "-H", AUTH]);
        if code != 200 {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.curl(&["/metrics", "-H", AUTH]);
        body.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name} "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(-1.0)
    }

    /// Polls /status until `ok` holds; panics after `limit`.
    fn wait_for(
        &self,
        limit: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if !s.is_null() && ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting; last status: {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The daemon's token (BERTH_TOKEN: every permission).
const AUTH: &str = "Authorization: Bearer test-token";

const ONE: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']\n    env: { GREETING: one }\n";

fn greeting(p: &Project) -> String {
    // Between a replace's rename and create the name is briefly free.
    let env = p
        .try_inspect(
            &format!("{}-web-0.0.0", p.name),
            "{{range .Config.Env}}{{println .}}{{end}}",
        )
        .unwrap_or_default();
    env.lines()
        .find_map(|l| l.strip_prefix("GREETING="))
        .unwrap_or("")
        .to_string()
}

fn wait_greeting(p: &Project, want: &str) {
    eventually(
        Duration::from_secs(20),
        || format!("never converged to GREETING={want}"),
        || greeting(p) == want,
    );
}

#[test]
fn every_way_an_editor_saves_the_file_converges() {
    let Some(p) = Project::new("wsave") else {
        return;
    };
    p.write(ONE);
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    wait_greeting(&p, "one");
    let file = p.dir.path().join("services.yaml");
    let body = |g: &str| {
        ONE.replace("{p}", &p.name)
            .replace("GREETING: one", &format!("GREETING: {g}"))
    };

    // Save by rename (vim, most IDEs).
    let tmp = p.dir.path().join(".services.yaml.swp");
    std::fs::write(&tmp, body("renamed")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    wait_greeting(&p, "renamed");

    // Truncate and write in place (nano, echo >).
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        f.write_all(body("truncated").as_bytes()).unwrap();
    }
    wait_greeting(&p, "truncated");

    // Delete, then create again.
    std::fs::remove_file(&file).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&file, body("recreated")).unwrap();
    wait_greeting(&p, "recreated");
    // The replaced container is removed right after its successor started.
    eventually(
        Duration::from_secs(10),
        || format!("no duplicates: {:?}", p.containers()),
        || p.containers().len() == 1,
    );
    let reconciles = d.metric("berth_reconcile_total");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.metric("berth_reconcile_total") <= reconciles + 1.0,
        "an idle daemon does not keep reconciling"
    );
    drop(d);
}

#[test]
fn a_broken_save_keeps_what_runs_and_reports_then_the_fix_converges() {
    let Some(p) = Project::new("wbroken") else {
        return;
    };
    p.write(ONE);
    let d = Daemon::start(&p, &["-f", "services.yaml", "--interval", "1h"]);
    wait_greeting(&p, "one");
    let before = p.containers();
    p.write(&ONE.replace("env:", "envv:"));
    let s = d.wait_for(Duration::from_secs(20), |s| {
        s["last_reconcile"]["result"] == "error"
    });
    let err = s["last_reconcile"]["error"].as_str().unwrap();
    assert!(
        err.contains("services.yaml:6:5: unknown field `envv`"),
        "{err}"
    );
    assert_eq!(p.containers(), before, "what runs keeps running");
    p.write("project: {p}\nservices: {}\n");
    let s = d.wait_for(Duration::from_secs(20), |s| {
        s["last_reconcile"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("declares no services"))
    });
    assert!(s["last_reconcile"]["result"] == "error");
    assert_eq!(p.containers(), before, "an empty file never prunes");
    p.write(&ONE.replace("GREETING: one", "GREETING: fixed"));
    wait_greeting(&p, "fixed");
    d.wait_for(Duration::from_secs(20), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A bare repository and a clone of it, with ONE committed and pushed to main.
fn remote_with_one(p: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    // The project's own copy of the file, so the test's clean-up (`berth destroy`) finds it.
    p.write(ONE);
    let bare = p.dir.path().join("remote.git");
    let work = p.dir.path().join("work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "-q"]);
    git(
        p.dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), "work"],
    );
    std::fs::write(work.join("services.yaml"), ONE.replace("{p}", &p.name)).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    (bare, work)
}

#[test]
fn commits_and_force_pushes_on_a_branch_converge_with_the_revision_label() {
    let Some(p) = Project::new("wgit") else {
        return;
    };
    let (bare, work) = remote_with_one(&p);
    let first = git(&work, &["rev-parse", "HEAD"]);

    let url = format!("file://{}", bare.display());
    let d = Daemon::start(
        &p,
        &[
            "--git",
            &url,
            "--ref",
            "main",
            "--path",
            "services.yaml",
            "--interval",
            "1s",
        ],
    );
    wait_greeting(&p, "one");
    let web = format!("{}-web-0.0.0", p.name);
    assert_eq!(
        p.inspect(&web, "{{index .Config.Labels \"berth.revision\"}}"),
        first
    );
    let s = d.wait_for(Duration::from_secs(10), |s| s["revision"] == first.as_str());
    assert_eq!(
        s["services"][0]["revision"],
        first.as_str(),
        "status shows the revision"
    );

    std::fs::write(
        work.join("services.yaml"),
        ONE.replace("{p}", &p.name)
            .replace("GREETING: one", "GREETING: two"),
    )
    .unwrap();
    git(&work, &["commit", "-qam", "two"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    wait_greeting(&p, "two");
    let second = git(&work, &["rev-parse", "HEAD"]);
    assert_eq!(
        p.inspect(&web, "{{index .Config.Labels \"berth.revision\"}}"),
        second
    );

    // Rewrite history: the branch now points to another "two" commit.
    std::fs::write(
        work.join("services.yaml"),
        ONE.replace("{p}", &p.name)
            .replace("GREETING: one", "GREETING: forced"),
    )
    .unwrap();
    git(&work, &["commit", "-q", "--amend", "-am", "forced"]);
    git(&work, &["push", "-q", "-f", "origin", "HEAD:main"]);
    wait_greeting(&p, "forced");
    drop(d);

    // Only the trees still in use are kept: the newest and the one before it,
    // never the first commit's.
    let mut trees: Vec<String> = Vec::new();
    for mirror in std::fs::read_dir(p.dir.path().join(".state/git")).unwrap() {
        for e in std::fs::read_dir(mirror.unwrap().path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if name.starts_with("rev-") && !name.contains('.') {
                trees.push(name);
            }
        }
    }
    assert!(trees.len() <= 2, "checkouts left: {trees:?}");
    assert!(
        !trees.contains(&format!("rev-{}", &first[..12])),
        "the first commit's checkout is gone: {trees:?}"
    );
}

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

#[tokio::test(start_paused = true)]
async fn the_resync_ticker_fires_once_per_interval_on_a_paused_clock() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(berth::daemon::ticker(Duration::from_secs(30), tx));
    tokio::time::sleep(Duration::from_secs(95)).await;
    let mut ticks = 0;
    while let Ok(e) = rx.try_recv() {
        assert!(matches!(e, berth::daemon::Event::Tick));
        ticks += 1;
    }
    assert_eq!(ticks, 3, "30 s, 60 s and 90 s; none at start");
    task.abort();
}

#[test]
fn fetch_failures_back_off_doubling_up_to_five_minutes() {
    use berth::shell::git::next_delay;
    let i = Duration::from_secs(30);
    let delays: Vec<u64> = (0..12).map(|f| next_delay(i, f).as_secs()).collect();
    assert_eq!(delays, [30, 1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
    assert_eq!(
        berth::shell::git::redact("https://user:secret@git.example.org/x.git"),
        "https://***@git.example.org/x.git"
    );
}

#[test]
fn a_commit_with_a_symlink_out_of_the_repository_is_refused_and_the_last_good_one_keeps_running() {
    let Some(p) = Project::new("wlink") else {
        return;
    };
    let (bare, work) = remote_with_one(&p);
    let url = format!("file://{}", bare.display());
    let d = Daemon::start(
        &p,
        &[
            "--git",
            &url,
            "--path",
            "services.yaml",
            "--interval",
            "1s",
            "--log-format",
            "json",
        ],
    );
    wait_greeting(&p, "one");

    std::os::unix::fs::symlink("/etc/passwd", work.join("passwd")).unwrap();
    std::fs::write(
        work.join("services.yaml"),
        ONE.replace("{p}", &p.name)
            .replace("GREETING: one", "GREETING: evil"),
    )
    .unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "evil"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let s = d.wait_for(Duration::from_secs(20), |s| {
        s["last_error"].as_str().is_some_and(|e| {
            e.contains("the symlink `passwd` points to `/etc/passwd`, outside the repository")
        })
    });
    assert!(
        s["last_error"].as_str().unwrap().contains("file://"),
        "names the source"
    );
    assert_eq!(greeting(&p), "one", "the last good commit keeps running");

    // Logs are JSON, one object per line.
    let log = std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

#[test]
fn a_commit_naming_a_package_outside_the_repository_is_refused_and_the_last_good_one_keeps_running()
{
    let Some(p) = Project::new("wescape") else {
        return;
    };
    let (bare, work) = remote_with_one(&p);
    let url = format!("file://{}", bare.display());
    let d = Daemon::start(
        &p,
        &["--git", &url, "--path", "services.yaml", "--interval", "1s"],
    );
    wait_greeting(&p, "one");
    // A host directory that exists, reached by climbing out of the checkout, and
    // the same directory named absolutely.
    let host = example_dir();
    let climb = format!("{}{}", "../".repeat(40), host.trim_start_matches('/'));
    for package in [climb.as_str(), host.as_str()] {
        std::fs::write(
            work.join("services.yaml"),
            format!(
                "{}  api:\n    runtime: python3.11\n    package: {package}\n",
                ONE.replace("{p}", &p.name)
            ),
        )
        .unwrap();
        git(&work, &["commit", "-qam", "escape"]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        let s = d.wait_for(Duration::from_secs(30), |s| {
            s["last_error"].as_str().is_some_and(|e| {
                e.contains(&format!("package `{package}` resolves to"))
                    && e.contains("outside the repository")
            })
        });
        assert!(s["last_error"].as_str().unwrap().contains("api@0.0.0"));
        assert_eq!(greeting(&p), "one", "the last good commit keeps running");
        assert!(
            !p.containers().keys().any(|n| n.contains("-api-")),
            "nothing was built or run from the host: {:?}",
            p.containers()
        );
    }
}

#[test]
fn a_commit_naming_an_asset_on_a_private_address_is_refused_unless_allowed() {
    let Some(p) = Project::new("wprivate") else {
        return;
    };
    // A loopback file server: what a repository must not make berth fetch.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in server.incoming().flatten() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ninside",
            );
        }
    });
    let (bare, work) = remote_with_one(&p);
    let with_asset = ONE.replace("{p}", &p.name).replace(
        "    env: { GREETING: one }",
        &format!("    env: {{ GREETING: one }}\n    assets: [{{ env: MODEL, url: \"http://127.0.0.1:{port}/m.bin\" }}]"),
    );
    assert!(with_asset.contains("assets:"));
    std::fs::write(work.join("services.yaml"), &with_asset).unwrap();
    git(&work, &["commit", "-qam", "asset"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let url = format!("file://{}", bare.display());
    let args = [
        "--git",
        url.as_str(),
        "--path",
        "services.yaml",
        "--interval",
        "1s",
    ];
    {
        let d = Daemon::start(&p, &args);
        let s = d.wait_for(Duration::from_secs(30), |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("is a loopback, link-local or private address"))
        });
        assert!(s["last_error"].as_str().unwrap().contains("MODEL"), "{s}");
        assert!(
            p.containers().is_empty(),
            "nothing ran: {:?}",
            p.containers()
        );
    }
    // Its owner may allow it on the command line.
    let mut allowed = args.to_vec();
    allowed.push("--allow-private-assets");
    let d = Daemon::start(&p, &allowed);
    d.wait_for(Duration::from_secs(60), |s| {
        s["last_reconcile"]["result"] == "ok"
    });
    wait_greeting(&p, "one");
}

/// A directory of the host outside any test checkout: the Python example.
fn example_dir() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/python-stdlib")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
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
}

/// The open descriptors and resident memory (KiB) of a process.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
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
        during.0 <= idle.0 + 100 + 10,
        "the daemon holds at most the cap: {} descriptors before, {} during",
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
