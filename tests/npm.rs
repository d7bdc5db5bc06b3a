//! Node dependencies against a real npm registry made here (a small HTTP server
//! on the engine's bridge address, serving one package as npm expects): they are
//! installed at plan time, once per set, and later builds need no registry; an
//! unreachable registry is a plan error in seconds naming it; `vendored: true`
//! runs the package's own `node_modules` with no registry at all.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{docker, get, text, Project};

fn project(tag: &str) -> Option<Project> {
    Project::with_runtimes(tag, &["node22"])
}

/// One test at a time: a build in progress shows its newest layer as
/// dangling, which the check for what a failed build leaves must not see.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host's address on the engine's default bridge: what a build container
/// reaches the host at (the gateway, else the subnet's first address).
fn bridge_address() -> String {
    let found = docker(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}}{{else}}{{.Subnet}}{{end}} {{end}}",
    ]);
    let first = found
        .split_whitespace()
        .find(|a| !a.contains(':'))
        .expect("an IPv4 bridge");
    match first.split_once('/') {
        None => first.to_string(),
        Some((net, _)) => {
            let mut octets: Vec<u8> = net.split('.').map(|o| o.parse().unwrap()).collect();
            octets[3] += 1;
            octets
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

const GREETING: &str = "module.exports = () => 'hello from the registry';\n";

/// An npm package tarball: `package/package.json` and `package/index.js`.
fn tarball() -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, body) in [
        (
            "package/package.json",
            r#"{"name":"berth-greeting","version":"1.0.0","main":"index.js"}"#,
        ),
        ("package/index.js", GREETING),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A registry serving `berth-greeting@1.0.0` until dropped; counts requests.
struct Registry {
    url: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Registry {
    fn start() -> Registry {
        let host = bridge_address();
        let listener = TcpListener::bind((host.as_str(), 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{host}:{}/", addr.port());
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, s, base) = (hits.clone(), stop.clone(), url.clone());
        let tgz = tarball();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let (status, kind, body): (&str, &str, Vec<u8>) = if path.ends_with(".tgz") {
                    ("200 OK", "application/octet-stream", tgz.clone())
                } else if path.trim_start_matches('/') == "berth-greeting" {
                    let meta = serde_json::json!({
                        "name": "berth-greeting",
                        "dist-tags": {"latest": "1.0.0"},
                        "versions": {"1.0.0": {
                            "name": "berth-greeting",
                            "version": "1.0.0",
                            "main": "index.js",
                            "dist": {"tarball": format!("{base}berth-greeting/-/berth-greeting-1.0.0.tgz")}
                        }}
                    });
                    ("200 OK", "application/json", meta.to_string().into_bytes())
                } else {
                    ("404 Not Found", "application/json", b"{}".to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        Registry {
            url,
            hits,
            stop,
            addr,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// A Node package that greets with its dependency's words.
fn package(dir: &Path, vendored: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"greeter","version":"1.0.0","dependencies":{"berth-greeting":"1.0.0"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("server.js"),
        "const greet = require('berth-greeting');\n\
         require('http').createServer((q, r) => r.end(greet() + ' v1')).listen(8000);\n",
    )
    .unwrap();
    if vendored {
        let m = dir.join("node_modules/berth-greeting");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("package.json"),
            r#"{"name":"berth-greeting","version":"1.0.0","main":"index.js"}"#,
        )
        .unwrap();
        std::fs::write(m.join("index.js"), GREETING).unwrap();
    }
}

fn url_of(p: &Project, service: &str, version: &str) -> String {
    let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == service && r["version"] == version)
        .unwrap_or_else(|| panic!("{service}@{version} in {rows}"))["url"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A registry URL on a port nothing listens on, at the address build
/// containers reach the host at.
fn closed_registry() -> String {
    let closed = {
        let l = TcpListener::bind((bridge_address().as_str(), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    format!("http://{}:{closed}/", bridge_address())
}

fn berth_with(p: &Project, registry: &str, args: &[&str]) -> std::process::Output {
    p.berth_env(args, &[("npm_config_registry", registry)])
}

#[test]
fn node_dependencies_install_at_plan_time_once_per_set_and_later_builds_need_no_registry() {
    let _alone = alone();
    let Some(p) = project("npm") else { return };
    let registry = Registry::start();
    let src = p.dir.path().join("greeter");
    package(&src, false);
    p.write(
        "project: {p}\nservices:\n  greeter:\n    runtime: node22\n    package: greeter\n    versions:\n      1.0.0: {}\n      2.0.0: {}\n",
    );
    let plan = berth_with(&p, &registry.url, &["plan"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let after_plan = registry.hits();
    assert!(
        after_plan >= 2,
        "the plan asked the registry: {after_plan} requests"
    );
    let apply = berth_with(&p, &registry.url, &["apply"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    assert_eq!(
        registry.hits(),
        after_plan,
        "apply reuses what the plan installed"
    );
    for v in ["1.0.0", "2.0.0"] {
        assert_eq!(get(&url_of(&p, "greeter", v)), "hello from the registry v1");
    }

    // With the registry gone, a code-only change still builds.
    let dead = registry.url.clone();
    drop(registry);
    std::fs::write(
        src.join("server.js"),
        std::fs::read_to_string(src.join("server.js"))
            .unwrap()
            .replace(" v1'", " v2'"),
    )
    .unwrap();
    let apply = berth_with(&p, &dead, &["apply"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    assert_eq!(
        get(&url_of(&p, "greeter", "1.0.0")),
        "hello from the registry v2"
    );

    // The dependencies image is the project's: destroy removes it too.
    p.ok(&["destroy"]);
    let left = docker(&[
        "images",
        "--filter",
        &format!("label=berth.project={}", p.name),
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(left, "", "images left behind");
}

#[test]
fn an_unreachable_registry_is_a_plan_error_in_seconds_naming_it_and_vendored_modules_run_without_one(
) {
    let _alone = alone();
    let Some(p) = project("npmdown") else { return };
    let registry = closed_registry();
    package(&p.dir.path().join("greeter"), false);
    p.write("project: {p}\nservices:\n  greeter:\n    runtime: node22\n    package: greeter\n");
    let dangling = || -> std::collections::BTreeSet<String> {
        docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
            .lines()
            .map(String::from)
            .collect()
    };
    let dangling_before = dangling();
    let started = Instant::now();
    let out = berth_with(&p, &registry, &["plan"]);
    let took = started.elapsed();
    eprintln!("unreachable registry refused in {took:?}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("greeter@0.0.0: installing Node dependencies from")
            && err.contains("\nerror: greeter@0.0.0: cannot install the Node dependencies of")
            && err.contains(&format!("from the npm registry {registry}"))
            && err.contains("ECONNREFUSED")
            && err.contains("set `vendored: true`")
            && !err.contains("    at "),
        "{err}"
    );
    assert!(p.containers().is_empty(), "nothing was created");
    let left: Vec<String> = dangling().difference(&dangling_before).cloned().collect();
    assert!(
        left.is_empty(),
        "the failed install leaves no untagged layer behind: {left:?}"
    );

    let vendored = p.dir.path().join("vendored");
    package(&vendored, true);
    p.write(
        "project: {p}\nservices:\n  greeter:\n    runtime: node22\n    package: vendored\n    vendored: true\n",
    );
    let out = berth_with(&p, &registry, &["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        get(&url_of(&p, "greeter", "0.0.0")),
        "hello from the registry v1"
    );
    p.ok(&["destroy"]);
}

#[test]
fn a_missing_node_base_is_built_at_plan_time_so_an_unreachable_registry_fails_the_plan_not_the_apply(
) {
    let _alone = alone();
    let Some(p) = Project::new("npmbase") else {
        return;
    };
    // No other test of this binary uses node20; its base goes, as on a new machine.
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", "berth-local/node20:stable"])
        .output();
    let registry = closed_registry();
    package(&p.dir.path().join("greeter"), false);
    p.write("project: {p}\nservices:\n  greeter:\n    runtime: node20\n    package: greeter\n");
    let out = berth_with(&p, &registry, &["plan"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the plan is refused:\n{err}");
    assert!(
        err.contains("greeter@0.0.0: building the base berth-local/node20:stable now, to install the Node dependencies at plan time")
            && err.contains("cannot install the Node dependencies of")
            && err.contains(&format!("from the npm registry {registry}")),
        "{err}"
    );
    docker(&["image", "inspect", "berth-local/node20:stable"]);
    assert!(p.containers().is_empty(), "nothing was created");
}
