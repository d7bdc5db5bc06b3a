//! What `doctor` asks of a swarm manager: its nodes, and whether it reaches
//! a registry.

use std::collections::BTreeMap;

use crate::shell::engine::docker::client::list_error;
use crate::shell::engine::docker::convert::btreemap;
use crate::shell::engine::docker::{Docker, EngineError, NodeInfo};

/// The swarm's nodes, when `d` is a manager.
pub(in crate::shell::engine::docker) async fn nodes(
    d: &Docker,
) -> Result<Option<Vec<NodeInfo>>, EngineError> {
    let client = d.client().await?;
    let info = client.info().await.map_err(|e| d.unreachable(e))?;
    let swarm = info.swarm.unwrap_or_default();
    if !swarm.control_available.unwrap_or(false) {
        return Ok(None);
    }
    let this = swarm.node_id.unwrap_or_default();
    let nodes = client
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(list_error("nodes"))?;
    let word = |v: Option<String>| v.unwrap_or_default();
    let text = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    let mut out: Vec<NodeInfo> = nodes
        .into_iter()
        .map(|n| {
            let spec = n.spec.unwrap_or_default();
            let desc = n.description.unwrap_or_default();
            let res = desc.resources.unwrap_or_default();
            let role = match (&n.manager_status, text(serde_json::to_value(spec.role))) {
                (Some(m), _) if m.leader == Some(true) => "manager (leader)".to_string(),
                (_, role) => role,
            };
            let generic = res.generic_resources.unwrap_or_default().into_iter().fold(
                BTreeMap::<String, i64>::new(),
                |mut all, g| {
                    // Discrete (`NVIDIA-GPU=2`) or one named unit each (`NVIDIA-GPU=<uuid>`).
                    if let Some(d) = g.discrete_resource_spec {
                        *all.entry(d.kind.unwrap_or_default()).or_default() += d.value.unwrap_or(0);
                    }
                    if let Some(n) = g.named_resource_spec {
                        *all.entry(n.kind.unwrap_or_default()).or_default() += 1;
                    }
                    all
                },
            );
            NodeInfo {
                this: n.id.as_deref() == Some(this.as_str()),
                id: word(n.id),
                hostname: word(desc.hostname),
                role,
                state: text(serde_json::to_value(n.status.and_then(|s| s.state))),
                availability: text(serde_json::to_value(spec.availability)),
                labels: btreemap(spec.labels),
                nano_cpus: res.nano_cpus.unwrap_or(0),
                memory_bytes: res.memory_bytes.unwrap_or(0),
                generic,
            }
        })
        .collect();
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(Some(out))
}

/// Asks the engine to look up an image that does not exist in `registry`: a
/// registry that answers says "not found", one that cannot be reached says why.
pub(in crate::shell::engine::docker) async fn registry_reachable(
    d: &Docker,
    registry: &str,
) -> Result<Result<(), String>, EngineError> {
    let probe = format!("{registry}/berth-doctor-probe:absent");
    match d.client().await?.inspect_registry_image(&probe, None).await {
        Ok(_) => Ok(Ok(())),
        Err(e) => {
            let said = e.to_string();
            let answered = ["not found", "unknown", "unauthorized", "denied", "manifest"]
                .iter()
                .any(|w| said.to_lowercase().contains(w));
            Ok(if answered { Ok(()) } else { Err(said) })
        }
    }
}
