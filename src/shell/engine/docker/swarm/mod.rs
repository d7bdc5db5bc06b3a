//! Docker Swarm through a manager: the second [`Engine`]. A service version is
//! one Swarm service, named and labelled like the single-host container, so the
//! plan compares the same hashes. Swarm rolls a change out itself (start-first,
//! rolled back when a new task fails) and berth waits for it to end; images,
//! networks and volumes are the manager's, as on one host.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::ServiceUpdateStatusStateEnum;
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptionsBuilder};
use futures_util::stream::BoxStream;

mod nodes;
mod push;
mod rolling;
mod rollout;
mod secrets;
mod spec;
mod tasks;

pub(super) use nodes::{nodes, registry_reachable};
use spec::known_name;
pub use spec::{service_name, service_spec};

use super::client::{is_not_found, object_error};
use super::convert::btreemap;
use super::{
    BuildOptions, ContainerEvent, ContainerOwner, ContainerState, Docker, Engine, EngineError,
    EngineVersion, NodeInfo, Restarts, SharedEngine, Usage,
};
use crate::core::desired::{DesiredContainer, DesiredNetwork, DesiredVolume};
use crate::core::observed::ObservedContainer;
use crate::core::plan::Observed;
use crate::shell::settings::Settings;

/// How long a new task must run before Swarm counts it as updated.
const MONITOR: Duration = Duration::from_secs(5);
/// How long tasks may stay unplaced or failing before berth reports why.
const STUCK_AFTER: Duration = Duration::from_secs(20);
/// The longest berth waits for a rollout to end.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(300);

/// What this engine cannot do yet, as the engine-neutral error.
fn unsupported(what: &'static str) -> EngineError {
    EngineError::EngineUnsupported {
        engine: "swarm",
        what,
    }
}

pub struct Swarm {
    docker: Docker,
    address: String,
}

impl Swarm {
    /// The manager at DOCKER_HOST, checked to be one now.
    pub async fn shared(settings: &Settings) -> Result<SharedEngine, EngineError> {
        let docker = Docker::connect(settings).await?;
        let info = docker
            .client()
            .await?
            .info()
            .await
            .map_err(|e| docker.unreachable(e))?;
        let manager = info
            .swarm
            .and_then(|s| s.control_available)
            .unwrap_or(false);
        if !manager {
            return Err(EngineError::EngineMismatch {
                address: settings.engine_address.clone(),
                wanted: "swarm manager",
                help: "point DOCKER_HOST at a manager of the swarm (`docker node ls` answers there), or remove `engine: swarm` from the file",
            });
        }
        Ok(std::sync::Arc::new(Swarm {
            docker,
            address: settings.engine_address.clone(),
        }))
    }

    async fn services(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::Service>, EngineError> {
        tasks::services(&self.docker, key, value).await
    }
}

#[async_trait::async_trait]
impl Engine for Swarm {
    fn kind(&self) -> crate::core::spec::EngineKind {
        crate::core::spec::EngineKind::Swarm
    }

    async fn deploy(
        &self,
        existing: Option<&str>,
        name: &str,
        c: &DesiredContainer,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let refs = secrets::ensure(&self.docker, c, secrets).await?;
        let spec = service_spec(name, c, refs);
        let client = self.docker.client().await?;
        let id = match existing {
            None => client
                .create_service(spec, None)
                .await
                .map_err(|source| object_error("create", "service", name, source))?
                .id
                .unwrap_or_default(),
            Some(id) => {
                let version = self
                    .service(id)
                    .await?
                    .and_then(|s| s.version)
                    .and_then(|v| v.index)
                    .unwrap_or_default();
                self.update(id, name, spec, version).await?;
                id.to_string()
            }
        };
        let rollout = self
            .await_rollout(&id, name, c.config.placement.replicas as u64)
            .await;
        // Whichever spec runs now (the new, or the old after a rollback),
        // the secrets no service names go.
        if let Some(project) = c.config.labels.get(crate::core::desired::LABEL_PROJECT) {
            secrets::prune(&self.docker, project).await?;
        }
        rollout.map(|()| id)
    }

    async fn version(&self) -> Result<EngineVersion, EngineError> {
        self.docker.version().await
    }
    async fn nodes(&self) -> Result<Option<Vec<NodeInfo>>, EngineError> {
        nodes(&self.docker).await
    }
    async fn registry_reachable(&self, registry: &str) -> Result<Result<(), String>, EngineError> {
        registry_reachable(&self.docker, registry).await
    }

    /// One list of services (with their task counts) besides the manager's
    /// networks and volumes; the tasks' containers are Swarm's, never listed.
    async fn observe(&self, project: &str) -> Result<Observed, EngineError> {
        let local = self.docker.observe(project).await?;
        let services = self.services("name", &format!("{project}-")).await?;
        let mut placed = tasks::placed(&self.docker).await?;
        let prefix = format!("{project}-");
        let containers = services
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let name = spec.name?;
                if !name.starts_with(&prefix) {
                    return None;
                }
                let labels = btreemap(spec.labels.clone());
                let name = known_name(name, &labels);
                let status = s.service_status.unwrap_or_default();
                let (running, desired) = (
                    status.running_tasks.unwrap_or(0),
                    status.desired_tasks.unwrap_or(0),
                );
                let id = s.id.unwrap_or_default();
                let here = placed.remove(&id).unwrap_or_default();
                let on = match here.nodes.is_empty() {
                    true => String::new(),
                    false => format!(" on {}", Vec::from_iter(here.nodes).join(", ")),
                };
                Some(ObservedContainer {
                    ports: here.ports,
                    id,
                    name,
                    labels: btreemap(spec.labels),
                    // Swarm keeps its tasks running: a service is never "exited".
                    state: "running".into(),
                    status: format!("{running}/{desired} tasks running{on}"),
                    // Tasks are reached on their nodes' published ports.
                    addresses: Vec::new(),
                })
            })
            .collect();
        Ok(Observed {
            containers,
            networks: local.networks,
            volumes: local.volumes,
        })
    }

    async fn image_ids(&self) -> Result<BTreeMap<String, String>, EngineError> {
        self.docker.swarm_image_refs().await
    }
    async fn port_holders(&self) -> Result<BTreeMap<u16, String>, EngineError> {
        Ok(BTreeMap::new())
    }
    async fn project_images(
        &self,
        project: &str,
    ) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        self.docker.project_images(project).await
    }
    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.docker.remove_image(id).await
    }
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.docker.image_id(reference).await
    }
    async fn image_arch(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.docker.image_arch(reference).await
    }
    async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        self.docker.image_labels(reference).await
    }

    /// Attachable overlay networks, so the services of a scope reach each
    /// other across nodes.
    async fn create_network(&self, n: &DesiredNetwork) -> Result<(), EngineError> {
        let mut req = super::convert::network_request(n);
        req.driver = Some("overlay".into());
        req.attachable = Some(true);
        self.docker
            .client()
            .await?
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|source| object_error("create", "network", n.name.clone(), source))
    }
    /// The tasks of removed services leave their networks a moment later, and
    /// until then the network stays: asked again until it is gone (30 s at most).
    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.docker.remove_network(name).await;
            let client = self.docker.client().await?;
            let still = match client
                .inspect_network(
                    name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
            {
                Ok(_) => true,
                Err(e) if is_not_found(&e) => false,
                Err(source) => return Err(object_error("inspect", "network", name, source)),
            };
            if !still {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    /// On the manager berth talks to, where the versions that keep data are
    /// pinned.
    async fn object_labels(
        &self,
        volume: bool,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        self.docker.object_labels(volume, name).await
    }
    async fn create_volume(&self, v: &DesiredVolume) -> Result<(), EngineError> {
        self.docker.create_volume(v).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.docker.remove_volume(name).await
    }

    async fn create_container(
        &self,
        name: &str,
        c: &DesiredContainer,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        self.deploy(None, name, c, secrets).await
    }
    /// A service runs as long as it exists.
    async fn set_alias(&self, name: &str, alias: &str, present: bool) -> Result<bool, EngineError> {
        rolling::set(self, name, alias, present).await
    }
    async fn start_container(&self, _id: &str, _name: &str) -> Result<(), EngineError> {
        Ok(())
    }
    async fn stop_container(&self, _id: &str, _name: &str) -> Result<(), EngineError> {
        Err(unsupported("stopping a service"))
    }
    async fn restart_container(&self, _id: &str, name: &str) -> Result<(), EngineError> {
        rolling::restart(self, name).await
    }
    async fn rename_container(&self, _: &str, _: &str, _: &str) -> Result<(), EngineError> {
        Err(unsupported("renaming a service"))
    }
    /// The service, then the secrets no service of the project names any more.
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let project = self
            .service(id)
            .await?
            .and_then(|s| s.spec?.labels?.remove(crate::core::desired::LABEL_PROJECT));
        match self.docker.client().await?.delete_service(id).await {
            Err(e) if !is_not_found(&e) => return Err(object_error("remove", "service", name, e)),
            _ => {}
        }
        match project {
            Some(project) => secrets::prune(&self.docker, &project).await,
            None => Ok(()),
        }
    }
    async fn copy_volume(
        &self,
        _: &str,
        _: &str,
        _: BTreeMap<String, String>,
        _: &str,
        _: &str,
    ) -> Result<(), EngineError> {
        Err(unsupported("keeps"))
    }

    async fn container_state(
        &self,
        id: &str,
        _private: u16,
    ) -> Result<Option<ContainerState>, EngineError> {
        Ok(self.service(id).await?.map(|_| ContainerState {
            state: "running".into(),
            port: None,
            exit_code: None,
        }))
    }
    async fn published_port(&self, _id: &str) -> Result<Option<u16>, EngineError> {
        Ok(None)
    }
    /// By ID, or by the version's berth name (`p-web-1.0.0`, which Swarm
    /// knows as `p-web-1-0-0`).
    async fn container_owner(&self, id: &str) -> Result<Option<ContainerOwner>, EngineError> {
        Ok(self.service(&spec::service_name(id)).await?.and_then(|s| {
            let spec = s.spec?;
            let labels = btreemap(spec.labels);
            Some(ContainerOwner {
                name: known_name(spec.name.unwrap_or_default(), &labels),
                labels,
            })
        }))
    }
    async fn restarts(&self, id: &str) -> Result<Option<Restarts>, EngineError> {
        Ok(self.service(id).await?.map(|_| Restarts::default()))
    }
    async fn judged_healthy(&self, id: &str) -> Result<Option<bool>, EngineError> {
        let list = self.services("id", id).await?;
        Ok(list
            .first()
            .and_then(|s| s.service_status.as_ref())
            .map(|s| {
                let (running, desired) =
                    (s.running_tasks.unwrap_or(0), s.desired_tasks.unwrap_or(0));
                desired > 0 && running >= desired
            }))
    }
    async fn usage(&self, _id: &str) -> Result<Option<Usage>, EngineError> {
        Ok(None)
    }
    /// Every task's output together, as Swarm gathers it from the nodes.
    fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        self.docker.log_stream(id, follow, tail, true)
    }
    /// A service of the project changed (by someone else, or by berth), a node
    /// did (drained, paused, down), or a service's tasks moved: Swarm moves
    /// tasks on its own, and the daemon looks again and says where they run.
    fn container_events(
        &self,
        project: &str,
    ) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let filters = HashMap::from([(
            "type".to_string(),
            vec!["service".to_string(), "node".to_string()],
        )]);
        let prefix = format!("{project}-");
        let moved = tasks::moved(self.docker.clone(), prefix.clone());
        let changed = self.docker.events(filters, move |e| {
            let attributes = e.actor.as_ref()?.attributes.clone().unwrap_or_default();
            let name = attributes.get("name").cloned().unwrap_or_default();
            let action = e.action.clone().unwrap_or_default();
            let container = match e.typ? {
                bollard::models::EventMessageTypeEnum::SERVICE if name.starts_with(&prefix) => name,
                bollard::models::EventMessageTypeEnum::NODE => {
                    let changes: Vec<String> = attributes
                        .iter()
                        .filter_map(|(k, v)| Some(format!("{}: {v}", k.strip_suffix(".new")?)))
                        .collect();
                    format!("node {name} ({})", changes.join(", "))
                }
                _ => return None,
            };
            Some(ContainerEvent {
                at_nanos: e.time_nano.unwrap_or(0),
                action,
                container,
            })
        });
        // Tasks that move (a drained or failed node) are no event of the
        // manager's: they are seen by looking.
        Box::pin(futures_util::stream::select(changed, moved))
    }

    /// Builds on the manager, as on one host; [`Engine::image_ref`] then
    /// pushes the image to the registry.
    async fn build_image(
        &self,
        tag: &str,
        context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        options: BuildOptions,
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<String, EngineError> {
        self.docker
            .build_image(tag, context, options, on_line)
            .await
    }

    async fn image_files(
        &self,
        reference: &str,
        dir: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        self.docker.image_files(reference, dir).await
    }
    async fn image_ref(&self, tag: &str) -> Result<Option<String>, EngineError> {
        push::push(&self.docker, tag).await
    }
    async fn image_parts(
        &self,
        reference: &str,
    ) -> Result<Option<crate::core::assemble::Parent>, EngineError> {
        self.docker.image_parts(reference).await
    }
    /// Loads on the manager, as builds run there.
    async fn load_image(
        &self,
        tag: &str,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        self.docker.load_image(tag, tarball).await
    }
    async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        self.docker.import_rootfs(repo, tag, changes, tarball).await
    }
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Swarm({})", self.address)
    }
}
