//! `engine: swarm` on a real three-node swarm (the lab): the same services.yaml,
//! plan and apply, one Swarm service per version with replicas spread over the
//! nodes; a second apply updates nothing; one changed value updates exactly
//! one service; a new version whose tasks fail is rolled back by Swarm and the
//! apply names it; destroy removes the project's services and networks only.

mod common;

use common::lab::{self, Lab};
use common::{text, Project};

/// `Version.Index` of each service of the project: it moves on every update.
fn indexes(lab: &Lab, project: &str) -> std::collections::BTreeMap<String, String> {
    lab.docker(&[
        "service",
        "ls",
        "--filter",
        &format!("label=berth.project={project}"),
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(|name| (name.to_string(), lab.inspect(name, "{{.Version.Index}}")))
    .collect()
}

/// `berth serve --gateway` on the manager for the project, on `port`.
fn serve_gateway(lab: &Lab, p: &Project, port: u16) -> std::process::Child {
    lab.on_manager(
        common::BERTH,
        &["serve", "--gateway", &format!("127.0.0.1:{port}")],
    )
    .current_dir(p.dir.path())
    .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
    .env("DOCKER_HOST", &lab.host)
    .env("LAB_TOKEN", "first")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

#[test]
fn a_project_on_a_swarm_applies_updates_one_service_per_change_rolls_back_a_failing_one_and_destroys_cleanly(
) {
    let Some(p) = Project::new("swarm") else {
        return;
    };
    if !lab::possible() {
        return;
    }
    let lab = Lab::up(3);
    let image = lab.push("berth-local/busybox:stable", "berth-test-busybox:1");
    let registry = &lab.registry;
    // The image brings its own probe (busybox's wget), which gates updates.
    let file_with = |greeting: &str, checked: &str, run: &str| {
        format!(
            "project: {{p}}\nengine: swarm\nregistry: {registry}\nservices:\n  web:\n    image: {image}\n    command: [sh, -c, '{SERVE}']\n    port: 8000\n    public: true\n    replicas: 3\n    env: {{ GREETING: {greeting} }}\n    secrets: {{ TOKEN: {{ from_env: LAB_TOKEN }} }}\n    health: {{ command: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8000{checked}'], timeout: 4s }}\n  worker:\n    image: {image}\n    command: [sleep, '3600']\n    machine: medium\n  store:\n    image: {image}\n    command: [sh, -c, 'echo $RUN >> /data/runs && exec sleep 3600']\n    env: {{ RUN: {run} }}\n    keeps: [/data]\n"
        )
    };
    let file = |greeting: &str, checked: &str| file_with(greeting, checked, "a");
    // A secret is a file whose path the environment names, never a value in
    // the service spec.
    const SERVE: &str = "echo serving $GREETING with $(cat $TOKEN_FILE) && echo $GREETING > /tmp/index.html && exec httpd -f -p 8000 -h /tmp";
    let token = std::cell::RefCell::new("first".to_string());
    let berth = |args: &[&str]| {
        let token = token.borrow().clone();
        p.berth_env(
            args,
            &[("DOCKER_HOST", lab.host.as_str()), ("LAB_TOKEN", &token)],
        )
    };
    let secrets = || {
        lab.docker(&[
            "secret",
            "ls",
            "--filter",
            &format!("label=berth.project={}", p.name),
            "--format",
            "{{.Name}}",
        ])
    };

    p.write(&file("one", "/index.html"));
    let plan = berth(&["plan"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(
        plan.contains(&format!("+ create   {}/web@0.0.0", p.name))
            && plan.contains("network berth-"),
        "{plan}"
    );
    let started = std::time::Instant::now();
    let out = berth(&["apply"]);
    eprintln!(
        "apply from nothing: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Swarm names are DNS labels: the version's dots become dashes.
    let web = format!("{}-web-0-0-0", p.name);
    let nodes: std::collections::BTreeSet<String> = lab
        .tasks(&web)
        .iter()
        .filter_map(|t| t.split_whitespace().next().map(String::from))
        .collect();
    assert!(
        nodes.len() >= 2,
        "replicas spread over the nodes: {nodes:?}"
    );
    // Placement follows the class: a quarter of its memory reserved on the node, a 4-CPU
    // class held to the largest node's 2 CPUs (a node refuses more), and no
    // task on the node labelled for a smaller class.
    let resources = lab.inspect(
        &format!("{}-worker-0-0-0", p.name),
        "{{json .Spec.TaskTemplate.Resources}}",
    );
    assert!(
        resources.contains("\"Reservations\":{\"MemoryBytes\":2147483648}")
            && resources.contains("\"NanoCPUs\":2000000000"),
        "{resources}"
    );
    assert_eq!(
        lab.inspect(
            &format!("{}-worker-0-0-0", p.name),
            "{{json .Spec.TaskTemplate.Placement.Constraints}}"
        ),
        r#"["node.labels.berth.class!=small"]"#
    );
    assert_eq!(
        lab.docker(&[
            "network",
            "inspect",
            "--format",
            "{{.Driver}} {{.Attachable}}",
            &format!("berth-{}-global", p.name)
        ]),
        "overlay true"
    );

    // A version that keeps data runs where its volume is: on the manager.
    let store = format!("{}-store-0-0-0", p.name);
    assert!(lab
        .inspect(&store, "{{json .Spec.TaskTemplate.Placement.Constraints}}")
        .contains("node.id=="),);
    let on = lab.tasks(&store);
    assert!(on.len() == 1 && on[0].starts_with("berthlab-1 "), "{on:?}");

    // doctor on the manager shows the nodes and whether the registry answers.
    let doctor = berth(&["doctor"]);
    let said = text(&doctor.stdout);
    assert!(
        said.contains("ok    swarm: this engine is a manager of 3 node(s)")
            && said.contains("manager (leader): ready, active")
            && said.contains("labels berth.class=")
            && said.contains(&format!(
                "ok    registry {} answers the engine",
                lab.registry
            )),
        "{said}"
    );

    // Logs come from every task, as Swarm gathers them.
    let logs = berth(&["logs", "web"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    let logs = text(&logs.stdout);
    assert!(logs.contains("serving one with first"), "{logs}");
    let first_secret = secrets();
    assert_eq!(first_secret.lines().count(), 1, "{first_secret}");
    let status = berth(&["status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status = text(&status.stdout);
    assert!(
        status.contains("web") && status.contains("worker"),
        "{status}"
    );

    // A second apply changes nothing: no service's version moves.
    let before = indexes(&lab, &p.name);
    assert_eq!(before.len(), 3, "{before:?}");
    let again = berth(&["apply"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        indexes(&lab, &p.name),
        before,
        "a no-op apply updates nothing"
    );

    // The gateway, on the manager, reaches every task where its node
    // publishes it.
    let gateway_port = common::free_port();
    let mut gateway = serve_gateway(&lab, &p, gateway_port);
    let url = format!("http://127.0.0.1:{gateway_port}/web/index.html");
    let mut got = String::new();
    for _ in 0..100 {
        let out = lab
            .on_manager("curl", &["-s", "-m", "5", &url])
            .output()
            .unwrap();
        got = text(&out.stdout);
        if got.trim() == "one" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got.trim(), "one", "through the gateway");

    // One changed value updates exactly that service, with no failed request
    // through the gateway; a rotated secret is a new Swarm secret, and the
    // old one goes.
    p.write(&file("two", "/index.html"));
    *token.borrow_mut() = "second".into();
    let stop = p.dir.path().join("stop-requests");
    let requests = lab.request_loop(&url, &stop);
    let out = berth(&["apply"]);
    std::fs::write(&stop, "").unwrap();
    let counted = text(&requests.wait_with_output().unwrap().stdout);
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, failed) = counted.trim().split_once(' ').unwrap();
    eprintln!("requests during the update: {ok} answered, {failed} failed");
    assert_eq!(
        failed, "0",
        "no request fails across the update ({ok} answered)"
    );
    assert!(ok.parse::<u32>().unwrap() > 10, "{counted}");
    let after = indexes(&lab, &p.name);
    let worker = format!("{}-worker-0-0-0", p.name);
    assert_ne!(after[&web], before[&web], "web was updated");
    assert_eq!(after[&worker], before[&worker], "worker was not touched");
    assert_eq!(after[&store], before[&store], "store was not touched");
    assert!(lab
        .inspect(&web, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}")
        .contains("GREETING=two"));
    let spec = lab.docker(&["service", "inspect", &web]);
    assert!(
        spec.contains("TOKEN_FILE=/run/secrets/TOKEN") && !spec.contains("second"),
        "{spec}"
    );
    let rotated = secrets();
    assert!(
        rotated.lines().count() == 1 && rotated != first_secret,
        "{first_secret} -> {rotated}"
    );
    let logs = text(&berth(&["logs", "web"]).stdout);
    assert!(logs.contains("serving two with second"), "{logs}");

    // A new configuration whose tasks fail their health check is rolled back
    // by Swarm, and the apply says so, naming the version.
    p.write(&file("three", "/missing"));
    let out = berth(&["apply"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web@0.0.0") && err.contains("Swarm rolled the update back"),
        "{err}"
    );
    assert!(
        lab.inspect(&web, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}")
            .contains("GREETING=two"),
        "the previous configuration runs again"
    );

    // A new version whose tasks cannot start is reported with Swarm's reason
    // within seconds, not after the five-minute limit.
    let broken = format!(
        "{}  broken:\n    image: {image}\n    command: [berth-no-such-binary]\n",
        file("two", "/index.html")
    );
    p.write(&broken);
    let started = std::time::Instant::now();
    let out = berth(&["apply"]);
    let err = text(&out.stderr);
    eprintln!(
        "a version that cannot start reported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("broken@0.0.0") && err.contains("Swarm says"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "{err}"
    );

    // An update of the version that keeps data stops the old task first and
    // finds the data again.
    p.write(&file_with("two", "/index.html", "b"));
    let out = berth(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let task = lab.docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={store}"),
    ]);
    assert_eq!(
        lab.docker(&["exec", task.trim(), "cat", "/data/runs"]),
        "a\nb",
        "both runs wrote to the one volume"
    );

    // Switching the active version on a swarm: the gateway's route flips
    // with no failed request; the service's network name moves to the new
    // version. Swarm fixes a task's aliases when it creates the task, so the
    // name moves by a start-first update of the two versions (their tasks are
    // replaced, as Swarm allows nothing else), never by a stop. One replica:
    // with more, 20.10 also loses task records of a moved alias
    // (moby/moby#43528).
    let greeter = |active: &str| {
        format!(
            "{}  greeter:\n    image: {image}\n    command: [sh, -c, 'echo $BERTH_VERSION > /tmp/index.html && exec httpd -f -p 8000 -h /tmp']\n    port: 8000\n    public: true\n    versions: {{ \"1.0.0\": {{}}, \"1.1.0\": {{}} }}\n    active: \"{active}\"\n    health: {{ command: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8000/index.html'], timeout: 4s }}\n",
            file_with("two", "/index.html", "b")
        )
    };
    p.write(&greeter("1.0.0"));
    let out = berth(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let gateway_port = common::free_port();
    let mut gateway = serve_gateway(&lab, &p, gateway_port);
    let url = format!("http://127.0.0.1:{gateway_port}/greeter/index.html");
    let through = || {
        let out = lab
            .on_manager("curl", &["-s", "-m", "5", &url])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    common::eventually(
        std::time::Duration::from_secs(20),
        || "the gateway serves greeter".into(),
        || through() == "1.0.0",
    );
    p.write(&greeter("1.1.0"));
    let plan = text(&berth(&["plan"]).stdout);
    assert!(
        plan.contains("1 to switch (no restarts)") && plan.contains("0 to replace"),
        "{plan}"
    );
    let stop = p.dir.path().join("stop-switch-requests");
    let requests = lab.request_loop(&url, &stop);
    let started = std::time::Instant::now();
    let out = berth(&["apply"]);
    let took = started.elapsed();
    std::fs::write(&stop, "").unwrap();
    let counted = text(&requests.wait_with_output().unwrap().stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, failed) = counted.trim().split_once(' ').unwrap();
    eprintln!(
        "switch on a swarm: {:.1} s, requests through the gateway: {ok} answered, {failed} failed",
        took.as_secs_f64()
    );
    assert_eq!(
        failed, "0",
        "no request fails across the switch ({ok} answered)"
    );
    assert_eq!(
        through(),
        "1.1.0",
        "the gateway routes to the new active version"
    );
    // `berth rollback` on a swarm: the same switch back, held; `--release`
    // ends the hold.
    let out = berth(&["rollback", "greeter"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("Rolled back `greeter` to 1.0.0 (it was 1.1.0)"),
        "{said}"
    );
    common::eventually(
        std::time::Duration::from_secs(20),
        || format!("the gateway serves 1.0.0: {}", through()),
        || through() == "1.0.0",
    );
    let status = text(&berth(&["status"]).stdout);
    assert!(status.contains("1.0.0 (active)"), "{status}");
    let out = berth(&["rollback", "greeter", "--release"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    common::eventually(
        std::time::Duration::from_secs(20),
        || format!("the gateway serves 1.1.0 again: {}", through()),
        || through() == "1.1.0",
    );
    let _ = gateway.kill();
    let _ = gateway.wait();
    // The service's name is the new version's: `tasks.greeter`, the name's
    // record per task, resolves (from another service's task) to 1.1.0's
    // task and not to 1.0.0's. (The name's virtual-IP record is the engine's
    // to move; 20.10 keeps it stale, moby/moby#44009, and the lab routes no
    // virtual IP anyway.)
    let addresses = |service: &str| {
        lab.docker(&[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            service,
        ])
        .lines()
        .map(|t| {
            lab.docker(&[
                "inspect",
                t,
                "--format",
                "{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}",
            ])
        })
        .flat_map(|a| {
            a.split_whitespace()
                .map(|a| a.split('/').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
    };
    let (new_ips, old_ips) = (
        addresses(&format!("{}-greeter-1-1-0", p.name)),
        addresses(&format!("{}-greeter-1-0-0", p.name)),
    );
    // Asked from a one-off container on the manager, attached to the
    // project's overlay (attachable): another service's task may run on
    // any node, where this host's engine cannot exec into it.
    let network = format!("berth-{}-global", p.name);
    let resolves = || {
        // NXDOMAIN exits non-zero: read what it says either way.
        let out = std::process::Command::new("docker")
            .args(["-H", &lab.host, "run", "--rm", "--network", &network])
            .args(["berth-local/busybox:stable", "nslookup", "tasks.greeter"])
            .output()
            .unwrap();
        text(&out.stdout) + &text(&out.stderr)
    };
    let moved = |said: &str| {
        !new_ips.is_empty()
            && new_ips.iter().all(|ip| said.contains(ip.as_str()))
            && old_ips.iter().all(|ip| !said.contains(ip.as_str()))
    };
    let mut said = resolves();
    for _ in 0..50 {
        if moved(&said) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        said = resolves();
    }
    assert!(
        moved(&said),
        "tasks.greeter resolves to 1.1.0's {new_ips:?}, not 1.0.0's {old_ips:?}: {said}"
    );

    // Destroy removes the project's services, secrets and networks, and
    // nothing else.
    let out = berth(&["destroy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(indexes(&lab, &p.name).is_empty());
    assert_eq!(secrets(), "", "the project's secrets are gone");
    let networks = lab.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.contains(&format!("berth-{}-", p.name)),
        "{networks}"
    );
    assert!(
        networks.contains("ingress"),
        "Swarm's own networks stay: {networks}"
    );
}

#[test]
fn a_package_is_built_on_the_manager_pushed_to_the_registry_pinned_by_digest_and_health_checked_and_a_gpu_class_lands_on_the_node_advertising_one(
) {
    let Some(p) = Project::with_runtimes("swarmb", &["python3.11"]) else {
        return;
    };
    if !lab::possible() {
        return;
    }
    let lab = Lab::up(3);
    // The manager builds on the base as one host does; a real manager gets it
    // from `berth baseimages` there.
    lab.load("berth-local/python3.11:stable");
    let image = lab.push("berth-local/busybox:stable", "berth-test-busybox:1");
    let echo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo");
    let registry = &lab.registry;
    let file = |mode: &str| {
        format!(
            "project: {{p}}\nengine: swarm\nregistry: {registry}\nservices:\n  api:\n    runtime: python3.11\n    package: {echo}\n    replicas: 3\n    env: {{ MODE: {mode} }}\n  trainer:\n    image: {image}\n    command: [sleep, '3600']\n    machine: small-gpu\n"
        )
    };
    p.write(&file("one"));
    let berth = |args: &[&str]| p.berth_env(args, &[("DOCKER_HOST", lab.host.as_str())]);
    let plan = berth(&["plan"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(
        plan.contains(&format!(
            "+ build    image {registry}/berth/{}-api:",
            p.name
        )),
        "the image is named in the registry: {plan}"
    );
    let started = std::time::Instant::now();
    let out = berth(&["apply"]);
    eprintln!(
        "build, push and apply: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Every node pulled the image by its digest from the registry.
    let api = format!("{}-api-0-0-0", p.name);
    let spec = |service: &str, field: &str| {
        lab.inspect(service, &format!("{{{{json .Spec.TaskTemplate.{field}}}}}"))
    };
    let pinned = spec(&api, "ContainerSpec.Image");
    assert!(
        pinned.contains(&format!("{registry}/berth/{}-api@sha256:", p.name)),
        "{pinned}"
    );
    let tasks = lab.tasks(&api);
    let nodes: std::collections::BTreeSet<&str> = tasks
        .iter()
        .filter_map(|t| t.split_whitespace().next())
        .collect();
    assert!(
        nodes.len() >= 2 && tasks.iter().all(|t| t.contains("Running")),
        "{tasks:?}"
    );
    // berth's runtime ships the probe: GET / by the image's own Python.
    let check = spec(&api, "ContainerSpec.Healthcheck.Test");
    assert!(
        check.contains("python3") && check.contains(":8000/"),
        "{check}"
    );

    // The GPU class reserves the generic resource, so Swarm places it on the
    // one node that advertises it (the lab's last).
    let trainer = format!("{}-trainer-0-0-0", p.name);
    assert!(
        spec(&trainer, "Resources.Reservations").contains("NVIDIA-GPU"),
        "{}",
        spec(&trainer, "Resources")
    );
    let placed = lab.tasks(&trainer);
    assert!(
        placed.len() == 1 && placed[0].starts_with("berthlab-3 "),
        "{placed:?}"
    );

    // watch follows the swarm: a drained node's tasks move to the others, and
    // watch says so and shows where they run now.
    let listen = common::free_port();
    let log = p.dir.path().join("watch.log");
    let mut watch = p
        .command(&[
            "watch",
            "--interval",
            "1h",
            "--listen",
            &format!("127.0.0.1:{listen}"),
        ])
        .env("DOCKER_HOST", &lab.host)
        .env("BERTH_TOKEN", "test-token")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let api_tasks = || -> String {
        let out = std::process::Command::new("curl")
            .args(["-s", "-H", "Authorization: Bearer test-token"])
            .arg(format!("http://127.0.0.1:{listen}/status"))
            .output()
            .unwrap();
        let status: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        status["services"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["service"] == "api"))
            .and_then(|r| r["tasks"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let wait = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let started = std::time::Instant::now();
        loop {
            let now = api_tasks();
            if ok(&now) {
                return now;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(90),
                "{what}: {now}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    };
    let before = wait("watch converged", &|t| {
        t.starts_with("3/3 tasks running on ")
    });
    // A node with a task of api, not the one with the GPU (trainer's only).
    let drained = ["berthlab-1", "berthlab-2"]
        .into_iter()
        .find(|n| before.contains(n))
        .unwrap();
    let started = std::time::Instant::now();
    lab.docker(&["node", "update", "--availability", "drain", drained]);
    let moved = wait("the drained node's tasks moved", &|t| {
        t.starts_with("3/3 tasks running on ") && !t.contains(drained)
    });
    eprintln!(
        "drain seen by watch in {:.1} s: {moved}",
        started.elapsed().as_secs_f64()
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!("node {drained}")) && said.contains("availability: drain"),
        "{said}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    lab.docker(&["node", "update", "--availability", "active", drained]);

    // Built and pushed images are found again: nothing to do.
    let plan = berth(&["plan"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(
        plan.contains("No changes")
            && plan.contains("Plan: 0 to create, 0 to replace, 0 to remove"),
        "{plan}"
    );
    // `build` has nothing left to build; a saved plan is applied as shown.
    let build = berth(&["build"]);
    assert!(build.status.success(), "{}", text(&build.stderr));
    p.write(&file("two"));
    let saved = p.dir.path().join("plan.json");
    let plan = berth(&["plan", "--out", saved.to_str().unwrap()]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let out = berth(&["apply", "--plan", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(lab
        .inspect(&api, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}")
        .contains("MODE=two"));
    let out = berth(&["destroy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
