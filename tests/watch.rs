//! `berth watch` following its sources against the real engine and real git
//! repositories in temp dirs: file saves of every kind, broken saves, git
//! commits and force-pushes, commits refused for what they name, and fetch
//! backoff. Time-dependent logic runs on a paused clock.

mod common;

use std::process::Command;
use std::time::Duration;

use common::daemon::{greeting, wait_greeting, Daemon, ONE};
use common::{eventually, text, Project};

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
    // The count is read once the reconcile of the last save has been counted
    // (the old container goes just before its reconcile is reported), so a
    // reconcile still in flight is not taken for one of an idle daemon.
    let settled = std::time::Instant::now();
    let mut reconciles = d.metric("berth_reconcile_total");
    while settled.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        let now = d.metric("berth_reconcile_total");
        if now == reconciles {
            break;
        }
        reconciles = now;
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.metric("berth_reconcile_total") <= reconciles + 1.0,
        "an idle daemon does not keep reconciling; it said:\n{}",
        std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap_or_default()
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

use common::git_http::git;

/// A bare repository and a clone of it, with ONE committed and pushed to main.
fn remote_with_one(p: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    remote_with(p, ONE, &[])
}

/// A bare repository and a clone of it, with `spec` as services.yaml and
/// `files` committed and pushed to main.
fn remote_with(
    p: &Project,
    spec: &str,
    files: &[(&str, String)],
) -> (std::path::PathBuf, std::path::PathBuf) {
    // The project's own copy of the file, so the test's clean-up (`berth destroy`) finds it.
    p.write(spec);
    let bare = p.dir.path().join("remote.git");
    let work = p.dir.path().join("work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "-q"]);
    git(
        p.dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), "work"],
    );
    std::fs::write(work.join("services.yaml"), spec.replace("{p}", &p.name)).unwrap();
    for (path, text) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
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
    // The reconcile names its commit and subject, the services it touched,
    // and the timeline says what it did to each.
    let last = &s["last_reconcile"];
    assert_eq!(last["revision"], first.as_str(), "{s}");
    assert_eq!(last["subject"], "one", "{s}");
    assert_eq!(last["touched"], serde_json::json!(["web"]), "{s}");
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "web")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"created") && kinds.contains(&"gated"),
        "{kinds:?}"
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
        let error = s["last_error"].as_str().unwrap();
        assert!(error.contains("api@0.0.0"), "{error}");
        // Named as the repository's, never as berth's own checkout of it.
        assert!(!error.contains(".state/git"), "{error}");
        assert!(error.contains(&format!("{url}@")), "{error}");
        assert_eq!(greeting(&p), "one", "the last good commit keeps running");
        assert!(
            !p.containers().keys().any(|n| n.contains("-api-")),
            "nothing was built or run from the host: {:?}",
            p.containers()
        );
    }
    // Each refusal is logged at ERROR once, not on every tick (1 s) after it.
    std::thread::sleep(Duration::from_secs(4));
    let log = std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap();
    let errors = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("reconcile failed"))
        .count();
    assert!(errors <= 2, "{errors} ERROR lines:\n{log}");
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

#[test]
fn a_code_only_commit_is_a_change_of_source_not_drift_and_a_broken_commit_never_reads_as_what_runs()
{
    let Some(p) = Project::with_runtimes("wcode", &["python3.11"]) else {
        return;
    };
    let spec = "project: {p}\nservices:\n  web:\n    runtime: python3.11\n    package: ./app\n    health: { timeout: 8s }\n";
    let app = |says: &str| {
        format!("import os\nfrom http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n\nclass H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        body = b\"{says}\"\n        self.send_response(200)\n        self.send_header(\"content-length\", str(len(body)))\n        self.end_headers()\n        self.wfile.write(body)\n\nThreadingHTTPServer((\"0.0.0.0\", int(os.environ[\"PORT\"])), H).serve_forever()\n")
    };
    let (bare, work) = remote_with(&p, spec, &[("app/app.py", app("one"))]);
    let commit = |message: &str| {
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", message]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"])
    };
    let url = format!("file://{}", bare.display());
    let d = Daemon::start(&p, &["--git", &url, "--interval", "1s"]);
    // What the active version answers now, without waiting for it.
    let said = || {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", &p.url("web")])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    let answers = |says: &'static str| {
        eventually(
            Duration::from_secs(90),
            || {
                format!(
                    "the service says {says}, not {:?}; the daemon said:\n{}",
                    said(),
                    std::fs::read_to_string(p.dir.path().join("daemon.log")).unwrap_or_default()
                )
            },
            || said() == says,
        )
    };
    answers("one");

    // Only the code changes: a new image, counted as the commit's, not drift.
    std::fs::write(work.join("app/app.py"), app("two")).unwrap();
    let second = commit("code only");
    answers("two");
    let s = d.wait_for(Duration::from_secs(30), |s| {
        s["revision"] == second.as_str()
    });
    assert_eq!(s["drift_corrections"], 0, "{s}");
    let by_git = s["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "git")
        .count();
    assert!(
        by_git >= 2,
        "the first commit's and the code-only one's: {s}"
    );

    // A commit that fails its gate: `/status` keeps naming what runs.
    std::fs::write(work.join("app/app.py"), "raise SystemExit(3)\n").unwrap();
    let broken = commit("broken");
    let s = d.wait_for(Duration::from_secs(90), |s| !s["rollout_error"].is_null());
    assert_eq!(s["revision"], second.as_str(), "not {broken}: {s}");
    assert_eq!(said(), "two", "the last good commit serves");
    assert_eq!(s["drift_corrections"], 0, "{s}");
}

#[test]
fn a_signed_push_webhook_fetches_at_once_and_a_bad_foreign_or_replayed_one_changes_nothing() {
    use berth::core::webhook::sign;
    let Some(p) = Project::new("whook") else {
        return;
    };
    let (bare, work) = remote_with_one(&p);
    let first = git(&work, &["rev-parse", "HEAD"]);
    let secret = p.dir.path().join("hook.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let url = format!("file://{}", bare.display());
    // A poll of an hour: only a webhook can make the daemon fetch in time.
    let d = Daemon::start(
        &p,
        &[
            "--git",
            &url,
            "--interval",
            "1h",
            "--webhook-secret",
            secret.to_str().unwrap(),
        ],
    );
    d.wait_for(Duration::from_secs(60), |s| s["revision"] == first.as_str());
    let commit = |greeting: &str| {
        std::fs::write(
            work.join("services.yaml"),
            ONE.replace("{p}", &p.name)
                .replace("GREETING: one", &format!("GREETING: {greeting}")),
        )
        .unwrap();
        git(&work, &["commit", "-qam", greeting]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"])
    };
    let body =
        |reference: &str, after: &str| format!(r#"{{"ref":"{reference}","after":"{after}"}}"#);
    let post = |headers: &[(&str, String)], body: &str| {
        let mut args: Vec<String> = vec![
            "/hooks/push".into(),
            "-X".into(),
            "POST".into(),
            "--data-binary".into(),
            body.into(),
        ];
        for (k, v) in headers {
            args.push("-H".into());
            args.push(format!("{k}: {v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.curl(&args)
    };
    let revision = || {
        d.status()["revision"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Push → converged: polled every 10 ms.
    let converged_after = |rev: &str| {
        let started = std::time::Instant::now();
        while revision() != rev {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{rev} never converged after the webhook"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        started.elapsed()
    };

    let second = commit("two");
    let main_push = body("refs/heads/main", &second);
    let (code, said) = post(
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", sign(b"guess", main_push.as_bytes())),
        ],
        &main_push,
    );
    assert_eq!(
        (code, said.contains("does not hold")),
        (401, true),
        "{said}"
    );
    let other = body("refs/heads/feature", &second);
    let (code, said) = post(
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", sign(b"s3cret", other.as_bytes())),
        ],
        &other,
    );
    assert_eq!(code, 200, "{said}");
    assert!(
        said.contains("ignored: a push to refs/heads/feature"),
        "{said}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        revision(),
        first,
        "a refused or foreign push fetches nothing"
    );

    let github = [
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", "delivery-1".to_string()),
        ("X-Hub-Signature-256", sign(b"s3cret", main_push.as_bytes())),
    ];
    let (code, said) = post(&github, &main_push);
    assert_eq!(code, 202, "{said}");
    let mut took = vec![("GitHub", converged_after(&second))];
    let (code, said) = post(&github, &main_push);
    assert_eq!((code, said.contains("replayed")), (200, true), "{said}");

    // GitLab, Gitea/Forgejo and a generic sender, each for a new commit.
    for (host, greeting) in [("GitLab", "three"), ("Gitea", "four"), ("generic", "five")] {
        let rev = commit(greeting);
        let push = body("refs/heads/main", &rev);
        let signature = sign(b"s3cret", push.as_bytes());
        let headers: Vec<(&str, String)> = match host {
            "GitLab" => vec![
                ("X-Gitlab-Event", "Push Hook".into()),
                ("X-Gitlab-Token", "s3cret".into()),
            ],
            "Gitea" => vec![
                ("X-Gitea-Event", "push".into()),
                (
                    "X-Gitea-Signature",
                    signature.trim_start_matches("sha256=").into(),
                ),
            ],
            _ => vec![("X-Berth-Signature-256", signature)],
        };
        let (code, said) = post(&headers, &push);
        assert_eq!(code, 202, "{host}: {said}");
        took.push((host, converged_after(&rev)));
    }
    wait_greeting(&p, "five");
    for (host, t) in &took {
        eprintln!("{host} push webhook -> converged: {} ms", t.as_millis());
    }
    let (_, metrics) = d.curl(&["/metrics", "-H", "Authorization: Bearer test-token"]);
    for line in [
        "berth_webhooks_total{outcome=\"accepted\"} 4",
        "berth_webhooks_total{outcome=\"refused\"} 1",
        "berth_webhooks_total{outcome=\"ignored\"} 1",
        "berth_webhooks_total{outcome=\"replayed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}
