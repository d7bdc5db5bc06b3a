//! Python dependencies as wheels: downloaded with pip on the host, for the
//! runtime's Python and exactly the platforms pip accepts inside its base,
//! once per set of requirements (cached under the state directory), and
//! handed to the build context by stamp and digest, never read into memory.

use std::path::{Path, PathBuf};

use crate::core::desired::BuildInput;
use crate::core::pip;
use crate::core::recipe::Manifests;

use super::context::Data;
use super::{BuildError, SdistBuildError};
use crate::shell::engine::Engine;
use crate::shell::settings::Settings;

pub use crate::core::pip::PipTarget;

/// Wheels for the requirements, for the runtime's Python and the engine's
/// platform, downloaded with pip on the host once and cached by what decides them.
pub async fn wheels(
    engine: &dyn Engine,
    project: &str,
    input: &BuildInput,
    requirements: &str,
    manifests: &Manifests,
    arch: &str,
    settings: &Settings,
) -> Result<Vec<(String, Data)>, BuildError> {
    let target = PipTarget::of(input, arch);
    let (py, platforms) = (target.python.as_str(), &target.platforms);
    let key = crate::core::hash::sha256_hex(
        format!("{py}\n{}\n{requirements}", platforms.join(",")).as_bytes(),
    );
    let dir = settings
        .state_dir
        .join("wheels")
        .join(format!("py-{}", &key[..16]));
    let fail = |message: String| resolve_fail(input, &target, message);
    if !dir.is_dir() {
        let asked = Asked {
            engine,
            project,
            input,
            requirements,
            manifests,
            settings,
            target: &target,
        };
        download(&asked, &dir).await?;
    }
    let mut out = Vec::new();
    // Wheels can be large (torch is gigabytes): hashed once, then known by stamp.
    let mut cache: super::digests::Cache<String> =
        super::digests::Cache::open(Some(&settings.state_dir), &dir);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join("wheels"))
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        // A native wheel for another architecture would fail only at run time.
        if !pip::wheel_fits(&name, platforms) {
            return Err(fail(format!(
                "wheel {name} is not for the engine's architecture ({arch})"
            )));
        }
        let meta = std::fs::metadata(&path).map_err(|e| fail(e.to_string()))?;
        let (digest, _) = cache
            .file_digest(&name, &path, &meta)
            .map_err(|e| fail(e.to_string()))?;
        out.push((
            name,
            Data::Stored {
                size: meta.len(),
                digest,
                from: super::context::Origin::File(path),
            },
        ));
    }
    cache.save();
    Ok(out)
}

/// What a download of wheels is asked for.
struct Asked<'a> {
    engine: &'a dyn Engine,
    project: &'a str,
    input: &'a BuildInput,
    requirements: &'a str,
    manifests: &'a Manifests,
    settings: &'a Settings,
    target: &'a PipTarget,
}

/// The error of a resolution pip could not make.
fn resolve_fail(input: &BuildInput, target: &PipTarget, message: String) -> BuildError {
    BuildError::DepsResolve {
        id: input.id.clone(),
        package: input.package.clone(),
        message,
        python: target.python.clone(),
        platform: target.platforms[0].clone(),
    }
}

/// pip downloads the wheels into `dir`, whole or not at all (a `.partial`
/// directory renamed into place); a requirement with no wheel is built from
/// its source distribution, once each, and pip asked again.
async fn download(a: &Asked<'_>, dir: &Path) -> Result<(), BuildError> {
    let (input, settings, requirements, target) = (a.input, a.settings, a.requirements, a.target);
    let (py, machine) = (target.python.as_str(), target.machine.as_str());
    let fail = |message: String| resolve_fail(input, target, message);
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
    let req = tmp.join("requirements.txt");
    std::fs::write(&req, requirements).map_err(|e| fail(e.to_string()))?;
    let target_args = &target.args;
    // Wheels built from source distributions, offered to pip beside the
    // index, where the other find-links are too.
    let built = settings
        .state_dir
        .join("wheels")
        .join(format!("built-py{py}-{machine}"));
    // Dependencies can be gigabytes (torch): never downloaded silently.
    let count = requirements
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    crate::say::info(&format!(
        "  {}: downloading Python dependencies ({count} requirement(s)) for Python {py} with pip",
        input.id
    ));
    let started = std::time::Instant::now();
    let mut sought = std::collections::BTreeSet::new();
    loop {
        let mut links = settings.pip_find_links.clone();
        if built.is_dir() {
            links.push(built.display().to_string());
        }
        let log = match pip_download(settings, target_args, &links, &tmp.join("wheels"), &req).await
        {
            Ok(()) => break,
            Err(PipFailed::Run(e)) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(fail(format!("cannot run pip: {e}")));
            }
            Err(PipFailed::Said(log)) => log,
        };
        // A requirement with no wheel is built from its source
        // distribution, once each, and pip asked again.
        if let Some(wanted) =
            crate::core::sdist::wanted(&log).filter(|w| sought.insert(w.name.clone()))
        {
            match super::sdist::build(
                a.engine, settings, a.project, input, &wanted, target, &built,
            )
            .await
            {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(f) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(sdist_fail(input, &wanted.name, py, f));
                }
            }
        }
        // pip's whole reason, naming the package's own file and line
        // rather than the requirements file berth wrote (deleted now).
        let reason = pip::pip_reason(&log, &req.display().to_string(), requirements, a.manifests);
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(reason.trim().to_string()));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| fail(e.to_string()))?;
    let (files, bytes) = std::fs::read_dir(dir.join("wheels"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .fold((0, 0u64), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or_default();
    crate::say::info(&format!(
        "  {}: downloaded {files} wheel(s), {:.1} MB, in {:.0} s (cached for later plans)",
        input.id,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// A source distribution that did not build, with what to do instead.
fn sdist_fail(input: &BuildInput, name: &str, py: &str, f: super::sdist::Failed) -> BuildError {
    let instead = format!("pick a version of {name} that has wheels for Python {py}, or build the wheel yourself and offer it to pip through a find-links directory (PIP_FIND_LINKS)");
    BuildError::SdistBuild(Box::new(SdistBuildError {
        id: input.id.clone(),
        name: name.to_string(),
        file: f.file.unwrap_or_else(|| "its source distribution".into()),
        python: py.to_string(),
        message: f.message,
        help: match f.compiler {
            Some(line) => format!(
                "{name} needs a compiler to build (`{line}`), and a base image has none: {instead}"
            ),
            None => format!("the build's last lines are above; {instead}"),
        },
    }))
}

enum PipFailed {
    /// pip did not run.
    Run(std::io::Error),
    /// pip ran and failed; what it said on stderr.
    Said(String),
}

/// `pip download` of the requirements file `req` into `dest`, wheels only,
/// for `target_args` (Python, ABIs, platforms), with `links` as find-links.
/// On a terminal pip shows each file, its size and a progress bar (on
/// stderr, so the plan on stdout stays clean).
async fn pip_download(
    settings: &Settings,
    target_args: &[String],
    links: &[String],
    dest: &Path,
    req: &Path,
) -> Result<(), PipFailed> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !crate::say::json();
    let mut cmd = tokio::process::Command::new(&settings.python);
    cmd.args(["-m", "pip", "download"]);
    match terminal {
        true => {
            cmd.args(["--progress-bar", "on"]);
            if let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
                cmd.stdout(std::process::Stdio::from(fd));
            }
        }
        false => {
            cmd.arg("--quiet");
            // Not `output()`: it would capture stdout too, and pip's progress with it.
            cmd.stdout(std::process::Stdio::piped());
        }
    }
    cmd.args(["--disable-pip-version-check", "--only-binary=:all:"])
        .args(target_args);
    for link in links {
        cmd.args(["--find-links", link]);
    }
    cmd.arg("-d").arg(dest).arg("-r").arg(req);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(PipFailed::Run)?
        .wait_with_output()
        .await
        .map_err(PipFailed::Run)?;
    match out.status.success() {
        true => Ok(()),
        false => Err(PipFailed::Said(
            String::from_utf8_lossy(&out.stderr).to_string(),
        )),
    }
}
