//! Assets against the real engine and a loopback HTTP server the test runs:
//! fetched once into a content-addressed cache, verified, mounted read-only with
//! their path in an environment variable; a wrong checksum, a cut download or a
//! 404 changes nothing and says which asset.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{docker, text, Project};

const MODEL: &[u8] = b"weights: 0.25 0.5 0.75\n";

/// A loopback HTTP server: `/model.bin` (the file), `/again/model.bin` (a 302 to
/// it), `/missing` (404), `/cut` (promises 1000 bytes, sends 100, hangs up).
/// Counts the requests for the file.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok() && h != "\r\n" && !h.is_empty() {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = match path.as_str() {
                    "/model.bin" => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", MODEL.len())
                            .and_then(|_| s.write_all(MODEL))
                    }
                    "/again/model.bin" => write!(
                        s,
                        "HTTP/1.1 302 Found\r\nLocation: /model.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    "/cut" => write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
                        .and_then(|_| s.write_all(&[b'x'; 100])),
                    _ => write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            }
        });
        Server { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One service per `(name, url, sha256)`; `{p}` is the project.
fn spec(services: &[(&str, &str, Option<&str>)]) -> String {
    let mut out = "project: {p}\nservices:\n".to_string();
    for (name, url, sum) in services {
        out += &format!(
            "  {name}:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo ok > /www/index.html && exec httpd -f -p 8000 -h /www']\n    assets:\n      - {{ env: MODEL_PATH, url: \"{url}\"{} }}\n",
            sum.map(|s| format!(", sha256: {s}")).unwrap_or_default()
        );
    }
    out
}

/// Files in the asset cache (`sha256/`) and half-written ones (`tmp/`).
fn cache(p: &Project) -> (usize, usize) {
    let count = |d: &str| {
        std::fs::read_dir(p.dir.path().join(".state/assets").join(d))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    (count("sha256"), count("tmp"))
}

#[test]
fn an_asset_is_fetched_once_verified_mounted_read_only_and_shared_by_content() {
    let Some(p) = Project::new("assets") else {
        return;
    };
    let server = Server::start();
    let sum = sha(MODEL);
    p.write(&spec(&[
        ("a", &server.url("/model.bin"), Some(&sum)),
        ("b", &server.url("/again/model.bin"), Some(&sum)),
    ]));
    p.ok(&["apply"]);
    for svc in ["a", "b"] {
        let name = format!("{}-{svc}-0.0.0", p.name);
        let path = docker(&["exec", &name, "sh", "-c", "echo $MODEL_PATH"]);
        assert!(path.starts_with("/berth/assets/"), "{path}");
        assert_eq!(
            docker(&["exec", &name, "cat", &path]).as_bytes(),
            MODEL.trim_ascii_end()
        );
        let denied = std::process::Command::new("docker")
            .args(["exec", &name, "sh", "-c", &format!("echo x >> {path}")])
            .output()
            .unwrap();
        assert!(!denied.status.success(), "the asset is mounted read-only");
    }
    assert_eq!(cache(&p), (1, 0), "the same content is stored once");
    let fetched = server.hits.load(Ordering::SeqCst);
    assert!(fetched <= 2, "fetched once per URL at most: {fetched}");
    let status = p.ok(&["status"]);
    assert!(
        status.contains(&format!("asset  /berth/assets/{}", &sum[..16])),
        "{status}"
    );

    // Cached: a second plan fetches nothing and changes nothing.
    assert!(p.ok(&["apply"]).contains("No changes"));
    assert_eq!(server.hits.load(Ordering::SeqCst), fetched);
}

#[test]
fn a_wrong_checksum_a_cut_download_or_a_404_is_refused_naming_the_asset_and_changes_nothing() {
    let Some(p) = Project::new("badassets") else {
        return;
    };
    let server = Server::start();
    let wrong = "0".repeat(64);
    let cases = [
        (
            server.url("/model.bin"),
            Some(wrong.as_str()),
            "not the 0000",
        ),
        (
            server.url("/cut"),
            None,
            "the download broke off after 100 of 1000 bytes",
        ),
        (server.url("/missing"), None, "the server answered 404"),
    ];
    for (url, sum, expect) in cases {
        p.write(&spec(&[("svc", &url, sum)]));
        let out = p.berth(&["apply"]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = text(&out.stderr);
        assert!(err.contains("svc@0.0.0: asset `MODEL_PATH`"), "{err}");
        assert!(err.contains(expect), "{expect} in {err}");
        assert!(err.contains("services.yaml:7:"), "says where: {err}");
        assert!(p.containers().is_empty(), "nothing was applied");
        assert_eq!(cache(&p), (0, 0), "no partial file is kept, none is cached");
    }
}

#[test]
fn an_asset_without_a_checksum_is_a_warning_and_its_content_decides_the_hash() {
    let Some(p) = Project::new("nosum") else {
        return;
    };
    let server = Server::start();
    p.write(&spec(&[("svc", &server.url("/model.bin"), None)]));
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains("warning: svc@0.0.0: asset `MODEL_PATH`")
            && plan.contains(&format!(
                "has no sha256, so any content is accepted (fetched: sha256 {})",
                sha(MODEL)
            )),
        "{plan}"
    );
    p.ok(&["apply"]);
    // Pinning it to the same content changes nothing that runs.
    p.write(&spec(&[(
        "svc",
        &server.url("/model.bin"),
        Some(&sha(MODEL)),
    )]));
    assert!(p.ok(&["apply"]).contains("No changes"));
}

#[test]
fn addresses_a_repository_may_not_make_berth_fetch_are_named() {
    use berth::shell::asset::{is_public, private_url};
    for (ip, public) in [
        ("127.0.0.1", false),
        ("10.1.2.3", false),
        ("172.16.0.1", false),
        ("192.168.1.1", false),
        ("169.254.169.254", false),
        ("100.64.0.1", false),
        ("0.0.0.0", false),
        ("::1", false),
        ("fe80::1", false),
        ("fd00::1", false),
        ("::ffff:127.0.0.1", false),
        ("93.184.216.34", true),
        ("2606:4700::1111", true),
    ] {
        assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
    }
    assert!(private_url("http://169.254.169.254/latest/meta-data").is_some());
    assert!(private_url("http://[::1]:8080/x").is_some());
    assert!(
        private_url("https://example.org/model.bin").is_none(),
        "names are checked when resolved"
    );
}
