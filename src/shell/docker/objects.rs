//! Networks and volumes looked up by name: whose they are, asked of the
//! engine right before one is created (it hands back an existing one as new);
//! a keep's data copied from one volume to another.

use std::collections::BTreeMap;

use bollard::query_parameters::CreateContainerOptionsBuilder;
use futures_util::StreamExt;

use super::client::{is_not_found, EngineError};
use super::convert;
use crate::shell::engine::Engine;

/// The labels of the volume (`volume`) or network named `name`; `None` when
/// there is none.
pub(super) async fn labels(
    client: &bollard::Docker,
    volume: bool,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, EngineError> {
    let inspect = |source| EngineError::ObjectInspect {
        what: if volume { "volume" } else { "network" },
        name: name.into(),
        source,
    };
    let labels = if volume {
        match client.inspect_volume(name).await {
            Ok(v) => v.labels,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(inspect(e)),
        }
    } else {
        match client
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(n) => n.labels.unwrap_or_default(),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(inspect(e)),
        }
    };
    Ok(Some(labels.into_iter().collect()))
}

/// Copies volume `from` into `to` with a one-off container of `image`
/// (owners and modes kept, the top directory's too), removed afterwards.
pub(super) async fn copy_volume(
    docker: &super::Docker,
    image: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    from: &str,
    to: &str,
) -> Result<(), EngineError> {
    let fail = |why: String| EngineError::VolumeCopy {
        from: from.to_string(),
        to: to.to_string(),
        why,
    };
    // A copy a kill interrupted left its container: it goes first.
    docker.remove_container(name, name).await?;
    let client = docker.client().await?;
    let body = convert::copy_request(image, labels, from, to);
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    let id = client
        .create_container(Some(opts), body)
        .await
        .map_err(|e| fail(e.to_string()))?
        .id;
    let ended = match client.start_container(&id, None).await {
        Err(e) => Err(e.to_string()),
        Ok(()) => match client.wait_container(&id, None).next().await {
            Some(Ok(r)) if r.status_code == 0 => Ok(()),
            Some(Ok(r)) => Err(format!("the copy exited with {}", r.status_code)),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the engine never said how the copy ended".into()),
        },
    };
    // What the copy said goes with its failure.
    let result = match ended {
        Ok(()) => Ok(()),
        Err(why) => {
            let logs = docker.logs_tail(&id, 5).await.unwrap_or_default();
            Err(fail(match logs.trim() {
                "" => why,
                said => format!("{why}: {said}"),
            }))
        }
    };
    docker.remove_container(&id, name).await?;
    result
}
