//! Build recipes, pure: dependencies from pyproject.toml (with extras) or
//! requirements.txt, and the entry-point rule.

use berth::core::recipe::{deps, dockerfile, entry, Deps, Manifests};
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
    }
}

fn check_deps(extras: &[&str], m: &Manifests, expect: Result<&str, &str>) {
    let extras: Vec<String> = extras.iter().map(|e| e.to_string()).collect();
    let got = deps(Runtime::Python311, &extras, m);
    match (got, expect) {
        (Ok(Deps::Python { requirements }), Ok(want)) => assert_eq!(requirements, want),
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

#[test]
fn the_entry_point_is_the_command_else_one_conventional_file_else_the_declared_script() {
    let py = |paths: &[&str], pyproject: Option<&str>| {
        entry(
            Runtime::Python311,
            None,
            &manifests(paths, pyproject, None, None),
        )
    };
    let cmd = vec!["python3".to_string(), "-m".into(), "x".into()];
    assert_eq!(
        entry(
            Runtime::Python311,
            Some(&cmd),
            &manifests(&["main.py", "app.py"], None, None, None)
        )
        .unwrap(),
        cmd
    );
    assert_eq!(
        py(&["main.py", "lib.py"], None).unwrap(),
        ["python3", "main.py"]
    );
    assert!(py(&["main.py", "app.py"], None)
        .unwrap_err()
        .message
        .contains("ambiguous: the package has main.py and app.py"));
    assert_eq!(
        py(&["x/app.py", "pyproject.toml"], Some(PYPROJECT)).unwrap(),
        ["python3", "-c", "import x.app; x.app.main()"]
    );
    assert!(py(&["lib.py"], None)
        .unwrap_err()
        .message
        .contains("no entry point"));
    let node = |paths: &[&str], pj: Option<&str>| {
        entry(Runtime::Node22, None, &manifests(paths, None, None, pj))
    };
    assert_eq!(node(&["server.js"], None).unwrap(), ["node", "server.js"]);
    assert_eq!(
        node(
            &["src/app.js", "package.json"],
            Some(r#"{"main": "src/app.js"}"#)
        )
        .unwrap(),
        ["node", "src/app.js"]
    );
    assert_eq!(
        node(
            &["package.json"],
            Some(r#"{"scripts": {"start": "node x.js"}}"#)
        )
        .unwrap(),
        ["npm", "start"]
    );
}

#[test]
fn dependencies_get_their_own_stage_and_the_code_comes_last() {
    let d = dockerfile(
        "berth-local/python3.11:stable",
        Runtime::Python311,
        &Deps::Python {
            requirements: "x\n".into(),
        },
        &["python3".into(), "main.py".into()],
    );
    let deps_at = d.find("pip install").unwrap();
    let code_at = d.find("COPY --chown=10001:10001 app/ /app/").unwrap();
    assert!(deps_at < code_at, "{d}");
    assert!(
        d.contains("FROM berth-local/python3.11:stable AS deps")
            && d.contains("COPY --from=deps /app/.venv /app/.venv"),
        "{d}"
    );
    assert!(
        d.ends_with(
            "USER 10001:10001\nCMD [\"python3\",\"main.py\"]\nCOPY --chown=10001:10001 app/ /app/\n"
        ),
        "{d}"
    );
}
