//! The Swarm lab (`scripts/swarm-lab`): extra Docker daemons in their own
//! network namespaces form a real multi-node swarm with a local registry,
//! images reach every node through it, and `down` leaves the machine (and the
//! host's engine above all) as it found it.

mod common;

use std::process::Command;

use common::lab::{self, Lab};
use common::{docker, text, Project};

/// What of the host's engine and network the lab must never change.
fn host_facts() -> (String, String, bool) {
    (
        docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
        docker(&["network", "ls", "--format", "{{.ID}} {{.Name}} {{.Driver}}"]),
        std::path::Path::new("/sys/class/net/docker0").exists(),
    )
}

#[test]
fn the_lab_forms_a_three_node_swarm_beside_the_host_engine_and_down_leaves_nothing() {
    // A project only for the engine check and the busybox base the lab ships.
    let Some(_p) = Project::new("lab") else {
        return;
    };
    if !lab::possible() {
        return;
    }
    let before = host_facts();
    let lab = Lab::up(3);
    eprintln!("swarm-lab up 3: {:.1} s", lab.up_secs);
    let lab_dir = lab.lab_dir();
    let on = |args: &[&str]| lab.docker(args);

    let nodes = on(&["node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}"]);
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 3, "{nodes}");
    assert!(lines.iter().all(|l| l.starts_with("Ready")), "{nodes}");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("Leader")).count(),
        1,
        "{nodes}"
    );
    let classes = on(&["node", "ls", "--format", "{{.ID}}"]);
    let mut seen = Vec::new();
    for id in classes.lines() {
        seen.push(on(&[
            "node",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"berth.class\"}}",
            id,
        ]));
    }
    seen.sort();
    assert_eq!(seen, ["large", "medium", "small"], "one class per node");

    // An image reaches every node through the lab's registry: loaded on the
    // manager, pushed, and run as three replicas spread over the nodes.
    let image = lab.push("berth-local/busybox:stable", "berth-lab-probe:1");
    on(&[
        "service",
        "create",
        "-q",
        "--name",
        "berth-lab-probe",
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        &image,
        "sleep",
        "3600",
    ]);
    let mut running = String::new();
    for _ in 0..300 {
        running = lab.tasks("berth-lab-probe").join("\n");
        if running.lines().filter(|l| l.contains("Running")).count() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let spread: std::collections::BTreeSet<&str> = running
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(spread.len(), 3, "three replicas on three nodes: {running}");

    // The host's engine was never part of it.
    assert_eq!(
        host_facts(),
        before,
        "the host's engine and docker0 are as they were"
    );

    drop(lab);
    assert_eq!(host_facts(), before, "after down too");
    assert!(!lab_dir.exists(), "the lab's files are gone");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = text(&links.stdout);
    assert!(
        !links.contains("berthlab0") && !links.contains("blab1"),
        "the lab's bridge and veths are gone: {links}"
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !text(&netns.stdout).contains("berthlab-"),
        "namespaces gone"
    );
    let procs = Command::new("pgrep")
        .args(["-f", lab_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text(&procs.stdout).trim().is_empty(),
        "no lab process is left: {}",
        text(&procs.stdout)
    );
}
