//! Health checks as real projects need them, through the real binary and engine:
//! a path other than `/`, a TCP connect, none at all, and a process that exits
//! by design, which the gate names as such with the log line that says why.

mod common;

use common::{text, Project};

/// A busybox service running `command` with `health` (YAML flow mappings);
/// `expect`: Ok(the health word `status` shows) or Err(what the error says).
fn check(tag: &str, command: &str, health: &str, expect: Result<&str, &[&str]>) {
    let Some(p) = Project::new(tag) else {
        return;
    };
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, '{command}']\n    health: {health}\n"
    ));
    let out = p.berth(&["apply"]);
    let err = text(&out.stderr);
    match expect {
        Ok(word) => {
            assert!(out.status.success(), "{tag}: {err}");
            let rows: serde_json::Value =
                serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
            assert_eq!(rows[0]["health"], word, "{tag}: {rows}");
        }
        Err(wanted) => {
            assert_eq!(out.status.code(), Some(1), "{tag}: {err}");
            for w in wanted {
                assert!(err.contains(w), "{tag}: expected {w:?} in:\n{err}");
            }
        }
    }
}

/// `/` answers 404, `/health` 200, `/dir` a 301 to `/dir/`.
const SERVES_HEALTH: &str =
    "mkdir -p /www/dir && echo ok > /www/health && exec httpd -f -p 8000 -h /www";

#[test]
fn a_service_that_answers_only_on_its_health_path_passes_with_that_path() {
    check(
        "hpath",
        SERVES_HEALTH,
        "{ path: /health, timeout: 10s }",
        Ok("healthy"),
    );
}

#[test]
fn a_redirect_counts_as_an_answer() {
    check(
        "hredirect",
        SERVES_HEALTH,
        "{ path: /dir, timeout: 10s }",
        Ok("healthy"),
    );
}

#[test]
fn the_default_check_is_get_root_and_says_so_when_it_fails() {
    check(
        "hroot",
        SERVES_HEALTH,
        "{ timeout: 2s }",
        Err(&[
            "its check is GET / answering 2xx or 3xx",
            "GET / answered 404: the service answers, but not at /; set `health: { path: /the/path/it/answers }`",
        ]),
    );
}

#[test]
fn a_ready_image_listening_elsewhere_fails_its_gate_naming_the_port_its_expose_says() {
    let Some(p) = Project::new("hexpose") else {
        return;
    };
    // A ready image as users bring them: it listens on 80 and says so.
    let dir = p.dir.path().join("image");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM berth-local/busybox:stable\nLABEL berth.test=hexpose\nEXPOSE 80\n\
         CMD [\"sh\", \"-c\", \"mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www\"]\n",
    )
    .unwrap();
    let tag = format!("{}-web80:test", p.name);
    common::docker(&["build", "-q", "-t", &tag, &dir.display().to_string()]);
    let file = |port: &str| {
        format!("project: {{p}}\nservices:\n  web:\n    image: {tag}\n{port}    health: {{ timeout: 3s }}\n")
    };
    p.write(&file(""));
    let out = p.berth(&["apply"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nothing answers HTTP on port 8000 (GET / failed:")
            && err.contains("the image's EXPOSE says 80: set `port: 80`"),
        "{err}"
    );
    // Following the advice converges.
    p.write(&file("    port: 80\n"));
    p.ok(&["apply"]);
    p.ok(&["destroy"]);
    common::docker(&["rmi", "-f", &tag]);
}

#[test]
fn a_tcp_check_passes_on_an_open_port_whatever_http_says() {
    check(
        "htcp",
        "exec httpd -f -p 8000 -h /tmp",
        "{ tcp: true, timeout: 10s }",
        Ok("healthy"),
    );
}

#[test]
fn a_service_without_a_check_is_started_and_shown_unchecked() {
    check(
        "hnone",
        "exec sleep 3600",
        "{ none: true }",
        Ok("unchecked"),
    );
}

#[test]
fn a_process_that_exits_by_design_is_named_with_its_exit_code_and_the_line_that_says_why() {
    check(
        "hexit",
        "echo \"Error: Cannot find module express\"; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do echo \"    at frame $i\"; done; exit 3",
        "{ timeout: 10s }",
        Err(&[
            "the process exited with code 3",
            "| Error: Cannot find module express",
            "at frame 15",
        ]),
    );
}

#[test]
fn a_long_gate_says_what_it_waits_for_and_how_long_it_has_waited() {
    check(
        "hwait",
        SERVES_HEALTH,
        "{ timeout: 6s }",
        Err(&[
            "web@0.0.0: waiting for GET / answering 2xx or 3xx (5 s of 6 s; last: GET / answered 404)",
            "never became healthy",
        ]),
    );
}

#[test]
fn with_json_logs_every_line_on_stderr_is_a_json_object_gate_progress_and_error_included() {
    let Some(p) = Project::new("hjson") else {
        return;
    };
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, '{SERVES_HEALTH}']\n    health: {{ timeout: 6s }}\n"
    ));
    let out = p.berth(&["--log-format", "json", "apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let mut messages = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nin:\n{err}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let all = messages.join("\n");
    for wanted in [
        "waiting for GET / answering 2xx or 3xx",
        "! failed",
        "error: ",
    ] {
        assert!(all.contains(wanted), "{wanted:?} in:\n{all}");
    }
}

#[test]
fn doctor_says_when_the_file_declares_more_containers_than_the_hosts_neighbour_table_keeps() {
    // Past gc_thresh2 the kernel evicts container addresses still in use, and
    // probes to some containers time out: the host's own bound, read here too.
    let Ok(soft) = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh2") else {
        eprintln!("no /proc/sys/net/ipv4/neigh: not checked");
        return;
    };
    let soft: usize = soft.trim().parse().unwrap();
    let Some(p) = Project::new("neigh") else {
        return;
    };
    let services = |n: usize| {
        let mut yaml = String::from("project: {p}\nservices:\n");
        for i in 0..n {
            yaml += &format!("  s{i}:\n    image: berth-local/busybox:stable\n");
        }
        yaml
    };
    p.write(&services(2));
    let said = p.ok(&["doctor"]);
    assert!(
        said.contains(&format!(
            "ok    neighbour table: room for {soft} containers (gc_thresh2 {soft}); the file declares 2"
        )),
        "{said}"
    );
    if soft > 4096 {
        eprintln!("gc_thresh2 is {soft}: a file past it is not checked");
        return;
    }
    p.write(&services(soft + 1));
    let said = p.ok(&["doctor"]);
    assert!(
        said.contains(&format!(
            "note  neighbour table: the file declares {} containers, more than the {soft} addresses",
            soft + 1
        )) && said.contains("help: raise it, e.g. `sysctl -w net.ipv4.neigh.default.gc_thresh1="),
        "{said}"
    );
}
