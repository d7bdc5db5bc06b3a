//! The real `berth` binary against the real Docker engine. Each test owns a project
//! named after it and destroys it at the end. Without an engine these tests say so
//! loudly and pass; with CI=true they fail instead.

mod common;

use std::path::Path;
use std::process::Command;

use common::{docker, get, text, Project, BERTH};

const TWO: &str = "project: {p}
services:
  web:
    image: berth-local/busybox:stable
    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']
    env: { GREETING: hi }
  notes:
    version: 1.0.0
    image: berth-local/busybox:stable
    scope: { database: sales }
    keeps: [/data]
    command: [sh, -c, 'echo ok > /www/index.html && exec httpd -f -p 8000 -h /www']
";

#[test]
fn apply_twice_makes_no_change_to_the_engine_the_second_time() {
    let Some(p) = Project::new("idem") else {
        return;
    };
    p.write(TWO);
    let first = p.ok(&["apply"]);
    assert!(first.contains(&format!("{}/web@0.0.0", p.name)), "{first}");
    let ids = p.containers();
    assert_eq!(ids.len(), 2);
    // The services answer the contract's GET / where apply says they do.
    let url = first
        .lines()
        .find(|l| l.contains("/web@") && l.contains("http://"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    assert_eq!(get(&url), "hi");

    let events = p.events_during(&["apply"]);
    assert_eq!(p.containers(), ids, "same containers, same IDs");
    assert!(
        events.is_empty(),
        "a no-op apply must not touch the engine: {events:?}"
    );
    let plan = p.berth(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}

#[test]
fn changing_one_field_replaces_exactly_that_container_and_the_keep_survives() {
    let Some(p) = Project::new("onefield") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    let before = p.containers();
    let notes = format!("{}-notes-1.0.0", p.name);
    docker(&["exec", &notes, "sh", "-c", "echo precious > /data/file"]);

    p.write(&TWO.replace("keeps: [/data]", "keeps: [/data]\n    env: { MODE: fast }"));
    let plan = p.berth(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "changes mean exit 2");
    let plan = text(&plan.stdout);
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 2, "one step and the summary:\n{plan}");
    assert!(
        lines[0].starts_with(&format!("~ replace  {}/notes@1.0.0", p.name)),
        "{plan}"
    );
    assert!(lines[0].ends_with("env.MODE: (none) -> \"fast\""), "{plan}");
    assert!(
        lines[1].contains("1 to replace") && lines[1].contains("1 unchanged"),
        "{plan}"
    );

    p.ok(&["apply"]);
    let after = p.containers();
    let web = format!("{}-web-0.0.0", p.name);
    assert_eq!(
        before[&web], after[&web],
        "the other container is untouched"
    );
    assert_ne!(before[&notes], after[&notes], "the edited one is replaced");
    assert_eq!(
        docker(&["exec", &notes, "cat", "/data/file"]),
        "precious",
        "the keep survives a replacement"
    );
    assert!(p.ok(&["plan"]).contains("0 to replace"));
}

#[test]
fn machine_classes_are_enforced_as_limits_visible_in_docker_inspect() {
    let Some(p) = Project::new("limits") else {
        return;
    };
    p.write(&TWO.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi }\n    machine: medium",
    ));
    p.ok(&["apply"]);
    let web = format!("{}-web-0.0.0", p.name);
    assert_eq!(
        p.inspect(
            &web,
            "{{.HostConfig.CpuQuota}}/{{.HostConfig.CpuPeriod}} {{.HostConfig.Memory}}"
        ),
        format!("400000/100000 {}", 8u64 << 30)
    );
    let notes = format!("{}-notes-1.0.0", p.name);
    assert_eq!(
        p.inspect(
            &notes,
            "{{.HostConfig.CpuQuota}}/{{.HostConfig.CpuPeriod}} {{.HostConfig.Memory}}"
        ),
        format!("200000/100000 {}", 4u64 << 30)
    );
    // Labels as the contract names them.
    let labels = p.inspect(&notes, "{{index .Config.Labels \"berth.project\"}} {{index .Config.Labels \"berth.service\"}} {{index .Config.Labels \"berth.version\"}} {{index .Config.Labels \"berth.scope\"}}");
    assert_eq!(labels, format!("{} notes 1.0.0 database:sales", p.name));
    assert_eq!(
        p.inspect(&notes, "{{len (index .Config.Labels \"berth.hash\")}}"),
        "64"
    );
    // Scopes as networks: the database service on its own network only, the global one on both.
    let nets = |c: &str| {
        p.inspect(
            c,
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        )
    };
    assert_eq!(nets(&notes), format!("berth-{}-db-sales", p.name));
    assert_eq!(
        nets(&web),
        format!("berth-{0}-db-sales berth-{0}-global", p.name)
    );
    assert!(p
        .inspect(&notes, "{{.Config.Env}}")
        .contains("BERTH_DATABASE=sales"));
}

#[test]
fn a_secret_value_appears_in_no_output_label_or_saved_plan() {
    let Some(p) = Project::new("secret") else {
        return;
    };
    let value = "hunter2-very-secret";
    p.write(&TWO.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi }\n    secrets: { API_TOKEN: { from_env: T_SECRET } }",
    ));
    let env = [("T_SECRET", value)];
    let missing = p.berth(&["plan"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("T_SECRET"),
        "a missing variable is named: {}",
        text(&missing.stderr)
    );

    let plan_file = p.dir.path().join("plan.json");
    let mut outputs = Vec::new();
    for args in [
        vec!["plan"],
        vec!["plan", "--json"],
        vec!["plan", "--out", plan_file.to_str().unwrap()],
        vec!["apply"],
        vec!["status"],
        vec!["status", "--json"],
    ] {
        let out = p.berth_env(&args, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        outputs.push(text(&out.stdout) + &text(&out.stderr));
    }
    outputs.push(std::fs::read_to_string(&plan_file).unwrap());
    let web = format!("{}-web-0.0.0", p.name);
    outputs.push(p.inspect(&web, "{{json .Config.Labels}}"));
    for o in &outputs {
        assert!(!o.contains(value), "the secret leaked into:\n{o}");
    }
    assert!(outputs[0].contains("(sensitive)") || outputs[0].contains("new service"));
    // It does reach the service, and only there.
    assert!(p
        .inspect(&web, "{{.Config.Env}}")
        .contains(&format!("API_TOKEN={value}")));
    // A changed value replaces the container, shown as sensitive.
    let changed = p.berth_env(&["plan"], &[("T_SECRET", "other")]);
    assert!(
        text(&changed.stdout).contains("secrets.API_TOKEN: (sensitive) changed"),
        "{}",
        text(&changed.stdout)
    );
}

#[test]
fn a_stale_saved_plan_is_refused_and_changes_nothing() {
    let Some(p) = Project::new("stale") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    p.write(&TWO.replace("GREETING: hi", "GREETING: ho"));
    let plan_file = p.dir.path().join("plan.json");
    p.ok(&["plan", "--out", plan_file.to_str().unwrap()]);
    let notes = format!("{}-notes-1.0.0", p.name);
    docker(&["stop", "-t", "1", &notes]);
    let before = p.containers();
    let out = p.berth(&["apply", "--plan", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: the saved plan") && err.contains("stale"),
        "{err}"
    );
    assert!(
        err.contains(&format!("container {notes}")) && err.contains("state=exited"),
        "names what changed: {err}"
    );
    assert_eq!(p.containers(), before, "nothing was applied");
    assert_eq!(p.inspect(&notes, "{{.State.Status}}"), "exited");

    // A fresh saved plan applies exactly: web replaced, notes started.
    p.ok(&["plan", "--out", plan_file.to_str().unwrap()]);
    let applied = p.ok(&["apply", "--plan", plan_file.to_str().unwrap()]);
    assert!(
        applied.contains(&format!("~ replaced  {}/web@0.0.0", p.name)),
        "{applied}"
    );
    assert!(
        applied.contains(&format!("> started   {}/notes@1.0.0", p.name)),
        "{applied}"
    );
    assert_eq!(
        p.containers()[&notes],
        before[&notes],
        "started, not replaced"
    );
}

#[test]
fn unmanaged_lookalike_containers_are_never_touched() {
    let Some(p) = Project::new("lookalike") else {
        return;
    };
    let other = format!("{}-other-1.0.0", p.name);
    let taken = format!("{}-web-0.0.0", p.name);
    for name in [&other, &taken] {
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "berth-local/busybox:stable",
            "sleep",
            "300",
        ]);
    }
    let cleanup = || {
        let _ = Command::new("docker")
            .args(["rm", "-f", &other, &taken])
            .output();
    };
    p.write(TWO);
    let out = p.berth(&["apply"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "container name `{taken}` is taken by a container berth does not manage"
        )),
        "{err}"
    );
    assert!(p.containers().is_empty(), "refused before any action");
    docker(&["rm", "-f", &taken]);
    p.ok(&["apply"]);
    p.ok(&["destroy", "--volumes"]);
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Status}}", &other]),
        "running",
        "the look-alike survives apply and destroy"
    );
    cleanup();
}

#[test]
fn destroy_removes_everything_but_the_keeps_unless_asked() {
    let Some(p) = Project::new("destroy") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    let out = p.ok(&["destroy"]);
    assert!(out.contains("Kept 1 volume"), "{out}");
    assert!(p.containers().is_empty());
    let label = format!("label=berth.project={}", p.name);
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "");
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", &label]),
        berth::core::desired::volume_name(&p.name, "notes", "/data")
    );
    p.ok(&["destroy", "--volumes"]);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &label]), "");
}

#[test]
fn a_stopped_container_is_started_again_not_replaced() {
    let Some(p) = Project::new("restart") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    let web = format!("{}-web-0.0.0", p.name);
    let id = p.containers()[&web].clone();
    docker(&["stop", "-t", "1", &web]);
    assert!(p
        .ok(&["plan"])
        .contains(&format!("> start    {}/web@0.0.0", p.name)));
    p.ok(&["apply"]);
    assert_eq!(p.containers()[&web], id);
    assert_eq!(p.inspect(&web, "{{.State.Status}}"), "running");
}

#[test]
fn a_bad_file_or_an_impossible_plan_changes_nothing_and_says_where() {
    let Some(p) = Project::new("bad") else { return };
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    machine: huge\n");
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .starts_with("error: services.yaml:5:14: web@0.0.0: unknown machine class `huge`"),
        "{}",
        text(&out.stderr)
    );
    p.write(&TWO.replace(
        "    env: { GREETING: hi }",
        "    env: { GREETING: hi }\n    machine: large-gpu",
    ));
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("web@0.0.0: machine class `large-gpu` needs a GPU with at least 8 GiB"),
        "{}",
        text(&out.stderr)
    );
    assert!(p.containers().is_empty());
    let label = format!("label=berth.project={}", p.name);
    assert_eq!(
        docker(&["network", "ls", "-q", "--filter", &label]),
        "",
        "refused before the first action"
    );
}

#[test]
fn an_empty_file_removes_nothing_without_allow_empty() {
    let Some(p) = Project::new("empty") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    p.write("project: {p}\nservices: {}\n");
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(p.containers().len(), 2);
    p.ok(&["apply", "--allow-empty"]);
    assert!(p.containers().is_empty());
}

#[test]
fn retagging_the_image_to_new_content_replaces_the_container() {
    let Some(p) = Project::new("retag") else {
        return;
    };
    let tag = format!("{}-img:v1", p.name);
    let build = |marker: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM berth-local/busybox:stable\nLABEL marker={marker}\n"),
        )
        .unwrap();
        docker(&["build", "-q", "-t", &tag, ctx.path().to_str().unwrap()]);
    };
    build("one");
    // Untagged by the second build: removed by ID at the end, or it stays.
    let first = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    image: {tag}\n    command: [sh, -c, 'echo ok > /www/index.html && exec httpd -f -p 8000 -h /www']\n"
    ));
    p.ok(&["apply"]);
    assert!(p.ok(&["plan"]).contains("No changes"));
    build("two");
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains(&format!("~ replace  {}/web@0.0.0", p.name))
            && plan.contains("image: \"sha256:"),
        "{plan}"
    );
    p.ok(&["apply"]);
    p.ok(&["destroy"]);
    let _ = Command::new("docker")
        .args(["rmi", "-f", &tag, &first])
        .output();
}

#[test]
fn a_second_apply_waits_for_the_lock_of_the_first() {
    let Some(p) = Project::new("lock") else {
        return;
    };
    p.write(TWO);
    let held =
        berth::shell::lock::acquire(&p.dir.path().join(".state"), &p.name, "test", |_| {}).unwrap();
    let child = Command::new(BERTH)
        .arg("apply")
        .current_dir(p.dir.path())
        .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        p.containers().is_empty(),
        "the second apply must not act while the lock is held"
    );
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("waiting for the lock"),
        "says who holds it: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("berth test"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p.containers().len(), 2);
}

#[test]
fn status_reports_state_health_url_and_usage_as_json() {
    let Some(p) = Project::new("status") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["state"], "running");
        assert_eq!(r["health"], "healthy", "{r}");
        assert!(r["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        assert!(r["memory_bytes"].as_u64().unwrap() > 0);
    }
    let _ = Path::new("");
}

#[test]
fn an_apply_killed_midway_through_a_replace_converges_next_time_without_duplicates() {
    let Some(p) = Project::new("crash") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    let notes = format!("{}-notes-1.0.0", p.name);
    docker(&["exec", &notes, "sh", "-c", "echo kept > /data/file"]);
    // What a replace killed after moving the old container aside leaves behind.
    docker(&["stop", "-t", "1", &notes]);
    docker(&["rename", &notes, &format!("{notes}-old-0123456789ab")]);
    p.write(&TWO.replace("keeps: [/data]", "keeps: [/data]\n    env: { MODE: fast }"));
    let plan = p.ok(&["plan"]);
    // The one aside is what last passed its gate: replaced from there (and put
    // back if its successor failed), never removed as a leftover first.
    assert!(
        plan.contains("is what last passed its health gate")
            && plan.contains(&format!("~ replace  {}/notes@1.0.0", p.name)),
        "{plan}"
    );
    p.ok(&["apply"]);
    let names: Vec<String> = p.containers().into_keys().collect();
    assert_eq!(
        names,
        [notes.clone(), format!("{}-web-0.0.0", p.name)],
        "no duplicates"
    );
    assert_eq!(
        docker(&["exec", &notes, "cat", "/data/file"]),
        "kept",
        "no lost keeps"
    );
    assert!(p.ok(&["plan"]).contains("No changes"));
}

#[test]
fn a_crash_loop_is_reported_by_status_not_hidden() {
    let Some(p) = Project::new("crashloop") else {
        return;
    };
    // Healthy for two seconds, then it crashes; the engine restarts it with backoff.
    p.write("project: {p}\nservices:\n  bad:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo ok > /www/index.html; httpd -p 8000 -h /www; sleep 2; echo failing; exit 3']\n");
    p.ok(&["apply"]);
    let start = std::time::Instant::now();
    loop {
        let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        let r = &rows[0];
        if r["health"] == "crash-looping" && r["restarts"].as_i64().unwrap() >= 3 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(40),
            "never reported as a crash loop: {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let table = p.ok(&["status"]);
    assert!(
        table.contains("RESTARTS") && table.contains("crash-looping"),
        "{table}"
    );
    let logs = p.ok(&["logs", "bad", "--tail", "1"]);
    assert_eq!(logs.trim(), "failing");
}

#[test]
fn a_version_that_never_becomes_healthy_leaves_the_old_one_running_and_says_why() {
    let Some(p) = Project::new("unhealthy") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    let web = format!("{}-web-0.0.0", p.name);
    let before = p.containers()[&web].clone();
    let started = p.inspect(&web, "{{.State.StartedAt}}");
    // Serves an empty directory: a TCP listener that answers 404 is not healthy.
    let bad = TWO.replace(
        "command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']",
        "command: [sh, -c, 'echo starting-bad; exec httpd -f -p 8000 -h /tmp']\n    health: { timeout: 2s, interval: 100ms }",
    );
    assert_ne!(bad, TWO);
    p.write(&bad);
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("web@0.0.0 never became healthy"), "{err}");
    assert!(
        err.contains("GET / answered 404"),
        "names the health check's answer: {err}"
    );
    assert!(
        err.contains("| starting-bad"),
        "shows the last log lines: {err}"
    );
    assert_eq!(
        p.containers()[&web],
        before,
        "the old container is back under its name"
    );
    assert_eq!(p.inspect(&web, "{{.State.Status}}"), "running");
    assert_eq!(
        p.inspect(&web, "{{.State.StartedAt}}"),
        started,
        "the old one was never stopped: its successor started beside it"
    );
    let failed: Vec<String> = p
        .containers()
        .into_keys()
        .filter(|n| n.contains("-failed-"))
        .collect();
    assert_eq!(failed.len(), 1, "the failed one is kept for inspection");
    assert_eq!(p.inspect(&failed[0], "{{.State.Status}}"), "exited");
    let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["health"] == "failed"));

    // Applying again tries again: the earlier failed container makes way.
    let again = p.berth(&["apply"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("web@0.0.0 never became healthy"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        p.containers()
            .keys()
            .filter(|n| n.contains("-failed-"))
            .count(),
        1,
        "one failed container at a time"
    );

    // A fixed configuration converges and clears the failed one away.
    p.write(&TWO.replace("GREETING: hi", "GREETING: fixed"));
    p.ok(&["apply"]);
    assert!(p.containers().keys().all(|n| !n.contains("-failed-")));
    assert_ne!(p.containers()[&web], before);
}

#[test]
fn logs_into_a_reader_that_leaves_early_end_quietly_and_output_has_no_colour_codes() {
    let Some(p) = Project::new("pipe") else {
        return;
    };
    p.write("project: {p}\nservices:\n  chatty:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'seq 1 20000; exec sleep 3600']\n    health: { none: true }\n");
    p.ok(&["apply"]);
    // With no health gate, apply may return before the first line is written.
    let name = format!("{}-chatty-0.0.0", p.name);
    common::eventually(
        std::time::Duration::from_secs(20),
        || "the container writes its lines".into(),
        || common::docker(&["logs", "--tail", "1", &name]).contains("20000"),
    );
    // `berth logs chatty | head -1`: the reader takes one line and goes.
    let mut child = p
        .command(&["logs", "chatty"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
    }
    let done = child.wait_with_output().unwrap();
    let err = text(&done.stderr);
    assert_eq!(first.trim(), "1");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.is_empty(),
        "nothing to say when the reader leaves: {err}"
    );
    // Not a terminal: no escape codes anywhere, even without NO_COLOR.
    let status = p
        .command(&["status", "-v"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let all = format!("{}{}", text(&status.stdout), text(&status.stderr));
    assert!(!all.contains('\u{1b}'), "{all:?}");
    assert!(all.contains("unchecked"), "{all}");
}

#[test]
fn a_rollback_hold_shows_in_status_and_ends_by_release_or_destroy_and_rolling_back_to_the_active_version_is_a_no_op(
) {
    let Some(p) = Project::new("hold") else {
        return;
    };
    p.write("project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $BERTH_VERSION > /www/index.html && exec httpd -f -p 8000 -h /www']\n    versions: { \"1.0.0\": {}, \"2.0.0\": {} }\n");
    p.ok(&["apply"]);
    let same = p.berth(&["rollback", "web", "--to", "2.0.0"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert!(text(&same.stdout).contains("nothing to do"));
    let active = |p: &Project| -> String {
        let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["active"] == true)
            .map(|r| r["version"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    p.ok(&["rollback", "web", "--to", "1.0.0"]);
    assert_eq!(active(&p), "1.0.0");
    let held = |p: &Project| -> Vec<serde_json::Value> {
        let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["held_against"].clone())
            .collect()
    };
    assert_eq!(
        held(&p),
        vec![serde_json::json!("2.0.0"); 2],
        "status --json says the hold, on each row of the service"
    );
    let status = p.ok(&["status"]);
    assert!(
        status.contains("`web` is held at 1.0.0 by `berth rollback`"),
        "{status}"
    );
    assert!(status.contains("berth rollback web --release"), "{status}");
    p.ok(&["rollback", "web", "--release"]);
    assert_eq!(active(&p), "2.0.0");
    assert!(held(&p).iter().all(|h| h.is_null()), "no hold, no field");
    assert!(!p.ok(&["status"]).contains("held at"));
    p.ok(&["rollback", "web", "--to", "1.0.0"]);
    let gone = p.ok(&["destroy"]);
    assert!(gone.contains("ended     rollback holds"), "{gone}");
    p.ok(&["apply"]);
    assert_eq!(active(&p), "2.0.0", "a new start follows the file");
}

#[test]
fn status_logs_and_destroy_work_while_the_file_has_errors_elsewhere_or_with_only_a_project_name() {
    let Some(p) = Project::new("broken") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    // Someone is half-way through an edit: the file no longer validates.
    p.write(&TWO.replace(
        "env: { GREETING: hi }",
        "env: { GREETING: hi }\n    machine: enormous",
    ));
    assert_eq!(p.berth(&["plan"]).status.code(), Some(1));
    let status = p.berth(&["status", "--json"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(text(&status.stderr).contains(&format!("acting on project `{}`", p.name)));
    let rows: serde_json::Value = serde_json::from_str(&text(&status.stdout)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let logs = p.berth(&["logs", "notes"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));

    // No file at all: the project by name.
    let elsewhere = tempfile::tempdir().unwrap();
    let by_name = |args: &[&str]| {
        std::process::Command::new(common::BERTH)
            .args(args)
            .args(["--project", &p.name])
            .current_dir(elsewhere.path())
            .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
            .output()
            .unwrap()
    };
    let rows: serde_json::Value =
        serde_json::from_str(&text(&by_name(&["status", "--json"]).stdout)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(by_name(&["logs", "web"]).status.success());
    let gone = by_name(&["destroy"]);
    assert!(gone.status.success(), "{}", text(&gone.stderr));
    assert!(p.containers().is_empty());
    let bad = p.berth(&["status", "--project", "Bad!"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("is not a valid name"));
}

#[test]
fn a_fixed_port_taken_by_something_else_is_a_plan_error_naming_the_holder() {
    let Some(p) = Project::new("portheld") else {
        return;
    };
    let port = common::free_port();
    let file = format!("project: {{p}}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    publish: {port}\n    command: [sh, -c, 'echo hi > /www/index.html && exec httpd -f -p 8000 -h /www']\n");
    // A process of this host holds it.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    p.write(&file);
    let out = p.berth(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "web@0.0.0: host port {port} (`publish`) is taken by another process on this host"
        )),
        "{err}"
    );
    assert!(err.contains("services.yaml:"), "with its position: {err}");
    drop(listener);
    // A container that is not the project's holds it.
    let foreign = format!("{}-foreign", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &foreign,
        "-p",
        &format!("127.0.0.1:{port}:8000"),
        "berth-local/busybox:stable",
        "sleep",
        "60",
    ]);
    let out = p.berth(&["apply"]);
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &foreign])
        .output();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("taken by the container `{foreign}`")),
        "{err}"
    );
    assert!(p.containers().is_empty(), "refused before the first action");
    // Free again: it applies, and a second plan does not trip on its own port.
    p.ok(&["apply"]);
    assert!(p.ok(&["plan"]).contains("No changes"));
}

#[test]
fn doctor_checks_the_bases_the_file_uses_and_says_which_cannot_be_had_here() {
    let Some(p) = Project::new("doctor") else {
        return;
    };
    let src = p.dir.path().join("app");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.py"), "print(1)\n").unwrap();
    p.write("project: {p}\nservices:\n  old:\n    runtime: python3.12\n    package: app\n  new:\n    runtime: python3.13\n    package: app\n");
    let out = p.berth(&["doctor"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAIL  base image berth-local/python3.12:stable (python3.12) missing"),
        "{said}"
    );
    assert!(
        said.contains("base image berth-local/python3.13:stable (python3.13)"),
        "{said}"
    );
}

#[test]
fn rollback_build_and_gc_of_a_swarm_file_go_to_the_swarm_manager_never_to_the_engine_of_this_host()
{
    let Some(p) = Project::new("swarmfile") else {
        return;
    };
    // This host's engine is no swarm manager (the tests never make it one).
    p.write("project: {p}\nengine: swarm\nregistry: 127.0.0.1:5000\nservices:\n  web:\n    image: 127.0.0.1:5000/busybox:stable\n    command: [httpd, -f, -p, \"8000\"]\n    versions: { \"1.0.0\": {}, \"2.0.0\": {} }\n");
    for args in [
        &["rollback", "web", "--to", "1.0.0"][..],
        &["build"],
        &["gc"],
        &["plan"],
    ] {
        let out = p.berth(args);
        let said = text(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "berth {args:?}: {}",
            text(&out.stdout)
        );
        assert!(
            said.contains("is not a swarm manager"),
            "berth {args:?}: {said}"
        );
    }
}

#[test]
fn changing_active_ends_a_rollback_hold_even_when_the_new_version_fails_and_the_hold_never_comes_back(
) {
    let Some(p) = Project::new("holdend") else {
        return;
    };
    let file = |active: &str| {
        format!("project: {{p}}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $BERTH_VERSION > /www/index.html && exec httpd -f -p 8000 -h /www']\n    health: {{ timeout: 4s }}\n    versions: {{ \"1.0.0\": {{}}, \"2.0.0\": {{}}, \"3.0.0\": {{ command: [sh, -c, 'exit 3'] }} }}\n    active: \"{active}\"\n")
    };
    let active = |p: &Project| -> (String, Vec<serde_json::Value>) {
        let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        let rows = rows.as_array().unwrap().clone();
        let active = rows
            .iter()
            .find(|r| r["active"] == true)
            .map(|r| r["version"].as_str().unwrap().to_string())
            .unwrap_or_default();
        (
            active,
            rows.iter().map(|r| r["held_against"].clone()).collect(),
        )
    };
    // 3.0.0 fails its gate: written as active only later.
    p.write(&file("2.0.0").replace(", \"3.0.0\": { command: [sh, -c, 'exit 3'] }", ""));
    p.ok(&["apply"]);
    p.ok(&["rollback", "web", "--to", "1.0.0"]);
    assert_eq!(active(&p).0, "1.0.0");
    // The file names a new active version, which fails: the hold is over.
    p.write(&file("3.0.0"));
    let failed = p.berth(&["apply"]);
    assert_ne!(failed.status.code(), Some(0), "3.0.0 fails its gate");
    let holds = std::fs::read_to_string(
        p.dir
            .path()
            .join(format!(".state/projects/{}/holds.json", p.name)),
    )
    .unwrap_or_default();
    assert!(
        !holds.contains("1.0.0"),
        "the hold is gone from the record: {holds}"
    );
    // The file says 2.0.0 again: 2.0.0 serves, the old hold does not return.
    p.write(&file("2.0.0").replace(", \"3.0.0\": { command: [sh, -c, 'exit 3'] }", ""));
    p.ok(&["apply"]);
    let (now, held) = active(&p);
    assert_eq!(now, "2.0.0", "the file's active serves");
    assert!(held.iter().all(|h| h.is_null()), "no hold: {held:?}");
}

#[test]
fn destroy_removes_all_it_can_when_the_engine_keeps_a_network_then_fails_naming_it() {
    let Some(p) = Project::new("stuck") else {
        return;
    };
    p.write(TWO);
    p.ok(&["apply"]);
    // Someone else's container on the project's network: the engine refuses
    // to remove a network with an endpoint (as it does when it still counts
    // one whose container is gone).
    let global = format!("berth-{}-global", p.name);
    let intruder = format!("intruder-{}", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &intruder,
        "--network",
        &global,
        "berth-local/busybox:stable",
        "sleep",
        "300",
    ]);
    let out = p.berth(&["destroy"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &intruder])
        .output();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("! kept      network {global}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("- removed   network berth-{}-db-sales", p.name)),
        "the other network went: {said}"
    );
    assert!(p.containers().is_empty(), "{said}");
    let records = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=berth.routes",
        "--filter",
        &format!("label=berth.project={}", p.name),
    ]);
    assert_eq!(records.trim(), "", "the routes record went too: {said}");
    // With the intruder gone, destroy finishes.
    p.ok(&["destroy"]);
}
