//! Building from code against the real engine: the examples build, run and answer
//! as a non-root user; unchanged code never rebuilds; a code-only change reuses
//! the dependency layer; a bad dependency or package changes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{docker, example, get, text, Project, BERTH};

/// A project with the python3.11 and node22 bases in place.
fn project(tag: &str) -> Option<Project> {
    Project::with_runtimes(tag, &["python3.11", "node22"])
}

/// The layer digests of a container's image.
fn layers(container: &str) -> Vec<String> {
    let image = docker(&["inspect", "--format", "{{.Image}}", container]);
    docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RootFS.Layers}}{{.}} {{end}}",
        &image,
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[test]
fn the_python_fastapi_with_extras_and_node_examples_build_run_and_answer_as_non_root() {
    let Some(p) = project("examples") else { return };
    p.write(&format!(
        "project: {{p}}\nservices:\n  stdlib:\n    runtime: python3.11\n    package: {}\n  greeter:\n    runtime: python3.11\n    extras: [fastjson]\n    package: {}\n  node:\n    runtime: node22\n    package: {}\n",
        example("python-stdlib"),
        example("python-fastapi"),
        example("node-hello")
    ));
    let plan = p.ok(&["plan"]);
    assert!(plan.contains("Plan: 3 to build, 4 to create"), "{plan}");
    p.ok(&["apply"]);
    for service in ["stdlib", "greeter", "node"] {
        let body: serde_json::Value = serde_json::from_str(&get(&p.url(service))).unwrap();
        assert_eq!(body["service"], service);
        assert_eq!(
            body["uid"], 10001,
            "{service} runs as the non-root app user"
        );
    }
    let greeter: serde_json::Value = serde_json::from_str(&get(&p.url("greeter"))).unwrap();
    assert_eq!(greeter["framework"], "fastapi");
    assert_eq!(greeter["orjson"], true, "the extra group was installed");
    let node: serde_json::Value = serde_json::from_str(&get(&p.url("node"))).unwrap();
    assert!(
        node["runtime"].as_str().unwrap().starts_with("v22."),
        "{node}"
    );

    // Nothing changed: no build step, and apply touches nothing.
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains("No changes") && !plan.contains("build"),
        "{plan}"
    );
    let ours = p.events_during(&["apply"]);
    assert!(ours.is_empty(), "no build, no container change: {ours:?}");
}

#[test]
fn a_code_only_change_rebuilds_only_the_code_layer_and_a_dependency_change_the_dependency_layer() {
    let Some(p) = project("layers") else { return };
    let src = p.copy_example("python-fastapi");
    // A dependency set of its own: other tests building the same set at the same
    // time would each leave an equally valid cache entry, and the engine may pick either.
    let py = src.join("pyproject.toml");
    std::fs::write(
        &py,
        std::fs::read_to_string(&py)
            .unwrap()
            .replace("\"uvicorn>=0.29\",", "\"uvicorn>=0.29\",\n    \"six\","),
    )
    .unwrap();
    p.write(&format!(
        "project: {{p}}\nservices:\n  api:\n    runtime: python3.11\n    package: {}\n",
        src.display()
    ));
    p.ok(&["apply"]);
    let name = format!("{}-api-0.0.0", p.name);
    let before = layers(&name);

    let main = src.join("main.py");
    std::fs::write(
        &main,
        std::fs::read_to_string(&main)
            .unwrap()
            .replace("\"fastapi\"", "\"fastapi!\""),
    )
    .unwrap();
    let plan = p.ok(&["plan"]);
    assert!(
        plan.contains("+ build") && plan.contains("~ replace"),
        "{plan}"
    );
    p.ok(&["apply"]);
    let after = layers(&name);
    assert_eq!(before.len(), after.len());
    assert_eq!(
        before[..before.len() - 1],
        after[..after.len() - 1],
        "base and dependency layers come from cache"
    );
    assert_ne!(before.last(), after.last(), "the code layer is new");
    assert!(get(&p.url("api")).contains("fastapi!"));

    std::fs::write(
        &py,
        std::fs::read_to_string(&py)
            .unwrap()
            .replace("\"six\",", "\"six\",\n    \"packaging\","),
    )
    .unwrap();
    p.ok(&["apply"]);
    let deps_changed = layers(&name);
    assert_ne!(
        after[after.len() - 2],
        deps_changed[deps_changed.len() - 2],
        "the dependency layer is rebuilt"
    );
}

#[test]
fn an_unresolvable_dependency_fails_the_plan_naming_it_and_the_running_version_stays() {
    let Some(p) = project("baddep") else { return };
    let src = p.copy_example("python-fastapi");
    p.write(&format!(
        "project: {{p}}\nservices:\n  api:\n    runtime: python3.11\n    package: {}\n",
        src.display()
    ));
    let first = p.berth(&["apply"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    // Without a terminal, a dependency download is a line before and one after,
    // with its size: never silent.
    let said = text(&first.stderr);
    assert!(
        said.contains("api@0.0.0: downloading Python dependencies (2 requirement(s)) for Python 3.11 with pip")
            && said.contains(" MB, in "),
        "{said}"
    );
    let before = p.containers();
    let py = src.join("pyproject.toml");
    std::fs::write(
        &py,
        std::fs::read_to_string(&py).unwrap().replace(
            "\"uvicorn>=0.29\",",
            "\"uvicorn>=0.29\",\n    \"berth-no-such-package-xyz\",",
        ),
    )
    .unwrap();
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("api@0.0.0: downloading Python dependencies (3 requirement(s))")
            && err.contains("\nerror: api@0.0.0: cannot resolve the Python dependencies"),
        "{err}"
    );
    assert!(
        err.contains("berth-no-such-package-xyz"),
        "names the package: {err}"
    );
    assert_eq!(p.containers(), before, "nothing running was touched");
    assert_eq!(
        p.inspect(&format!("{}-api-0.0.0", p.name), "{{.State.Status}}"),
        "running"
    );
}

/// `berth plan`'s error, which must be a refusal (exit code 1).
fn plan_refused(p: &Project) -> String {
    let out = p.berth(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    text(&out.stderr)
}

#[test]
fn a_refused_package_or_an_unavailable_runtime_is_a_plan_error_before_any_action() {
    let Some(p) = project("refuse") else { return };
    let src = p.copy_example("python-stdlib");
    std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
    p.write(&format!(
        "project: {{p}}\nservices:\n  api:\n    runtime: python3.11\n    package: {}\n",
        src.display()
    ));
    let err = plan_refused(&p);
    assert!(
        err.contains(
            "entry `passwd` is refused: it is a symlink to `/etc/passwd`, outside the directory"
        ),
        "{err}"
    );

    std::fs::remove_file(src.join("passwd")).unwrap();
    // Inside an image layer this name would delete a file of the layer below.
    std::fs::write(src.join(".wh.main.py"), "").unwrap();
    let err = plan_refused(&p);
    assert!(
        err.contains("entry `.wh.main.py` is refused: a name starting with `.wh.` marks a deleted file inside an image layer")
            && err.contains("help: rename it, or list it in .berthignore"),
        "{err}"
    );
    std::fs::remove_file(src.join(".wh.main.py")).unwrap();

    p.write(&format!(
        "project: {{p}}\nservices:\n  api:\n    runtime: python3.12\n    package: {}\n",
        src.display()
    ));
    if docker(&["images", "-q", "berth-local/python3.12:stable"]).is_empty() {
        let out = p.berth(&["apply"]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.starts_with("error: runtime python3.12 has no base image"),
            "{err}"
        );
        assert!(
            err.contains("help: build baseimages/python/Dockerfile"),
            "says how to provide it: {err}"
        );
    }
    assert!(p.containers().is_empty());
}

#[test]
fn berth_package_makes_the_same_bytes_from_the_same_directory() {
    let Some(p) = Project::new("pkg") else { return };
    let src = p.copy_example("python-fastapi");
    let a = p.dir.path().join("a.tar.gz");
    let b = p.dir.path().join("b.tar.gz");
    p.ok(&["package", src.to_str().unwrap(), "-o", a.to_str().unwrap()]);
    for e in std::fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, body).unwrap();
    }
    p.ok(&["package", src.to_str().unwrap(), "-o", b.to_str().unwrap()]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn every_runtime_that_can_be_built_here_builds_runs_and_answers() {
    let Some(p) = project("runtimes") else { return };
    let out = Command::new(BERTH)
        .args(["baseimages", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth baseimages --all: {}",
        text(&out.stderr)
    );
    p.write(&format!(
        "project: {{p}}\nservices:\n  py311:\n    runtime: python3.11\n    package: {py}\n  py313:\n    runtime: python3.13\n    package: {py}\n  node20:\n    runtime: node20\n    package: {node}\n  node22:\n    runtime: node22\n    package: {node}\n",
        py = example("python-stdlib"),
        node = example("node-hello"),
    ));
    p.ok(&["apply"]);
    let python = |c: &str| {
        docker(&[
            "exec",
            c,
            "python3",
            "-c",
            "import sys; print(sys.version.split()[0])",
        ])
    };
    assert!(python(&format!("{}-py311-0.0.0", p.name)).starts_with("3.11."));
    assert!(python(&format!("{}-py313-0.0.0", p.name)).starts_with("3.13."));
    // Every Python base here shows a service what the production base shows:
    // `python` itself, PATH, user, working directory, init.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime");
    let probe = std::fs::read_to_string(fixtures.join("probe.py")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();
    for service in ["py311", "py313"] {
        let c = format!("{}-{service}-0.0.0", p.name);
        let seen: serde_json::Value =
            serde_json::from_str(&docker(&["exec", &c, "python", "-c", &probe])).unwrap();
        assert_eq!(seen, expected, "{service}");
    }
    for (service, major) in [
        ("py311", None),
        ("py313", None),
        ("node20", Some("v20.")),
        ("node22", Some("v22.")),
    ] {
        let body: serde_json::Value = serde_json::from_str(&get(&p.url(service))).unwrap();
        assert_eq!(body["service"], service);
        assert_eq!(body["uid"], 10001);
        if let Some(m) = major {
            assert!(body["runtime"].as_str().unwrap().starts_with(m), "{body}");
        }
    }
    // The wheels berth resolves at plan time are exactly those pip accepts
    // inside each Python base (PEP 600 tags from the base's own glibc).
    let arch = docker(&["version", "-f", "{{.Server.Arch}}"]);
    for (service, runtime) in [
        ("py311", berth::core::spec::Runtime::Python311),
        ("py313", berth::core::spec::Runtime::Python313),
    ] {
        let c = format!("{}-{service}-0.0.0", p.name);
        let debug = docker(&[
            "exec",
            &c,
            "sh",
            "-c",
            "python3 -m venv /tmp/pipcheck && /tmp/pipcheck/bin/pip debug --verbose 2>/dev/null",
        ]);
        let mut pips: Vec<String> = Vec::new();
        for tag in debug
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("cp3"))
        {
            let platform = tag.splitn(3, '-').nth(2).unwrap_or("").to_string();
            let linux = platform.starts_with("manylinux") || platform.starts_with("linux_");
            if linux && !pips.contains(&platform) {
                pips.push(platform);
            }
        }
        let ours = berth::core::pip::wheel_platforms(&arch, berth::core::pip::base_glibc(runtime));
        assert_eq!(
            ours, pips,
            "{service}: pip inside the base accepts\n{debug}"
        );
    }
    // The image is hardened: tini is PID 1's child reaper, no compiler, no apt lists.
    let c = format!("{}-py311-0.0.0", p.name);
    let checks = docker(&["exec", &c, "sh", "-c", "command -v gcc cc || echo no-compiler; ls /var/lib/apt/lists | wc -l; echo $PYTHONUNBUFFERED"]);
    assert_eq!(
        checks.split_whitespace().collect::<Vec<_>>(),
        ["no-compiler", "0", "1"]
    );
}

#[test]
fn versions_built_from_the_same_package_share_one_image_built_once() {
    let Some(p) = project("shared") else { return };
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    runtime: python3.11\n    package: {py}\n    versions:\n      \"1.0.0\": {{}}\n      \"1.1.0\": {{}}\n      \"1.2.0\": {{ env: {{ X: \"1\" }} }}\n",
        py = example("python-stdlib"),
    ));
    let plan = p.ok(&["plan"]);
    let builds: Vec<&str> = plan
        .lines()
        .filter(|l| l.contains("build") && l.contains("image berth/"))
        .collect();
    assert_eq!(builds.len(), 1, "{plan}");
    assert!(
        plan.contains("the same image serves 1.1.0, 1.2.0 (same content)"),
        "{plan}"
    );
    assert!(
        plan.contains("starts with `python3 main.py`: main.py is a conventional entry file"),
        "{plan}"
    );
    let out = p.berth(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // Two networks (the scope's, and the serve network of a service with
    // several versions) and three versions.
    assert!(
        stdout.contains("Applied: 1 built, 5 created"),
        "counted as the plan was: {stdout}"
    );
    assert!(
        stderr.contains("web@1.0.0: code layer: 1 file under /app/, owned by 10001:10001"),
        "a line per build step off a terminal: {stderr}"
    );
    let images: std::collections::BTreeSet<String> = p
        .containers()
        .into_keys()
        .map(|c| p.inspect(&c, "{{.Image}}"))
        .collect();
    assert_eq!(
        images.len(),
        1,
        "one image for the three versions: {images:?}"
    );
    assert!(p.ok(&["plan"]).contains("No changes"));
}

#[test]
fn a_replace_keeps_only_the_previous_image_and_gc_removes_the_rest() {
    let Some(p) = project("gc") else { return };
    let src = p.copy_example("python-stdlib");
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    runtime: python3.11\n    package: {}\n",
        src.display()
    ));
    let images = || -> Vec<String> {
        docker(&[
            "images",
            "--filter",
            &format!("label=berth.project={}", p.name),
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .lines()
        .map(String::from)
        .collect()
    };
    p.ok(&["apply"]);
    assert_eq!(images().len(), 1, "{:?}", images());
    let main = src.join("main.py");
    for change in 1..=3 {
        let code = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, format!("{code}\n# change {change}\n")).unwrap();
        let out = p.berth(&["apply"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        if change >= 2 {
            assert!(
                text(&out.stderr).contains("removed image berth/"),
                "the image two changes back goes: {}",
                text(&out.stderr)
            );
        }
        assert!(images().len() <= 2, "change {change}: {:?}", images());
    }
    assert_eq!(images().len(), 2, "the running image and the previous one");

    let dry = p.ok(&["gc", "--dry-run"]);
    assert!(
        dry.contains("would remove image berth/") && dry.contains("1 image(s)"),
        "{dry}"
    );
    assert_eq!(images().len(), 2, "a dry run removes nothing");
    let done = p.ok(&["gc"]);
    assert!(done.contains("Removed 1 image(s)"), "{done}");
    let left = images();
    let running = p.inspect(&format!("{}-web-0.0.0", p.name), "{{.Config.Image}}");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &left[0]]),
        running,
        "only the running image is left"
    );
    assert!(p.ok(&["plan"]).contains("No changes"));
}

#[test]
fn two_versions_of_a_service_run_side_by_side() {
    let Some(p) = Project::new("versions") else {
        return;
    };
    p.write(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/versions-side-by-side.yaml"),
        )
        .unwrap()
        .replace("project: versions", "project: {p}"),
    );
    p.ok(&["apply"]);
    let names: Vec<String> = p.containers().into_keys().collect();
    assert_eq!(
        names,
        [
            format!("{}-greeter-1.0.0", p.name),
            format!("{}-greeter-1.1.0", p.name)
        ]
    );
    let rows: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
    for r in rows.as_array().unwrap() {
        let v = r["version"].as_str().unwrap();
        assert_eq!(get(r["url"].as_str().unwrap()), format!("greeter {v}"));
    }
}

#[test]
fn a_build_step_is_told_apart_in_buildkit_and_classic_logs() {
    let check = |line: &str, expect: bool| {
        assert_eq!(berth::build::is_step(line), expect, "{line}");
    };
    check(
        "[2/3] RUN --mount=type=bind,source=deps,target=/tmp/deps",
        true,
    );
    check("Step 1/7 : FROM berth-local/python3.11:stable", true);
    check(
        "code layer: 3 files under /app/, owned by 10001:10001, loaded over b",
        true,
    );
    check("[internal] load build definition from Dockerfile", false);
    check("[notes] 3/4 done", false);
    check("Step 1: not the builder's", false);
    check("Successfully tagged berth/x:1", false);
}

#[test]
fn a_build_context_sends_its_dockerfile_first_in_a_plain_header() {
    // BuildKit takes an upload whose first tar header is not a plain one (a
    // long name's extra header) for a bare Dockerfile of tar bytes.
    let mut ctx = berth::build::context::Context::default();
    let long = format!("0{}/x.py", "a".repeat(150));
    ctx.add(&long, 0o644, b"print(1)\n".to_vec());
    ctx.add("Dockerfile", 0o644, b"FROM scratch\n".to_vec());
    let tar = ctx.tar().unwrap();
    assert_eq!(
        &tar[..11],
        b"Dockerfile\0",
        "the first header names the Dockerfile"
    );
    let mut archive = tar::Archive::new(&tar[..]);
    let paths: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(paths, ["Dockerfile".to_string(), long]);
}

#[test]
fn a_base_bootstrap_says_each_debootstrap_phase_once_as_it_comes() {
    use berth::build::baseimage::debootstrap_phase;
    let log = "I: Retrieving InRelease\nI: Checking Release signature\nI: Valid Release signature (key id 4D64)\n\
I: Retrieving Packages\nI: Validating Packages\nI: Resolving dependencies of required packages...\n\
I: Found additional required dependencies: libzstd1\nI: Checking component main on http://deb/...\n\
I: Retrieving adduser 3.134\nI: Validating adduser 3.134\nI: Retrieving apt 2.6.1\n\
I: Extracting adduser...\nI: Extracting apt...\nI: Installing core packages...\nI: Unpacking required packages...\n\
I: Unpacking adduser...\nI: Configuring required packages...\nI: Configuring apt...\n\
W: Failure trying to run: chroot\nI: Base system installed successfully.\n";
    let mut said: Vec<&str> = Vec::new();
    for phase in log.lines().filter_map(debootstrap_phase) {
        if said.last() != Some(&phase) {
            said.push(phase);
        }
    }
    assert_eq!(
        said,
        [
            "retrieving packages",
            "resolving packages",
            "retrieving packages",
            "resolving packages",
            "retrieving packages",
            "extracting the required packages",
            "installing the core packages",
            "unpacking packages",
            "configuring packages",
            "base system installed",
        ]
    );
}
