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
    .map(|name| {
        (
            name.to_string(),
            lab.docker(&["service", "inspect", "--format", "{{.Version.Index}}", name]),
        )
    })
    .collect()
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
    let file = |greeting: &str, web_command: &str| {
        format!(
            "project: {{p}}\nengine: swarm\nregistry: {registry}\nservices:\n  web:\n    image: {image}\n    command: [sh, -c, '{web_command}']\n    replicas: 3\n    env: {{ GREETING: {greeting} }}\n  worker:\n    image: {image}\n    command: [sleep, '3600']\n    machine: medium\n"
        )
    };
    const SERVE: &str =
        "echo serving $GREETING && echo $GREETING > /tmp/index.html && exec httpd -f -p 8000 -h /tmp";
    let berth = |args: &[&str]| p.berth_env(args, &[("DOCKER_HOST", lab.host.as_str())]);

    p.write(&file("one", SERVE));
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
        .docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
            &web,
        ])
        .lines()
        .map(String::from)
        .collect();
    assert!(
        nodes.len() >= 2,
        "replicas spread over the nodes: {nodes:?}"
    );
    // Placement follows the class: its memory reserved on the node, and a
    // 4-CPU class held to the largest node's 2 CPUs (a node refuses more).
    let resources = lab.docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.Resources}}",
        &format!("{}-worker-0-0-0", p.name),
    ]);
    assert!(
        resources.contains("\"Reservations\":{\"MemoryBytes\":8589934592}")
            && resources.contains("\"NanoCPUs\":2000000000"),
        "{resources}"
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
    assert!(logs.contains("serving one"), "{logs}");
    let status = berth(&["status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status = text(&status.stdout);
    assert!(
        status.contains("web") && status.contains("worker"),
        "{status}"
    );

    // A second apply changes nothing: no service's version moves.
    let before = indexes(&lab, &p.name);
    assert_eq!(before.len(), 2, "{before:?}");
    let again = berth(&["apply"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        indexes(&lab, &p.name),
        before,
        "a no-op apply updates nothing"
    );

    // One changed value updates exactly that service.
    p.write(&file("two", SERVE));
    let out = berth(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = indexes(&lab, &p.name);
    let worker = format!("{}-worker-0-0-0", p.name);
    assert_ne!(after[&web], before[&web], "web was updated");
    assert_eq!(after[&worker], before[&worker], "worker was not touched");
    assert!(lab
        .docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
            &web
        ])
        .contains("GREETING=two"));

    // A new configuration whose tasks fail is rolled back by Swarm, and the
    // apply says so, naming the version.
    p.write(&file("three", "echo broken; exit 3"));
    let out = berth(&["apply"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web@0.0.0") && err.contains("Swarm rolled the update back"),
        "{err}"
    );
    assert!(
        lab.docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
            &web
        ])
        .contains("GREETING=two"),
        "the previous configuration runs again"
    );

    // A new version whose tasks cannot start is reported with Swarm's reason
    // within seconds, not after the five-minute limit.
    let broken = format!(
        "{}  broken:\n    image: {image}\n    command: [berth-no-such-binary]\n",
        file("two", SERVE)
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

    // Destroy removes the project's services and networks, and nothing else.
    let out = berth(&["destroy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(indexes(&lab, &p.name).is_empty());
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
