//! Helpers shared by the engine tests: a project in a temp dir driven through the
//! real `berth` binary, and the docker CLI for looking at what it did.
#![allow(dead_code)]

pub mod daemon;
pub mod git_http;
pub mod lab;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Once;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The path of one of the repository's examples.
pub fn example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn engine_ready() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the Docker engine is unreachable: engine tests must run in CI");
        }
        eprintln!("\n!!! SKIPPED: the Docker engine is unreachable, so this engine test did not run !!!\n");
    }
    ok
}

static BASE_IMAGES: Once = Once::new();

pub struct Project {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A fresh project for one test; `None` (after a loud message) without an engine.
    pub fn new(tag: &str) -> Option<Project> {
        if !engine_ready() {
            return None;
        }
        BASE_IMAGES.call_once(|| {
            let out = Command::new(BERTH).arg("baseimages").output().unwrap();
            assert!(
                out.status.success(),
                "berth baseimages: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        let name = format!("t{}-{tag}", std::process::id() % 100_000);
        Some(Project {
            name,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// A fresh project with the bases of `runtimes` built (once per test binary).
    pub fn with_runtimes(tag: &str, runtimes: &[&str]) -> Option<Project> {
        static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let p = Project::new(tag)?;
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<&str> = runtimes
            .iter()
            .copied()
            .filter(|r| !built.iter().any(|b| b == r))
            .collect();
        if !missing.is_empty() {
            let out = Command::new(BERTH)
                .arg("baseimages")
                .args(&missing)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "berth baseimages {missing:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            built.extend(missing.iter().map(|r| r.to_string()));
        }
        Some(p)
    }

    /// Copies an example into the project's directory, to edit it there.
    pub fn copy_example(&self, name: &str) -> std::path::PathBuf {
        let to = self.dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(example(name)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    }

    /// Writes services.yaml; `{p}` stands for the project name.
    pub fn write(&self, yaml: &str) {
        std::fs::write(
            self.dir.path().join("services.yaml"),
            yaml.replace("{p}", &self.name),
        )
        .unwrap();
    }

    /// berth with `args`, in the project's directory and state, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.args(args)
            .current_dir(self.dir.path())
            .env("BERTH_STATE_DIR", self.dir.path().join(".state"));
        c
    }

    pub fn berth_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_env(args, &[])
    }

    /// Runs berth, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Container name -> ID of everything labelled with this project.
    pub fn containers(&self) -> BTreeMap<String, String> {
        let filter = format!("label=berth.project={}", self.name);
        docker(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(n, i)| (n.to_string(), i.to_string()))
        })
        .collect()
    }

    /// Like [`Project::inspect`], but `None` while the container does not exist.
    pub fn try_inspect(&self, container: &str, format: &str) -> Option<String> {
        let out = Command::new("docker")
            .args(["inspect", "--format", format, container])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn inspect(&self, container: &str, format: &str) -> String {
        docker(&["inspect", "--format", format, container])
    }

    /// Where `berth status` says the service answers: its active row, else
    /// its first one.
    pub fn url(&self, service: &str) -> String {
        let rows: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        let rows = rows.as_array().unwrap();
        let of = |r: &&serde_json::Value| r["service"] == service;
        rows.iter()
            .filter(of)
            .find(|r| r["active"] == true)
            .or_else(|| rows.iter().find(of))
            .unwrap_or_else(|| panic!("no status row for {service}: {rows:?}"))["url"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Copies a project of `tests/fixtures/projects/` into the project's
    /// directory (to edit it there) and returns where.
    pub fn copy_fixture(&self, name: &str) -> std::path::PathBuf {
        fn copy(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    copy(&e.path(), &to.join(e.file_name()));
                } else {
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
        }
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/projects")
            .join(name);
        let to = self.dir.path().join(name);
        copy(&from, &to);
        to
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.berth(&["destroy", "--volumes"]);
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The body of GET `url`, retried for up to 10 s while the service starts.
pub fn get(url: &str) -> String {
    for _ in 0..50 {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", url])
            .output()
            .unwrap();
        if out.status.success() {
            return text(&out.stdout).trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{url} never answered");
}

/// Now, as the fractional unix time `docker events` accepts.
pub fn unix_now() -> String {
    format!(
        "{:.6}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    )
}

impl Project {
    /// Runs berth with `args` and returns the engine events that mention this
    /// project while it ran (containers, images, networks, volumes).
    pub fn events_during(&self, args: &[&str]) -> Vec<String> {
        let since = unix_now();
        self.ok(args);
        let until = unix_now();
        let events = docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{index .Actor.Attributes \"berth.project\"}}",
        ]);
        events
            .lines()
            .filter(|l| l.contains(&self.name))
            .map(String::from)
            .collect()
    }
}

/// Polls `done` every 100 ms until it holds; panics with `what()` after `limit`.
pub fn eventually(
    limit: std::time::Duration,
    what: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out: {}", what());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET on a fresh loopback connection, with a 5 s limit.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let raw = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body.trim().to_string()))
    };
    attempt().unwrap_or((0, String::new()))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `berth serve` on a free port, stopped when dropped.
pub struct Serve {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    pub fn start(p: &Project, args: &[&str]) -> Serve {
        Serve::start_on(p, "127.0.0.1", args)
    }

    /// The gateway on `host`:a free port (`host` as the command line takes it).
    pub fn start_on(p: &Project, host: &str, args: &[&str]) -> Serve {
        let port = free_port();
        let child = p
            .command(&["serve", "--gateway", &format!("{host}:{port}")])
            .args(args)
            .env_remove("BERTH_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Serve { child, port }
    }

    /// GET `path` through the gateway: (status, body); status 0 when the
    /// connection itself failed.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http_get(self.port, path, token)
    }
}

/// A public service whose CGI script prints the environment it was given, with
/// a directory `sub/` (asked for as `/sub`, busybox redirects to `/sub/`).
pub const DUMP: &str = r#"project: {p}
services:
  dump:
    image: berth-local/busybox:stable
    public: true
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin /www/sub
        printf '#!/bin/sh\necho Content-Type: text/plain\necho\nenv\n' > /www/cgi-bin/env
        printf '#!/bin/sh\necho Content-Type: text/plain\necho Set-Cookie: berth_session=planted\necho Set-Cookie: theme=dark\necho\necho set\n' > /www/cgi-bin/setcookie
        chmod +x /www/cgi-bin/env /www/cgi-bin/setcookie
        echo ok > /www/index.html
        echo sub > /www/sub/index.html
        exec httpd -f -p 8000 -h /www
"#;

/// The whole answer (head and body) to `GET path` with `headers` added.
pub fn raw_get(port: u16, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: shop.example\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).to_string()
}

/// `berth token add NAME -p ...` in the project; the token printed.
pub fn add_token(p: &Project, name: &str, permissions: &[&str]) -> String {
    let mut args = vec!["token", "add", name];
    for perm in permissions {
        args.extend(["-p", perm]);
    }
    p.ok(&args).trim().to_string()
}

/// The open descriptors and resident memory (KiB) of a process.
pub fn fds_and_rss(pid: u32) -> (usize, u64) {
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
