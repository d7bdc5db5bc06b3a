//! Python project layouts (issue 27), pure: where the dependencies come from
//! (lock files first, then PEP 621, Poetry, Pipfile, requirements.txt,
//! setup.cfg, setup.py), and which command starts the service (Procfile, a
//! WSGI/ASGI app object, `python -m`), with `$PORT` expanded.

use berth_core::entry::entry;
use berth_core::entry::expand_port;
use berth_core::recipe::{deps, Deps, Manifests};
use berth_core::spec::Runtime;

/// A package of these files (path, text); every one is read as berth reads it.
fn package(files: &[(&str, &str)]) -> Manifests {
    let text = |name: &str| files.iter().find(|f| f.0 == name).map(|f| f.1.to_string());
    Manifests {
        paths: files.iter().map(|f| f.0.to_string()).collect(),
        pyproject: text("pyproject.toml"),
        requirements: text("requirements.txt"),
        package_json: text("package.json"),
        files: files
            .iter()
            .filter(|f| !["pyproject.toml", "requirements.txt", "package.json"].contains(&f.0))
            .map(|f| (f.0.to_string(), f.1.to_string()))
            .collect(),
    }
}

/// The requirement lines and where they came from, or part of the error.
fn check(files: &[(&str, &str)], extras: &[&str], expect: Result<(&str, &[&str]), &str>) {
    let extras: Vec<String> = extras.iter().map(|e| e.to_string()).collect();
    let got = deps(Runtime::Python311, &extras, false, &package(files));
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    match (got, expect) {
        (Ok(Deps::Python { requirements, from }), Ok((want_from, want))) => {
            assert_eq!(requirements.lines().collect::<Vec<_>>(), want, "{names:?}");
            assert_eq!(from, want_from, "{names:?}");
        }
        (Ok(Deps::None), Ok((_, []))) => {}
        // Asked of the project's build backend (by the shell): no lines yet.
        (Ok(Deps::Backend { file }), Ok((want_from, []))) => {
            assert_eq!(format!("backend: {file}"), want_from, "{names:?}")
        }
        (Err(e), Err(want)) => assert!(
            format!("{} {}", e.message, e.help).contains(want),
            "{names:?}: {}",
            e.message
        ),
        (got, want) => panic!("{names:?}: got {got:?}, want {want:?}"),
    }
}

const POETRY: &str = r#"
[tool.poetry]
name = "notes"
version = "0.1.0"
[tool.poetry.dependencies]
python = "^3.11"
flask = "^3.0"
requests = { version = "~2.31", extras = ["socks"] }
rich = { version = "*", optional = true }
zeta = "0.4.1"
[tool.poetry.group.dev.dependencies]
pytest = "^8"
[tool.poetry.extras]
fancy = ["rich"]
[tool.poetry.scripts]
notes = "notes.cli:run"
"#;

const POETRY_LOCK: &str = r#"
[[package]]
name = "flask"
version = "3.0.3"
[package.dependencies]
click = ">=8.1.3"
itsdangerous = ">=2.1.2"
[[package]]
name = "click"
version = "8.1.7"
[package.dependencies]
colorama = { version = "*", markers = "platform_system == \"Windows\"" }
[[package]]
name = "colorama"
version = "0.4.6"
[[package]]
name = "itsdangerous"
version = "2.2.0"
[[package]]
name = "requests"
version = "2.31.0"
[package.dependencies]
PySocks = { version = ">=1.5.6", optional = true }
[package.extras]
socks = ["PySocks (>=1.5.6,!=1.5.7)"]
[[package]]
name = "pysocks"
version = "1.7.1"
[[package]]
name = "rich"
version = "13.7.1"
[[package]]
name = "zeta"
version = "0.4.1"
[[package]]
name = "pytest"
version = "8.2.0"
"#;

const UV_LOCK: &str = r#"
version = 1
requires-python = ">=3.11"
[[package]]
name = "api"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "fastapi" },
    { name = "uvicorn", extra = ["standard"] },
]
[package.optional-dependencies]
fast = [{ name = "orjson" }]
[package.dev-dependencies]
dev = [{ name = "pytest" }]
[[package]]
name = "fastapi"
version = "0.115.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "starlette" }]
[[package]]
name = "starlette"
version = "0.38.6"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "uvicorn"
version = "0.30.6"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "h11" }]
[package.optional-dependencies]
standard = [
    { name = "httptools" },
    { name = "uvloop", marker = "sys_platform != 'win32'" },
]
[[package]]
name = "h11"
version = "0.14.0"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "httptools"
version = "0.6.1"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "uvloop"
version = "0.20.0"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "orjson"
version = "3.10.7"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "pytest"
version = "8.3.3"
source = { registry = "https://pypi.org/simple" }
"#;

const UV_PYPROJECT: &str = r#"
[project]
name = "api"
version = "0.1.0"
dependencies = ["fastapi", "uvicorn[standard]"]
[project.optional-dependencies]
fast = ["orjson"]
"#;

#[test]
fn a_lock_file_decides_the_exact_versions_of_what_the_project_runs_never_its_development_tools() {
    check(
        &[("pyproject.toml", UV_PYPROJECT), ("uv.lock", UV_LOCK)],
        &[],
        Ok((
            "uv.lock (6 locked versions)",
            &[
                "fastapi==0.115.0",
                "h11==0.14.0",
                "httptools==0.6.1",
                "starlette==0.38.6",
                "uvicorn==0.30.6",
                "uvloop==0.20.0 ; sys_platform != 'win32'",
            ],
        )),
    );
    check(
        &[("pyproject.toml", UV_PYPROJECT), ("uv.lock", UV_LOCK)],
        &["fast"],
        Ok((
            "uv.lock (7 locked versions)",
            &[
                "fastapi==0.115.0",
                "h11==0.14.0",
                "httptools==0.6.1",
                "orjson==3.10.7",
                "starlette==0.38.6",
                "uvicorn==0.30.6",
                "uvloop==0.20.0 ; sys_platform != 'win32'",
            ],
        )),
    );
    check(
        &[("pyproject.toml", UV_PYPROJECT), ("uv.lock", UV_LOCK)],
        &["gpu"],
        Err("extra `gpu` is not an optional-dependencies group of the project in uv.lock"),
    );
    check(
        &[("pyproject.toml", POETRY), ("poetry.lock", POETRY_LOCK)],
        &[],
        Ok((
            "poetry.lock (7 locked versions)",
            &[
                "click==8.1.7",
                "colorama==0.4.6 ; platform_system == \"Windows\"",
                "flask==3.0.3",
                "itsdangerous==2.2.0",
                "pysocks==1.7.1",
                "requests==2.31.0",
                "zeta==0.4.1",
            ],
        )),
    );
    check(
        &[("pyproject.toml", POETRY), ("poetry.lock", POETRY_LOCK)],
        &["fancy"],
        Ok((
            "poetry.lock (8 locked versions)",
            &[
                "click==8.1.7",
                "colorama==0.4.6 ; platform_system == \"Windows\"",
                "flask==3.0.3",
                "itsdangerous==2.2.0",
                "pysocks==1.7.1",
                "requests==2.31.0",
                "rich==13.7.1",
                "zeta==0.4.1",
            ],
        )),
    );
    check(
        &[
            ("pyproject.toml", POETRY),
            (
                "poetry.lock",
                "[[package]]\nname = \"flask\"\nversion = \"3.0.3\"\n",
            ),
        ],
        &[],
        Err("poetry.lock does not lock `requests`"),
    );
    check(
        &[(
            "Pipfile.lock",
            r#"{"_meta": {}, "default": {"flask": {"version": "==3.0.3"},
                "colorama": {"version": "==0.4.6", "markers": "sys_platform == 'win32'"},
                "app": {"editable": true, "path": "."}},
               "develop": {"pytest": {"version": "==8.2.0"}}}"#,
        )],
        &[],
        Ok((
            "Pipfile.lock (2 locked versions)",
            &["colorama==0.4.6 ; sys_platform == 'win32'", "flask==3.0.3"],
        )),
    );
    check(
        &[(
            "pdm.lock",
            "[[package]]\nname = \"Flask\"\nversion = \"3.0.3\"\ngroups = [\"default\"]\n\
             [[package]]\nname = \"pytest\"\nversion = \"8.2.0\"\ngroups = [\"dev\"]\n",
        )],
        &[],
        Ok(("pdm.lock (1 locked versions)", &["flask==3.0.3"])),
    );
}

#[test]
fn without_a_lock_poetry_pipfile_setup_cfg_and_a_literal_setup_py_are_read_as_pip_would_install_them(
) {
    check(
        &[("pyproject.toml", POETRY)],
        &[],
        Ok((
            "pyproject.toml (Poetry)",
            &[
                "flask>=3.0,<4",
                "requests[socks]>=2.31,<2.32",
                "zeta==0.4.1",
            ],
        )),
    );
    check(
        &[("pyproject.toml", POETRY)],
        &["fancy"],
        Ok((
            "pyproject.toml (Poetry)",
            &[
                "flask>=3.0,<4",
                "requests[socks]>=2.31,<2.32",
                "rich",
                "zeta==0.4.1",
            ],
        )),
    );
    check(
        &[("pyproject.toml", &POETRY.replace("^3.11", "^3.12"))],
        &[],
        Err(
            "runtime python3.11 (Python 3.11) is outside the package's requires-python `>=3.12,<4`",
        ),
    );
    check(
        &[(
            "pyproject.toml",
            "[tool.poetry.dependencies]\nlib = { git = \"https://example.com/lib.git\" }\n",
        )],
        &[],
        Err("`[tool.poetry.dependencies] lib` comes from a git"),
    );
    check(
        &[("Pipfile", "[packages]\nflask = \"*\"\nrequests = { version = \">=2\", extras = [\"socks\"] }\n[dev-packages]\npytest = \"*\"\n")],
        &[],
        Ok(("Pipfile", &["flask", "requests[socks]>=2"])),
    );
    let cfg = "[metadata]\nname = notes\n\n[options]\npackages = find:\ninstall_requires =\n    flask>=3  # the web part\n    itsdangerous\n\n[options.extras_require]\nfast = orjson\n";
    check(
        &[("setup.cfg", cfg)],
        &[],
        Ok(("setup.cfg", &["flask>=3", "itsdangerous"])),
    );
    check(
        &[("setup.cfg", cfg)],
        &["fast"],
        Ok(("setup.cfg", &["flask>=3", "itsdangerous", "orjson"])),
    );
    check(
        &[("setup.py", "from setuptools import setup\nsetup(\n    name='x',\n    install_requires=[\n        'flask>=3',  # web\n        \"gunicorn\",\n    ],\n)\n")],
        &[],
        Ok(("setup.py", &["flask>=3", "gunicorn"])),
    );
    check(
        &[("setup.py", "from setuptools import setup\nsetup(name='x', install_requires=open('reqs.txt').read().split())\n")],
        &[],
        Ok(("backend: setup.py", &[])),
    );
    check(
        &[(
            "pyproject.toml",
            "[project]\nname = \"x\"\ndynamic = [\"dependencies\"]\n",
        )],
        &[],
        Ok(("backend: pyproject.toml (`dynamic`)", &[])),
    );
    // requirements.txt comes before setup.cfg, as pip users expect.
    check(
        &[("setup.cfg", cfg), ("requirements.txt", "flask==3.0.3\n")],
        &[],
        Ok(("requirements.txt", &["flask==3.0.3"])),
    );
}

/// The plan's entry line for a package of these files and these
/// dependencies, or part of the error.
fn check_entry(files: &[(&str, &str)], requirements: &str, expect: Result<&str, &str>) {
    let deps = match requirements {
        "" => Deps::None,
        r => Deps::Python {
            requirements: r.into(),
            from: "requirements.txt".into(),
        },
    };
    let got = entry(Runtime::Python311, None, &package(files), &deps);
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    match (got, expect) {
        (Ok(e), Ok(w)) => assert_eq!(e.describe(), w, "{names:?}"),
        (Err(e), Err(w)) => assert!(
            format!("{} {}", e.message, e.help).contains(w),
            "{names:?}: {}",
            e.message
        ),
        (got, want) => panic!("{names:?}: got {got:?}, want {want:?}"),
    }
}

const FLASK_APP: &str = "from flask import Flask\n\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return 'hi'\n";
const FASTAPI_APP: &str = "from fastapi import FastAPI\n\napp: FastAPI = FastAPI()\n";

#[test]
fn a_procfile_an_app_object_with_its_server_or_a_runnable_package_start_the_service() {
    check_entry(
        &[("Procfile", "release: ./migrate\nweb: gunicorn notes:app --workers 2\n"), ("app.py", FLASK_APP)],
        "flask\ngunicorn\n",
        Ok("starts with `sh -c exec gunicorn notes:app --workers 2`: the `web:` line of the Procfile"),
    );
    check_entry(
        &[("Procfile", "web:\n")],
        "",
        Err("Procfile line 1: the `web:` process has no command"),
    );
    check_entry(
        &[("app.py", FLASK_APP), ("requirements.txt", "")],
        "Flask==3.0.3\ngunicorn>=22 ; python_version >= '3'\n",
        Ok("starts with `sh -c exec gunicorn --bind \"0.0.0.0:$PORT\" app:app`: app.py defines the WSGI app `app` and gunicorn is among the dependencies"),
    );
    check_entry(
        &[("main.py", FASTAPI_APP)],
        "fastapi\nuvicorn[standard]==0.30\n",
        Ok("starts with `sh -c exec uvicorn main:app --host 0.0.0.0 --port \"$PORT\"`: main.py defines the ASGI app `app` and uvicorn is among the dependencies"),
    );
    check_entry(
        &[("wsgi.py", "from notes import create_app\napplication = create_app()\n"), ("notes/__init__.py", "")],
        "flask\ngunicorn\n",
        Ok("starts with `sh -c exec gunicorn --bind \"0.0.0.0:$PORT\" wsgi:application`: wsgi.py defines the WSGI app `application` and gunicorn is among the dependencies"),
    );
    check_entry(
        &[("main.py", FASTAPI_APP)],
        "fastapi\n",
        Err("main.py defines the ASGI app `app`, but nothing in the dependencies serves it"),
    );
    check_entry(
        &[("app.py", FLASK_APP)],
        "flask\n",
        Err("add gunicorn to the dependencies"),
    );
    // A file that starts its own server runs as a script.
    check_entry(
        &[(
            "app.py",
            &format!("{FLASK_APP}\nif __name__ == '__main__':\n    app.run()\n"),
        )],
        "flask\ngunicorn\n",
        Ok("starts with `python3 app.py`: app.py is a conventional entry file"),
    );
    check_entry(
        &[
            ("notes/__init__.py", ""),
            ("notes/__main__.py", "print('hi')\n"),
            ("tests/test_x.py", ""),
        ],
        "",
        Ok("starts with `python3 -m notes`: notes/__main__.py makes the package notes runnable"),
    );
    // The src layout: the package is found under src/.
    check_entry(
        &[("pyproject.toml", POETRY), ("src/notes/__init__.py", ""), ("src/notes/cli.py", "")],
        "",
        Ok("starts with `env PYTHONPATH=/app/src python3 -c import notes.cli; notes.cli.run()`: `notes` is the one script pyproject.toml (Poetry) declares (its package is under src/: /app/src is on PYTHONPATH)"),
    );
    check_entry(
        &[("src/hello/__init__.py", ""), ("src/hello/__main__.py", ""), ("tests/test_hello.py", "")],
        "",
        Ok("starts with `env PYTHONPATH=/app/src python3 -m hello`: src/hello/__main__.py makes the package hello runnable (/app/src is on PYTHONPATH)"),
    );
    check_entry(
        &[("pyproject.toml", POETRY), ("notes/cli.py", "")],
        "",
        Ok("starts with `python3 -c import notes.cli; notes.cli.run()`: `notes` is the one script pyproject.toml (Poetry) declares"),
    );
    check_entry(
        &[("setup.cfg", "[options.entry_points]\nconsole_scripts =\n    notes = notes.cli:serve\n"), ("notes/cli.py", "")],
        "",
        Ok("starts with `python3 -c import notes.cli; notes.cli.serve()`: `notes` is the one script setup.cfg declares"),
    );
}

#[test]
fn port_in_a_list_form_command_is_the_services_port_and_nothing_else_expands() {
    let cmd = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        expand_port(
            &cmd(&[
                "serve",
                "--port",
                "$PORT",
                "--bind=0.0.0.0:${PORT}",
                "$PORTS",
                "$$PORT",
                "$HOME",
                "a$"
            ]),
            9000
        ),
        cmd(&[
            "serve",
            "--port",
            "9000",
            "--bind=0.0.0.0:9000",
            "$PORTS",
            "$PORT",
            "$HOME",
            "a$"
        ])
    );
}

#[test]
fn a_build_backends_report_gives_its_requirements_with_the_named_extras_only() {
    use berth_core::layout::backend::{metadata_dockerfile, report_requirements};
    let report = r#"{"version":"1","install":[{"metadata":{"name":"computed","version":"1.0",
        "requires_dist":["six==1.16.0","ujson>=5; extra == \"fast\"","orjson; python_version >= \"3.8\" and extra == 'fast'",
        "pytest; extra == \"test\"","tomli; python_version < \"3.11\""],
        "provides_extra":["fast","test"]}}]}"#;
    let check = |extras: &[&str], expect: Result<&[&str], &str>| {
        let extras: Vec<String> = extras.iter().map(|e| e.to_string()).collect();
        match (report_requirements(report, &extras), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{extras:?}"),
            (Err(e), Err(want)) => assert!(e.message.contains(want), "{}", e.message),
            (got, want) => panic!("{extras:?}: got {got:?}, want {want:?}"),
        }
    };
    check(
        &[],
        Ok(&["six==1.16.0", "tomli; python_version < \"3.11\""]),
    );
    check(
        &["Fast"],
        Ok(&[
            "six==1.16.0",
            "ujson>=5",
            "orjson; python_version >= \"3.8\"",
            "tomli; python_version < \"3.11\"",
        ]),
    );
    check(
        &["gpu"],
        Err("extra `gpu` is not an extra the project's build backend reports"),
    );
    assert!(report_requirements("{\"install\":[]}", &[]).is_err());
    assert!(report_requirements("not json", &[]).is_err());
    let d = metadata_dockerfile("berth-local/python3.11:stable");
    for wanted in [
        "--dry-run --no-deps",
        "--no-index",
        "--use-pep517",
        "--report /tmp/report/report.json",
    ] {
        assert!(d.contains(wanted), "{wanted}: {d}");
    }
}
