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

/// Opens `url`, again when Chromium shows its own error page instead: it
/// aborts a navigation with ERR_NETWORK_CHANGED whenever the engine adds or
/// removes a network interface, as the tests beside this one do.
async fn goto(c: &Client, url: &str) {
    for _ in 0..10 {
        c.goto(url).await.unwrap();
        if c.find(Locator::Css("#main-frame-error")).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "{url} kept failing to load:\n{}",
        c.source().await.unwrap_or_default()
    );
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
        // A navigation (a click's, a form's) that Chromium aborted on a
        // network change left its own error page: load the page again.
        if c.find(Locator::Css("#main-frame-error")).await.is_ok() {
            let _ = c.refresh().await;
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
    goto(c, &format!("{base}/ui/")).await;
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

/// The page's width, and how far down the services table starts.
async fn layout(c: &Client) -> (u64, u64) {
    let got = c
        .execute(
            "return [document.documentElement.scrollWidth, Math.round(document.getElementById('services').getBoundingClientRect().top + window.scrollY)]",
            vec![],
        )
        .await
        .unwrap();
    (got[0].as_u64().unwrap(), got[1].as_u64().unwrap())
}

/// Presses Tab until the focus is on `css` (40 presses at most).
async fn tab_to(c: &Client, css: &str) -> bool {
    for _ in 0..40 {
        c.active_element()
            .await
            .unwrap()
            .send_keys(&fantoccini::key::Key::Tab.to_string())
            .await
            .unwrap();
        let on = c
            .execute(
                &format!("return document.activeElement.matches({css:?})"),
                vec![],
            )
            .await
            .unwrap();
        if on == serde_json::json!(true) {
            return true;
        }
    }
    false
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

    // The service's page tells the repair on its timeline.
    goto(&c, &format!("{base}/ui/service?name=web")).await;
    let repaired = wait_text(&c, "#timeline li[data-kind='drift repaired']", |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        repaired.contains("0.0.0") && repaired.contains("started again"),
        "{repaired}"
    );
    goto(&c, &format!("{base}/ui/")).await;

    // An action, confirmed first: reconcile now, its result in place.
    press(&c, "#reconcile").await;
    wait_text(&c, "p.result", |t| t.contains("converged")).await;

    // What the file would change: nothing, as `berth plan` says it.
    goto(&c, &format!("{base}/ui/plan")).await;
    wait_text(&c, "#no-changes", |t| t.contains("No changes")).await;
    assert!(
        c.find(Locator::Css("#apply")).await.is_err(),
        "nothing to apply"
    );

    // Logs: the last lines, then a line printed after the page opened.
    goto(&c, &format!("{base}/ui/")).await;
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
    // The live stream starts with the last lines, after a `reset` that clears
    // the page's own: a line written between the page and its stream (here:
    // before this second stream opened) is never lost.
    let stream = c
        .execute(
            "return (async () => {
             const r = await fetch('/ui/logs/events?target=web@0.0.0');
             const reader = r.body.getReader();
             let text = '';
             const until = Date.now() + 5000;
             while (!text.includes('line-after-open') && Date.now() < until) {
               const next = await Promise.race([reader.read(), new Promise(ok => setTimeout(() => ok({}), 500))]);
               if (next.done) break;
               if (next.value) text += new TextDecoder().decode(next.value);
             }
             reader.cancel();
             return text;
             })();",
            vec![],
        )
        .await
        .unwrap();
    let stream = stream.as_str().unwrap_or_default().to_string();
    let reset = stream.find("event: reset");
    let line = stream.find("line-after-open");
    assert!(
        reset.is_some() && line.is_some() && reset < line,
        "the stream opens with a reset, then the last lines: {stream:?}"
    );

    // A failed rollout appears with its reason, live.
    goto(&c, &format!("{base}/ui/")).await;
    p.write(BROKEN);
    let said = wait_text(&c, "#rollout-error", |t| t.contains("GET / answered 404")).await;
    shot("failed-rollout.png", &c.screenshot().await.unwrap());
    // Said once: the gate's report is the failed rollout, not also the error;
    // its log lines and help wait behind a disclosure.
    assert!(
        c.find(Locator::Css("#last-error")).await.is_err(),
        "the same error is not said twice"
    );
    assert!(!said.contains("help:"), "collapsed: {said}");
    // On a phone the table is still on the first screen, and nothing
    // scrolls sideways.
    c.set_window_size(375, 800).await.unwrap();
    let (wide, top) = layout(&c).await;
    shot("failed-rollout-375px.png", &c.screenshot().await.unwrap());
    assert!(wide <= 375, "the page is {wide} px wide");
    assert!(top < 800, "the services start {top} px down");
    c.set_window_size(1280, 800).await.unwrap();
    // The failure is on the service's timeline, with its first line.
    goto(&c, &format!("{base}/ui/service?name=web")).await;
    let failed = wait_text(&c, "#timeline li[data-kind='failed']", |t| !t.is_empty()).await;
    assert!(failed.contains("never became healthy"), "{failed}");
    goto(&c, &format!("{base}/ui/")).await;
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

    // A phone's width: nothing scrolls sideways (each version is a card); the keyboard
    // reaches the actions, with a visible focus ring.
    c.set_window_size(375, 800).await.unwrap();
    let (wide, _) = layout(&c).await;
    assert!(wide <= 375, "the page is {wide} px wide");
    assert!(
        tab_to(&c, "#reconcile").await,
        "Tab reaches the Reconcile button"
    );
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

/// Two versions of `web`, 1.0.0 active, each saying its greeting and version.
const GREET: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"$GREETING $BERTH_VERSION\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.0.0\"\n    env: { GREETING: one }\n    public: true\n    health: { interval: 50ms }\n";

/// `(container ID, StartedAt)` of a version's container.
fn started(p: &Project, version: &str) -> (String, String) {
    let name = format!("{}-web-{version}", p.name);
    (
        p.inspect(&name, "{{.Id}}"),
        p.inspect(&name, "{{.State.StartedAt}}"),
    )
}

/// The texts of every element `css` matches.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap_or_default());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_page_says_why_a_version_is_active_restarts_one_charts_it_and_the_plan_page_applies_exactly_what_it_shows(
) {
    let Some(p) = Project::new("uisvc") else {
        return;
    };
    let Some((_driver, c)) = browser().await else {
        return;
    };
    p.write(GREET);
    p.ok(&["apply"]);
    let (port, gw) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    // Manual sync: the file's changes wait for Apply.
    let _daemon = daemon(
        &p,
        port,
        &["--manual", "--gateway", &format!("127.0.0.1:{gw}")],
    );
    sign_in(&c, &base, ROOT).await;
    assert!(at(&c, "/ui/").await);
    wait_text(&c, "#manual", |t| t.contains("Manual sync")).await;

    // The service's page, from its name in the overview.
    wait_text(&c, "tr[data-version='1.1.0'] td.health", |t| {
        t.contains("healthy")
    })
    .await;
    c.find(Locator::Css("tr[data-version='1.0.0'] a.service"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(at(&c, "/ui/service?name=web").await);
    let active = wait_text(&c, "#active", |t| t.contains("1.0.0")).await;
    assert!(active.contains("the file's `active:`"), "{active}");
    let urls = wait_text(&c, "tr[data-version='1.0.0'] td.urls", |t| {
        t.contains("/web/")
    })
    .await;
    assert!(
        urls.contains(&format!("127.0.0.1:{gw}/web/")),
        "through the gateway: {urls}"
    );
    assert!(urls.lines().count() == 2, "and direct: {urls}");

    // Restart one version: the same container, started again; its timeline
    // says so and the other version is untouched.
    let (id, at_first) = started(&p, "1.1.0");
    let other = started(&p, "1.0.0");
    press(&c, "tr[data-version='1.1.0'] button.restart").await;
    wait_text(&c, "#said", |t| t.contains("web@1.1.0 restarted")).await;
    let (id_after, at_after) = started(&p, "1.1.0");
    assert_eq!(id_after, id, "the same container");
    assert_ne!(at_after, at_first, "started again");
    assert_eq!(
        started(&p, "1.0.0"),
        other,
        "the other version is not touched"
    );
    let said = wait_text(&c, "#timeline li[data-kind='restarted']", |t| !t.is_empty()).await;
    assert!(
        said.contains("1.1.0") && said.contains("restart asked for by `root`"),
        "{said}"
    );

    // CPU and memory of the last hour, sampled while the page is open.
    let caption = wait_text(&c, "figure.chart[data-version='1.0.0'] figcaption", |t| {
        t.contains("CPU now")
    })
    .await;
    assert!(caption.contains("MiB"), "{caption}");
    let drawn = c
        .find(Locator::Css("figure.chart[data-version='1.0.0'] path.mem"))
        .await
        .unwrap()
        .attr("d")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(drawn.starts_with('M'), "{drawn}");
    // Reachable by keyboard; no sideways scrolling at a phone's width.
    assert!(
        tab_to(&c, "tr[data-version='1.0.0'] button.restart").await,
        "Tab reaches a version's Restart"
    );
    c.set_window_size(375, 800).await.unwrap();
    let (wide, _) = layout(&c).await;
    assert!(wide <= 375, "the service page is {wide} px wide");
    shot("service-375px.png", &c.screenshot().await.unwrap());
    c.set_window_size(1280, 800).await.unwrap();
    shot("service.png", &c.screenshot().await.unwrap());

    // A change of the file waits; the plan page shows it field by field.
    p.write(&GREET.replace("GREETING: one", "GREETING: two"));
    std::thread::sleep(Duration::from_secs(1));
    goto(&c, &format!("{base}/ui/plan")).await;
    let steps = texts(&c, "#plan-steps li.step.change").await;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps[0].contains("env.GREETING"), "{steps:?}");
    let old = wait_text(&c, "#plan-steps li.step.change del", |t| !t.is_empty()).await;
    let new = wait_text(&c, "#plan-steps li.step.change ins", |t| !t.is_empty()).await;
    assert_eq!((old.as_str(), new.as_str()), ("\"one\"", "\"two\""));
    shot("plan.png", &c.screenshot().await.unwrap());
    // The file moves again before Apply: the shown plan is not the plan any
    // more, so nothing is done.
    p.write(&GREET.replace("GREETING: one", "GREETING: three"));
    std::thread::sleep(Duration::from_secs(1));
    press(&c, "#apply-button").await;
    wait_text(&c, "#said", |t| t.contains("Apply failed")).await;
    let refused = wait_text(&c, "#last-error", |t| !t.is_empty()).await;
    assert!(
        refused.contains("the plan changed since it was shown"),
        "{refused}"
    );
    assert_eq!(started(&p, "1.1.0").0, id, "nothing was replaced");
    assert_eq!(http_get(gw, "/web/", None).1, "one 1.0.0");
    // Looked at again and applied: exactly that.
    goto(&c, &format!("{base}/ui/plan")).await;
    wait_text(&c, "#plan-steps li.step.change ins", |t| t == "\"three\"").await;
    press(&c, "#apply-button").await;
    wait_text(&c, "#said", |t| t.contains("Apply: converged: ")).await;
    assert_eq!(http_get(gw, "/web/", None).1, "three 1.0.0");
    goto(&c, &format!("{base}/ui/service?name=web")).await;
    let kinds = texts(&c, "#timeline li .kind").await;
    assert!(
        kinds.iter().filter(|k| *k == "replaced").count() == 2
            && kinds.iter().filter(|k| *k == "gated").count() == 2,
        "{kinds:?}"
    );
    let touched = wait_text(&c, "#reconciles tbody", |t| t.contains("api")).await;
    assert!(touched.contains("ok"), "{touched}");

    // Make 1.1.0 active from the service page: the page says it is held, and
    // why; the switch restarted nothing.
    let before = (started(&p, "1.0.0"), started(&p, "1.1.0"));
    press(&c, "tr[data-version='1.1.0'] button.rollback").await;
    wait_text(&c, "p.result", |t| t.contains("Rolled back `web` to 1.1.0")).await;
    assert_eq!(http_get(gw, "/web/", None).1, "three 1.1.0");
    assert_eq!((started(&p, "1.0.0"), started(&p, "1.1.0")), before);
    goto(&c, &format!("{base}/ui/service?name=web")).await;
    let why = wait_text(&c, "#active", |t| t.contains("1.1.0")).await;
    assert!(why.contains("held by a rollback"), "{why}");
    let kinds = texts(&c, "#timeline li .kind").await;
    assert!(
        kinds.starts_with(&["rolled back".to_string(), "switched".to_string()]),
        "{kinds:?}"
    );
    press(&c, "#holds button.release").await;
    wait_text(&c, "p.result", |t| t.contains("to 1.0.0")).await;
    assert_eq!(http_get(gw, "/web/", None).1, "three 1.0.0");
    c.close().await.unwrap();
}
