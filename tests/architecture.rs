//! The shape the code keeps: the core crate depends on nothing that does I/O,
//! only the Docker module imports bollard, and the layers of `src/` import one
//! another in one direction only (no cycles). The core's lint (clippy.toml's
//! disallowed methods and types) is checked by `.ci/run`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that do I/O, or pull in a runtime that does: none may reach the core.
const IO_CRATES: [&str; 14] = [
    "tokio",
    "bollard",
    "git2",
    "notify",
    "notify-debouncer-full",
    "nvml-wrapper",
    "reqwest",
    "hyper",
    "hyper-util",
    "axum",
    "mio",
    "socket2",
    "ignore",
    "tracing-subscriber",
];

#[test]
fn the_core_crate_depends_on_no_crate_that_does_io() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This machine's target only: other platforms' crates need not be fetched.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let core = nodes
        .keys()
        .find(|id| name_of(id) == "berth-core")
        .expect("the workspace has berth-core");
    // Every crate the core links in a normal build, transitively.
    let mut seen = BTreeSet::new();
    let mut todo = vec![*core];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(pkg) {
                todo.push(pkg);
            }
        }
    }
    let names: BTreeSet<String> = seen.iter().map(|id| name_of(id)).collect();
    assert!(
        names.contains("serde"),
        "the walk found the core's dependencies: {names:?}"
    );
    let offending: Vec<&str> = IO_CRATES
        .iter()
        .copied()
        .filter(|c| names.contains(*c))
        .collect();
    assert!(
        offending.is_empty(),
        "the core must not depend on I/O crates: {offending:?}"
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The code of a file with comments left out.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_the_docker_module_imports_bollard() {
    let offences: Vec<String> = rust_files(Path::new("src"))
        .into_iter()
        .filter(|p| !p.starts_with("src/shell/engine/docker"))
        .filter(|p| code(p).contains("bollard"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offences.is_empty(),
        "bollard outside src/shell/engine/docker/: {offences:?}"
    );
}

/// The top-level module a file of `src/` belongs to, and those it names with
/// `crate::` (in `use` lines and in paths).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(Path::new("src")) {
        let rel = path.strip_prefix("src").unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if ["main", "lib"].contains(&module.as_str()) {
            continue;
        }
        let text = code(&path);
        let mut names = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module && name != "core" {
                names.insert(name);
            }
        }
        graph.entry(module).or_default().extend(names);
    }
    graph
}

#[test]
fn the_layers_of_src_import_downwards_only() {
    // Each layer may use those after it in this list, never those before it.
    let order = [
        "commands", "daemon", "converge", "serve", "build", "shell", "cli", "say",
    ];
    let graph = imports();
    let rank = |m: &str| order.iter().position(|o| *o == m);
    let mut offences = Vec::new();
    for (module, uses) in &graph {
        let Some(r) = rank(module) else {
            offences.push(format!("{module} is not in the layer list"));
            continue;
        };
        for u in uses {
            match rank(u) {
                Some(ru) if ru > r => {}
                _ => offences.push(format!("{module} imports {u}")),
            }
        }
    }
    // `commands` parses nothing itself: it reads what `cli` parsed.
    offences.retain(|o| o != "commands imports cli" && o != "daemon imports cli");
    assert!(
        offences.is_empty(),
        "imports against the layering: {offences:?}"
    );
    assert!(
        graph["daemon"].contains("converge"),
        "the daemon converges through `converge`"
    );
    assert!(
        !graph["daemon"].contains("commands"),
        "the daemon imports nothing from the commands"
    );
}

#[test]
fn only_settings_reads_the_process_environment() {
    // The debug-only fault switches (compiled out of release builds) are the
    // named exceptions: a test arms them in the child's environment.
    let exceptions = ["src/converge/rollout.rs", "src/build/layer.rs"];
    let mut offences = Vec::new();
    for path in rust_files(Path::new("src")) {
        let shown = path.display().to_string();
        if shown == "src/shell/settings.rs" {
            continue;
        }
        let text = code(&path);
        let reads = ["std::env::var", "env::vars", "env::var_os", "env::var("];
        let found = reads.iter().any(|r| text.contains(r));
        match (found, exceptions.contains(&shown.as_str())) {
            (true, false) => offences.push(shown),
            (false, true) => offences.push(format!("{shown} no longer needs its exception")),
            _ => {}
        }
    }
    for exception in exceptions {
        assert!(
            code(Path::new(exception)).contains("debug_assertions"),
            "{exception}: its environment read is debug-only"
        );
    }
    assert!(
        offences.is_empty(),
        "the environment is read once, into Settings: {offences:?}"
    );
}

/// The module path of a file under `root` (`converge/execute.rs` →
/// `["converge", "execute"]`; a `mod.rs`, `lib.rs` or `main.rs` is its folder's).
fn module_of(root: &Path, path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !["mod", "lib", "main"].contains(&stem) {
        parts.push(stem.to_string());
    }
    parts
}

/// The module paths a file's code names: `crate::a::b`, `super::x`,
/// `self::y`, with `{...}` groups opened one level.
fn named_paths(module: &[String], is_mod_file: bool, text: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // A mod.rs is its folder's module: its `super` is the folder's parent.
            let mut m = module.to_vec();
            m.pop();
            m
        }),
        ("self::", module.to_vec()),
    ] {
        if prefix == "self::" && !is_mod_file {
            continue;
        }
        for (i, _) in text.match_indices(prefix) {
            // Not the tail of a longer path (`super::super::`, `x::crate::`).
            if i >= 2 && &text[i - 2..i] == "::" {
                continue;
            }
            let mut base = base.clone();
            let mut rest = &text[i + prefix.len()..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        let mut p = base.clone();
                        p.push(name);
                        out.push(p);
                    }
                }
            } else {
                let mut p = base.clone();
                let mut r = rest;
                loop {
                    let name = ident(r);
                    if name.is_empty() {
                        break;
                    }
                    p.push(name.clone());
                    match r[name.len()..].strip_prefix("::") {
                        Some(next) => r = next,
                        None => break,
                    }
                }
                out.push(p);
            }
        }
    }
    out
}

/// Cycles among sibling modules under `root`: for each folder's module, an
/// edge from one child to another when code inside the first names the second.
fn sibling_cycles(root: &Path, crate_prefix: &[&str]) -> Vec<String> {
    let files = rust_files(root);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(root, f)).collect();
    // parent module -> child -> children it names.
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let module = module_of(root, f);
        let is_mod_file = f
            .file_name()
            .is_some_and(|n| ["mod.rs", "lib.rs", "main.rs"].contains(&n.to_str().unwrap()));
        for mut named in named_paths(&module, is_mod_file, &code(f)) {
            // `crate::core::x` in the binary is the core crate: not ours here.
            if !crate_prefix.is_empty() && named.first().map(String::as_str) == Some("core") {
                continue;
            }
            // The longest prefix that is a module.
            while !named.is_empty() && !modules.contains(&named) {
                named.pop();
            }
            // Their nearest common parent, and the child of it on each side.
            let common = module
                .iter()
                .zip(&named)
                .take_while(|(a, b)| a == b)
                .count();
            if common < module.len() && common < named.len() {
                let parent = module[..common].to_vec();
                edges
                    .entry(parent)
                    .or_default()
                    .entry(module[common].clone())
                    .or_default()
                    .insert(named[common].clone());
            }
        }
    }
    let mut cycles = Vec::new();
    for (parent, graph) in &edges {
        // Depth-first search for a back edge; each cycle said once, by its members.
        fn visit(
            n: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            found: &mut BTreeSet<Vec<String>>,
        ) {
            if let Some(at) = stack.iter().position(|s| s == n) {
                let mut cycle = stack[at..].to_vec();
                cycle.sort();
                found.insert(cycle);
                return;
            }
            if done.contains(n) {
                return;
            }
            stack.push(n.to_string());
            for m in graph.get(n).into_iter().flatten() {
                visit(m, graph, stack, done, found);
            }
            stack.pop();
            done.insert(n.to_string());
        }
        let mut found = BTreeSet::new();
        let mut done = BTreeSet::new();
        for n in graph.keys() {
            visit(n, graph, &mut Vec::new(), &mut done, &mut found);
        }
        for cycle in found {
            let at = if parent.is_empty() {
                crate_prefix.join("::")
            } else {
                parent.join("::")
            };
            cycles.push(format!("in {at}: {}", cycle.join(" <-> ")));
        }
    }
    cycles
}

#[test]
fn no_two_modules_of_one_folder_import_each_other() {
    let mut cycles = sibling_cycles(Path::new("src"), &["crate"]);
    cycles.extend(sibling_cycles(Path::new("crates/berth-core/src"), &[]));
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}
