//! Wheels built from source distributions, for a requirement pip finds no
//! wheel for. The sdist is fetched on the host as a file (from a find-links
//! directory or the index pip uses) and checked by its hash; its build
//! requirements are downloaded as wheels by pip; the engine builds it in the
//! runtime's base with no network (`core::sdist`). None of the project's code
//! runs on the host. A built wheel is cached by the sdist's hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::desired::BuildInput;
use crate::core::sdist::{self, IndexFile, Wanted};

use super::{ensure_image_with, Context};
use crate::core::pip::PipTarget;
use crate::shell::engine::{BuildOptions, Engine, EngineError};
use crate::shell::settings::Settings;

/// The largest source distribution fetched.
const SDIST_LIMIT: usize = 256 << 20;

/// Why no wheel could be built for a requirement.
#[derive(Debug)]
pub struct Failed {
    /// The sdist's file name, once one was chosen.
    pub file: Option<String>,
    pub message: String,
    /// The line that shows the build needed a compiler.
    pub compiler: Option<String>,
}

fn failed(file: Option<&str>, message: impl Into<String>) -> Failed {
    Failed {
        file: file.map(str::to_string),
        message: message.into(),
        compiler: None,
    }
}

/// Builds a wheel for `wanted` from its source distribution into `into` (a
/// find-links directory of the next resolution). `Ok(None)` when neither the
/// find-links directories nor the indexes hold one; else the sdist's name.
pub async fn build(
    engine: &dyn Engine,
    settings: &Settings,
    project: &str,
    input: &BuildInput,
    wanted: &Wanted,
    target: &PipTarget,
    into: &Path,
) -> Result<Option<String>, Failed> {
    let Some((file, version, origin)) = find(settings, wanted, &target.python).await? else {
        return Ok(None);
    };
    let name = file.filename.clone();
    let bytes = fetch(&file, &origin)
        .await
        .map_err(|e| failed(Some(&name), e))?;
    let sha = crate::core::hash::sha256_hex(&bytes);
    if let Some(expected) = &file.sha256 {
        if !expected.eq_ignore_ascii_case(&sha) {
            return Err(failed(
                Some(&name),
                format!("{name} does not match the sha256 its index gives ({expected}); it was not built"),
            ));
        }
    }
    let cache = settings
        .state_dir
        .join("wheels")
        .join("sdist")
        .join(format!(
            "{}-py{}-{}",
            &sha[..16],
            target.python,
            target.machine
        ));
    let io = |e: std::io::Error| failed(Some(&name), e.to_string());
    if !has_wheel(&cache) {
        crate::say::info(&format!(
            "  {}: {} {version} has no wheel for Python {}: building it from {name}, with no network",
            input.id, wanted.name, target.python
        ));
        let tmp = cache.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let wheels = build_in_engine(
            engine,
            settings,
            project,
            input,
            (&name, &bytes),
            target,
            &tmp,
        )
        .await;
        let _ = std::fs::remove_dir_all(&tmp);
        let wheels = wheels?;
        std::fs::create_dir_all(&tmp).map_err(io)?;
        for (wheel, data) in wheels {
            std::fs::write(tmp.join(&wheel), data).map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::rename(&tmp, &cache).map_err(io)?;
    }
    std::fs::create_dir_all(into).map_err(io)?;
    for entry in std::fs::read_dir(&cache).map_err(io)?.flatten() {
        std::fs::copy(entry.path(), into.join(entry.file_name())).map_err(io)?;
    }
    Ok(Some(name))
}

fn has_wheel(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".whl"))
    })
}

/// Where a listed file is: a local directory, or the page that listed it.
enum Origin {
    Dir(PathBuf),
    Page(reqwest::Url),
}

/// The source distribution to build: from the find-links directories and
/// pages first, then the indexes, the newest that fits of all of them.
async fn find(
    settings: &Settings,
    wanted: &Wanted,
    python: &str,
) -> Result<Option<(IndexFile, String, Origin)>, Failed> {
    let mut found: Vec<(IndexFile, Origin)> = Vec::new();
    for link in &settings.pip_find_links {
        let dir = link.strip_prefix("file://").unwrap_or(link);
        if Path::new(dir).is_dir() {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let filename = entry.file_name().to_string_lossy().to_string();
                found.push((
                    IndexFile {
                        url: filename.clone(),
                        filename,
                        sha256: None,
                        requires_python: None,
                        yanked: false,
                    },
                    Origin::Dir(PathBuf::from(dir)),
                ));
            }
        } else if let Ok(url) = reqwest::Url::parse(link) {
            found.extend(
                page(&url)
                    .await?
                    .into_iter()
                    .map(|f| (f, Origin::Page(url.clone()))),
            );
        }
    }
    for index in &settings.pip_indexes {
        let index = match index.as_str() {
            "" => default_index(settings).await?,
            i => i.to_string(),
        };
        let url = reqwest::Url::parse(&format!("{}/{}/", index.trim_end_matches('/'), wanted.name))
            .map_err(|e| failed(None, format!("the index URL {index} cannot be read: {e}")))?;
        found.extend(
            page(&url)
                .await?
                .into_iter()
                .map(|f| (f, Origin::Page(url.clone()))),
        );
    }
    let files: Vec<IndexFile> = found.iter().map(|(f, _)| f.clone()).collect();
    let Some((file, version)) = sdist::pick(&files, wanted, python) else {
        return Ok(None);
    };
    let at = files
        .iter()
        .position(|f| f == file)
        .expect("picked from the list");
    let (file, version) = (file.clone(), version.to_string());
    Ok(Some((file, version, found.swap_remove(at).1)))
}

/// pip's own default index, asked of the pip berth runs.
async fn default_index(settings: &Settings) -> Result<String, Failed> {
    let out = tokio::process::Command::new(&settings.python)
        .args([
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.simple_url)",
        ])
        .output()
        .await
        .map_err(|e| failed(None, format!("cannot ask pip for its index: {e}")))?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.success() && !url.is_empty() {
        true => Ok(url),
        false => Err(failed(
            None,
            "cannot ask pip for its index; set PIP_INDEX_URL".to_string(),
        )),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("a default client builds")
}

/// The files a project page lists; a page that is not there lists none.
async fn page(url: &reqwest::Url) -> Result<Vec<IndexFile>, Failed> {
    let unreachable = |e: reqwest::Error| failed(None, format!("cannot read {url}: {e}"));
    let answer = client()
        .get(url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .send()
        .await
        .map_err(unreachable)?;
    if answer.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    let answer = answer.error_for_status().map_err(unreachable)?;
    let body = answer.text().await.map_err(unreachable)?;
    Ok(sdist::index_files(&body))
}

async fn fetch(file: &IndexFile, origin: &Origin) -> Result<Vec<u8>, String> {
    match origin {
        Origin::Dir(dir) => {
            let path = dir.join(&file.filename);
            let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            if size as usize > SDIST_LIMIT {
                return Err(format!("{} is over 256 MiB", path.display()));
            }
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        Origin::Page(page) => {
            let url = page
                .join(&file.url)
                .map_err(|e| format!("the link to {} cannot be read: {e}", file.filename))?;
            let fail = |e: reqwest::Error| format!("cannot fetch {url}: {e}");
            let mut answer = client()
                .get(url.clone())
                .send()
                .await
                .and_then(|a| a.error_for_status())
                .map_err(fail)?;
            let mut bytes = Vec::new();
            while let Some(chunk) = answer.chunk().await.map_err(fail)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > SDIST_LIMIT {
                    return Err(format!("{url} is over 256 MiB"));
                }
            }
            Ok(bytes)
        }
    }
}

/// The `pyproject.toml` at the top of an sdist, read entry by entry from the
/// stream (nothing is unpacked); `None` when it has none.
fn pyproject(sdist: &[u8]) -> Result<Option<String>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(sdist));
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let parts: Vec<_> = path.components().collect();
        let is_top_pyproject = parts.len() == 2
            && parts[1].as_os_str() == "pyproject.toml"
            && entry.header().entry_type().is_file();
        if is_top_pyproject {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(entry, 1 << 20), &mut text)
                .map_err(|e| e.to_string())?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// The wheel(s) the engine builds from the sdist, in the runtime's base,
/// with no network and as the base's unprivileged user.
async fn build_in_engine(
    engine: &dyn Engine,
    settings: &Settings,
    project: &str,
    input: &BuildInput,
    (file, bytes): (&str, &[u8]),
    target: &PipTarget,
    scratch: &Path,
) -> Result<Vec<(String, Vec<u8>)>, Failed> {
    let pyproject = pyproject(bytes)
        .map_err(|e| failed(Some(file), format!("{file} is not a readable .tar.gz: {e}")))?;
    let mut files = Context::default();
    files.add(file, 0o644, bytes.to_vec());
    let run = OfflineRun {
        what: "wheel",
        shown: file,
        requires: sdist::build_requires(pyproject.as_deref()),
        files,
        dockerfile: &|base| sdist::build_dockerfile(base, file),
        out_dir: sdist::WHEEL_DIR,
    };
    let wheels: Vec<(String, Vec<u8>)> =
        run_offline(engine, settings, project, input, target, scratch, run)
            .await?
            .into_iter()
            .filter(|(n, _)| n.ends_with(".whl"))
            .collect();
    if wheels.is_empty() {
        return Err(failed(Some(file), "its build made no wheel"));
    }
    Ok(wheels)
}

/// Code berth did not write, run by the engine: a build of an sdist, or a
/// project's build backend asked for its metadata.
pub struct OfflineRun<'a> {
    /// Names the image: `berth-deps/<project>-<what>:<hash>`.
    pub what: &'a str,
    /// What is built, for messages (a file's name).
    pub shown: &'a str,
    /// The build requirements, fetched as wheels into `build/` of the context.
    pub requires: Vec<String>,
    /// The rest of the context.
    pub files: Context,
    /// The Dockerfile, for the base's tag.
    pub dockerfile: &'a (dyn Fn(&str) -> String + Sync),
    /// The directory of the image whose files come back.
    pub out_dir: &'a str,
}

/// Runs `run`: its build requirements downloaded by pip as wheels (for the
/// runtime's Python), the base built when missing, the image built with no
/// network (cached by its context, so an unchanged run is not built again),
/// and the files it left in `out_dir` read back.
pub async fn run_offline(
    engine: &dyn Engine,
    settings: &Settings,
    project: &str,
    input: &BuildInput,
    target: &PipTarget,
    scratch: &Path,
    run: OfflineRun<'_>,
) -> Result<Vec<(String, Vec<u8>)>, Failed> {
    let file = run.shown;
    let fail = |m: String| failed(Some(file), m);
    let requires = run.requires;
    // The build's own requirements, as wheels, as pip would install them.
    std::fs::create_dir_all(scratch).map_err(|e| fail(e.to_string()))?;
    let list = scratch.join("build-requirements.txt");
    std::fs::write(&list, requires.join("\n")).map_err(|e| fail(e.to_string()))?;
    let out = tokio::process::Command::new(&settings.python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--only-binary=:all:"])
        .args(&target.args)
        .arg("-d")
        .arg(scratch.join("build"))
        .arg("-r")
        .arg(&list)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run pip: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "cannot download what its build needs ({}):\n{}",
            requires.join(", "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let base = super::baseimage::runtime_tag(input.runtime, None);
    let base_id = match engine
        .image_id(&base)
        .await
        .map_err(|e| fail(e.to_string()))?
    {
        Some(id) => id,
        None => {
            super::baseimage::ensure_runtime(engine, settings, input.runtime, &mut |l| {
                crate::say::info(&format!("  {l}"))
            })
            .await
            .map_err(|e| fail(e.to_string()))?;
            engine
                .image_id(&base)
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("the base {base} is missing after building it")))?
        }
    };
    let mut ctx = run.files;
    ctx.add("Dockerfile", 0o644, (run.dockerfile)(&base).into_bytes());
    for entry in std::fs::read_dir(scratch.join("build"))
        .map_err(|e| fail(e.to_string()))?
        .flatten()
    {
        let data = std::fs::read(entry.path()).map_err(|e| fail(e.to_string()))?;
        ctx.add(
            &format!("build/{}", entry.file_name().to_string_lossy()),
            0o644,
            data,
        );
    }
    ctx.add(
        "base.id",
        0o644,
        format!(
            "{base_id}\nrecipe {}\n",
            crate::core::recipe::RECIPE_VERSION
        )
        .into_bytes(),
    );
    let tag = format!(
        "{}{project}-{}:{}",
        crate::core::retain::DEPS_REPOSITORY,
        run.what,
        &ctx.hash()[..12]
    );
    let labels = BTreeMap::from([
        (
            crate::core::desired::LABEL_PROJECT.to_string(),
            project.to_string(),
        ),
        ("berth.role".to_string(), "dependencies".to_string()),
    ]);
    let mut log: Vec<String> = Vec::new();
    let options = BuildOptions { offline: true };
    match ensure_image_with(engine, &tag, &ctx, labels, options, |l| {
        log.push(l.to_string())
    })
    .await
    {
        Ok(_) => {}
        Err(EngineError::ImageBuild { message, .. }) => {
            let said = log.join("\n");
            // The engine's own step lines say nothing the build did not.
            let said_by_build: Vec<&str> = log
                .iter()
                .map(String::as_str)
                .filter(|l| !super::is_step(l))
                .filter(|l| {
                    !(l.ends_with(": started") || l.contains("finished with status 'done'"))
                })
                .collect();
            // pip's own lines and the build's go by two streams, whose order
            // can mix: enough of the end to hold both.
            let tail = &said_by_build[said_by_build.len().saturating_sub(30)..];
            return Err(Failed {
                file: Some(file.to_string()),
                compiler: sdist::compiler_needed(&said),
                message: if tail.is_empty() {
                    message
                } else {
                    tail.join("\n")
                },
            });
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    engine
        .image_files(&tag, run.out_dir)
        .await
        .map_err(|e| fail(e.to_string()))
}
