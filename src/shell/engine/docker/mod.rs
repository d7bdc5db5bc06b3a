//! Single-host Docker: the first [`Engine`] implementation, and with its
//! submodules the only code that imports bollard.
//!
//! Engine calls live here; turning berth's values into API requests and API
//! replies into berth's values is pure and lives in [`convert`]. It decides
//! nothing: what to do comes from the plan. A 404 means "absent", never an error,
//! where absence is a valid answer.

mod client;
pub mod convert;
mod images;
mod objects;
mod ports;
pub mod swarm;

pub use swarm::Swarm;

use client::{is_not_found, is_not_modified, list_error, object_error};
pub use client::{Docker, EngineError};

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::NetworkConnectRequest;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptions, RenameContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

pub use super::{
    BuildOptions, ContainerEvent, ContainerOwner, ContainerState, Engine, EngineVersion, NodeInfo,
    Restarts, Run, SharedEngine, Usage,
};
use crate::core::desired::{
    DesiredContainer, DesiredNetwork, DesiredVolume, LABEL_HASH, LABEL_PROJECT,
};
use crate::core::plan::Observed;

impl Docker {
    /// Three list calls, whatever the number of services. Containers are listed by
    /// name prefix, not by label, so that a look-alike that is not ours is seen
    /// (and never touched).
    async fn observe_once(
        &self,
        client: &bollard::Docker,
        project: &str,
    ) -> Result<Observed, EngineError> {
        let filters = HashMap::from([("name", vec![format!("^/{project}-")])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        use tracing::Instrument;
        // `BERTH_TIMINGS` shows each list call's time (the engine's floor).
        let span = |kind: &str| tracing::info_span!(target: "berth::timing", "list", kind);
        let (containers, networks, volumes) = tokio::join!(
            client
                .list_containers(Some(opts))
                .instrument(span("containers")),
            client
                .list_networks(Some(
                    ListNetworksOptionsBuilder::default()
                        .filters(&HashMap::from([(
                            "name",
                            vec![format!("berth-{project}-")]
                        )]))
                        .build()
                ))
                .instrument(span("networks")),
            client
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&HashMap::from([("name", vec![format!("{project}-")])]))
                        .build()
                ))
                .instrument(span("volumes")),
        );
        let list = list_error;
        Ok(convert::observed(
            project,
            containers.map_err(list("containers"))?,
            networks.map_err(list("networks"))?,
            volumes
                .map_err(list("volumes"))?
                .volumes
                .unwrap_or_default(),
        ))
    }

    /// A container's log (or with `service`, a Swarm service's, its tasks'
    /// together), as text chunks.
    pub(super) fn log_stream(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        service: bool,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into()))
            .build();
        let owned = id.to_string();
        let this = self.clone();
        futures_util::stream::once(async move { this.client().await })
            .flat_map(move |client| match client {
                Err(e) => futures_util::stream::once(std::future::ready(Err(e))).boxed(),
                Ok(client) => {
                    let owned = owned.clone();
                    let chunks = match service {
                        false => client.logs(&owned.clone(), Some(opts.clone())).boxed(),
                        true => client
                            .service_logs(&owned.clone(), Some(opts.clone()))
                            .boxed(),
                    };
                    chunks
                        .map(move |chunk| {
                            chunk.map(|c| c.to_string()).map_err(|source| {
                                object_error("read logs of", "container", owned.clone(), source)
                            })
                        })
                        .boxed()
                }
            })
            .boxed()
    }

    /// Reference -> pinned `repo@sha256:…` reference, for a swarm.
    /// The engine's events under `filters`, each kept as `keep` says.
    pub(super) fn events(
        &self,
        filters: HashMap<String, Vec<String>>,
        keep: impl Fn(&bollard::models::EventMessage) -> Option<ContainerEvent>
            + Clone
            + Send
            + Sync
            + 'static,
    ) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let this = self.clone();
        futures_util::stream::once(async move { this.client().await })
            .flat_map(move |client| match client {
                Err(e) => futures_util::stream::once(std::future::ready(Err(e))).boxed(),
                Ok(client) => {
                    let keep = keep.clone();
                    client
                        .events(Some(opts.clone()))
                        .filter_map(move |e| {
                            std::future::ready(match e {
                                Err(source) => Some(Err(list_error("events")(source))),
                                Ok(e) => keep(&e).map(Ok),
                            })
                        })
                        .boxed()
                }
            })
            .boxed()
    }

    pub(super) async fn swarm_image_refs(&self) -> Result<BTreeMap<String, String>, EngineError> {
        Ok(convert::swarm_image_refs(images::list(self, None).await?))
    }
}

#[async_trait::async_trait]
impl Engine for Docker {
    fn kind(&self) -> crate::core::spec::EngineKind {
        crate::core::spec::EngineKind::Docker
    }
    async fn nodes(&self) -> Result<Option<Vec<NodeInfo>>, EngineError> {
        swarm::nodes(self).await
    }

    async fn registry_reachable(&self, registry: &str) -> Result<Result<(), String>, EngineError> {
        swarm::registry_reachable(self, registry).await
    }

    async fn version(&self) -> Result<EngineVersion, EngineError> {
        let v = self
            .client()
            .await?
            .version()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(EngineVersion {
            version: v.version.unwrap_or_default(),
            arch: v.arch.unwrap_or_default(),
        })
    }

    /// What the engine holds under the project's names ([`Docker::observe_once`]),
    /// within the engine timeout: an engine that hangs is named, not waited on
    /// for minutes. These are a command's first calls, with no ping before
    /// them ([`Docker::first_calls`]).
    async fn observe(&self, project: &str) -> Result<Observed, EngineError> {
        let client = self.client_unpinged()?;
        self.first_calls(client.clone(), self.observe_once(&client, project))
            .await
    }

    async fn observe_volumes(
        &self,
        project: &str,
    ) -> Result<Vec<crate::core::observed::ObservedObject>, EngineError> {
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&HashMap::from([("name", vec![format!("{project}-")])]))
            .build();
        let volumes = self
            .client()
            .await?
            .list_volumes(Some(opts))
            .await
            .map_err(list_error("volumes"))?;
        Ok(convert::volumes(
            project,
            volumes.volumes.unwrap_or_default(),
        ))
    }

    /// Within the engine timeout, as [`Docker::observe`]: the two are a plan's
    /// first calls.
    async fn image_ids(&self) -> Result<BTreeMap<String, String>, EngineError> {
        let client = self.client_unpinged()?;
        use tracing::Instrument;
        let span = tracing::info_span!(target: "berth::timing", "list", kind = "images");
        self.first_calls(client.clone(), async {
            let listed = images::list_with(&client, None).instrument(span).await?;
            Ok(convert::image_ids(listed))
        })
        .await
    }

    async fn port_holders(&self) -> Result<BTreeMap<u16, String>, EngineError> {
        images::port_holders(self).await
    }

    async fn project_images(
        &self,
        project: &str,
    ) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        images::project_images(self, project).await
    }

    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        images::remove_image(self, id).await
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self.image(reference).await?.and_then(|img| img.id))
    }

    async fn image_arch(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self
            .image(reference)
            .await?
            .and_then(|img| img.architecture))
    }

    async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        Ok(self
            .image(reference)
            .await?
            .map(|img| convert::btreemap(img.config.and_then(|c| c.labels))))
    }

    async fn create_network(&self, n: &DesiredNetwork) -> Result<(), EngineError> {
        objects::create_network(&self.client().await?, n).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.client().await?.remove_network(name).await {
            Err(e) if !is_not_found(&e) => Err(object_error("remove", "network", name, e)),
            _ => Ok(()),
        }
    }

    async fn object_labels(
        &self,
        volume: bool,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        objects::labels(&self.client().await?, volume, name).await
    }

    async fn create_volume(&self, v: &DesiredVolume) -> Result<(), EngineError> {
        self.client()
            .await?
            .create_volume(convert::volume_request(v))
            .await
            .map(|_| ())
            .map_err(|source| object_error("create", "volume", v.name.clone(), source))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .client()
            .await?
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Err(e) if !is_not_found(&e) => Err(object_error("remove", "volume", name, e)),
            _ => Ok(()),
        }
    }

    async fn create_container(
        &self,
        name: &str,
        c: &DesiredContainer,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let err = |source| object_error("create", "container", name, source);
        let host_port = match c.config.publish {
            Some(_) => None,
            None => ports::pick(ports::is_local(self.address()), c.host_port),
        };
        let req = convert::create_request(c, secrets, host_port);
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let id = self
            .client()
            .await?
            .create_container(Some(opts), req.body)
            .await
            .map_err(err)?
            .id;
        for (net, endpoint) in req.later_networks {
            let req = NetworkConnectRequest {
                container: id.clone(),
                endpoint_config: Some(endpoint),
            };
            if let Err(e) = self.client().await?.connect_network(&net, req).await {
                let _ = self.remove_container(&id, name).await;
                return Err(err(e));
            }
        }
        Ok(id)
    }

    async fn set_alias(&self, name: &str, alias: &str, present: bool) -> Result<bool, EngineError> {
        objects::set_alias(&self.client().await?, name, alias, present).await
    }

    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        match self.client().await?.start_container(id, None).await {
            Err(e) if !is_not_modified(&e) => Err(object_error("start", "container", name, e)),
            _ => Ok(()),
        }
    }

    async fn restart_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RestartContainerOptionsBuilder::default()
            .t(STOP_GRACE.as_secs() as i32)
            .build();
        self.client()
            .await?
            .restart_container(id, Some(opts))
            .await
            .map_err(|e| object_error("restart", "container", name, e))
    }
    async fn stop_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let opts = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE.as_secs() as i32)
            .build();
        match self.client().await?.stop_container(id, Some(opts)).await {
            Err(e) if !is_not_modified(&e) && !is_not_found(&e) => {
                Err(object_error("stop", "container", name, e))
            }
            _ => Ok(()),
        }
    }

    async fn rename_container(
        &self,
        id: &str,
        name: &str,
        new_name: &str,
    ) -> Result<(), EngineError> {
        let opts = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.client()
            .await?
            .rename_container(id, opts)
            .await
            .map_err(|source| object_error("rename", "container", name, source))
    }

    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.client().await?.remove_container(id, Some(opts)).await {
            Err(e) if !is_not_found(&e) => Err(object_error("remove", "container", name, e)),
            _ => Ok(()),
        }
    }

    async fn copy_volume(
        &self,
        image: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        from: &str,
        to: &str,
    ) -> Result<(), EngineError> {
        objects::copy_volume(self, image, name, labels, from, to).await
    }

    async fn container_state(
        &self,
        id: &str,
        private: u16,
    ) -> Result<Option<ContainerState>, EngineError> {
        Ok(self.inspect(id).await?.map(|c| {
            let (state, port) = convert::state_and_port(&c, private);
            let s = c.state.as_ref();
            // The engine keeps the code of the last run while the container is
            // down (or waiting to be restarted); once it runs again it says 0.
            let ended = s
                .and_then(|s| s.finished_at.as_deref())
                .is_some_and(|t| !t.is_empty() && !t.starts_with("0001-"));
            let down = matches!(state.as_str(), "exited" | "dead" | "restarting");
            let exit_code = s.and_then(|s| s.exit_code).filter(|_| ended && down);
            ContainerState {
                state,
                port,
                exit_code,
            }
        }))
    }

    async fn published_port(&self, id: &str) -> Result<Option<u16>, EngineError> {
        let Some(c) = self.inspect(id).await? else {
            return Ok(None);
        };
        if c.state.and_then(|s| s.running) != Some(true) {
            return Ok(None);
        }
        Ok(c.network_settings.and_then(|n| n.ports).and_then(|ports| {
            ports
                .into_values()
                .flatten()
                .flatten()
                .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
        }))
    }

    async fn container_owner(&self, id: &str) -> Result<Option<ContainerOwner>, EngineError> {
        Ok(self.inspect(id).await?.map(|c| ContainerOwner {
            name: c
                .name
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            labels: c
                .config
                .and_then(|c| c.labels)
                .map(|l| l.into_iter().collect())
                .unwrap_or_default(),
        }))
    }

    async fn restarts(&self, id: &str) -> Result<Option<Restarts>, EngineError> {
        let Some(c) = self.inspect(id).await? else {
            return Ok(None);
        };
        let started = c
            .state
            .and_then(|s| s.started_at)
            .and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
        Ok(Some(Restarts {
            count: c.restart_count.unwrap_or(0),
            started,
        }))
    }

    async fn run_of(&self, id: &str) -> Result<Option<Run>, EngineError> {
        Ok(self
            .inspect(id)
            .await?
            .map(|c| convert::run(c.state.unwrap_or_default())))
    }

    async fn exposed_ports(&self, id: &str) -> Result<Vec<u16>, EngineError> {
        let ports = self
            .inspect(id)
            .await?
            .and_then(|c| c.config?.exposed_ports);
        Ok(convert::tcp_ports(ports.unwrap_or_default()))
    }

    async fn usage(&self, id: &str) -> Result<Option<Usage>, EngineError> {
        let opts = StatsOptionsBuilder::default().stream(false).build();
        match self.client().await?.stats(id, Some(opts)).next().await {
            None => Ok(None),
            Some(Err(e)) if is_not_found(&e) => Ok(None),
            Some(Err(source)) => Err(object_error("inspect", "container stats of", id, source)),
            Some(Ok(s)) => Ok(convert::usage(&s)),
        }
    }

    fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        self.log_stream(id, follow, tail, false)
    }

    fn container_events(
        &self,
        project: &str,
    ) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{LABEL_PROJECT}={project}")],
            ),
        ]);
        self.events(filters, |e| {
            let attributes = e.actor.as_ref()?.attributes.as_ref()?;
            // A build's intermediate containers carry the image's labels, the
            // project's among them, but never a container hash: their
            // create/destroy is not drift.
            attributes.get(LABEL_HASH)?;
            Some(ContainerEvent {
                at_nanos: e.time_nano.unwrap_or(0),
                action: e.action.clone().unwrap_or_default(),
                container: attributes.get("name").cloned().unwrap_or_default(),
            })
        })
    }

    async fn image_parts(
        &self,
        reference: &str,
    ) -> Result<Option<crate::core::assemble::Parent>, EngineError> {
        images::image_parts(self, reference).await
    }
    async fn load_image(
        &self,
        tag: &str,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        images::load_image(self, tag, tarball).await
    }
    /// On failure the error carries the last lines of the build log.
    async fn build_image(
        &self,
        tag: &str,
        context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        options: BuildOptions,
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<String, EngineError> {
        images::build_image(self, tag, context, options, on_line).await
    }

    async fn image_files(
        &self,
        reference: &str,
        dir: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        images::image_files(self, reference, dir).await
    }

    async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        images::import_rootfs(self, repo, tag, changes, tarball).await
    }
}

/// How long a stop waits before the engine kills the process.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
