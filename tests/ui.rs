//! The dashboard in a real browser: Debian's chromium, driven over WebDriver by
//! chromedriver, against the real daemon and engine. Sign-in, the overview and
//! its health, drift repaired live without a reload, an action, a view-only
//! token that sees no action and whose forged POST is refused, sign-out; the
//! plan view, a live log tail, a failed rollout with its reason.
//! Screenshots land in the test's output folder.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{docker, free_port, http_get, Project, BERTH};
use fantoccini::{Client, ClientBuilder, Locator};

/// Serves `hello`, and prints whatever is written to /tmp/say (so a test can
/// make it log a line whenever it wants).
const ONE: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo hello > /www/index.html; (while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; sleep 0.2; done) & exec httpd -f -p 8000 -h /www']\n";
/// A new configuration that never becomes healthy (GET / answers 404).
const BROKEN: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'exec httpd -f -p 8000 -h /tmp']\n    health: { timeout: 2s, interval: 100ms }\n";
const ROOT: &str = "ui-test-root-token";

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's chromedriver on a free port, and a headless chromium through it.
/// In CI both must be there (scripts/setup installs them); elsewhere a skip is
/// said loudly.
async fn browser() -> Option<(Killed, Client)> {
    if Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no chromedriver: scripts/setup installs chromium-driver"
        );
        eprintln!(
            "\n!!! SKIPPED: no chromedriver (apt-get install chromium chromium-driver) !!!\n"
        );
        return None;
    }
    let port = free_port();
    let driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]
        }),
    );
    let started = Instant::now();
    loop {
        match ClientBuilder::native()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return Some((driver, c)),
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver: {e}"),
        }
    }
}

/// Waits (60 s at most) until `ok` holds for the text of `css`.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let got = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&got) {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "`{css}` still reads {got:?}\n{}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the browser gets to a URL ending in `path` within 10 s (a click
/// returns before the navigation it starts ends).
async fn at(c: &Client, path: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if c.current_url().await.unwrap().as_str().ends_with(path) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert!(at(c, "/ui/login").await);
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// `berth watch` on the project's file with its API (and the dashboard) on
/// `port`, once it listens; BERTH_TOKEN is the root token, and the project's
/// tokens.yaml adds the others when there is one.
fn daemon(p: &Project, port: u16, more: &[&str]) -> Killed {
    let log = std::fs::File::create(p.dir.path().join("daemon.log")).unwrap();
    let tokens: &[&str] = match p.dir.path().join("tokens.yaml").exists() {
        true => &["--tokens", "tokens.yaml"],
        false => &[],
    };
    let child = Killed(
        Command::new(BERTH)
            .args(["watch", "-f", "services.yaml", "--interval", "1h"])
            .args(tokens)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(more)
            .current_dir(p.dir.path())
            .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
            .env("BERTH_TOKEN", ROOT)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon does not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Clicks `css` and accepts the confirmation the page asks for.
async fn press(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
}

fn shot(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_signs_in_shows_health_repairs_drift_live_and_refuses_a_view_only_token() {
    let Some(p) = Project::new("ui") else {
        return;
    };
    let Some((_driver, c)) = browser().await else {
        return;
    };
    p.write(ONE);
    let viewer = p.ok(&["token", "add", "viewer", "-p", "services:view"]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _daemon = daemon(&p, port, &[]);
    sign_in(&c, &base, ROOT).await;
    assert!(at(&c, "/ui/").await);
    let cookie = c.get_named_cookie("berth_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert!(!cookie.value().contains(ROOT));
    wait_text(&c, "tr[data-service=web] td.health", |t| {
        t.contains("healthy")
    })
    .await;
    assert_eq!(c.title().await.unwrap(), "Overview · berth");
    shot("overview.png", &c.screenshot().await.unwrap());

    // Drift: the container stopped by hand is started again by the daemon, and
    // the page says so without a reload.
    let before = wait_text(&c, "#last-reconcile", |t| !t.is_empty()).await;
    let name = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.project={}", p.name),
    ]);
    docker(&["stop", "-t", "1", name.trim()]);
    let after = wait_text(&c, "#last-reconcile", |t| t.contains("by engine")).await;
    assert_ne!(before, after);
    wait_text(&c, "tr[data-service=web] td.health", |t| {
        t.contains("healthy")
    })
    .await;
    assert!(
        c.find(Locator::Css("#live-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "live"
    );

    // An action, confirmed first: reconcile now, its result in place.
    press(&c, "#reconcile").await;
    wait_text(&c, "p.result", |t| t.contains("converged")).await;

    // What the file would change: nothing, as `berth plan` says it.
    c.goto(&format!("{base}/ui/plan")).await.unwrap();
    wait_text(&c, "#plan", |t| t.contains("No changes")).await;

    // Logs: the last lines, then a line printed after the page opened.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    c.find(Locator::Css("tr[data-service=web] a.logs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(at(&c, "/ui/logs?target=web@0.0.0").await);
    wait_text(&c, "#live-state", |t| t == "live").await;
    let id = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.project={}", p.name),
    ]);
    docker(&[
        "exec",
        id.trim(),
        "sh",
        "-c",
        "printf '\\033[31mred\\033[0m line-after-open\\n' > /tmp/say",
    ]);
    let log = wait_text(&c, "#log", |t| t.contains("line-after-open")).await;
    assert!(
        !log.contains('\u{1b}'),
        "colour codes are stripped: {log:?}"
    );
    shot("logs.png", &c.screenshot().await.unwrap());

    // A failed rollout appears with its reason, live.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    p.write(BROKEN);
    wait_text(&c, "#rollout-error", |t| t.contains("GET / answered 404")).await;
    shot("failed-rollout.png", &c.screenshot().await.unwrap());
    p.write(ONE);
    wait_text(&c, "#last-reconcile", |t| t.starts_with("ok")).await;

    // Sign out, then a view-only token: no action to press, and a forged
    // POST (with the session's own CSRF token, or without it) is refused.
    c.find(Locator::Css("form[action='/ui/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(at(&c, "/ui/login").await);
    sign_in(&c, &base, viewer.trim()).await;
    wait_text(&c, "tr[data-service=web] td.health", |t| {
        t.contains("healthy")
    })
    .await;
    assert!(
        c.find(Locator::Css("#reconcile")).await.is_err(),
        "no action for a view-only token"
    );
    assert!(
        c.find(Locator::Css("a.logs")).await.is_err(),
        "no logs link without logs:view"
    );
    let post = |csrf: &'static str| {
        let c = c.clone();
        async move {
            let script = format!("return fetch('/ui/reconcile', {{method: 'POST', body: new URLSearchParams({{csrf: {csrf}}})}}).then(r => r.status)");
            c.execute(&script, vec![]).await.unwrap()
        }
    };
    let own_csrf = "document.querySelector('meta[name=csrf]').content";
    assert_eq!(
        post(own_csrf).await,
        serde_json::json!(403),
        "lacks services:deploy"
    );
    assert_eq!(
        post("'guess'").await,
        serde_json::json!(403),
        "not the session's CSRF token"
    );
    c.close().await.unwrap();
}

/// Two versions side by side, 1.1.0 active, each saying its version.
const TWO: &str = "project: {p}\nservices:\n  greeter:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"$BERTH_VERSION\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.1.0\"\n    public: true\n    health: { interval: 50ms }\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_from_the_page_switches_the_gateway_shows_the_hold_and_ends_it() {
    let Some(p) = Project::new("uiroll") else {
        return;
    };
    let Some((_driver, c)) = browser().await else {
        return;
    };
    p.write(TWO);
    let (port, gw) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let _daemon = daemon(&p, port, &["--gateway", &format!("127.0.0.1:{gw}")]);
    let served = || http_get(gw, "/greeter/", None);
    sign_in(&c, &base, ROOT).await;
    assert!(at(&c, "/ui/").await);
    for v in ["1.0.0", "1.1.0"] {
        wait_text(&c, &format!("tr[data-version='{v}'] td.health"), |t| {
            t.contains("healthy")
        })
        .await;
    }
    assert_eq!(served(), (200, "1.1.0".into()));
    // The row says why it is healthy on hover, and links the gateway's path.
    let health = c
        .find(Locator::Css("tr[data-version='1.1.0'] td.health"))
        .await
        .unwrap();
    let reason = health.attr("title").await.unwrap().unwrap_or_default();
    assert!(reason.contains("health check passes"), "{reason}");
    let link = wait_text(&c, "tr[data-version='1.1.0'] a.gateway", |t| !t.is_empty()).await;
    assert_eq!(link, format!("http://127.0.0.1:{gw}/greeter/"));

    // CPU and memory against the class's limit, sampled while the page watches.
    let memory = wait_text(&c, "tr[data-version='1.1.0'] td:nth-child(8)", |t| {
        t.contains(" / ")
    })
    .await;
    assert!(memory.ends_with("MiB"), "{memory}");

    // Make 1.0.0 active from its row: the gateway serves it, and the hold
    // is shown with how it ends.
    press(&c, "tr[data-version='1.0.0'] button.rollback").await;
    wait_text(&c, "p.result", |t| {
        t.contains("Rolled back `greeter` to 1.0.0 (it was 1.1.0)")
    })
    .await;
    assert_eq!(served(), (200, "1.0.0".into()));
    let hold = wait_text(&c, "#holds li", |t| t.contains("runs 1.0.0")).await;
    assert!(hold.contains("berth rollback greeter --release"), "{hold}");
    assert!(hold.contains("active: \"1.1.0\""), "{hold}");
    wait_text(&c, "tr[data-version='1.0.0'] td:nth-child(2)", |t| {
        t.contains("active")
    })
    .await;
    shot("rollback-hold.png", &c.screenshot().await.unwrap());
    // The API's document carries the hold too.
    let (code, doc) = http_get(port, "/status", Some(ROOT));
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["holds"][0]["version"], "1.0.0", "{doc}");

    // End the hold from the page: back to what the file says.
    press(&c, "#holds button.release").await;
    wait_text(&c, "p.result", |t| t.contains("to 1.1.0")).await;
    assert_eq!(served(), (200, "1.1.0".into()));
    assert!(
        c.find(Locator::Css("#holds")).await.is_err(),
        "the hold is gone"
    );

    // A phone's width: nothing but the table scrolls sideways; the keyboard
    // reaches the actions, with a visible focus ring.
    c.set_window_size(375, 800).await.unwrap();
    let wide = c
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap();
    let why = c
        .execute(
            "return [window.innerWidth].concat(Array.from(document.querySelectorAll('body, body > *, main > *, #live > *')).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().width) + '/' + e.scrollWidth))",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        wide.as_u64().unwrap() <= 375,
        "the page is {wide} px wide: {why}"
    );
    let mut reached = false;
    for _ in 0..30 {
        c.active_element()
            .await
            .unwrap()
            .send_keys(&fantoccini::key::Key::Tab.to_string())
            .await
            .unwrap();
        let id = c
            .execute("return document.activeElement.id", vec![])
            .await
            .unwrap();
        if id == "reconcile" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches the Reconcile button");
    let ring = c
        .execute(
            "return getComputedStyle(document.activeElement).outlineStyle",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(ring, "none", "the focused button shows its focus");
    shot("overview-375px.png", &c.screenshot().await.unwrap());
    c.close().await.unwrap();
}
