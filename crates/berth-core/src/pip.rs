//! What berth asks of pip and makes of its answers, pure: the wheel
//! platforms a base image runs (from its glibc, as pip itself lists them) and
//! pip's reason for a failed resolution, put in the package's own terms.

use super::recipe::Manifests;
use super::spec::Runtime;

/// The glibc of a runtime's base image, as (major, minor): Debian bookworm
/// (2.36) under python3.11, python3.12 (`python:3.12-slim-bookworm`) and Node,
/// trixie (2.41) under python3.13, Ubuntu 22.04 (2.35) under NVIDIA's CUDA
/// runtime images. The wheels a base can run follow from it.
pub fn base_glibc(runtime: Runtime) -> (u32, u32) {
    match runtime {
        Runtime::Python313 => (2, 41),
        Runtime::Python311Cuda | Runtime::Python312Cuda | Runtime::Python313Cuda => (2, 35),
        Runtime::Python311 | Runtime::Python312 | Runtime::Node20 | Runtime::Node22 => (2, 36),
    }
}

/// The wheel platform tags pip accepts on a Linux with `glibc` for an engine
/// architecture, in pip's order of preference (PEP 600, as `packaging.tags`
/// lists them): `manylinux_2_<m>` from the base's glibc down to the oldest the
/// architecture has (2.5 on x86_64, 2.17 elsewhere), each legacy alias
/// (`manylinux2014` = 2.17, `manylinux2010` = 2.12, `manylinux1` = 2.5) right
/// after its version, then `linux_<arch>`.
pub fn wheel_platforms(arch: &str, glibc: (u32, u32)) -> Vec<String> {
    let (machine, oldest) = match arch {
        "arm64" | "aarch64" => ("aarch64", 17),
        _ => ("x86_64", 5),
    };
    let mut tags = Vec::new();
    if glibc.0 == 2 {
        for minor in (oldest..=glibc.1).rev() {
            tags.push(format!("manylinux_2_{minor}_{machine}"));
            let legacy = match minor {
                17 => Some("manylinux2014"),
                12 => Some("manylinux2010"),
                5 => Some("manylinux1"),
                _ => None,
            };
            if let Some(l) = legacy {
                tags.push(format!("{l}_{machine}"));
            }
        }
    }
    tags.push(format!("linux_{machine}"));
    tags
}

/// Whether the wheel file `name` runs on one of `platforms` (as
/// [`wheel_platforms`] lists them): a pure wheel (`-any.whl`), or one whose
/// platform tags name the platforms' machine. A native wheel for another
/// machine would fail only at run time.
pub fn wheel_fits(name: &str, platforms: &[String]) -> bool {
    let Some(tags) = name.strip_suffix(".whl").and_then(|s| s.rsplit('-').next()) else {
        return false;
    };
    if tags == "any" {
        return true;
    }
    let machine = platforms
        .last()
        .and_then(|p| p.strip_prefix("linux_"))
        .unwrap_or("x86_64");
    // `manylinux_2_17_x86_64.manylinux2014_x86_64`: every compressed tag.
    tags.split('.').all(|t| t.ends_with(&format!("_{machine}")))
}

/// The files a Python project's requirements come from, lock files first
/// (`core::layout`'s order).
const SOURCES: [&str; 9] = [
    "uv.lock",
    "poetry.lock",
    "pdm.lock",
    "Pipfile.lock",
    "pyproject.toml",
    "Pipfile",
    "requirements.txt",
    "setup.cfg",
    "setup.py",
];

/// What pip said when it could not resolve the requirements, as a user reads
/// it: its progress lines left out, its reasons kept whole ("The conflict is
/// caused by: …", "To fix this you could try to: …"), and every mention of
/// the requirements file berth wrote for it (`written`, holding `generated`,
/// deleted right after) turned into the package's own file and line, where
/// that requirement comes from (`SOURCES`).
pub fn pip_reason(stderr: &str, written: &str, generated: &str, m: &Manifests) -> String {
    const NOISE: [&str; 8] = [
        "Collecting ",
        "Downloading ",
        "Using cached ",
        "Saved ",
        "Obtaining ",
        "Looking in ",
        "File was already downloaded ",
        "Successfully downloaded ",
    ];
    let source = |line_no: usize| -> String {
        let wanted = generated
            .lines()
            .nth(line_no.saturating_sub(1))
            .unwrap_or("")
            .trim();
        // A lock file names a package as `name = "x"`, or as `"x": {`.
        let name = wanted
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .next()
            .unwrap_or("");
        let present: Vec<(&str, &str)> = SOURCES
            .iter()
            .filter_map(|f| Some((*f, m.file(f)?)))
            .collect();
        for (file, text) in &present {
            if wanted.is_empty() {
                continue;
            }
            let hit = text.lines().position(|l| {
                l.contains(wanted)
                    || (!name.is_empty()
                        && file.ends_with("lock")
                        && (l.trim() == format!("name = \"{name}\"")
                            || l.trim_start().starts_with(&format!("\"{name}\": {{"))))
            });
            if let Some(i) = hit {
                return format!("{file} line {} (`{wanted}`)", i + 1);
            }
        }
        present
            .first()
            .map(|(f, _)| f.to_string())
            .unwrap_or_else(|| "requirements.txt".into())
    };
    let mut out: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || NOISE.iter().any(|n| trimmed.starts_with(n)) {
            continue;
        }
        let mut line = line.to_string();
        // `(from -r /tmp/…/requirements.txt (line 3))`, or the path alone.
        while let Some(at) = line.find(written) {
            let after = &line[at + written.len()..];
            let (n, used) = match after.strip_prefix(" (line ") {
                Some(rest) => {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let closes = rest[digits.len()..].starts_with(')');
                    match (digits.parse::<usize>(), closes) {
                        (Ok(n), true) => (Some(n), " (line ".len() + digits.len() + 1),
                        _ => (None, 0),
                    }
                }
                None => (None, 0),
            };
            let start = line[..at].strip_suffix("-r ").map_or(at, |s| s.len());
            let named = source(n.unwrap_or(0));
            line.replace_range(start..at + written.len() + used, &named);
        }
        out.push(line);
    }
    out.join("\n")
}

/// What wheels are downloaded for: the runtime's Python, the platforms pip
/// accepts inside its base, and the pip arguments that say both.
pub struct PipTarget {
    pub python: String,
    pub platforms: Vec<String>,
    /// `linux_<machine>`'s machine (`x86_64`, `aarch64`).
    pub machine: String,
    pub args: Vec<String>,
}

impl PipTarget {
    pub fn of(input: &crate::desired::BuildInput, arch: &str) -> PipTarget {
        let python = input.runtime.python().unwrap_or("3.13").to_string();
        let platforms = wheel_platforms(arch, base_glibc(input.runtime));
        // The last platform is `linux_<machine>`.
        let machine = platforms
            .last()
            .and_then(|p| p.strip_prefix("linux_"))
            .unwrap_or("x86_64")
            .to_string();
        let abi = format!("cp{}", python.replace('.', ""));
        let mut args: Vec<String> = [
            "--python-version",
            &python,
            "--implementation",
            "cp",
            "--abi",
            &abi,
            "--abi",
            "abi3",
            "--abi",
            "none",
        ]
        .map(String::from)
        .to_vec();
        for p in &platforms {
            args.extend(["--platform".to_string(), p.clone()]);
        }
        PipTarget {
            python,
            platforms,
            machine,
            args,
        }
    }
}
