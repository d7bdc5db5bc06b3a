//! The routing gateway: the route table from spec and engine (pure), and
//! `berth serve` proxying to the real containers.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth::core::desired::{LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION};
use berth::core::plan::{Observed, ObservedContainer, PortBinding};
use berth::core::route::routes;
use berth::core::spec::parse;
use common::{eventually, Project, BERTH};

const SPEC: &str = "project: demo
services:
  greeter:
    image: x
    versions: { \"1.0.0\": {}, \"1.1.0\": {} }
    active: \"1.1.0\"
  notes:
    image: x
    path: /n
    scope: { database: sales }
";

fn running(name: &str, service: &str, version: &str, port: u16) -> ObservedContainer {
    ObservedContainer {
        id: name.into(),
        name: name.into(),
        labels: BTreeMap::from([
            (LABEL_PROJECT.to_string(), "demo".to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (LABEL_VERSION.to_string(), version.to_string()),
        ]),
        state: "running".into(),
        status: "Up".into(),
        ports: vec![PortBinding {
            private: 8000,
            public: Some(port),
            ip: None,
        }],
    }
}

fn check(path: &str, expect: Option<(u16, &str, &str)>) {
    let spec = parse("s.yaml", SPEC).unwrap();
    let observed = Observed {
        containers: vec![
            running("demo-greeter-1.0.0", "greeter", "1.0.0", 1000),
            running("demo-greeter-1.1.0", "greeter", "1.1.0", 1100),
            running("demo-notes-0.0.0", "notes", "0.0.0", 2000),
        ],
        ..Default::default()
    };
    let got = routes(&spec, &observed).resolve(path);
    let got = got
        .as_ref()
        .map(|(p, prefix, rest)| (*p, prefix.as_str(), rest.as_str()));
    assert_eq!(got, expect, "routing {path}");
}

#[test]
fn the_service_path_goes_to_the_active_version_with_its_prefix_stripped() {
    check("/greeter", Some((1100, "/greeter", "/")));
    check("/greeter/a/b?x", Some((1100, "/greeter", "/a/b?x")));
    check("/greeterx", None);
}

#[test]
fn a_version_is_reachable_at_path_at_version() {
    check("/greeter@1.0.0/", Some((1000, "/greeter@1.0.0", "/")));
    check("/greeter@2.0.0/", None);
}

#[test]
fn a_database_service_lives_under_its_database_and_a_global_one_under_every_database() {
    check("/_db/sales/n/x", Some((2000, "/_db/sales/n", "/x")));
    check("/n/x", None);
    check(
        "/_db/sales/greeter/",
        Some((1100, "/_db/sales/greeter", "/")),
    );
    check("/_db/other/n/", None);
}

#[test]
fn berth_serve_proxies_to_the_running_versions() {
    let Some(p) = Project::new("gateway") else {
        return;
    };
    p.write(
        "project: {p}\nservices:\n  greeter:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"greeter $BERTH_VERSION\" > /www/index.html && echo sub > /www/sub.txt && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.1.0\"\n  notes:\n    image: berth-local/busybox:stable\n    scope: { database: sales }\n    command: [sh, -c, 'echo \"notes $BERTH_DATABASE\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n",
    );
    p.ok(&["apply"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BERTH)
        .args(["serve", "--gateway", &format!("127.0.0.1:{port}")])
        .current_dir(p.dir.path())
        .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-w",
                " %{http_code}",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}{path}"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {}", get("/greeter/")),
        || get("/greeter/") == "greeter 1.1.0 200",
    );
    assert_eq!(get("/greeter@1.0.0/"), "greeter 1.0.0 200");
    assert_eq!(get("/greeter/sub.txt"), "sub 200", "the prefix is stripped");
    assert_eq!(get("/_db/sales/notes/"), "notes sales 200");
    assert_eq!(get("/_db/sales/greeter/"), "greeter 1.1.0 200");
    assert!(
        get("/notes/").ends_with(" 404"),
        "a database service is not global"
    );
    let _ = child.kill();
    let _ = child.wait();
}
