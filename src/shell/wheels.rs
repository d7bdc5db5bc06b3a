//! Python dependencies as wheels: downloaded with pip on the host, for the
//! runtime's Python and exactly the platforms pip accepts inside its base,
//! once per set of requirements (cached under the state directory), and
//! handed to the build context by stamp and digest, never read into memory.

use std::path::PathBuf;

use crate::core::desired::BuildInput;
use crate::core::pip;
use crate::core::recipe::Manifests;

use super::build::BuildError;
use super::context::Data;
use super::settings::Settings;

/// Wheels for the requirements, for the runtime's Python and the engine's
/// platform, downloaded with pip on the host once and cached by what decides them.
pub async fn wheels(
    input: &BuildInput,
    requirements: &str,
    manifests: &Manifests,
    arch: &str,
    settings: &Settings,
) -> Result<Vec<(String, Data)>, BuildError> {
    let py = input.runtime.python().unwrap_or("3.13");
    let platforms = pip::wheel_platforms(arch, pip::base_glibc(input.runtime));
    let key = crate::core::hash::sha256_hex(
        format!("{py}\n{}\n{requirements}", platforms.join(",")).as_bytes(),
    );
    let dir = settings
        .state_dir
        .join("wheels")
        .join(format!("py-{}", &key[..16]));
    let fail = |message: String| BuildError::DepsResolve {
        id: input.id.clone(),
        package: input.package.clone(),
        message,
        python: py.to_string(),
        platform: platforms[0].clone(),
    };
    if !dir.is_dir() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
        let req = tmp.join("requirements.txt");
        std::fs::write(&req, requirements).map_err(|e| fail(e.to_string()))?;
        let abi = format!("cp{}", py.replace('.', ""));
        // Dependencies can be gigabytes (torch): never downloaded silently. On a
        // terminal pip shows each file, its size and a progress bar (on stderr,
        // so the plan on stdout stays clean); without one, a line before and
        // one after, with the size.
        let count = requirements
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        crate::say::info(&format!(
            "  {}: downloading Python dependencies ({count} requirement(s)) for Python {py} with pip",
            input.id
        ));
        let started = std::time::Instant::now();
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
            }
        }
        cmd.args(["--disable-pip-version-check", "--only-binary=:all:"])
            .args([
                "--python-version",
                py,
                "--implementation",
                "cp",
                "--abi",
                &abi,
                "--abi",
                "abi3",
                "--abi",
                "none",
            ]);
        for p in &platforms {
            cmd.args(["--platform", p]);
        }
        cmd.arg("-d").arg(tmp.join("wheels")).arg("-r").arg(&req);
        // Not `output()`: it would capture stdout too, and pip's progress with it.
        if !terminal {
            cmd.stdout(std::process::Stdio::piped());
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run pip: {e}")))?
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("cannot run pip: {e}")))?;
        if !out.status.success() {
            // pip's whole reason, naming the package's own file and line
            // rather than the requirements file berth wrote (deleted now).
            let log = String::from_utf8_lossy(&out.stderr);
            let reason = pip::pip_reason(&log, &req.display().to_string(), requirements, manifests);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(fail(reason.trim().to_string()));
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| fail(e.to_string()))?;
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
    }
    let machine = platforms[0]
        .rsplit('_')
        .next()
        .unwrap_or("x86_64")
        .to_string();
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
        if !(name.ends_with("-any.whl") || name.contains(&machine)) {
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
