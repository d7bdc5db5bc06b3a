//! The command line as a user meets it, without Docker: every flag says what
//! it is for in `--help`, and the completion scripts are valid shell that
//! knows every command.

use std::process::Command;

use clap::CommandFactory;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

#[test]
fn every_command_and_flag_has_help_text() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(format!("{path} {} (the command itself)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&berth::cli::Cli::command(), "berth", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:#?}");
}

#[test]
fn completion_scripts_are_valid_shell_and_know_every_command() {
    let out = Command::new(BERTH)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for cmd in berth::cli::Cli::command().get_subcommands() {
        assert!(script.contains(cmd.get_name()), "{}", cmd.get_name());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = Command::new(BERTH)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}

/// Runs berth in a fresh directory holding `files`: (exit code, stderr).
fn run_in(files: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new(BERTH)
        .args(args)
        .current_dir(dir.path())
        .env("BERTH_STATE_DIR", dir.path().join(".state"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// (files, arguments, exit code, what stderr says, what it must not blame).
type Mistake<'a> = (
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
    i32,
    &'a [&'a str],
    &'a str,
);

#[test]
fn each_mistake_names_the_flag_or_file_it_is_about() {
    let cases: &[Mistake] = &[
        (
            &[],
            &["token", "add", "bob", "-p", "nonsense"],
            2,
            &["--permission", "unknown permission `nonsense`"],
            "tokens.yaml",
        ),
        (
            &[],
            &["token", "add", "Bob!", "-p", "services:view"],
            2,
            &["not a valid name"],
            "tokens.yaml",
        ),
        (
            &[],
            &["package", "/nonexistent-dir"],
            1,
            &[
                "cannot read the directory /nonexistent-dir",
                "give `berth package`",
            ],
            "services.yaml",
        ),
        (
            &[],
            &["serve", "--gateway", "nowhere"],
            2,
            &["--gateway", "HOST:PORT"],
            "services.yaml",
        ),
        (
            &[(
                "services.yaml",
                "project: p\nservices:\n  web:\n    runtime: python3.13\n    package: nothere\n",
            )],
            &["validate"],
            1,
            &["services.yaml:3:3: web@0.0.0: package `nothere` does not exist"],
            "tokens.yaml",
        ),
    ];
    for (files, args, code, wanted, not) in cases {
        let (got, err) = run_in(files, args);
        assert_eq!(got, Some(*code), "{args:?}: {err}");
        for w in *wanted {
            assert!(err.contains(w), "{args:?}: expected {w:?} in {err}");
        }
        assert!(!err.contains(not), "{args:?} blames {not}: {err}");
    }
}
