//! The routing gateway: the route table from spec and engine (pure), and
//! `berth serve` proxying to the real containers.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use berth::core::desired::{
    LABEL_ACTIVE, LABEL_PATH, LABEL_PROJECT, LABEL_PUBLIC, LABEL_SCOPE, LABEL_SERVICE,
    LABEL_VERSION,
};
use berth::core::plan::{Observed, ObservedContainer, PortBinding};
use berth::core::route::routes;
use common::{add_token, docker, eventually, http_get, raw_get, text, Project, Serve, BERTH, DUMP};

/// A running container as berth labels it: `scope` is `global` or `database:NAME`.
fn running(
    name: &str,
    (service, version, path, scope): (&str, &str, &str, &str),
    active: bool,
    port: u16,
) -> ObservedContainer {
    ObservedContainer {
        id: name.into(),
        name: name.into(),
        labels: BTreeMap::from([
            (LABEL_PROJECT.to_string(), "demo".to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (LABEL_VERSION.to_string(), version.to_string()),
            (LABEL_PATH.to_string(), path.to_string()),
            (LABEL_SCOPE.to_string(), scope.to_string()),
            (LABEL_ACTIVE.to_string(), active.to_string()),
            (LABEL_PUBLIC.to_string(), (service == "greeter").to_string()),
        ]),
        state: "running".into(),
        status: "Up".into(),
        ports: vec![PortBinding {
            private: 8000,
            public: Some(port),
            ip: None,
        }],
        addresses: vec![format!("172.30.0.{}", port / 100)],
    }
}

const G10: (&str, &str, &str, &str) = ("greeter", "1.0.0", "/greeter", "global");
const G11: (&str, &str, &str, &str) = ("greeter", "1.1.0", "/greeter", "global");
const NOTES: (&str, &str, &str, &str) = ("notes", "0.0.0", "/n", "database:sales");

/// Routes `path` over `containers`: the port, the prefix, the rest, public.
fn check_over(
    containers: Vec<ObservedContainer>,
    path: &str,
    expect: Option<(u16, &str, &str, bool)>,
) {
    let observed = Observed {
        containers,
        ..Default::default()
    };
    let table = routes("demo", &observed);
    let got = table
        .resolve(path)
        .map(|r| (r.route.port, r.prefix, r.rest.clone(), r.route.public));
    let got = got
        .as_ref()
        .map(|(p, prefix, rest, public)| (*p, *prefix, rest.as_str(), *public));
    assert_eq!(got, expect, "routing {path}");
}

fn check(path: &str, expect: Option<(u16, &str, &str, bool)>) {
    check_over(
        vec![
            running("demo-greeter-1.0.0", G10, false, 1000),
            running("demo-greeter-1.1.0", G11, true, 1100),
            running("demo-notes-0.0.0", NOTES, true, 2000),
        ],
        path,
        expect,
    );
}

#[test]
fn the_service_path_goes_to_the_active_version_with_its_prefix_stripped() {
    check("/greeter", Some((1100, "/greeter", "/", true)));
    check("/greeter/a/b?x", Some((1100, "/greeter", "/a/b?x", true)));
    check("/greeterx", None);
}

#[test]
fn on_one_host_a_route_names_the_containers_own_address_and_on_a_swarm_none() {
    let direct = |c: ObservedContainer| {
        let observed = Observed {
            containers: vec![c],
            ..Default::default()
        };
        let table = routes("demo", &observed);
        table
            .resolve("/greeter/")
            .and_then(|r| r.route.direct.clone())
    };
    let one_host = running("demo-greeter-1.1.0", G11, true, 1100);
    assert_eq!(direct(one_host.clone()), Some("172.30.0.11:8000".into()));
    let mut v6 = one_host.clone();
    v6.addresses = vec!["fd00::5".into()];
    assert_eq!(direct(v6), Some("[fd00::5]:8000".into()));
    let mut task = one_host;
    task.ports[0].ip = Some("10.0.0.7".into());
    assert_eq!(
        direct(task),
        None,
        "a swarm task is reached on its node's port"
    );
}

#[test]
fn a_version_is_reachable_at_path_at_version() {
    check("/greeter@1.0.0/", Some((1000, "/greeter@1.0.0", "/", true)));
    check("/greeter@2.0.0/", None);
}

#[test]
fn a_database_service_lives_under_its_database_and_a_global_one_under_every_database() {
    check("/_db/sales/n/x", Some((2000, "/_db/sales/n", "/x", false)));
    check("/n/x", None);
    check(
        "/_db/sales/greeter/",
        Some((1100, "/_db/sales/greeter", "/", true)),
    );
    check("/_db/other/n/", None);
}

#[test]
fn while_a_replace_renames_containers_the_predecessor_serves_and_never_the_successor_on_probation()
{
    // Between the two renames: the old one is aside, the new one not yet named.
    check_over(
        vec![
            running("demo-greeter-1.1.0-old-abc", G11, true, 1100),
            running("demo-greeter-1.1.0-next-def", G11, true, 1200),
        ],
        "/greeter/",
        Some((1100, "/greeter", "/", true)),
    );
    // Once the successor has the name, it serves, though the old one still runs.
    check_over(
        vec![
            running("demo-greeter-1.1.0-old-abc", G11, true, 1100),
            running("demo-greeter-1.1.0", G11, true, 1200),
        ],
        "/greeter/",
        Some((1200, "/greeter", "/", true)),
    );
    // A successor still on probation, or a failed one, is never routed to.
    check_over(
        vec![running("demo-greeter-1.1.0-next-def", G11, true, 1200)],
        "/greeter/",
        None,
    );
    check_over(
        vec![running("demo-greeter-1.1.0-failed-def", G11, true, 1200)],
        "/greeter/",
        None,
    );
}

#[test]
fn containers_of_another_project_or_not_running_are_not_routed() {
    let mut other = running("other-greeter-1.1.0", G11, true, 1100);
    other
        .labels
        .insert(LABEL_PROJECT.to_string(), "other".to_string());
    check_over(vec![other], "/greeter/", None);
    let mut stopped = running("demo-greeter-1.1.0", G11, true, 1100);
    stopped.state = "exited".into();
    check_over(vec![stopped], "/greeter/", None);
}

const GREETERS: &str = "project: {p}\nservices:\n  greeter:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"greeter $BERTH_VERSION\" > /www/index.html && echo sub > /www/sub.txt && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.1.0\"\n    public: true\n  notes:\n    image: berth-local/busybox:stable\n    scope: { database: sales }\n    command: [sh, -c, 'echo \"notes $BERTH_DATABASE\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n";

#[test]
fn berth_serve_proxies_to_the_running_versions_and_asks_private_ones_for_a_token() {
    let Some(p) = Project::new("gateway") else {
        return;
    };
    p.write(GREETERS);
    p.ok(&["apply"]);
    let viewer = add_token(&p, "viewer", &["services:view"]);
    let deployer = add_token(&p, "deployer", &["services:deploy", "logs:view"]);
    let stored = std::fs::read_to_string(p.dir.path().join("tokens.yaml")).unwrap();
    assert!(
        !stored.contains(&viewer) && !stored.contains(&deployer),
        "tokens are stored hashed: {stored}"
    );
    // No `--tokens`: serve reads ./tokens.yaml, where `token add` wrote.
    let gw = Serve::start(&p, &[]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/greeter/", None)),
        || gw.get("/greeter/", None) == (200, "greeter 1.1.0".into()),
    );
    assert_eq!(
        gw.get("/greeter@1.0.0/", None),
        (200, "greeter 1.0.0".into())
    );
    assert_eq!(
        gw.get("/greeter/sub.txt", None),
        (200, "sub".into()),
        "the prefix is stripped"
    );
    assert_eq!(
        gw.get("/_db/sales/greeter/", None),
        (200, "greeter 1.1.0".into())
    );
    assert_eq!(gw.get("/notes/", Some(&viewer)).0, 404, "not global");
    // A private service: no token 401, a token without services:view 403.
    assert_eq!(gw.get("/_db/sales/notes/", None).0, 401);
    assert_eq!(gw.get("/_db/sales/notes/", Some("berth_wrong")).0, 401);
    let (code, body) = gw.get("/_db/sales/notes/", Some(&deployer));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("services:view"), "{body}");
    assert_eq!(
        gw.get("/_db/sales/notes/", Some(&viewer)),
        (200, "notes sales".into())
    );
    // A stranger learns nothing: an unknown path answers as a private one does.
    let private = gw.get("/_db/sales/notes/", None);
    let unknown = gw.get("/no-such-service/", None);
    assert_eq!(private, unknown, "one answer for private and unknown");
    assert!(
        !private.1.contains("notes") && !private.1.contains("@"),
        "{private:?}"
    );
    assert_eq!(
        gw.get("/no-such-service/", Some(&viewer)).0,
        404,
        "a viewer may know"
    );
}

#[test]
fn the_gateway_says_where_a_request_came_from_keeps_hops_to_itself_and_redirects_under_the_prefix()
{
    let Some(p) = Project::new("forward") else {
        return;
    };
    p.write(DUMP);
    p.ok(&["apply"]);
    let gw = Serve::start(&p, &[]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/dump/", None)),
        || gw.get("/dump/", None) == (200, "ok".into()),
    );
    let env = raw_get(
        gw.port,
        "/dump/cgi-bin/env",
        "Keep-Alive: timeout=5\r\nX-Hop: secret\r\nConnection: X-Hop\r\nX-Forwarded-For: 203.0.113.9\r\n",
    );
    assert!(
        env.contains("HTTP_X_FORWARDED_FOR=203.0.113.9, 127.0.0.1"),
        "{env}"
    );
    assert!(env.contains("HTTP_X_FORWARDED_HOST=shop.example"), "{env}");
    assert!(env.contains("HTTP_X_FORWARDED_PROTO=http"), "{env}");
    assert!(env.contains("HTTP_X_FORWARDED_PREFIX=/dump"), "{env}");
    assert!(
        !env.contains("secret") && !env.contains("HTTP_KEEP_ALIVE"),
        "hop-by-hop stays: {env}"
    );
    // busybox answers `/sub` with a redirect to `/sub/`: the browser must be sent
    // to `/dump/sub/`, where the gateway serves it.
    let moved = raw_get(gw.port, "/dump/sub", "");
    let location = moved
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .unwrap_or_else(|| panic!("no redirect: {moved}"));
    assert_eq!(
        location.split_once(':').unwrap().1.trim(),
        "/dump/sub/",
        "{moved}"
    );
    assert_eq!(gw.get("/dump/sub/", None), (200, "sub".into()));
    // A path that names one prefix and climbs to another is refused.
    assert_eq!(gw.get("/dump/../other/", None).0, 400);
    assert_eq!(gw.get("/dump/%2e%2e/other/", None).0, 400);
}

#[test]
fn berth_tokens_never_reach_a_service_even_a_public_one() {
    let Some(p) = Project::new("strip") else {
        return;
    };
    p.write(DUMP);
    p.ok(&["apply"]);
    let deployer = add_token(&p, "deployer", &["services:deploy"]);
    let gw = Serve::start(&p, &["--tokens", "tokens.yaml"]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/dump/", None)),
        || gw.get("/dump/", None) == (200, "ok".into()),
    );
    // The service's own credentials pass: the header does reach it...
    let (code, env) = gw.get("/dump/cgi-bin/env", Some("service-own-secret"));
    assert_eq!(code, 200, "{env}");
    assert!(
        env.contains("service-own-secret"),
        "the dump shows headers: {env}"
    );
    // ...but a berth token never does.
    let (code, env) = gw.get("/dump/cgi-bin/env", Some(&deployer));
    assert_eq!(code, 200, "{env}");
    assert!(!env.contains(&deployer), "{env}");
    assert!(!env.contains("berth_"), "{env}");
}

/// Each container of the project: name, ID, start time and host ports, as
/// the engine says.
fn started(p: &Project) -> Vec<String> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=berth.project={}", p.name),
    ]);
    let format = "{{.Name}} {{.Id}} {{.State.StartedAt}} {{json .NetworkSettings.Ports}}";
    let mut args = vec!["inspect", "-f", format];
    args.extend(ids.split_whitespace());
    let mut rows: Vec<String> = docker(&args).lines().map(String::from).collect();
    rows.sort();
    rows
}

/// A greeter version's address on the project's network.
fn address(p: &Project, version: &str) -> String {
    let name = format!("{}-greeter-{version}", p.name);
    let global = format!(
        "{{{{(index .NetworkSettings.Networks \"berth-{}-global\").IPAddress}}}}",
        p.name
    );
    docker(&["inspect", "-f", &global, &name])
        .trim()
        .to_string()
}

/// The address the name `greeter` resolves to, asked from inside `version`
/// (on the global network: the serve network carries no names).
fn name_answers(p: &Project, version: &str) -> String {
    let name = format!("{}-greeter-{version}", p.name);
    let out = docker(&["exec", &name, "nslookup", "greeter"]);
    let addresses: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(str::trim)
        .collect();
    addresses.join(",")
}

/// Sends GETs to `path` from `threads` threads until `stop`; at most `limit`
/// each. Returns every (status, body) seen, in order per thread.
fn hammer(
    port: u16,
    path: &'static str,
    threads: usize,
    limit: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(u16, String)>>> {
    (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && seen.len() < limit {
                    seen.push(http_get(port, path, None));
                }
                seen
            })
        })
        .collect()
}

const SWITCHING: &str = "project: {p}\nservices:\n  greeter:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo \"$BERTH_VERSION $GREETING\" > /www/index.html && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"1.1.0\": {} }\n    active: \"1.0.0\"\n    public: true\n    env: { GREETING: a }\n    health: { interval: 50ms }\n";

#[test]
fn a_client_hammering_the_path_sees_no_failed_request_through_changes_switches_and_a_rollback() {
    let Some(p) = Project::new("switch") else {
        return;
    };
    p.write(SWITCHING);
    p.ok(&["apply"]);
    let gw = Serve::start(&p, &[]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/greeter/", None)),
        || gw.get("/greeter/", None) == (200, "1.0.0 a".into()),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops = hammer(gw.port, "/greeter/", 2, 20_000, stop.clone());
    let wait_body = |want: &str| {
        eventually(
            Duration::from_secs(10),
            || format!("serving {want}: {:?}", gw.get("/greeter/", None)),
            || gw.get("/greeter/", None) == (200, want.into()),
        )
    };

    // A change of the active version's settings: replaced side by side.
    p.write(&SWITCHING.replace("GREETING: a", "GREETING: b"));
    p.ok(&["apply"]);
    wait_body("1.0.0 b");
    // A change of the active version.
    p.write(
        &SWITCHING
            .replace("GREETING: a", "GREETING: b")
            .replace("active: \"1.0.0\"", "active: \"1.1.0\""),
    );
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains("active 1.0.0 -> 1.1.0: the gateway's route and the service's network name move; no container restarts")
            && !plan.contains("~ replace")
            && !plan.contains("labels.berth.active"),
        "the plan shows the switch as one routing step: {plan}"
    );
    let before = started(&p);
    assert_eq!(before.len(), 2, "{before:?}");
    // Both versions can be switched to, so both are on the serve network,
    // which leads nowhere and joins no two containers: it opens no path
    // between scopes.
    let serve = format!("berth-{}-serve", p.name);
    let on_it = docker(&[
        "network",
        "inspect",
        "-f",
        "{{.Internal}} {{index .Options \"com.docker.network.bridge.enable_icc\"}} {{len .Containers}}",
        &serve,
    ]);
    assert_eq!(on_it.trim(), "true false 2");
    assert_eq!(name_answers(&p, "1.0.0"), address(&p, "1.0.0"));
    let out = p.ok(&["apply"]);
    assert!(out.contains("routed"), "{out}");
    wait_body("1.1.0 b");
    assert_eq!(
        started(&p),
        before,
        "a switch restarts no container and moves no host port"
    );
    // The service's name moved with the path, for the services beside it.
    assert_eq!(name_answers(&p, "1.0.0"), address(&p, "1.1.0"));
    let status = p.ok(&["status"]);
    assert!(
        status.contains("1.1.0 (active)"),
        "status reads the switch from the engine: {status}"
    );
    // And back, by rollback: the file still says 1.1.0.
    let out = p.ok(&["rollback", "greeter"]);
    assert!(
        out.contains("Rolled back `greeter` to 1.0.0 (it was 1.1.0)"),
        "{out}"
    );
    assert!(out.contains("set `active: \"1.0.0\"`"), "{out}");
    wait_body("1.0.0 b");
    assert_eq!(started(&p), before, "a rollback restarts no container");
    assert_eq!(name_answers(&p, "1.1.0"), address(&p, "1.0.0"));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen: Vec<(u16, String)> = loops.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(code, _)| *code != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, the first: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    eprintln!("{} requests through the switches, none failed", seen.len());
    for want in ["1.0.0 a", "1.0.0 b", "1.1.0 b"] {
        assert!(
            seen.iter().any(|(_, b)| b == want),
            "the loop saw {want} served"
        );
    }

    // The rollback holds through a plain apply, and the plan says so.
    let plan = p.ok(&["plan"]);
    assert!(plan.contains("held at 1.0.0 by `berth rollback`"), "{plan}");
    p.ok(&["apply"]);
    assert_eq!(gw.get("/greeter/", None), (200, "1.0.0 b".into()));
    // Following the advice (a new `active` in the file) ends the hold, and
    // changes nothing else.
    p.write(&SWITCHING.replace("GREETING: a", "GREETING: b"));
    assert!(p.ok(&["apply"]).contains("No changes"));
    assert!(!p.ok(&["plan"]).contains("held at"));
    assert!(!p.ok(&["apply"]).contains("held at"));
}

#[test]
fn rollback_refuses_a_version_that_is_not_healthy_or_not_declared_and_changes_nothing() {
    let Some(p) = Project::new("rollback") else {
        return;
    };
    p.write(SWITCHING);
    p.ok(&["apply"]);
    let out = p.berth(&["rollback", "greeter"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no version of `greeter` other than 1.0.0 was active before"),
        "{err}"
    );
    let out = p.berth(&["rollback", "greeter", "--to", "9.9.9"]);
    assert!(
        text(&out.stderr).contains("declares no version 9.9.9"),
        "{}",
        text(&out.stderr)
    );
    // 1.1.0 stopped: not healthy, so it cannot take over.
    docker(&["stop", &format!("{}-greeter-1.1.0", p.name)]);
    let before = p.containers();
    let out = p.berth(&["rollback", "greeter", "--to", "1.1.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("greeter@1.1.0 is exited, so it cannot take over"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.containers(), before, "nothing changed");
    let out = p.berth(&["rollback", "nope"]);
    assert!(text(&out.stderr).contains("no service `nope`"));
}

static PYTHON_BASE: std::sync::Once = std::sync::Once::new();

/// A project whose services may be built for python3.11 (the base is built once).
fn python_project(tag: &str) -> Option<Project> {
    let p = Project::new(tag)?;
    PYTHON_BASE.call_once(|| {
        let out = Command::new(BERTH)
            .args(["baseimages", "python3.11"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    });
    Some(p)
}

const ISOLATION: &str = "project: {p}\nservices:\n  echo:\n    runtime: python3.11\n    package: ECHO\n    scope: { database: alpha }\n    public: true\n  vault:\n    image: berth-local/busybox:stable\n    scope: { database: beta }\n    command: [sh, -c, 'echo vault > /www/index.html && exec httpd -f -p 8000 -h /www']\n  shared:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo shared > /www/index.html && exec httpd -f -p 8000 -h /www']\n";

#[test]
fn a_database_service_reaches_global_services_but_not_another_database() {
    let Some(p) = python_project("isolation") else {
        return;
    };
    let echo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo");
    p.write(&ISOLATION.replace("ECHO", &echo.display().to_string()));
    p.ok(&["apply"]);
    let client = format!("{}-echo-0.0.0", p.name);
    // From inside the alpha container, with the image's own Python.
    let fetch = |url: &str| {
        Command::new("docker")
            .args(["exec", &client, "python3", "-c"])
            .arg("import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())")
            .arg(url)
            .output()
            .unwrap()
    };
    let shared = fetch("http://shared:8000/");
    assert_eq!(
        text(&shared.stdout).trim(),
        "shared",
        "a global service is reachable by name: {}",
        text(&shared.stderr)
    );
    let by_name = fetch("http://vault:8000/");
    assert!(
        !by_name.status.success(),
        "another database's service is not even resolvable: {}",
        text(&by_name.stdout)
    );
    let vault_ip = p.inspect(
        &format!("{}-vault-0.0.0", p.name),
        &format!(
            "{{{{(index .NetworkSettings.Networks \"berth-{}-db-beta\").IPAddress}}}}",
            p.name
        ),
    );
    assert!(!vault_ip.is_empty());
    let by_ip = fetch(&format!("http://{vault_ip}:8000/"));
    assert!(
        !by_ip.status.success(),
        "nor reachable by its address {vault_ip}: {}",
        text(&by_ip.stdout)
    );
    // And the other way: the global service reaches both databases' services.
    let from_shared = docker(&[
        "exec",
        &format!("{}-shared-0.0.0", p.name),
        "wget",
        "-qO-",
        &format!("http://{vault_ip}:8000/"),
    ]);
    assert_eq!(from_shared, "vault");
}

#[test]
fn a_websocket_upgrade_passes_through_the_gateway_both_ways() {
    use std::io::{Read, Write};
    let Some(p) = python_project("websocket") else {
        return;
    };
    let echo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo");
    p.write(&ISOLATION.replace("ECHO", &echo.display().to_string()));
    p.ok(&["apply"]);
    let gw = Serve::start(&p, &[]);
    eventually(
        Duration::from_secs(20),
        || {
            format!(
                "the gateway came up: {:?}",
                gw.get("/_db/alpha/echo/", None)
            )
        },
        || gw.get("/_db/alpha/echo/", None) == (200, "echo alpha".into()),
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /_db/alpha/echo/socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the gateway closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in ["hello", "second message"] {
        s.write_all(message.as_bytes()).unwrap();
        let mut back = vec![0u8; message.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(String::from_utf8_lossy(&back), message.to_uppercase());
    }
}

#[test]
fn a_listener_address_may_say_localhost_and_a_bad_one_names_its_flag() {
    let Some(p) = Project::new("addr") else {
        return;
    };
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n");
    let bad = p.berth(&["serve", "--gateway", "nowhere"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains("--gateway") && err.contains("HOST:PORT"),
        "{err}"
    );
    let serve = Serve::start_on(&p, "localhost", &[]);
    eventually(
        Duration::from_secs(10),
        || format!("the gateway on 127.0.0.1:{} never answered 401", serve.port),
        || serve.get("/web", None).0 == 401,
    );
}

#[test]
fn destroy_lets_a_request_in_flight_through_the_gateway_finish_before_the_container_goes() {
    let Some(p) = Project::new("gwdestroy") else {
        return;
    };
    // A CGI script that answers after a second and a half.
    p.write("project: {p}\nservices:\n  slow:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'mkdir -p /www/cgi-bin && printf \"#!/bin/sh\\nsleep 1.5\\nprintf \\\"Content-Type: text/plain\\\\r\\\\n\\\\r\\\\ndone\\\"\\n\" > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && echo up > /www/index.html && exec httpd -f -p 8000 -h /www']\n    public: true\n");
    p.ok(&["apply"]);
    let gw = Serve::start(&p, &[]);
    eventually(
        Duration::from_secs(20),
        || format!("the gateway came up: {:?}", gw.get("/slow/", None)),
        || gw.get("/slow/", None) == (200, "up".into()),
    );
    let port = gw.port;
    let asked = std::thread::spawn(move || http_get(port, "/slow/cgi-bin/slow", None));
    std::thread::sleep(Duration::from_millis(400));
    p.ok(&["destroy"]);
    let (code, body) = asked.join().unwrap();
    assert_eq!(
        (code, body.trim()),
        (200, "done"),
        "the request in flight finished before its container was removed"
    );
    assert!(p.containers().is_empty());
}
