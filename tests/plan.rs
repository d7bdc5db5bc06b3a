//! The pure core without Docker: hashing stability and planner cases.
//! Each planner case is a (file, engine state) pair and the plan text it must give.

use std::collections::BTreeMap;

use berth::core::desired::{
    resolve, Desired, Facts, GpuInventory, LABEL_ACTIVE, LABEL_CONFIG, LABEL_HASH, LABEL_PROJECT,
};
use berth::core::plan::{plan, Action, Observed, ObservedContainer, ObservedObject, Options};
use berth::core::render::{plan_text, Style};
use berth::core::spec::parse;

const BASE: &str = "project: demo
services:
  hello:
    image: busybox:stable
    env: { GREETING: hi }
    keeps: [/data]
  notes:
    version: 1.0.0
    image: busybox:stable
    scope: { database: sales }
";

fn facts() -> Facts {
    Facts {
        builds: BTreeMap::new(),
        image_ids: BTreeMap::from([
            (
                "busybox:stable".to_string(),
                "sha256:1111111111111111".to_string(),
            ),
            (
                "busybox:next".to_string(),
                "sha256:2222222222222222".to_string(),
            ),
        ]),
        env: BTreeMap::from([("TOKEN".to_string(), "s3cret".to_string())]),
        gpus: GpuInventory::default(),
        assets: BTreeMap::new(),
        swarm: Default::default(),
    }
}

fn desired(yaml: &str) -> Desired {
    resolve(&parse("services.yaml", yaml).unwrap(), &facts()).unwrap()
}

/// The engine as berth would leave it after applying `yaml`, every container in `state`.
fn applied(yaml: &str, state: &str) -> Observed {
    let d = desired(yaml);
    let mut o = Observed::default();
    for c in &d.containers {
        let mut labels = c.config.labels.clone();
        labels.insert(LABEL_HASH.into(), c.hash.clone());
        labels.insert(LABEL_CONFIG.into(), c.config.canonical());
        o.containers.push(ObservedContainer {
            id: format!("id-{}", c.name),
            name: c.name.clone(),
            labels,
            state: state.into(),
            status: format!("{state} for a while"),
            ports: vec![],
            addresses: vec![],
        });
    }
    for n in &d.networks {
        o.networks.push(ObservedObject {
            id: format!("net-{}", n.name),
            name: n.name.clone(),
            labels: n.labels.clone(),
        });
    }
    let active = d
        .containers
        .iter()
        .filter(|c| c.is_active())
        .map(|c| (c.service.clone(), c.version.clone()))
        .collect();
    let record = berth::core::active::record(&d.project, 2, &active, &BTreeMap::new());
    for v in d.volumes.iter().chain([&record]) {
        o.volumes.push(ObservedObject {
            id: v.name.clone(),
            name: v.name.clone(),
            labels: v.labels.clone(),
        });
    }
    o
}

fn check(yaml: &str, observed: &Observed, allow_empty: bool, expect: &str) {
    let got = match plan(
        &desired(yaml),
        observed,
        &Options {
            allow_empty,
            retry_failed: true,
        },
    ) {
        Ok(p) => plan_text(&p, Style { color: false }),
        Err(d) => d
            .iter()
            .map(|d| format!("error: {}\n  help: {}\n", d.message, d.help))
            .collect(),
    };
    assert_eq!(got.trim_end(), expect.trim_end(), "\n--- got ---\n{got}");
}

#[test]
fn an_empty_engine_gets_networks_and_volumes_before_containers() {
    check(
        BASE,
        &Observed::default(),
        false,
        "\
+ create   network berth-demo-db-sales           needed by the services of this scope
+ create   network berth-demo-global             needed by the services of this scope
+ create   volume demo-hello-data-52cbba7651d2   keeps /data of hello
+ create   demo/hello@0.0.0                      new service
+ create   demo/notes@1.0.0                      new service
= route    routes of demo                        demo/hello: 0.0.0 takes the service's path
                                                 demo/notes: 1.0.0 takes the service's path
Plan: 5 to create, 0 to replace, 0 to remove, 0 unchanged.",
    );
}

#[test]
fn an_engine_that_matches_the_file_gets_no_step() {
    check(BASE, &applied(BASE, "running"), false, "No changes: the engine matches the file.\nPlan: 0 to create, 0 to replace, 0 to remove, 2 unchanged.");
}

#[test]
fn one_changed_env_value_replaces_that_container_and_names_the_field() {
    let edited = BASE.replace("GREETING: hi", "GREETING: hello");
    check(
        &edited,
        &applied(BASE, "running"),
        false,
        "\
~ replace  demo/hello@0.0.0       env.GREETING: \"hi\" -> \"hello\"
Plan: 0 to create, 1 to replace, 0 to remove, 1 unchanged.",
    );
}

#[test]
fn a_changed_machine_class_and_image_are_each_named() {
    let edited = BASE
        .replace(
            "    env: { GREETING: hi }",
            "    env: { GREETING: hi }\n    machine: medium",
        )
        .replace(
            "    version: 1.0.0\n    image: busybox:stable",
            "    version: 1.0.0\n    image: busybox:next",
        );
    check(
        &edited,
        &applied(BASE, "running"),
        false,
        "\
~ replace  demo/hello@0.0.0       cpus: \"2\" -> \"4\"
                                  memory: \"4096 MiB\" -> \"8192 MiB\"
~ replace  demo/notes@1.0.0       image: \"sha256:1111111111111111\" -> \"sha256:2222222222222222\"
Plan: 0 to create, 2 to replace, 0 to remove, 0 unchanged.",
    );
}

#[test]
fn a_secret_change_shows_as_sensitive_and_never_its_value() {
    let with_secret = BASE.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi }\n    secrets: { API: { from_env: TOKEN } }",
    );
    check(
        &with_secret,
        &applied(BASE, "running"),
        false,
        "\
~ replace  demo/hello@0.0.0       secrets.API: (sensitive) added
Plan: 0 to create, 1 to replace, 0 to remove, 1 unchanged.",
    );
}

#[test]
fn a_service_no_longer_declared_is_removed_with_its_network_but_not_its_keep() {
    let only_notes = "project: demo\nservices:\n  notes:\n    version: 1.0.0\n    image: busybox:stable\n    scope: { database: sales }\n";
    check(
        only_notes,
        &applied(BASE, "running"),
        false,
        "\
- remove   demo/hello@0.0.0            no longer declared
- remove   network berth-demo-global   no service uses it any more
Plan: 0 to create, 0 to replace, 2 to remove, 1 unchanged.",
    );
}

#[test]
fn an_exited_container_with_the_right_hash_is_started_not_replaced() {
    check(
        BASE,
        &applied(BASE, "exited"),
        false,
        "\
> start    demo/hello@0.0.0       container is exited (exited for a while); its configuration is right
> start    demo/notes@1.0.0       container is exited (exited for a while); its configuration is right
Plan: 0 to create, 0 to replace, 2 to start, 0 to remove, 0 unchanged.",
    );
}

#[test]
fn a_desired_name_held_by_an_unmanaged_container_refuses_the_plan() {
    let mut o = Observed::default();
    o.containers.push(ObservedContainer {
        id: "abcdef1234567890".into(),
        name: "demo-hello-0.0.0".into(),
        labels: BTreeMap::new(),
        state: "running".into(),
        status: "Up".into(),
        ports: vec![],
        addresses: vec![],
    });
    check(
        BASE,
        &o,
        false,
        "\
error: container name `demo-hello-0.0.0` is taken by a container berth does not manage (id abcdef123456, no label berth.project=demo)
  help: remove or rename that container yourself, or rename the project: berth never touches what it does not own",
    );
}

#[test]
fn a_lookalike_of_another_project_is_never_planned_for_removal() {
    let mut o = applied(BASE, "running");
    let mut foreign = o.containers[0].clone();
    foreign.name = "demo-other-1.0.0".into();
    foreign.id = "foreign".into();
    foreign
        .labels
        .insert(LABEL_PROJECT.into(), "someone-else".into());
    o.containers.push(foreign);
    check(BASE, &o, false, "No changes: the engine matches the file.\nPlan: 0 to create, 0 to replace, 0 to remove, 2 unchanged.");
}

#[test]
fn an_empty_file_never_removes_everything_without_allow_empty() {
    let empty = "project: demo\nservices: {}\n";
    check(
        empty,
        &applied(BASE, "running"),
        false,
        "\
error: the file declares no services, and applying it would remove all 2 containers of project `demo`
  help: pass --allow-empty if removing everything is what you want, or use `berth destroy`",
    );
    let allowed = plan(
        &desired(empty),
        &applied(BASE, "running"),
        &Options {
            allow_empty: true,
            retry_failed: true,
        },
    )
    .unwrap();
    assert_eq!(
        allowed.counts(),
        (0, 0, 0, 4),
        "two containers and two networks go"
    );
}

#[test]
fn a_predecessor_an_interrupted_replace_left_aside_is_put_back_not_removed() {
    let mut o = applied(BASE, "running");
    o.containers[0].name = "demo-hello-0.0.0-old-abc".into();
    check(
        BASE,
        &o,
        false,
        "\
> start    demo/hello@0.0.0       `demo-hello-0.0.0-old-abc` is what last passed its health gate; an interrupted replace left it aside
Plan: 0 to create, 0 to replace, 1 to start, 0 to remove, 1 unchanged.",
    );
}

/// The engine after a replace of hello to `edited` was killed while the
/// successor was on probation: the predecessor aside (`-old-`, `old_state`),
/// the successor as `-next-`.
fn killed_on_probation(edited: &str, old_state: &str) -> Observed {
    let mut o = applied(BASE, "running");
    o.containers[0].name = "demo-hello-0.0.0-old-abc".into();
    o.containers[0].state = old_state.into();
    let mut next = applied(edited, "running").containers.remove(0);
    next.name = format!(
        "demo-hello-0.0.0-next-{}",
        &desired(edited).containers[0].hash[..12]
    );
    next.id = "next-id".into();
    o.containers.push(next);
    o
}

#[test]
fn a_successor_killed_on_probation_is_removed_and_the_replace_tried_again_from_the_predecessor() {
    let edited = BASE.replace("GREETING: hi", "GREETING: hello");
    let o = killed_on_probation(&edited, "exited");
    let expect = format!(
        "\
- remove   demo/hello@0.0.0       `demo-hello-0.0.0-next-{}` never passed its health gate (a rollout was interrupted)
~ replace  demo/hello@0.0.0       `demo-hello-0.0.0-old-abc` is what last passed its health gate (a replace was interrupted); it is put back if its successor fails
                                  env.GREETING: \"hi\" -> \"hello\"
Plan: 0 to create, 1 to replace, 1 to remove, 1 unchanged.",
        &desired(&edited).containers[0].hash[..12]
    );
    check(&edited, &o, false, &expect);
    let p = plan(
        &desired(&edited),
        &o,
        &Options {
            allow_empty: false,
            retry_failed: true,
        },
    )
    .unwrap();
    assert!(
        p.steps.iter().any(
            |s| matches!(&s.action, Action::ReplaceContainer { old_id, old_name, .. }
            if old_id == "id-demo-hello-0.0.0" && old_name == "demo-hello-0.0.0-old-abc")
        ),
        "the replace starts from where the predecessor is: {:?}",
        p.steps
    );
}

#[test]
fn a_new_version_killed_on_probation_is_gated_again_not_taken_as_converged() {
    let mut o = applied(BASE, "running");
    o.containers[0].name = format!(
        "demo-hello-0.0.0-next-{}",
        &desired(BASE).containers[0].hash[..12]
    );
    let p = plan(
        &desired(BASE),
        &o,
        &Options {
            allow_empty: false,
            retry_failed: false,
        },
    )
    .unwrap();
    let verbs: Vec<&str> = p.steps.iter().map(|s| s.action.verb()).collect();
    assert_eq!(verbs, ["remove", "create"], "{:?}", p.steps);
    assert_eq!(p.unchanged, ["demo/notes@1.0.0"]);
}

const TWO: &str = "project: demo
services:
  web:
    image: busybox:stable
    versions:
      \"1.0.0\": {}
      \"2.0.0\": { image: busybox:next }
    active: \"2.0.0\"
";

/// The engine as a berth from before the routes record left it: the active
/// mark a label on the container and the service's name an alias, both
/// hashed; no record.
fn applied_before_the_routes_record(yaml: &str) -> Observed {
    let d = desired(yaml);
    let mut o = applied(yaml, "running");
    o.volumes
        .retain(|v| !berth::core::active::is_record(&v.labels));
    for c in &mut o.containers {
        let dc = d.containers.iter().find(|x| x.name == c.name).unwrap();
        let mut config = dc.config.clone();
        config
            .labels
            .insert(LABEL_ACTIVE.into(), dc.is_active().to_string());
        for aliases in config.networks.values_mut() {
            *aliases = match dc.is_active() {
                true => vec![dc.service.clone()],
                false => vec![],
            };
        }
        c.labels = config.labels.clone();
        c.labels.insert(LABEL_HASH.into(), config.hash());
        c.labels.insert(LABEL_CONFIG.into(), config.canonical());
    }
    o
}

#[test]
fn switching_active_is_one_routing_step_and_replaces_nothing() {
    let before = TWO.replace("active: \"2.0.0\"", "active: \"1.0.0\"");
    let why = "demo/web: active 1.0.0 -> 2.0.0: the gateway's route and the service's network name move; no container restarts";
    check(
        TWO,
        &applied(&before, "running"),
        false,
        &format!(
            "\
= route    routes of demo         {why}
Plan: 0 to create, 0 to replace, 0 to remove, 1 to switch (no restarts), 2 unchanged."
        ),
    );
}

#[test]
fn containers_from_before_the_routes_record_fit_their_file_and_keep_their_path() {
    let o = applied_before_the_routes_record(TWO);
    check(TWO, &o, false, "No changes: the engine matches the file.\nPlan: 0 to create, 0 to replace, 0 to remove, 2 unchanged.");
    // Switching from there moves the path, still without a replace.
    let after = TWO.replace("active: \"2.0.0\"", "active: \"1.0.0\"");
    let why = "demo/web: active 2.0.0 -> 1.0.0: the gateway's route and the service's network name move; no container restarts";
    check(
        &after,
        &o,
        false,
        &format!(
            "\
= route    routes of demo         {why}
Plan: 0 to create, 0 to replace, 0 to remove, 1 to switch (no restarts), 2 unchanged."
        ),
    );
}

#[test]
fn a_switch_killed_before_the_old_version_gave_up_the_name_is_finished_by_the_next_plan() {
    let mut o = applied(TWO, "running");
    o.volumes
        .retain(|v| !berth::core::active::is_record(&v.labels));
    let active = BTreeMap::from([("web".to_string(), "2.0.0".to_string())]);
    let releasing = BTreeMap::from([("web".to_string(), vec!["1.0.0".to_string()])]);
    let record = berth::core::active::record("demo", 7, &active, &releasing);
    o.volumes.push(ObservedObject {
        id: record.name.clone(),
        name: record.name.clone(),
        labels: record.labels,
    });
    check(
        TWO,
        &o,
        false,
        "\
= route    routes of demo         demo/web: 2.0.0 keeps the service's path; an interrupted switch left 1.0.0 answering to its name
Plan: 0 to create, 0 to replace, 0 to remove, 2 unchanged.",
    );
    let p = plan(
        &desired(TWO),
        &o,
        &Options {
            allow_empty: false,
            retry_failed: true,
        },
    )
    .unwrap();
    match &p.steps[0].action {
        Action::Route {
            generation,
            records,
            ..
        } => {
            assert_eq!(
                (*generation, records.as_slice()),
                (7, ["demo-berth-routes-7".to_string()].as_slice())
            );
        }
        other => panic!("a route step, not {other:?}"),
    }
}

#[test]
fn a_declared_active_version_that_failed_its_gate_leaves_the_path_on_the_one_that_serves() {
    // 1.0.0 was active and serves; 2.0.0, now declared active, failed its gate
    // with exactly this configuration and is kept aside.
    let before = TWO.replace("active: \"2.0.0\"", "active: \"1.0.0\"");
    let mut o = applied(&before, "running");
    o.containers.retain(|c| c.name == "demo-web-1.0.0");
    let mut failed = applied(TWO, "exited")
        .containers
        .into_iter()
        .find(|c| c.name == "demo-web-2.0.0")
        .unwrap();
    failed.name = "demo-web-2.0.0-failed-abc".into();
    o.containers.push(failed);
    let quiet = Options {
        allow_empty: false,
        retry_failed: false,
    };
    let p = plan(&desired(TWO), &o, &quiet).unwrap();
    assert!(
        p.steps.is_empty(),
        "1.0.0 keeps its path, untouched: {:?}",
        p.steps
    );
    assert_eq!(p.unchanged, ["demo/web@1.0.0"]);
    assert!(
        p.failed
            .iter()
            .any(|f| f
                == "demo/web@2.0.0 is declared active but failed its gate; 1.0.0 keeps serving"),
        "{:?}",
        p.failed
    );
    // Asked to try again, the new one goes first (phase of the active), and
    // the path moves only after, with no replace: an apply stops at a failed phase.
    let retry = plan(
        &desired(TWO),
        &o,
        &Options {
            allow_empty: false,
            retry_failed: true,
        },
    )
    .unwrap();
    let order: Vec<(u8, &str)> = retry
        .steps
        .iter()
        .map(|s| (s.action.phase(), s.action.verb()))
        .collect();
    assert_eq!(order, [(0, "remove"), (3, "create"), (4, "route")]);
}

#[test]
fn a_gpu_class_on_a_host_without_gpu_is_refused_naming_service_and_class() {
    let gpu = BASE.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi }\n    machine: small-gpu",
    );
    let spec = parse("services.yaml", &gpu).unwrap();
    let mut f = facts();
    f.gpus.problem = Some("the NVML library libnvidia-ml.so is not installed".into());
    let err = resolve(&spec, &f).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err[0]
            .message
            .contains("hello@0.0.0: machine class `small-gpu` needs a GPU with at least 4 GiB"),
        "{}",
        err[0].message
    );
    assert!(
        err[0].message.contains("libnvidia-ml.so"),
        "{}",
        err[0].message
    );
}

#[test]
fn a_missing_image_and_an_unset_secret_are_both_reported() {
    let yaml = "project: demo\nservices:\n  a:\n    image: nowhere:1\n  b:\n    image: busybox:stable\n    secrets: { K: { from_env: UNSET_VAR_FOR_TEST } }\n";
    let err = resolve(&parse("s.yaml", yaml).unwrap(), &facts()).unwrap_err();
    let text: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        text,
        [
            "a@0.0.0: image `nowhere:1` is not on the engine",
            "b@0.0.0: secret `K` reads the environment variable `UNSET_VAR_FOR_TEST`, which is not set"
        ]
    );
}

// --- hashing -------------------------------------------------------------

fn hash_of(yaml: &str, service: &str) -> String {
    desired(yaml)
        .containers
        .into_iter()
        .find(|c| c.service == service)
        .unwrap()
        .hash
}

#[test]
fn the_same_desired_state_always_gives_the_same_hash() {
    assert_eq!(hash_of(BASE, "hello"), hash_of(BASE, "hello"));
    // A known value: the canonical form is part of the contract, stable across machines.
    let again = "project: demo\nservices:\n  notes: {version: 1.0.0, image: busybox:stable, scope: {database: sales}}\n  hello: {keeps: [/data], env: {GREETING: hi}, image: busybox:stable}\n";
    assert_eq!(
        hash_of(BASE, "hello"),
        hash_of(again, "hello"),
        "key order and YAML style do not matter"
    );
}

#[test]
fn every_field_that_decides_the_container_changes_the_hash() {
    let base = hash_of(BASE, "hello");
    let edits = [
        ("    env: { GREETING: hi }", "    env: { GREETING: ho }"),
        (
            "    env: { GREETING: hi }",
            "    env: { GREETING: hi, MORE: x }",
        ),
        (
            "    image: busybox:stable\n    env",
            "    image: busybox:next\n    env",
        ),
        ("    keeps: [/data]", "    keeps: [/data2]"),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    machine: large",
        ),
        ("    keeps: [/data]", "    keeps: [/data]\n    port: 9000"),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    publish: 18000",
        ),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    command: [sh]",
        ),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    secrets: { S: { from_env: TOKEN } }",
        ),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    version: 1.0.0",
        ),
        (
            "    keeps: [/data]",
            "    keeps: [/data]\n    scope: { database: sales }",
        ),
        ("project: demo", "project: demo2"),
    ];
    let mut seen = vec![base.clone()];
    for (from, to) in edits {
        let edited = BASE.replace(from, to);
        assert_ne!(edited, BASE, "the edit {to:?} applies");
        let h = hash_of(&edited, "hello");
        assert!(!seen.contains(&h), "editing to {to:?} must change the hash");
        seen.push(h);
    }
}

#[test]
fn a_new_database_scope_changes_the_networks_of_global_services() {
    let more =
        format!("{BASE}  ledger:\n    image: busybox:stable\n    scope: {{ database: finance }}\n");
    assert_ne!(hash_of(BASE, "hello"), hash_of(&more, "hello"));
    assert_eq!(
        hash_of(BASE, "notes"),
        hash_of(&more, "notes"),
        "a database service does not join other databases"
    );
}

#[test]
fn a_multi_line_value_change_is_shown_as_a_line_diff() {
    let before = BASE.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi, SCRIPT: \"one\\ntwo\\nthree\\n\" }",
    );
    let after = BASE.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi, SCRIPT: \"one\\n2\\nthree\\n\" }",
    );
    check(
        &after,
        &applied(&before, "running"),
        false,
        "\
~ replace  demo/hello@0.0.0       env.SCRIPT: changed
      one
    - two
    + 2
      three
Plan: 0 to create, 1 to replace, 0 to remove, 1 unchanged.",
    );
}

fn with_build(image_id: Option<&str>, base_missing: bool) -> Facts {
    use berth::core::desired::{BuildFact, BuildInput};
    use berth::core::spec::Runtime;
    let mut f = facts();
    f.builds.insert(
        "api@1.0.0".into(),
        BuildFact {
            input: BuildInput {
                id: "api@1.0.0".into(),
                package: "/src/api".into(),
                runtime: Runtime::Python311,
                extras: vec![],
                vendored: false,
                command: None,
                cuda: None,
                registry: None,
                keeps: vec![],
            },
            source_hash: "s".repeat(64),
            base: "berth-local/python3.11:stable".into(),
            base_missing,
            tag: (!base_missing).then(|| "berth/demo-api:1.0.0-abcdefabcdef".to_string()),
            image_id: image_id.map(String::from),
            stripped: Some("api-1.0.0".into()),
            entry: Some(
                "starts with `python3 main.py`: main.py is a conventional entry file".into(),
            ),
        },
    );
    f
}

const CODE: &str = "project: demo\nservices:\n  api:\n    version: 1.0.0\n    runtime: python3.11\n    package: api\n";

/// The plan for an engine that holds nothing yet.
fn plan_from_nothing(d: &Desired) -> berth::core::plan::Plan {
    plan(
        d,
        &Observed::default(),
        &Options {
            allow_empty: false,
            retry_failed: true,
        },
    )
    .unwrap()
}

#[test]
fn a_package_without_an_image_gets_its_base_and_image_built_before_its_container() {
    let spec = parse("services.yaml", CODE).unwrap();
    let d = resolve(&spec, &with_build(None, true)).unwrap();
    let p = plan_from_nothing(&d);
    assert_eq!(
        plan_text(&p, Style { color: false }).trim_end(),
        "\
+ build    image berth-local/python3.11:stable   the python3.11 runtime's base is not on the engine yet
+ create   network berth-demo-global             needed by the services of this scope
+ build    image of demo/api@1.0.0               package /src/api (its single top-level directory `api-1.0.0/` is stripped)
                                                 starts with `python3 main.py`: main.py is a conventional entry file
+ create   demo/api@1.0.0                        new service
= route    routes of demo                        demo/api: 1.0.0 takes the service's path
Plan: 2 to build, 2 to create, 0 to replace, 0 to remove, 0 unchanged."
    );
    assert_eq!(
        d.containers[0].config.env.get("PORT").map(String::as_str),
        Some("8000")
    );
}

#[test]
fn a_package_whose_image_exists_is_never_built_again() {
    let spec = parse("services.yaml", CODE).unwrap();
    let d = resolve(&spec, &with_build(Some("sha256:9999"), false)).unwrap();
    let p = plan_from_nothing(&d);
    assert_eq!(p.builds(), 0);
    assert_eq!(d.containers[0].config.image, "sha256:9999");
}

#[test]
fn a_configuration_that_failed_its_health_gate_is_retried_only_when_asked() {
    // The old container runs an older configuration; the failed one, kept aside,
    // carries the desired hash.
    let edited = BASE.replace("GREETING: hi", "GREETING: broken");
    let mut o = applied(BASE, "running");
    let mut failed = applied(&edited, "exited").containers.remove(0);
    failed.name = "demo-hello-0.0.0-failed-abc".into();
    failed.id = "failed-id".into();
    o.containers.push(failed);
    let d = desired(&edited);
    let quiet = plan(
        &d,
        &o,
        &Options {
            allow_empty: false,
            retry_failed: false,
        },
    )
    .unwrap();
    assert!(quiet.steps.is_empty(), "{:?}", quiet.steps);
    assert_eq!(quiet.failed.len(), 1);
    assert!(
        quiet.failed[0].contains("demo/hello@0.0.0 never became healthy with this configuration")
    );
    let text = plan_text(&quiet, Style { color: false });
    assert!(
        text.starts_with("! failed   demo/hello@0.0.0 never became healthy"),
        "{text}"
    );

    let retry = plan(
        &d,
        &o,
        &Options {
            allow_empty: false,
            retry_failed: true,
        },
    )
    .unwrap();
    let verbs: Vec<&str> = retry.steps.iter().map(|s| s.action.verb()).collect();
    assert_eq!(
        verbs,
        ["remove", "replace"],
        "the failed one makes way, then the replace is tried again"
    );
}

#[test]
fn keep_volume_names_differ_where_their_slugs_agree() {
    use berth::core::desired::volume_name;
    let names = [
        volume_name("p", "web", "/x-data"),
        volume_name("p", "web-x", "/data"),
        volume_name("p", "web", "/a-b"),
        volume_name("p", "web", "/a/b"),
        volume_name("p-web", "x", "/data"),
    ];
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    assert!(
        names[0].starts_with("p-web-x-data-"),
        "readable: {}",
        names[0]
    );
}

#[test]
fn a_keep_volume_an_earlier_berth_named_is_copied_while_a_container_still_uses_it() {
    use berth::core::desired::legacy_volume_name;
    let d = desired(BASE);
    let mut o = applied(BASE, "running");
    let new = o.volumes.remove(0);
    let legacy = legacy_volume_name("demo", "hello", "/data");
    o.volumes.push(ObservedObject {
        id: legacy.clone(),
        name: legacy.clone(),
        labels: new.labels.clone(),
    });
    // The running container still mounts the old volume.
    let hello = &mut o.containers[0];
    let mut config: berth::core::hash::ContainerConfig =
        serde_json::from_str(&hello.labels[LABEL_CONFIG]).unwrap();
    config.mounts.insert("/data".into(), legacy.clone());
    hello.labels.insert(LABEL_CONFIG.into(), config.canonical());
    hello.labels.insert(LABEL_HASH.into(), config.hash());
    let opts = Options {
        allow_empty: false,
        retry_failed: true,
    };
    let p = plan(&d, &o, &opts).unwrap();
    let steps: Vec<(u8, &str)> = p
        .steps
        .iter()
        .map(|s| (s.action.phase(), s.action.verb()))
        .collect();
    assert_eq!(steps, [(2, "create"), (3, "replace")], "{:?}", p.steps);
    match &p.steps[0].action {
        Action::MigrateVolume { volume, from, stop } => {
            assert_eq!(volume.name, new.name);
            assert_eq!(from, &legacy);
            assert_eq!(
                stop.len(),
                1,
                "the container that uses it stops for the copy"
            );
        }
        other => panic!("{other:?}"),
    }
    // Once nothing uses it, the new volume stands on its own: no second copy.
    o.volumes.push(new);
    let hello = &mut o.containers[0];
    let right = applied(BASE, "running").containers.remove(0);
    *hello = right;
    assert!(plan(&d, &o, &opts).unwrap().steps.is_empty());
}

#[test]
fn on_a_swarm_the_class_reserves_a_quarter_of_its_memory_and_its_cpu_limit_fits_the_largest_node() {
    let yaml = |engine: &str| {
        format!("project: demo\nengine: {engine}\nservices:\n  web:\n    image: busybox:stable\n    machine: medium\n")
    };
    let mut f = facts();
    f.swarm.max_nano_cpus = 2_000_000_000;
    let on = |engine: &str| {
        let d = resolve(&parse("services.yaml", &yaml(engine)).unwrap(), &f).unwrap();
        let c = &d.containers[0].config;
        (c.nano_cpus, c.placement.reserve_memory)
    };
    assert_eq!(
        on("swarm"),
        (2_000_000_000, 2 << 30),
        "held to the node, memory reserved"
    );
    assert_eq!(
        on("docker"),
        (4_000_000_000, 0),
        "one engine: the class as it is"
    );
}

#[test]
fn on_a_swarm_a_class_avoids_nodes_labelled_smaller_and_a_gpu_class_needs_a_node_advertising_one() {
    let yaml = |machine: &str| {
        format!("project: demo\nengine: swarm\nservices:\n  web:\n    image: busybox:stable\n    machine: {machine}\n")
    };
    let mut f = facts();
    f.swarm.nodes = 3;
    let placed = |f: &Facts, machine: &str| {
        resolve(&parse("services.yaml", &yaml(machine)).unwrap(), f)
            .map(|d| {
                let c = &d.containers[0].config;
                (c.placement.constraints.join(" "), c.placement.reserve_gpus)
            })
            .map_err(|d| {
                d.iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    };
    for (machine, constraints) in [
        ("small", ""),
        ("medium", "node.labels.berth.class!=small"),
        (
            "large",
            "node.labels.berth.class!=small node.labels.berth.class!=medium",
        ),
    ] {
        assert_eq!(
            placed(&f, machine),
            Ok((constraints.to_string(), 0)),
            "{machine}"
        );
    }
    let err = placed(&f, "small-gpu").unwrap_err();
    assert!(
        err.contains("web@0.0.0: machine class `small-gpu` needs a node that advertises the generic resource NVIDIA-GPU; none of the swarm's 3 node(s) does"),
        "{err}"
    );
    f.swarm.gpu_nodes = 1;
    assert_eq!(placed(&f, "small-gpu"), Ok((String::new(), 1)));
    assert_eq!(
        placed(&f, "large-gpu"),
        Ok(("node.labels.berth.class!=small-gpu".to_string(), 1))
    );
}
