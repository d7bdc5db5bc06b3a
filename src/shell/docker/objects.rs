//! Networks and volumes looked up by name: whose they are, asked of the
//! engine right before one is created (it hands back an existing one as new).

use std::collections::BTreeMap;

use super::client::{is_not_found, EngineError};

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
