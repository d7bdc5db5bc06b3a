//! The functional core stays pure: no module under src/core may name an I/O crate.

#[test]
fn the_core_imports_no_io_crate_and_no_filesystem() {
    let forbidden = [
        "tokio",
        "bollard",
        "git2",
        "notify",
        "nvml",
        "std::fs",
        "std::net",
        "std::process",
        "hyper",
        "reqwest",
        "axum",
        "crate::shell",
    ];
    let mut offences = Vec::new();
    for entry in std::fs::read_dir("src/core").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the core must stay pure:\n{}",
        offences.join("\n")
    );
}

#[test]
fn only_the_docker_module_imports_bollard() {
    let mut offences = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if !path.ends_with("shell/docker.rs") && code_mentions(&path, "bollard") {
                offences.push(path.display().to_string());
            }
        }
    }
    assert!(
        offences.is_empty(),
        "bollard outside shell/docker.rs: {offences:?}"
    );
}

/// Whether the code of a file (comments left out) names `word`.
fn code_mentions(path: &std::path::Path, word: &str) -> bool {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .any(|l| l.split("//").next().unwrap_or("").contains(word))
}
