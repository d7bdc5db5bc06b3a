//! Source distributions, pure (`core::sdist`, `core::pip::wheel_fits`): which
//! requirement pip found no wheel for, which listed file is built, what its
//! build needs, and how a failed build is named.

use berth_core::pip::{wheel_fits, wheel_platforms};
use berth_core::sdist::{
    build_dockerfile, build_requires, compiler_needed, index_files, pick, sdist_version, wanted,
    IndexFile, Wanted,
};

fn want(name: &str, specifier: &str) -> Wanted {
    Wanted {
        name: name.into(),
        specifier: specifier.into(),
    }
}

#[test]
fn the_requirement_pip_found_no_wheel_for_is_read_from_its_log_in_every_form_it_takes() {
    let check = |log: &str, expect: Option<Wanted>| assert_eq!(wanted(log), expect, "{log}");
    let says = "ERROR: Could not find a version that satisfies the requirement";
    check(
        &format!("{says} httpretty==1.1.4 (from versions: none)\nERROR: No matching distribution found for httpretty==1.1.4\n"),
        Some(want("httpretty", "==1.1.4")),
    );
    // Found only other versions; a transitive requirement names its parent.
    check(
        &format!("{says} Old_Lib.Name<2,>=1.0 (from app==1.0) (from versions: 3.0, 3.1)"),
        Some(want("old-lib-name", "<2,>=1.0")),
    );
    check(
        &format!("{says} pkg[extra]>=2; python_version >= \"3.8\" (from versions: none)"),
        Some(want("pkg", ">=2")),
    );
    check(
        &format!("{says} anything (from versions: none)"),
        Some(want("anything", "")),
    );
    check("ERROR: ResolutionImpossible: …", None);
    check("", None);
}

fn file(filename: &str) -> IndexFile {
    IndexFile {
        filename: filename.into(),
        url: format!("../../files/{filename}"),
        sha256: None,
        requires_python: None,
        yanked: false,
    }
}

#[test]
fn an_index_page_is_read_in_its_json_form_and_its_html_form_alike() {
    let json = r#"{"meta":{"api-version":"1.1"},"name":"httpretty","files":[
        {"filename":"httpretty-1.1.4.tar.gz","url":"https://files.example/h/httpretty-1.1.4.tar.gz","hashes":{"sha256":"abc"},"requires-python":">=3","yanked":false},
        {"filename":"httpretty-0.1.tar.gz","url":"x","hashes":{},"yanked":"broken"}]}"#;
    let files = index_files(json);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].sha256.as_deref(), Some("abc"));
    assert_eq!(files[0].requires_python.as_deref(), Some(">=3"));
    assert!(!files[0].yanked && files[1].yanked);
    let html = r#"<!DOCTYPE html><html><body>
        <a href="../../p/httpretty-1.1.4.tar.gz#sha256=abc" data-requires-python="&gt;=3.8">httpretty-1.1.4.tar.gz</a><br/>
        <A HREF='../../p/httpretty-0.1.tar.gz' data-yanked>httpretty-0.1.tar.gz</A>
        </body></html>"#;
    let files = index_files(html);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0].url, "../../p/httpretty-1.1.4.tar.gz");
    assert_eq!(files[0].sha256.as_deref(), Some("abc"));
    assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
    assert!(!files[0].yanked && files[1].yanked, "{files:?}");
    assert!(index_files("not a page").is_empty());
}

#[test]
fn the_newest_sdist_the_specifier_and_python_allow_is_built_never_a_yanked_or_pre_release_one() {
    let mut newer_py = file("lib-3.0.tar.gz");
    newer_py.requires_python = Some(">=3.14".into());
    let mut yanked = file("lib-2.5.tar.gz");
    yanked.yanked = true;
    let files = vec![
        file("lib-1.0.tar.gz"),
        file("Lib-2.0.tar.gz"),
        file("lib-2.1rc1.tar.gz"),
        yanked,
        newer_py,
        file("lib-2.4-py3-none-any.whl"),
        file("lib-2.4.zip"),
        file("libother-9.0.tar.gz"),
    ];
    let check = |specifier: &str, expect: Option<&str>| {
        let got = pick(&files, &want("lib", specifier), "3.13").map(|(f, _)| f.filename.as_str());
        assert_eq!(got, expect, "{specifier:?}");
    };
    check("", Some("Lib-2.0.tar.gz"));
    check("<2", Some("lib-1.0.tar.gz"));
    check(">=2.1rc1", Some("lib-2.1rc1.tar.gz"));
    check("==2.5", None);
    check(">=4", None);
    assert_eq!(
        sdist_version("python-dateutil-2.8.2.tar.gz", "python-dateutil").map(|v| v.to_string()),
        Some("2.8.2".into())
    );
    assert_eq!(sdist_version("lib-1.0.tar.bz2", "lib"), None);
}

#[test]
fn a_build_needs_what_its_build_system_requires_else_setuptools_and_wheel() {
    let check = |pyproject: Option<&str>, expect: &[&str]| {
        assert_eq!(build_requires(pyproject), expect, "{pyproject:?}");
    };
    check(None, &["setuptools>=40.8.0", "wheel"]);
    check(
        Some("[project]\nname = \"x\"\n"),
        &["setuptools>=40.8.0", "wheel"],
    );
    check(
        Some("[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n"),
        &["hatchling"],
    );
    check(
        Some("[build-system]\nrequires = [\"setuptools>=61\", \"Wheel\"]\nbuild-backend = \"setuptools.build_meta\"\n"),
        &["setuptools>=61", "Wheel"],
    );
    check(
        Some("[build-system]\nrequires = [\"setuptools>=61\"]\n"),
        &["setuptools>=61", "wheel"],
    );
}

#[test]
fn the_build_runs_pip_with_no_index_on_the_mounted_sdist_and_a_name_reaches_no_shell_unquoted() {
    let d = build_dockerfile("berth-local/python3.13:stable", "lib-1.0.tar.gz");
    assert!(d.contains("FROM berth-local/python3.13:stable\n"), "{d}");
    assert!(d.contains("--no-index --no-deps"), "{d}");
    assert!(d.contains("--find-links /tmp/sdist/build"), "{d}");
    assert!(d.contains("\"/tmp/sdist/lib-1.0.tar.gz\""), "{d}");
}

#[test]
fn a_build_that_needed_a_compiler_is_named_by_the_line_that_shows_it() {
    let check =
        |log: &str, expect: Option<&str>| assert_eq!(compiler_needed(log).as_deref(), expect);
    check(
        "running build_ext\nbuilding 'fast' extension\nerror: command 'x86_64-linux-gnu-gcc' failed: No such file or directory\n",
        Some("error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory"),
    );
    check(
        "      error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'",
        Some("error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'"),
    );
    check(
        "configure: error: no acceptable C compiler found in $PATH",
        Some("configure: error: no acceptable C compiler found in $PATH"),
    );
    check(
        "  fatal error: Python.h: No such file or directory",
        Some("fatal error: Python.h: No such file or directory"),
    );
    check(
        "error: can't find Rust compiler",
        Some("error: can't find Rust compiler"),
    );
    check("ModuleNotFoundError: No module named 'numpy'", None);
}

#[test]
fn a_native_wheel_fits_only_the_machine_of_the_platforms_and_a_pure_one_fits_all() {
    let x86 = wheel_platforms("amd64", (2, 36));
    let arm = wheel_platforms("arm64", (2, 36));
    let check = |name: &str, on_x86: bool, on_arm: bool| {
        assert_eq!(wheel_fits(name, &x86), on_x86, "{name} on x86_64");
        assert_eq!(wheel_fits(name, &arm), on_arm, "{name} on aarch64");
    };
    check("six-1.16.0-py2.py3-none-any.whl", true, true);
    check(
        "numpy-2.1.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        true,
        false,
    );
    // "aarch64" holds "64": that is no x86_64 wheel.
    check(
        "numpy-2.1.0-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        false,
        true,
    );
    check("odd-1.0-cp313-cp313-win_amd64.whl", false, false);
    check("not-a-wheel.tar.gz", false, false);
}
