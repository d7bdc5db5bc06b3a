//! Projects of the kinds users bring (issue 27), written from scratch under
//! `tests/fixtures/projects/`, deployed with only service, version, runtime
//! and package against the real engine: they plan, apply and answer; a keep
//! is the service's to write.

mod common;

use common::{docker, get, Project};

fn project(tag: &str) -> Option<Project> {
    Project::with_runtimes(tag, &["python3.11"])
}

#[test]
fn a_service_built_from_code_writes_its_keep_on_first_use_and_the_data_survives_a_replace() {
    let Some(p) = project("keep") else { return };
    let dir = p.copy_fixture("sqlite-notes");
    let file = |version: &str| {
        format!(
            "project: {{p}}\nservices:\n  notes:\n    version: {version}\n    runtime: python3.11\n    package: {}\n    keeps: [/data, /var/lib/notes]\n",
            dir.display()
        )
    };
    p.write(&file("1.0.0"));
    p.ok(&["apply"]);
    let url = p.url("notes");
    get(&format!("{url}add?text=first"));
    let body: serde_json::Value =
        serde_json::from_str(&get(&format!("{url}add?text=second"))).unwrap();
    assert_eq!(body["notes"], serde_json::json!(["first", "second"]));
    assert_eq!(body["uid"], 10001, "the service runs as the app user");
    let c = format!("{}-notes-1.0.0", p.name);
    assert_eq!(
        docker(&[
            "exec",
            &c,
            "stat",
            "-c",
            "%u %a",
            "/data",
            "/var/lib/notes",
            "/var/lib"
        ]),
        "10001 755\n10001 755\n0 755",
        "each keep is the app user's; the directories above it stay root's"
    );

    // A new version replaces it (new content: one file more), with the data.
    std::fs::write(dir.join("VERSION"), "2\n").unwrap();
    p.write(&file("1.0.0").replace("keeps", "env: { EDITION: two }\n    keeps"));
    p.ok(&["apply"]);
    let body: serde_json::Value =
        serde_json::from_str(&get(&format!("{}add?text=third", p.url("notes")))).unwrap();
    assert_eq!(
        body["notes"],
        serde_json::json!(["first", "second", "third"])
    );
    assert!(p.ok(&["plan"]).contains("No changes"));
}

/// One project class: its fixture, what the plan must say of it, and what
/// its answer must hold.
struct Case {
    fixture: &'static str,
    plan_says: &'static [&'static str],
    answer: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        fixture: "poetry-wsgi",
        plan_says: &[
            "starts with `sh -c exec gunicorn --bind \"0.0.0.0:$PORT\" app:app`: app.py defines the WSGI app `app` and gunicorn is among the dependencies; dependencies from pyproject.toml (Poetry)",
        ],
        answer: &[("server", "gunicorn 22.")],
    },
    Case {
        fixture: "uv-asgi",
        plan_says: &["main.py defines the ASGI app `app` and uvicorn is among the dependencies; dependencies from uv.lock (4 locked versions)"],
        // Exactly the locked version, though `uvicorn>=0.29` allows newer ones.
        answer: &[("server", "uvicorn 0.30.6")],
    },
    Case {
        fixture: "setupcfg-procfile",
        plan_says: &["starts with `sh -c exec python3 -m notes_srv --port $PORT`: the `web:` line of the Procfile; dependencies from setup.cfg"],
        answer: &[("six", "1.1"), ("port", "8000")],
    },
    Case {
        fixture: "pipenv-lock",
        plan_says: &["service.py is the only top-level Python file; dependencies from Pipfile.lock (1 locked versions)"],
        answer: &[("six", "1.16.0")],
    },
    Case {
        fixture: "module-main",
        plan_says: &["starts with `env PYTHONPATH=/app/src python3 -m hello`: src/hello/__main__.py makes the package hello runnable (/app/src is on PYTHONPATH)"],
        answer: &[],
    },
    Case {
        fixture: "setup-py",
        plan_says: &["server.py is a conventional entry file; dependencies from setup.py"],
        answer: &[("six", "1.16.0")],
    },
    Case {
        fixture: "computed-setup",
        plan_says: &["server.py is a conventional entry file; dependencies from setup.py, through the project's build backend"],
        answer: &[("six", "1.16.0")],
    },
];

/// Each case's service answers as the app user, with what the case says.
fn check(p: &Project, cases: &[Case]) {
    for case in cases {
        let body = get(&p.url(case.fixture));
        let got: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {body}", case.fixture));
        assert_eq!(got["project"], case.fixture, "{body}");
        assert_eq!(got["uid"], 10001, "{}: runs as the app user", case.fixture);
        for (key, prefix) in case.answer {
            let value = match &got[key] {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            assert!(
                value.starts_with(prefix),
                "{}: {key} = {value}, want {prefix}…",
                case.fixture
            );
        }
    }
}

#[test]
fn every_python_project_layout_deploys_with_only_service_runtime_and_package() {
    let Some(p) = project("layouts") else { return };
    let mut yaml = String::from("project: {p}\nservices:\n");
    for case in CASES {
        let dir = p.copy_fixture(case.fixture);
        yaml.push_str(&format!(
            "  {}:\n    runtime: python3.11\n    package: {}\n",
            case.fixture,
            dir.display()
        ));
    }
    p.write(&yaml);
    let plan = p.ok(&["plan"]);
    for case in CASES {
        for said in case.plan_says {
            assert!(
                plan.contains(said),
                "{}: the plan says {said:?}:\n{plan}",
                case.fixture
            );
        }
    }
    let started = std::time::Instant::now();
    p.ok(&["apply"]);
    eprintln!(
        "figure: {} projects, cold apply {:.1} s",
        CASES.len(),
        started.elapsed().as_secs_f64()
    );
    check(&p, CASES);

    // A code-only change rebuilds one image's code layer, in seconds.
    let main = p.dir.path().join("uv-asgi/main.py");
    let code = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        code.replace(
            "\"project\": \"uv-asgi\",",
            "\"project\": \"uv-asgi\", \"edited\": 1,",
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    p.ok(&["apply"]);
    eprintln!(
        "figure: code-only apply {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let body: serde_json::Value = serde_json::from_str(&get(&p.url("uv-asgi"))).unwrap();
    assert_eq!(body["edited"], 1);
    assert!(p.ok(&["plan"]).contains("No changes"));
}

#[test]
fn a_job_runs_to_completion_once_per_content_and_status_says_how_it_ended() {
    let Some(p) = project("job") else { return };
    let dir = p.copy_fixture("hello-job");
    let file = |env: &str| {
        format!(
            "project: {{p}}\nservices:\n  hello:\n    runtime: python3.11\n    package: {}\n    job: true\n{env}",
            dir.display()
        )
    };
    p.write(&file(""));
    p.ok(&["apply"]);
    let row = |version_health: &str| -> serde_json::Value {
        let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["health"] == version_health)
            .unwrap_or_else(|| panic!("no {version_health} row: {rows}"))
            .clone()
    };
    let done = row("completed");
    assert_eq!(done["run"]["exit_code"], 0, "{done}");
    assert!(done["run"]["secs"].as_f64().unwrap() >= 0.5, "{done}");
    let tail = done["run"]["log_tail"].to_string();
    assert!(tail.contains("processed 3 rows"), "{done}");
    let text = p.ok(&["status"]);
    assert!(
        text.contains("completed") && text.contains("run    exited 0 after"),
        "{text}"
    );

    // The same content is not run again: the plan says nothing to do, and the
    // container keeps its one run.
    let container = format!("{}-hello-0.0.0", p.name);
    let started = p.inspect(&container, "{{.State.StartedAt}}");
    assert!(p.ok(&["plan"]).contains("No changes"));
    p.ok(&["apply"]);
    assert_eq!(p.inspect(&container, "{{.State.StartedAt}}"), started);
    assert_eq!(
        p.inspect(&container, "{{.HostConfig.RestartPolicy.Name}}"),
        "no"
    );

    // New content that fails: an error like a failed gate, the run before kept.
    p.write(&file("    env: { EXIT_WITH: \"3\" }\n"));
    let out = p.berth(&["apply"]);
    let err = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hello@0.0.0: the job failed: the job exited with code 3 after")
            && err.contains("processed 3 rows"),
        "{err}"
    );
    assert_eq!(row("failed")["run"]["exit_code"], 3);
    assert_eq!(
        p.inspect(&container, "{{.State.StartedAt}}"),
        started,
        "the good run is kept"
    );
}

/// Packs `tests/fixtures/sdists/<fixture>` as the source distribution
/// `<name>-1.0.tar.gz` in `dir`, as `python -m build --sdist` lays one out
/// (one top directory `<name>-1.0/`).
fn sdist(fixture: &str, name: &str, dir: &std::path::Path) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sdists")
        .join(fixture);
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join(format!("{name}-1.0.tar.gz"))).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    tar.append_dir_all(format!("{name}-1.0"), &from).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn a_dependency_published_only_as_source_is_built_with_no_network_and_one_that_needs_a_compiler_is_named(
) {
    let Some(p) = project("sdist") else { return };
    let links = p.dir.path().join("links");
    sdist("greeting", "berth-fixture-greeting", &links);
    sdist("native", "berth-fixture-native", &links);
    let dir = p.copy_fixture("sdist-only");
    p.write(&format!(
        "project: {{p}}\nservices:\n  greet:\n    runtime: python3.11\n    package: {}\n",
        dir.display()
    ));
    let links = links.display().to_string();
    let env = [("PIP_FIND_LINKS", links.as_str())];
    let run = |args: &[&str]| {
        let out = p.berth_env(args, &env);
        (
            out.status.code(),
            common::text(&out.stdout),
            common::text(&out.stderr),
        )
    };
    let (code, plan, said) = run(&["plan"]);
    assert_eq!(code, Some(0), "{plan}{said}");
    assert!(
        said.contains("berth-fixture-greeting 1.0 has no wheel for Python 3.11: building it from berth-fixture-greeting-1.0.tar.gz, with no network"),
        "{said}"
    );
    let (code, out, said) = run(&["apply"]);
    assert_eq!(code, Some(0), "{out}{said}");
    let body: serde_json::Value = serde_json::from_str(&get(&p.url("greet"))).unwrap();
    assert_eq!(body["said"], "hello, berth");
    assert_eq!(
        body["built_with"],
        serde_json::json!(["lo"]),
        "the sdist's build saw no network interface but loopback"
    );
    // The wheel is cached: the next plan builds nothing and changes nothing.
    let (_, plan, said) = run(&["plan"]);
    assert!(plan.contains("No changes"), "{plan}{said}");
    assert!(!said.contains("building it from"), "{said}");

    // A dependency that needs a compiler fails the plan, naming it, and the
    // running version stays.
    std::fs::write(dir.join("requirements.txt"), "berth-fixture-native==1.0\n").unwrap();
    let (code, out, said) = run(&["plan"]);
    assert_ne!(code, Some(0), "{out}");
    for wanted in [
        "berth-fixture-native has no wheel for Python 3.11, and building one from berth-fixture-native-1.0.tar.gz failed",
        "help: berth-fixture-native needs a compiler to build (`",
        "gcc",
    ] {
        assert!(said.contains(wanted), "{wanted:?} in:\n{said}");
    }
    let (code, _, _) = run(&["apply"]);
    assert_ne!(code, Some(0));
    let body: serde_json::Value = serde_json::from_str(&get(&p.url("greet"))).unwrap();
    assert_eq!(body["said"], "hello, berth", "the running version stays");
}
