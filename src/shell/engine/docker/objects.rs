//! Networks and volumes looked up by name: whose they are, asked of the
//! engine right before one is created (it hands back an existing one as new);
//! a keep's data copied from one volume to another.

use std::collections::BTreeMap;

use bollard::query_parameters::CreateContainerOptionsBuilder;
use futures_util::StreamExt;

use super::client::{is_not_found, object_error, EngineError};
use super::convert;
use crate::shell::engine::Engine;

/// Creates network `n`, and leaves one of that name. The engine does not
/// refuse a second network of a name (this API version sends no duplicate
/// check), so an apply killed while the engine was still creating one can
/// leave two, and every container that names it then fails as "ambiguous":
/// of the project's networks of that name, the first made stays and this one
/// goes if it came later.
pub(super) async fn create_network(
    client: &bollard::Docker,
    n: &crate::core::desired::DesiredNetwork,
) -> Result<(), EngineError> {
    let fail = |verb, source| object_error(verb, "network", n.name.clone(), source);
    let id = client
        .create_network(convert::network_request(n))
        .await
        .map_err(|e| fail("create", e))?
        .id;
    let opts = bollard::query_parameters::ListNetworksOptionsBuilder::default()
        .filters(&std::collections::HashMap::from([(
            "name",
            vec![n.name.clone()],
        )]))
        .build();
    let same = client
        .list_networks(Some(opts))
        .await
        .map_err(|e| fail("list", e))?;
    let project = n.labels.get(crate::core::desired::LABEL_PROJECT);
    let first = same
        .iter()
        .filter(|o| o.name.as_ref() == Some(&n.name))
        .filter(|o| {
            o.labels
                .as_ref()
                .and_then(|l| l.get(crate::core::desired::LABEL_PROJECT))
                == project
        })
        .filter_map(|o| Some((o.created?, o.id.clone()?)))
        .min();
    if let Some((_, first)) = first.filter(|(_, first)| *first != id) {
        tracing::warn!(network = %n.name, kept = %first, "a second network of this name was made; removing it");
        client
            .remove_network(&id)
            .await
            .map_err(|e| fail("remove", e))?;
    }
    Ok(())
}

/// The labels of the volume (`volume`) or network named `name`; `None` when
/// there is none.
pub(super) async fn labels(
    client: &bollard::Docker,
    volume: bool,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, EngineError> {
    let inspect = |source| {
        object_error(
            "inspect",
            if volume { "volume" } else { "network" },
            name,
            source,
        )
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

/// Gives container `name` the DNS alias `alias` on each network its recorded
/// configuration names (`berth.config`), or takes it away, by disconnecting
/// and connecting it again where its aliases differ: the container keeps
/// running, its ID and start time stay. A network it was left off (a switch
/// killed between the two calls) is joined again. `Ok(false)`: nothing to do,
/// or no such container.
pub(super) async fn set_alias(
    client: &bollard::Docker,
    name: &str,
    alias: &str,
    present: bool,
) -> Result<bool, EngineError> {
    let inspected = match client.inspect_container(name, None).await {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(source) => return Err(object_error("inspect", "container", name, source)),
    };
    let attached = inspected
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
    let project = labels
        .get(crate::core::desired::LABEL_PROJECT)
        .cloned()
        .unwrap_or_default();
    // Never on the serve network: a reconnect there would move the address
    // the gateways route to.
    let recorded: Vec<String> = labels
        .get(crate::core::desired::LABEL_CONFIG)
        .and_then(|t| serde_json::from_str::<crate::core::hash::ContainerConfig>(t).ok())
        .map(|c| c.networks.into_keys().collect::<Vec<_>>())
        .unwrap_or_else(|| attached.keys().cloned().collect())
        .into_iter()
        .filter(|net| crate::core::desired::carries_names(&project, net))
        .collect();
    let change = |source| object_error("move the network name of", "container", name, source);
    let mut changed = false;
    for net in recorded {
        let now = attached.get(&net);
        let has = now
            .and_then(|e| e.aliases.as_ref())
            .is_some_and(|a| a.iter().any(|a| a == alias));
        if now.is_some() && has == present {
            continue;
        }
        if now.is_some() {
            let req = bollard::models::NetworkDisconnectRequest {
                container: name.to_string(),
                force: Some(false),
            };
            client.disconnect_network(&net, req).await.map_err(change)?;
        }
        let req = bollard::models::NetworkConnectRequest {
            container: name.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: present.then(|| vec![alias.to_string()]),
                ..Default::default()
            }),
        };
        client.connect_network(&net, req).await.map_err(change)?;
        changed = true;
    }
    Ok(changed)
}
