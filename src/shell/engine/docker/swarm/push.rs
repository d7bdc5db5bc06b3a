//! Built images onto the swarm's registry: pushed from the manager, and named
//! by the digest the registry gave them, so every node pulls the same bytes.

use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;

use super::super::{Docker, Engine, EngineError};

/// Pushes `tag` (`HOST:PORT/repo:tag`, built on the manager) to its registry
/// and returns `HOST:PORT/repo@sha256:...`; `None` when there is no such image.
pub(super) async fn push(d: &Docker, tag: &str) -> Result<Option<String>, EngineError> {
    let fail = |message: String| EngineError::ImagePush {
        tag: tag.to_string(),
        message,
    };
    let (repo, version) = match tag.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (tag, "latest"),
    };
    if !repo
        .split_once('/')
        .is_some_and(|(host, _)| host.contains(':') || host.contains('.'))
    {
        return Err(fail(
            "the tag names no registry: set `registry: HOST:PORT` in the file".into(),
        ));
    }
    if d.image_id(tag).await?.is_none() {
        return Ok(None);
    }
    let client = d.client().await?;
    let mut stream = client.push_image(
        repo,
        Some(PushImageOptionsBuilder::default().tag(version).build()),
        None,
    );
    while let Some(item) = stream.next().await {
        item.map_err(|e| fail(e.to_string()))?;
    }
    let digests = client
        .inspect_image(tag)
        .await
        .map_err(|e| fail(e.to_string()))?
        .repo_digests
        .unwrap_or_default();
    digests
        .into_iter()
        .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
        .map(Some)
        .ok_or_else(|| fail("the registry gave the image no digest".into()))
}
