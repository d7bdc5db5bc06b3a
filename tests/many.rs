//! Several projects followed by one `berth watch --projects`: each from its own
//! file or repository (served over HTTP by git's own http-backend), with its
//! own loop and lock, tokens granted per project, one gateway and one
//! dashboard for all. Real binary, real engine, real git.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::git_http::{git, GitHttp};
use common::{add_token, get, Project};

/// A busybox web service answering `greeting`, at `path` through the gateway.
fn web(project: &str, greeting: &str, path: Option<&str>) -> String {
    let path = path.map(|p| format!("    path: {p}\n")).unwrap_or_default();
    format!("project: {project}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']\n    env: {{ GREETING: {greeting} }}\n    public: true\n{path}    health: {{ interval: 50ms }}\n")
}

/// `web` and a second service whose gate waits `seconds` and then fails.
fn with_slow(project: &str, seconds: u32) -> String {
    web(project, "a-one", None)
        + &format!("  slow:\n    image: berth-local/busybox:stable\n    command: [sleep, '3600']\n    health: {{ timeout: {seconds}s }}\n")
}

/// The project names in a root `/status` answer.
fn listed(d: &Daemon, token: &str) -> (u16, Vec<String>) {
    let (code, body) = d.curl(&["/status", "-H", &format!("Authorization: Bearer {token}")]);
    let names = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["projects"].as_array().map(|a| {
                a.iter()
                    .map(|p| p["project"].as_str().unwrap_or("").to_string())
                    .collect()
            })
        })
        .unwrap_or_default();
    (code, names)
}

/// Signs in to the dashboard with `token` (the form's CSRF cookie and field,
/// from its own origin); the session's cookie jar.
fn sign_in(d: &Daemon, token: &str, jar: &Path) -> std::path::PathBuf {
    let j = jar.to_str().unwrap();
    let (_, form) = d.curl(&["/ui/login", "-c", j]);
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form's CSRF field");
    let origin = format!("Origin: http://127.0.0.1:{}", d.port);
    let data = format!("token={token}&csrf={csrf}");
    let (code, said) = d.curl(&[
        "/ui/login",
        "-b",
        j,
        "-c",
        j,
        "-H",
        &origin,
        "--data",
        &data,
    ]);
    assert_eq!(code, 303, "{said}");
    jar.to_path_buf()
}

#[test]
fn one_daemon_follows_several_projects_each_with_its_own_grants_and_none_delays_another() {
    let (Some(a), Some(b), Some(c), Some(m)) = (
        Project::new("pa"),
        Project::new("pb"),
        Project::new("pc"),
        Project::new("pm"),
    ) else {
        return;
    };
    // A from a file; B and M from one repository (two paths), over HTTP; C
    // from a file that names another project: refused.
    a.write(&web(&a.name, "a-one", None));
    c.write(&web("someone-else", "c", None));
    b.write(&web(&b.name, "b-one", Some("/b")));
    m.write(&web(&m.name, "m-one", None));
    let root = a.dir.path().join("git");
    let bare = root.join("mono.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "-q"]);
    let work = a.dir.path().join("work");
    git(
        a.dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), "work"],
    );
    let commit = |b_greeting: &str, m_greeting: &str| {
        for (dir, text) in [
            ("b", web(&b.name, b_greeting, Some("/b"))),
            ("m", web(&m.name, m_greeting, None)),
        ] {
            std::fs::create_dir_all(work.join(dir)).unwrap();
            std::fs::write(work.join(dir).join("services.yaml"), text).unwrap();
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", b_greeting]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        git(&work, &["rev-parse", "HEAD"])
    };
    let first = commit("b-one", "m-one");
    let server = GitHttp::start(&root);
    let url = server.url("mono.git");
    std::fs::write(a.dir.path().join("hook.secret"), "s3cret\n").unwrap();
    let projects = format!(
        "projects:\n  - name: {a}\n    file: services.yaml\n  - name: {b}\n    git: {url}\n    path: b/services.yaml\n    webhook_secret: hook.secret\n  - name: {c}\n    file: {cdir}/services.yaml\n  - name: {m}\n    git: {url}\n    path: m/services.yaml\n",
        a = a.name,
        b = b.name,
        c = c.name,
        m = m.name,
        cdir = c.dir.path().display(),
    );
    std::fs::write(a.dir.path().join("projects.yaml"), projects).unwrap();
    // A token that may deploy B alone, and view everything; one that may
    // view A alone.
    let bteam = add_token(
        &a,
        "bteam",
        &["services:view", &format!("services:deploy@{}", b.name)],
    );
    let aview = add_token(&a, "aview", &[&format!("services:view@{}", a.name)]);
    let gateway = common::free_port();
    let d = Daemon::start_projects(
        &a,
        &[
            "--projects",
            "projects.yaml",
            "--interval",
            "1h",
            "--gateway",
            &format!("127.0.0.1:{gateway}"),
        ],
    );
    let status = |name: &str| -> serde_json::Value {
        let (_, body) = d.curl(&[
            &format!("/projects/{name}/status"),
            "-H",
            "Authorization: Bearer test-token",
        ]);
        serde_json::from_str(&body).unwrap_or_default()
    };
    let until = |what: &str, ok: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("A, B and M converge", &|| {
        status(&a.name)["last_reconcile"]["result"] == "ok"
            && status(&b.name)["revision"] == first.as_str()
            && status(&m.name)["revision"] == first.as_str()
    });
    until("C is refused", &|| {
        status(&c.name)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("projects file follows it as"))
    });
    assert!(
        !common::docker(&["ps", "-a", "--format", "{{.Names}}"]).contains("someone-else"),
        "a file naming another project changes nothing"
    );

    // One gateway for all: A keeps /web, M's /web is left out and said so.
    let at = |path: &str| get(&format!("http://127.0.0.1:{gateway}{path}"));
    assert_eq!(at("/web").trim(), "a-one");
    assert_eq!(at("/b").trim(), "b-one");
    until("M's status says its /web is left out", &|| {
        status(&m.name)["gateway"]["left_out"]
            .as_array()
            .is_some_and(|l| {
                l.iter()
                    .any(|x| x.as_str().unwrap_or("").starts_with("/web "))
            })
    });

    // Grants per project.
    let post = |path: &str, token: &str| {
        d.curl(&[
            path,
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
    };
    let (code, said) = post(&format!("/projects/{}/reconcile", b.name), &bteam);
    assert_eq!(code, 200, "{said}");
    let (code, said) = post(&format!("/projects/{}/reconcile", a.name), &bteam);
    assert_eq!(code, 403, "{said}");
    assert!(said.contains(&format!("in project {}", a.name)), "{said}");
    let (code, _) = d.curl(&[
        &format!("/projects/{}/status", b.name),
        "-H",
        &format!("Authorization: Bearer {aview}"),
    ]);
    assert_eq!(code, 403, "a view of A alone does not read B");
    assert_eq!(listed(&d, &aview), (200, vec![a.name.clone()]));
    let (code, all) = listed(&d, &bteam);
    assert_eq!(code, 200);
    assert_eq!(all, [&a.name, &b.name, &c.name, &m.name].map(|n| n.clone()));
    assert_eq!(listed(&d, "nobody").0, 401);

    // One dashboard: one sign-in, the list of the projects the token may
    // view, each project's own pages under its prefix.
    let page = |jar: &Path, path: &str| d.curl(&[path, "-b", jar.to_str().unwrap()]);
    let jar = sign_in(&d, &bteam, &a.dir.path().join("bteam.jar"));
    let (code, index) = page(&jar, "/ui/");
    assert_eq!(code, 200, "{index}");
    for p in [&a, &b, &c, &m] {
        assert!(
            index.contains(&format!("href=\"/projects/{}/ui/\"", p.name)),
            "{index}"
        );
    }
    let (code, overview) = page(&jar, &format!("/projects/{}/ui/", b.name));
    assert_eq!(code, 200, "{overview}");
    assert!(
        overview.contains("href=\"plan\""),
        "links stay under the project: {overview}"
    );
    let jar = sign_in(&d, &aview, &a.dir.path().join("aview.jar"));
    let (_, index) = page(&jar, "/ui/");
    assert!(
        index.contains(&format!("/projects/{}/ui/", a.name)),
        "{index}"
    );
    assert!(
        !index.contains(&format!("/projects/{}/ui/", b.name)),
        "{index}"
    );
    let (code, refused) = page(&jar, &format!("/projects/{}/ui/", b.name));
    assert_eq!(code, 403, "{refused}");

    // A's next file takes 20 s in a gate; meanwhile B and M move at once.
    a.write(&with_slow(&a.name, 20));
    until("A's slow gate has started", &|| {
        common::docker(&["ps", "-a", "--format", "{{.Names}}"])
            .contains(&format!("{}-slow", a.name))
    });
    let moved = Instant::now();
    let push = |b_greeting: &str, m_greeting: &str, delivery: &str| {
        let rev = commit(b_greeting, m_greeting);
        let body = format!(r#"{{"ref":"refs/heads/main","after":"{rev}"}}"#);
        let signature = berth::core::webhook::sign(b"s3cret", body.as_bytes());
        let (code, said) = d.curl(&[
            &format!("/projects/{}/hooks/push", b.name),
            "-X",
            "POST",
            "--data-binary",
            &body,
            "-H",
            "X-GitHub-Event: push",
            "-H",
            &format!("X-GitHub-Delivery: {delivery}"),
            "-H",
            &format!("X-Hub-Signature-256: {signature}"),
        ]);
        assert_eq!(code, 202, "{said}");
    };
    push("b-two", "m-two", "one");
    until("B serves its new commit", &|| at("/b").trim() == "b-two");
    let b_took = moved.elapsed();
    eprintln!("B converged {b_took:?} after the push, while A waited in its gate");
    assert!(
        b_took < Duration::from_secs(15),
        "B waited for A: {b_took:?}"
    );
    // Two commits on, B's checkouts of the repository are pruned to its
    // last two; M (polling hourly) still converges from its first commit,
    // from its own checkout, which B's prune never touches.
    push("b-three", "m-three", "two");
    until("B serves its third commit", &|| {
        at("/b").trim() == "b-three"
    });
    let (code, said) = post(&format!("/projects/{}/reconcile", m.name), "test-token");
    assert_eq!(code, 200, "{said}");
    assert_eq!(status(&m.name)["revision"], first.as_str());
    assert!(
        moved.elapsed() < Duration::from_secs(20),
        "B and M waited for A: {:?}",
        moved.elapsed()
    );
    until("A's gate fails and is reported", &|| {
        status(&a.name)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("slow"))
    });
    for p in [&a, &b, &c, &m] {
        let (code, _) = d.curl(&[&format!("/projects/{}/healthz", p.name)]);
        assert_eq!(code, 200);
    }
}
