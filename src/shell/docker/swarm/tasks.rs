//! Where a swarm's running tasks answer: each task's port, published in host
//! mode on its node, at that node's address. The gateway routes there.

use std::collections::{BTreeMap, HashMap};

use bollard::models::TaskState;
use bollard::query_parameters::{ListNodesOptions, ListTasksOptionsBuilder};

use crate::core::observed::PortBinding;
use crate::shell::docker::{Docker, EngineError};

/// Service ID -> the bindings of its running tasks (node address, port), in
/// two calls whatever the number of services.
pub(super) async fn task_ports(
    d: &Docker,
) -> Result<HashMap<String, Vec<PortBinding>>, EngineError> {
    let client = d.client().await?;
    let list = |what: &'static str| move |source| EngineError::ObjectList { what, source };
    let addresses: BTreeMap<String, String> = client
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(list("nodes"))?
        .into_iter()
        .filter_map(|n| Some((n.id?, n.status?.addr?)))
        .collect();
    let filters = HashMap::from([("desired-state", vec!["running".to_string()])]);
    let tasks = client
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .map_err(list("tasks"))?;
    let mut out: HashMap<String, Vec<PortBinding>> = HashMap::new();
    for t in tasks {
        let status = t.status.unwrap_or_default();
        let (Some(service), Some(node)) = (t.service_id, t.node_id) else {
            continue;
        };
        if status.state != Some(TaskState::RUNNING) {
            continue;
        }
        let Some(ip) = addresses.get(&node) else {
            continue;
        };
        let ports = status.port_status.and_then(|p| p.ports).unwrap_or_default();
        let bindings = out.entry(service).or_default();
        for p in ports {
            let binding = PortBinding {
                private: p.target_port.unwrap_or(0) as u16,
                public: p.published_port.map(|p| p as u16),
                ip: Some(ip.clone()),
            };
            // IPv4 and IPv6 report the same port twice.
            if !bindings.contains(&binding) {
                bindings.push(binding);
            }
        }
    }
    Ok(out)
}
