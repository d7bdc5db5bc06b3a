//! Where a swarm's running tasks answer: each task's port, published in host
//! mode on its node, at that node's address. The gateway routes there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::TaskState;
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
};

use crate::core::observed::PortBinding;
use crate::shell::engine::docker::client::list_error;
use crate::shell::engine::docker::{ContainerEvent, Docker, EngineError};

/// Where a service's tasks run.
#[derive(Debug, Default)]
pub(super) struct Placed {
    /// Each running task's port on its node's address.
    pub ports: Vec<PortBinding>,
    /// The host names of the nodes its running tasks are on.
    pub nodes: BTreeSet<String>,
    /// One host name per running task.
    pub hosts: Vec<String>,
}

/// The tasks whose `key` (`service`, `desired-state`) is `value`.
pub(super) async fn tasks(
    d: &Docker,
    key: &str,
    value: &str,
) -> Result<Vec<bollard::models::Task>, EngineError> {
    let filters = HashMap::from([(key, vec![value.to_string()])]);
    d.client()
        .await?
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .map_err(|source| list_error("tasks")(source))
}

/// The services whose `key` (`id`, `name`: a prefix) matches, with their
/// task counts.
pub(super) async fn services(
    d: &Docker,
    key: &str,
    value: &str,
) -> Result<Vec<bollard::models::Service>, EngineError> {
    let filters = HashMap::from([(key, vec![value.to_string()])]);
    d.client()
        .await?
        .list_services(Some(
            ListServicesOptionsBuilder::default()
                .filters(&filters)
                .status(true)
                .build(),
        ))
        .await
        .map_err(|source| list_error("services")(source))
}

/// Service ID -> where its running tasks are, in two calls whatever the
/// number of services.
pub(super) async fn placed(d: &Docker) -> Result<HashMap<String, Placed>, EngineError> {
    let client = d.client().await?;
    let list = |what: &'static str| move |source| list_error(what)(source);
    let nodes: BTreeMap<String, (String, String)> = client
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(list("nodes"))?
        .into_iter()
        .filter_map(|n| {
            let host = n.description.and_then(|d| d.hostname).unwrap_or_default();
            Some((n.id?, (n.status?.addr?, host)))
        })
        .collect();
    let filters = HashMap::from([("desired-state", vec!["running".to_string()])]);
    let tasks = client
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .map_err(list("tasks"))?;
    let mut out: HashMap<String, Placed> = HashMap::new();
    for t in tasks {
        let status = t.status.unwrap_or_default();
        let (Some(service), Some(node)) = (t.service_id, t.node_id) else {
            continue;
        };
        if status.state != Some(TaskState::RUNNING) {
            continue;
        }
        let Some((ip, host)) = nodes.get(&node) else {
            continue;
        };
        let ports = status.port_status.and_then(|p| p.ports).unwrap_or_default();
        let placed = out.entry(service).or_default();
        placed.nodes.insert(host.clone());
        placed.hosts.push(host.clone());
        let bindings = &mut placed.ports;
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

/// Service name -> the nodes of its running tasks (sorted, one per task), for
/// the services whose names start with `prefix`: what the daemon compares to
/// see tasks move.
pub(super) async fn placement(
    d: &Docker,
    prefix: &str,
) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let services = services(d, "name", prefix).await?;
    let mut placed = placed(d).await?;
    Ok(services
        .into_iter()
        .filter_map(|s| {
            let name = s.spec?.name?;
            let mut hosts = placed.remove(&s.id?).map(|p| p.hosts).unwrap_or_default();
            hosts.sort();
            name.starts_with(prefix).then_some((name, hosts))
        })
        .collect())
}

/// Every two seconds, the services (named `prefix`...) whose tasks moved
/// since the last look, as events: `update` of `<service> tasks: a, b -> a, c`.
pub(super) fn moved(
    d: Docker,
    prefix: String,
) -> futures_util::stream::BoxStream<'static, Result<ContainerEvent, EngineError>> {
    use futures_util::StreamExt;
    let first: Option<BTreeMap<String, Vec<String>>> = None;
    futures_util::stream::unfold((d, prefix, first), |(d, prefix, mut last)| async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let now = match placement(&d, &prefix).await {
                Ok(now) => now,
                Err(e) => return Some((vec![Err(e)], (d, prefix, last))),
            };
            let events: Vec<_> = match &last {
                None => Vec::new(),
                Some(before) => now
                    .iter()
                    .filter(|(name, hosts)| before.get(*name).is_some_and(|b| b != *hosts))
                    .map(|(name, hosts)| {
                        Ok(ContainerEvent {
                            action: "update".into(),
                            container: format!(
                                "{name} tasks: {} -> {}",
                                before[name].join(", "),
                                hosts.join(", ")
                            ),
                            at_nanos: std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|t| t.as_nanos() as i64)
                                .unwrap_or(0),
                        })
                    })
                    .collect(),
            };
            last = Some(now);
            if !events.is_empty() {
                return Some((events, (d, prefix, last)));
            }
        }
    })
    .flat_map(futures_util::stream::iter)
    .boxed()
}
