//! Build recipes, pure: dependencies from pyproject.toml (with extras) or
//! requirements.txt, and the entry-point rule.

use berth::core::entry::entry;
use berth::core::recipe::{deps, dockerfile, Deps, Manifests};
use berth::core::spec::Runtime;

const PYPROJECT: &str = r#"
[project]
name = "x"
dependencies = ["fastapi>=0.110", "uvicorn"]
[project.optional-dependencies]
gpu = ["torch"]
fastjson = ["orjson"]
[project.scripts]
serve = "x.app:main"
"#;

fn manifests(
    paths: &[&str],
    pyproject: Option<&str>,
    requirements: Option<&str>,
    package_json: Option<&str>,
) -> Manifests {
    Manifests {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        pyproject: pyproject.map(String::from),
        requirements: requirements.map(String::from),
        package_json: package_json.map(String::from),
        files: Default::default(),
    }
}

fn check_deps(extras: &[&str], m: &Manifests, expect: Result<&str, &str>) {
    let extras: Vec<String> = extras.iter().map(|e| e.to_string()).collect();
    let got = deps(Runtime::Python311, &extras, false, m);
    match (got, expect) {
        (Ok(Deps::Python { requirements, .. }), Ok(want)) => assert_eq!(requirements, want),
        (Ok(Deps::None), Ok("")) => {}
        (Err(e), Err(want)) => assert!(e.message.contains(want), "{}", e.message),
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

#[test]
fn pyproject_dependencies_and_the_named_extras_are_installed() {
    let m = manifests(&["pyproject.toml"], Some(PYPROJECT), None, None);
    check_deps(&[], &m, Ok("fastapi>=0.110\nuvicorn\n"));
    check_deps(&["fastjson"], &m, Ok("fastapi>=0.110\nuvicorn\norjson\n"));
    check_deps(
        &["fastjson", "gpu"],
        &m,
        Ok("fastapi>=0.110\nuvicorn\norjson\ntorch\n"),
    );
    check_deps(
        &["nope"],
        &m,
        Err("extra `nope` is not an optional-dependencies group of pyproject.toml"),
    );
}

#[test]
fn requirements_txt_is_used_without_pyproject_dependencies() {
    let m = manifests(
        &["requirements.txt"],
        None,
        Some("# pinned\nflask==3.0.0  # web\n\nrequests\n"),
        None,
    );
    check_deps(&[], &m, Ok("flask==3.0.0\nrequests\n"));
    check_deps(&[], &manifests(&["main.py"], None, None, None), Ok(""));
}

/// (runtime, command, paths, pyproject, package.json) -> Ok(the plan's entry
/// line) or Err(part of the message).
type EntryCase<'a> = (
    Runtime,
    Option<&'a [&'a str]>,
    &'a [&'a str],
    Option<&'a str>,
    Option<&'a str>,
    Result<&'a str, &'a str>,
);

fn check_entry(cases: &[EntryCase]) {
    for (runtime, command, paths, pyproject, pj, want) in cases {
        let command: Option<Vec<String>> =
            command.map(|c| c.iter().map(|s| s.to_string()).collect());
        let got = entry(
            *runtime,
            command.as_ref(),
            &manifests(paths, *pyproject, None, *pj),
            &Deps::None,
        );
        match (got, want) {
            (Ok(e), Ok(w)) => assert_eq!(e.describe(), *w, "{paths:?}"),
            (Err(e), Err(w)) => assert!(e.message.contains(w), "{paths:?}: {}", e.message),
            (got, want) => panic!("{paths:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn the_entry_point_is_the_command_else_a_conventional_file_else_a_declared_script_else_the_only_source_file(
) {
    use Runtime::{Node22 as N, Python311 as P};
    check_entry(&[
        (P, Some(&["python3", "-m", "x"]), &["main.py", "app.py"], None, None,
            Ok("starts with `python3 -m x`: the `command` of services.yaml")),
        (P, None, &["main.py", "lib.py"], None, None,
            Ok("starts with `python3 main.py`: main.py is a conventional entry file")),
        (P, None, &["main.py", "app.py"], None, None,
            Err("ambiguous: the package has main.py and app.py")),
        (P, None, &["x/app.py", "pyproject.toml"], Some(PYPROJECT), None,
            Ok("starts with `python3 -c import x.app; x.app.main()`: `serve` is the one script pyproject.toml declares")),
        // As the peers do: one top-level file runs, whatever its name.
        (P, None, &["hello.py", "README.md"], None, None,
            Ok("starts with `python3 hello.py`: hello.py is the only top-level Python file")),
        (P, None, &["service.py", "setup.py", "test_service.py", "lib/util.py"], None, None,
            Ok("starts with `python3 service.py`: service.py is the only top-level Python file")),
        (P, None, &["a.py", "b.py"], None, None,
            Err("several top-level Python files: a.py, b.py")),
        (P, None, &["lib/x.py"], None, None, Err("no entry point")),
        // Layouts berth does not build from are named, not "no entry point".
        (P, None, &["venv/pyvenv.cfg", "venv/bin/python", "venv/lib/python3.11/site-packages/x/__init__.py"], None, None,
            Err("carrying a Python virtual environment (venv/pyvenv.cfg)")),
        (P, None, &["pyvenv.cfg", "bin/python"], None, None,
            Err("a Python virtual environment (pyvenv.cfg at its top)")),
        (P, None, &["dist/x-1.0-py3-none-any.whl"], None, None,
            Err("built wheels (dist/x-1.0-py3-none-any.whl) without their source")),
        (N, None, &["server.js"], None, None,
            Ok("starts with `node server.js`: server.js is a conventional entry file")),
        (N, None, &["src/app.js", "package.json"], None, Some(r#"{"main": "src/app.js"}"#),
            Ok("starts with `node src/app.js`: the `main` of package.json")),
        (N, None, &["package.json"], None, Some(r#"{"scripts": {"start": "node x.js"}}"#),
            Ok("starts with `npm start`: the `start` script of package.json")),
        (N, None, &["hello.mjs", "package.json"], None, Some("{}"),
            Ok("starts with `node hello.mjs`: hello.mjs is the only top-level JavaScript file")),
    ]);
}

#[test]
fn a_runtime_outside_requires_python_is_refused_naming_both_and_the_runtimes_that_fit() {
    let with = |spec: &str| {
        format!(
            "[project]\nname = \"x\"\nrequires-python = \"{spec}\"\ndependencies = [\"flask\"]\n"
        )
    };
    for (runtime, spec, want) in [
        (Runtime::Python311, ">=3.12", Err("runtime python3.11 (Python 3.11) is outside the package's requires-python `>=3.12` (pyproject.toml)")),
        (Runtime::Python311, ">=3.12", Err("use runtime python3.12 or python3.13")),
        (Runtime::Python313, ">=3.9,<3.13", Err("use runtime python3.11 or python3.12")),
        (Runtime::Python311, ">=3.11.4", Ok(())),
        (Runtime::Python312, "~=3.12", Ok(())),
        (Runtime::Python312, "==3.*", Ok(())),
        (Runtime::Python312, ">=4", Err("no runtime berth offers fits it")),
        (Runtime::Python312, "three", Err("requires-python `three` does not parse")),
    ] {
        let m = manifests(&["main.py", "pyproject.toml"], Some(&with(spec)), None, None);
        match (deps(runtime, &[], false, &m), want) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(w)) => assert!(
                format!("{} {}", e.message, e.help).contains(w),
                "{spec}: {} / {}",
                e.message,
                e.help
            ),
            (got, want) => panic!("{spec}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn dependencies_are_mounted_for_their_install_never_copied_and_the_code_comes_last() {
    let d = dockerfile(
        "berth-local/python3.11:stable",
        Runtime::Python311,
        &Deps::Python {
            requirements: "x\n".into(),
            from: "requirements.txt".into(),
        },
        &["python3".into(), "main.py".into()],
        None,
        &[],
    );
    let deps_at = d.find("pip install").unwrap();
    let code_at = d.find("COPY --chown=10001:10001 app/ /app/").unwrap();
    assert!(deps_at < code_at, "{d}");
    assert!(
        d.contains("RUN --mount=type=bind,source=deps,target=/tmp/deps")
            && !d.contains("COPY deps")
            && !d.contains("--from="),
        "{d}"
    );
    assert!(
        d.ends_with(
            "USER 10001:10001\nCMD [\"python3\",\"main.py\"]\nCOPY --chown=10001:10001 app/ /app/\n"
        ),
        "{d}"
    );
}

#[test]
fn a_built_image_holds_each_keep_as_a_directory_of_the_app_user_made_without_a_shell() {
    let d = dockerfile(
        "berth-local/python3.11:stable",
        Runtime::Python311,
        &Deps::None,
        &["python3".into(), "main.py".into()],
        None,
        &["/var/lib/x".into(), "/data/".into(), "/a b$HOME".into()],
    );
    assert!(
        d.ends_with(
            "COPY --chown=10001:10001 app/ /app/\nUSER 0:0\n\
             RUN [\"mkdir\",\"-p\",\"--\",\"/a b$HOME/\",\"/data/\",\"/var/lib/x/\"]\n\
             RUN [\"chown\",\"10001:10001\",\"--\",\"/a b$HOME/\",\"/data/\",\"/var/lib/x/\"]\n\
             USER 10001:10001\n"
        ),
        "{d}"
    );
    assert_eq!(
        berth::core::recipe::keep_dirs(&["/data".into(), "/data/".into(), "/var/lib/x".into()]),
        ["data/", "var/lib/x/"]
    );
}

#[test]
fn node_dependencies_come_from_their_own_image_or_from_the_package_when_vendored() {
    let pj = Some(r#"{"dependencies": {"left-pad": "1.3.0"}}"#);
    let check = |paths: &[&str], vendored: bool, want: Result<Deps, &str>| {
        let m = manifests(paths, None, None, pj);
        match (deps(Runtime::Node20, &[], vendored, &m), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{paths:?}"),
            (Err(e), Err(w)) => assert!(
                format!("{} {}", e.message, e.help).contains(w),
                "{}",
                e.message
            ),
            (got, want) => panic!("{paths:?}: got {got:?}, want {want:?}"),
        }
    };
    check(
        &["package.json", "server.js"],
        false,
        Ok(Deps::Node { lock: false }),
    );
    check(
        &["package.json", "package-lock.json", "server.js"],
        false,
        Ok(Deps::Node { lock: true }),
    );
    check(
        &[
            "package.json",
            "node_modules/left-pad/index.js",
            "server.js",
        ],
        true,
        Ok(Deps::NodeVendored),
    );
    check(
        &["package.json", "server.js"],
        true,
        Err("`vendored: true`, but the package has no node_modules/ at its top"),
    );

    let d = dockerfile(
        "berth-local/node20:stable",
        Runtime::Node20,
        &Deps::Node { lock: true },
        &["node".into(), "server.js".into()],
        Some("berth/p-deps:0123456789ab"),
        &[],
    );
    assert!(
        d.contains("COPY --from=berth/p-deps:0123456789ab /app/node_modules /app/node_modules\n"),
        "{d}"
    );
    assert!(
        !d.contains("npm"),
        "nothing is installed while the service image builds: {d}"
    );
    let deps_image = berth::core::recipe::node_deps_dockerfile(
        "berth-local/node20:stable",
        true,
        "http://10.0.0.1:4873/",
    );
    assert!(
        deps_image.contains("npm ci --omit=dev")
            && deps_image.contains("--fetch-retries=0")
            && deps_image.contains("--registry=http://10.0.0.1:4873/"),
        "{deps_image}"
    );
}

#[test]
fn an_assembled_image_keeps_its_parents_config_and_layers_and_sets_the_services_own() {
    use berth::core::assemble::{image_config, manifest, Parent};
    use berth::core::recipe::image_settings;
    use serde_json::json;
    let parent = Parent {
        config: json!({
            "Env": ["LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin"],
            "Entrypoint": ["/usr/bin/tini", "--"],
            "WorkingDir": "/app",
            "Labels": { "berth.role": "dependencies", "berth.project": "p", "keep": "1" },
        }),
        architecture: "amd64".into(),
        os: "linux".into(),
        created: "2026-11-25T00:00:00Z".into(),
        layers: vec!["sha256:a".into(), "sha256:b".into()],
    };
    let labels = std::collections::BTreeMap::from([
        ("berth.service".to_string(), "api".to_string()),
        ("berth.project".to_string(), "p".to_string()),
    ]);
    let check = |runtime: Runtime, expect_path: &str| {
        let settings = image_settings(runtime, &["python3".into(), "main.py".into()]);
        let c = image_config(
            &parent,
            "berth-deps/p-api:1",
            &settings,
            &labels,
            "sha256:c",
        );
        let config = &c["config"];
        assert_eq!(config["Env"], json!(["LANG=C.UTF-8", expect_path]), "{c}");
        assert_eq!(config["User"], "10001:10001");
        assert_eq!(config["Cmd"], json!(["python3", "main.py"]));
        assert_eq!(config["Entrypoint"], json!(["/usr/bin/tini", "--"]), "kept");
        assert_eq!(config["WorkingDir"], "/app", "kept");
        assert_eq!(
            config["Labels"],
            json!({ "berth.project": "p", "keep": "1", "berth.service": "api" }),
            "the parent's labels but its role, then the service's"
        );
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:a", "sha256:b", "sha256:c"])
        );
        assert_eq!(
            c["history"].as_array().unwrap().len(),
            3,
            "one entry a layer"
        );
        assert_eq!(
            c["created"], "2026-11-25T00:00:00Z",
            "the parent's: one content, one ID"
        );
    };
    check(
        Runtime::Python311,
        "PATH=/app/.venv/bin:/usr/local/bin:/usr/bin",
    );
    check(Runtime::Node22, "PATH=/usr/local/bin:/usr/bin");
    assert_eq!(
        manifest("c.json", "berth/p-api:1", 3, "code/layer.tar"),
        json!([{
            "Config": "c.json",
            "RepoTags": ["berth/p-api:1"],
            "Layers": ["held-by-the-engine-0/layer.tar", "held-by-the-engine-1/layer.tar", "code/layer.tar"],
        }]),
        "only the code layer is sent"
    );
}

#[test]
fn the_wheel_platforms_follow_the_bases_glibc_as_pip_lists_them() {
    use berth::core::pip::{base_glibc, wheel_platforms};
    let bookworm = wheel_platforms("amd64", base_glibc(Runtime::Python311));
    assert_eq!(
        bookworm.first().map(String::as_str),
        Some("manylinux_2_36_x86_64")
    );
    for wanted in [
        // A CUDA library torch needs ships only this one.
        "manylinux_2_27_x86_64",
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ] {
        assert!(
            bookworm.iter().any(|p| p == wanted),
            "{wanted}: {bookworm:?}"
        );
    }
    assert!(!bookworm.iter().any(|p| p == "manylinux_2_37_x86_64"));
    let trixie = wheel_platforms("amd64", base_glibc(Runtime::Python313));
    assert_eq!(
        trixie.first().map(String::as_str),
        Some("manylinux_2_41_x86_64")
    );
    assert_eq!(trixie.len(), bookworm.len() + 5);
    let arm = wheel_platforms("arm64", (2, 36));
    assert_eq!(arm.last().map(String::as_str), Some("linux_aarch64"));
    assert!(arm.iter().all(|p| p.ends_with("aarch64")));
    assert!(arm.contains(&"manylinux2014_aarch64".to_string()));
    assert!(!arm.iter().any(|p| p.starts_with("manylinux_2_16")));
}

#[test]
fn pips_reason_is_kept_whole_and_names_the_packages_own_file_and_line() {
    use berth::core::pip::pip_reason;
    let written = "/tmp/berth-wheels/py-1234.partial/requirements.txt";
    let generated = "flask==2.0.0\nwerkzeug==1.0.0\n";
    let pyproject = "[project]\nname = \"x\"\ndependencies = [\n  \"flask==2.0.0\",\n  \"werkzeug==1.0.0\",\n]\n";
    let stderr = format!(
        "Collecting flask==2.0.0 (from -r {written} (line 1))\n  Downloading Flask-2.0.0-py3-none-any.whl (93 kB)\n\
ERROR: Cannot install -r {written} (line 1) and werkzeug==1.0.0 because these package versions have conflicting dependencies.\n\n\
The conflict is caused by:\n    The user requested werkzeug==1.0.0\n    flask 2.0.0 depends on Werkzeug>=2.0\n\n\
To fix this you could try to:\n1. loosen the range of package versions you've specified\n\n\
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/\n"
    );
    let m = manifests(&["pyproject.toml"], Some(pyproject), None, None);
    let said = pip_reason(&stderr, written, generated, &m);
    for wanted in [
        "ERROR: Cannot install pyproject.toml line 4 (`flask==2.0.0`) and werkzeug==1.0.0",
        "The conflict is caused by:",
        "    flask 2.0.0 depends on Werkzeug>=2.0",
        "To fix this you could try to:",
        "ERROR: ResolutionImpossible",
    ] {
        assert!(said.contains(wanted), "{wanted:?} in:\n{said}");
    }
    assert!(
        !said.contains(written) && !said.contains("Downloading"),
        "{said}"
    );
    // From a requirements.txt, its own line.
    let m = manifests(
        &["requirements.txt"],
        None,
        Some("# pinned\nflask==2.0.0\nwerkzeug==1.0.0\n"),
        None,
    );
    let said = pip_reason(&stderr, written, generated, &m);
    assert!(
        said.contains("Cannot install requirements.txt line 2 (`flask==2.0.0`)"),
        "{said}"
    );
}
