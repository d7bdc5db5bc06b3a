//! Images on the engine: builds from a streamed context, root filesystem
//! imports, the project's images and their removal, and who holds a host port.

use std::collections::{BTreeMap, HashMap};

use bollard::models::BuildInfoAux;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptions,
};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::*;

pub(super) async fn port_holders(d: &Docker) -> Result<BTreeMap<u16, String>, EngineError> {
    let containers = d
        .client()
        .await?
        .list_containers(Some(ListContainersOptionsBuilder::default().build()))
        .await
        .map_err(|source| list_error("containers")(source))?;
    let mut held = BTreeMap::new();
    for c in containers {
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        for p in c.ports.unwrap_or_default() {
            if let Some(port) = p.public_port {
                held.insert(port, name.clone());
            }
        }
    }
    Ok(held)
}

/// The tagged images, those with `label` (`key=value`) when given.
pub(super) async fn list(
    d: &Docker,
    label: Option<String>,
) -> Result<Vec<bollard::models::ImageSummary>, EngineError> {
    list_with(&d.client().await?, label).await
}

/// [`list`], with a client of the caller's.
pub(super) async fn list_with(
    client: &bollard::Docker,
    label: Option<String>,
) -> Result<Vec<bollard::models::ImageSummary>, EngineError> {
    client
        .list_images(Some(ListImagesOptions {
            all: false,
            filters: label.map(|l| HashMap::from([("label".to_string(), vec![l])])),
            ..Default::default()
        }))
        .await
        .map_err(|source| list_error("images")(source))
}

pub(super) async fn project_images(
    d: &Docker,
    project: &str,
) -> Result<Vec<(String, Vec<String>)>, EngineError> {
    let images = list(d, Some(format!("{LABEL_PROJECT}={project}"))).await?;
    Ok(images
        .into_iter()
        .filter(|i| i.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
        .map(|i| (i.id, i.repo_tags))
        .collect())
}

pub(super) async fn remove_image(d: &Docker, id: &str) -> Result<(), EngineError> {
    let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
        .force(true)
        .build();
    match d.client().await?.remove_image(id, Some(opts), None).await {
        Err(e) if !is_not_found(&e) => Err(object_error("remove", "image", id, e)),
        _ => Ok(()),
    }
}

/// Removes what a failed build left: its last layer and the untagged parents
/// only it used. Only an untagged layer (never the base it started from), and
/// without force, so a layer another image builds on (a cache hit of an
/// earlier build) stays; any refusal is left at that.
async fn remove_leftover(d: &Docker, layer: &str) {
    match d.image(layer).await {
        Ok(Some(img)) if img.repo_tags.as_ref().is_none_or(|t| t.is_empty()) => {}
        _ => return,
    }
    let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
        .force(false)
        .build();
    if let Ok(client) = d.client().await {
        let _ = client.remove_image(layer, Some(opts), None).await;
    }
}

/// Builds with BuildKit (`version=2`, a session of its own), so metadata lines
/// cost no container each and a stage may mount the context instead of copying
/// it. Engines that ignore the request's builder build classically; both
/// logs are read. On failure the error carries the last lines of the log.
pub(super) async fn build_image(
    d: &Docker,
    tag: &str,
    context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    options: BuildOptions,
    on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<String, EngineError> {
    let session = format!(
        "berth-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let opts = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .version(bollard::query_parameters::BuilderVersion::BuilderBuildKit)
        .session(&session)
        // BuildKit's `none`: no RUN step has a network.
        .networkmode(if options.offline { "none" } else { "default" })
        .build();
    let client = d.client().await?;
    let mut stream = client.build_image(opts, None, Some(bollard::body_try_stream(context)));
    let mut log = BuildLog::default();
    let mut id = None;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        if let Some(text) = info.stream {
            log.classic(&text, on_line);
        }
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            failure = Some(e);
            break;
        }
        match info.aux {
            Some(BuildInfoAux::Default(image)) => id = image.id.or(id),
            Some(BuildInfoAux::BuildKit(status)) => log.buildkit(status, on_line),
            None => {}
        }
        // The image is made and named: the session may linger, the build is done.
        if id.is_some() && log.tagged {
            break;
        }
    }
    let fail = |log: &BuildLog, message: String| EngineError::ImageBuild {
        tag: tag.to_string(),
        message: format!("{message}\nlast lines of the build log:\n{}", log.tail()),
    };
    if let Some(message) = failure {
        if let Some(layer) = &log.last_layer {
            remove_leftover(d, layer).await;
        }
        return Err(fail(&log, message));
    }
    match id {
        Some(id) => Ok(id),
        // Older engines report the ID only in the log; ask for the tag instead.
        None => d
            .image(tag)
            .await
            .map_err(|e| fail(&log, e.to_string()))?
            .and_then(|img| img.id)
            .ok_or_else(|| fail(&log, "the engine reported no image ID".into())),
    }
}

/// A build's log as it streams: the classic builder's lines, or BuildKit's
/// steps and their output.
#[derive(Default)]
struct BuildLog {
    lines: Vec<String>,
    /// BuildKit's steps already named in the log, by digest.
    named: std::collections::HashSet<String>,
    /// The last layer the classic builder committed (` ---> 1a2b3c4d5e6f`): a
    /// failed build leaves it and its parents behind, untagged and unlabelled.
    last_layer: Option<String>,
    /// The tag was given (the last thing either builder reports).
    tagged: bool,
}

impl BuildLog {
    fn push(&mut self, line: &str, on_line: &mut (dyn for<'l> FnMut(&'l str) + Send)) {
        let line = convert::strip_ansi(line);
        for line in line.lines().filter(|l| !l.trim().is_empty()) {
            on_line(line);
            self.lines.push(line.to_string());
        }
    }

    fn classic(&mut self, text: &str, on_line: &mut (dyn for<'l> FnMut(&'l str) + Send)) {
        for line in text.lines() {
            if let Some(layer) = line.trim().strip_prefix("---> ") {
                if layer.len() == 12 && layer.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.last_layer = Some(layer.to_string());
                }
            }
            self.tagged |= line.starts_with("Successfully tagged ");
        }
        self.push(text, on_line);
    }

    fn buildkit(
        &mut self,
        status: bollard::moby::buildkit::v1::StatusResponse,
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) {
        for v in &status.vertexes {
            if v.started.is_some() && self.named.insert(v.digest.clone()) {
                self.push(&v.name, on_line);
            }
            if !v.error.is_empty() {
                self.push(&format!("{}: {}", v.name, v.error), on_line);
            }
            if let (Some(start), Some(end)) = (&v.started, &v.completed) {
                // `--verbose` says where a build's time went, step by step.
                let nanos = (end.seconds - start.seconds) * 1_000_000_000
                    + i64::from(end.nanos - start.nanos);
                tracing::debug!(step = %v.name, cached = v.cached, ms = nanos / 1_000_000, "build step done");
            }
            self.tagged |= v.name.starts_with("naming to ") && v.completed.is_some();
        }
        for l in &status.logs {
            self.push(&String::from_utf8_lossy(&l.msg), on_line);
        }
    }

    fn tail(&self) -> String {
        self.lines[self.lines.len().saturating_sub(15)..].join("\n")
    }
}

/// The most a directory read out of an image may hold.
const IMAGE_FILES_LIMIT: u64 = 1 << 30;

/// The regular files directly in `dir` of image `reference`, read through a
/// container created from it (never started, with no network) that is
/// removed afterwards. Links, devices and subdirectories are left out.
pub(super) async fn image_files(
    d: &Docker,
    reference: &str,
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
    let client = d.client().await?;
    let fail = |message: String| EngineError::ImageRead {
        reference: reference.to_string(),
        dir: dir.to_string(),
        message,
    };
    let body = bollard::models::ContainerCreateBody {
        image: Some(reference.to_string()),
        cmd: Some(vec!["true".into()]),
        network_disabled: Some(true),
        ..Default::default()
    };
    let id = client
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(|e| fail(e.to_string()))?
        .id;
    let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
        .path(dir)
        .build();
    let mut stream = client.download_from_container(&id, Some(opts));
    let mut tarball = Vec::new();
    let mut read = Ok(());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) if (tarball.len() + bytes.len()) as u64 <= IMAGE_FILES_LIMIT => {
                tarball.extend_from_slice(&bytes)
            }
            Ok(_) => {
                read = Err(fail("it holds over 1 GiB".into()));
                break;
            }
            Err(e) => {
                read = Err(fail(e.to_string()));
                break;
            }
        }
    }
    let removed = client
        .remove_container(
            &id,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
        )
        .await;
    read?;
    removed.map_err(|e| fail(e.to_string()))?;
    convert::top_files(&tarball).map_err(fail)
}

/// What an image is made of, read from its inspection as the engine wrote it.
pub(super) async fn image_parts(
    d: &Docker,
    reference: &str,
) -> Result<Option<crate::core::assemble::Parent>, EngineError> {
    let Some(image) = d.image(reference).await? else {
        return Ok(None);
    };
    let v = serde_json::to_value(&image).unwrap_or_default();
    let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
    Ok(Some(crate::core::assemble::Parent {
        config: v["Config"].clone(),
        architecture: text("Architecture"),
        os: text("Os"),
        created: text("Created"),
        layers: image.root_fs.and_then(|r| r.layers).unwrap_or_default(),
    }))
}

/// `POST /images/load`; an error, or a load that named no `tag`, fails it.
pub(super) async fn load_image(
    d: &Docker,
    tag: &str,
    tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
) -> Result<(), EngineError> {
    let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
        .quiet(true)
        .build();
    let mut stream = d
        .client()
        .await?
        .import_image(opts, bollard::body_try_stream(tarball), None);
    let fail = |message: String| EngineError::ImageLoad {
        tag: tag.to_string(),
        message,
    };
    let mut said = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| fail(e.to_string()))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(fail(e));
        }
        said.extend(info.stream);
    }
    let said = said.concat();
    if !said.contains(tag) {
        return Err(fail(format!("the engine loaded something else: {said}")));
    }
    Ok(())
}

pub(super) async fn import_rootfs(
    d: &Docker,
    repo: &str,
    tag: &str,
    changes: Vec<String>,
    tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
) -> Result<(), EngineError> {
    let opts = bollard::query_parameters::CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        changes,
        ..Default::default()
    };
    let mut stream =
        d.client()
            .await?
            .create_image(Some(opts), Some(bollard::body_try_stream(tarball)), None);
    let fail = |message: String| EngineError::ImageBuild {
        tag: format!("{repo}:{tag}"),
        message,
    };
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| fail(e.to_string()))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(fail(e));
        }
    }
    Ok(())
}
