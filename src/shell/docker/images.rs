//! Images on the engine: builds from a streamed context, root filesystem
//! imports, the project's images and their removal, and who holds a host port.

use std::collections::{BTreeMap, HashMap};

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
        .map_err(|source| EngineError::ObjectList {
            what: "containers",
            source,
        })?;
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
    d.client()
        .await?
        .list_images(Some(ListImagesOptions {
            all: false,
            filters: label.map(|l| HashMap::from([("label".to_string(), vec![l])])),
            ..Default::default()
        }))
        .await
        .map_err(|source| EngineError::ObjectList {
            what: "images",
            source,
        })
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
        Err(e) if !is_not_found(&e) => Err(EngineError::ImageRemove {
            name: id.into(),
            source: e,
        }),
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

/// On failure the error carries the last lines of the build log.
pub(super) async fn build_image(
    d: &Docker,
    tag: &str,
    context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
) -> Result<String, EngineError> {
    let opts = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let client = d.client().await?;
    let mut stream = client.build_image(opts, None, Some(bollard::body_try_stream(context)));
    let mut log: Vec<String> = Vec::new();
    let fail = |log: &[String], message: String| {
        let tail = log[log.len().saturating_sub(15)..].join("\n");
        EngineError::ImageBuild {
            tag: tag.to_string(),
            message: format!("{message}\nlast lines of the build log:\n{tail}"),
        }
    };
    let mut id = None;
    // The last layer the build committed (` ---> 1a2b3c4d5e6f`): a failed build
    // leaves it and its parents behind, untagged and unlabelled.
    let mut last_layer: Option<String> = None;
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
            let text = convert::strip_ansi(&text);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                on_line(line);
                log.push(line.to_string());
                if let Some(layer) = line.trim().strip_prefix("---> ") {
                    if layer.len() == 12 && layer.bytes().all(|b| b.is_ascii_hexdigit()) {
                        last_layer = Some(layer.to_string());
                    }
                }
            }
        }
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            failure = Some(e);
            break;
        }
        if let Some(aux) = info.aux.and_then(|a| a.id) {
            id = Some(aux);
        }
    }
    if let Some(message) = failure {
        if let Some(layer) = last_layer {
            remove_leftover(d, &layer).await;
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
