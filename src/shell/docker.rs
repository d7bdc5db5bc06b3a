//! The Docker engine: the only module that imports bollard.
//!
//! It turns engine answers into the core's plain values ([`Observed`]) and carries
//! out single actions. It decides nothing: what to do comes from the plan. A 404
//! from the engine means "absent", never an error, where absence is a valid answer.

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount, MountType,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding as EnginePortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptions, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions, RenameContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use crate::core::desired::{
    DesiredContainer, DesiredNetwork, DesiredVolume, LABEL_CONFIG, LABEL_HASH,
};
use crate::core::plan::{Observed, ObservedContainer, ObservedObject, PortBinding};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine: {0}\n  help: start the Docker engine, or point DOCKER_HOST at it; `berth doctor` checks the set-up")]
    EngineConnect(#[source] BollardError),
    #[error("cannot list {what} on the engine: {source}")]
    ObjectList {
        what: &'static str,
        source: BollardError,
    },
    #[error("cannot create network {name}: {source}")]
    NetworkCreate { name: String, source: BollardError },
    #[error("cannot remove network {name}: {source}")]
    NetworkRemove { name: String, source: BollardError },
    #[error("cannot create volume {name}: {source}")]
    VolumeCreate { name: String, source: BollardError },
    #[error("cannot remove volume {name}: {source}")]
    VolumeRemove { name: String, source: BollardError },
    #[error("cannot create container {name}: {source}")]
    ContainerCreate { name: String, source: BollardError },
    #[error("cannot {verb} container {name}: {source}")]
    ContainerChange {
        verb: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("cannot read logs of {name}: {source}")]
    LogsRead { name: String, source: BollardError },
    #[error("cannot build image {tag}: {message}")]
    ImageBuild { tag: String, message: String },
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether the engine answered that the thing is already in the wanted state
/// (304 Not Modified: already started / already stopped).
fn is_not_modified(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

/// The CFS scheduling period (µs) CPU limits are expressed in.
const CPU_PERIOD: i64 = 100_000;

/// Build output carries terminal colour codes; logs and errors want plain text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

fn hashmap(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn btreemap(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

impl Engine {
    /// Connects with the usual defaults (DOCKER_HOST or the local socket) and agrees
    /// on an API version with the engine, so older engines work too.
    pub async fn connect() -> Result<Engine, EngineError> {
        let docker = Docker::connect_with_defaults().map_err(EngineError::EngineConnect)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(EngineError::EngineConnect)?;
        docker.ping().await.map_err(EngineError::EngineConnect)?;
        Ok(Engine { docker })
    }

    /// The engine's version and architecture, for `doctor` and the platform check.
    pub async fn version(&self) -> Result<(String, String), EngineError> {
        let v = self
            .docker
            .version()
            .await
            .map_err(EngineError::EngineConnect)?;
        Ok((v.version.unwrap_or_default(), v.arch.unwrap_or_default()))
    }

    /// Everything under the project's names: three list calls, whatever the number
    /// of services. Containers are listed by name prefix, not by label, so that a
    /// look-alike that is not ours is seen (and never touched).
    pub async fn observe(&self, project: &str) -> Result<Observed, EngineError> {
        let filters = HashMap::from([("name", vec![format!("^/{project}-")])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let (containers, networks, volumes) = tokio::join!(
            self.docker.list_containers(Some(opts)),
            self.docker.list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&HashMap::from([(
                        "name",
                        vec![format!("berth-{project}-")]
                    )]))
                    .build()
            )),
            self.docker.list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&HashMap::from([("name", vec![format!("{project}-")])]))
                    .build()
            )),
        );
        let containers = containers.map_err(|source| EngineError::ObjectList {
            what: "containers",
            source,
        })?;
        let networks = networks.map_err(|source| EngineError::ObjectList {
            what: "networks",
            source,
        })?;
        let volumes = volumes.map_err(|source| EngineError::ObjectList {
            what: "volumes",
            source,
        })?;

        let mut observed = Observed::default();
        for c in containers {
            let name = c
                .names
                .unwrap_or_default()
                .into_iter()
                .next()
                .unwrap_or_default();
            let name = name.trim_start_matches('/').to_string();
            // The engine's name filter is a substring match on the regex; keep exact prefixes.
            if !name.starts_with(&format!("{project}-")) {
                continue;
            }
            let state = c
                .state
                .map(|s| {
                    serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            observed.containers.push(ObservedContainer {
                id: c.id.unwrap_or_default(),
                name,
                labels: btreemap(c.labels),
                state,
                status: c.status.unwrap_or_default(),
                ports: c
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| PortBinding {
                        private: p.private_port,
                        public: p.public_port,
                        ip: p.ip,
                    })
                    .collect(),
            });
        }
        for n in networks {
            let name = n.name.unwrap_or_default();
            if name.starts_with(&format!("berth-{project}-")) {
                observed.networks.push(ObservedObject {
                    id: n.id.unwrap_or_default(),
                    name,
                    labels: btreemap(n.labels),
                });
            }
        }
        for v in volumes.volumes.unwrap_or_default() {
            if v.name.starts_with(&format!("{project}-")) {
                observed.volumes.push(ObservedObject {
                    id: v.name.clone(),
                    name: v.name,
                    labels: v.labels.into_iter().collect(),
                });
            }
        }
        observed.containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(observed)
    }

    /// Reference -> image ID for every local image tag (one list call). A reference
    /// without a tag means `:latest`; an image ID stands for itself.
    pub async fn image_ids(&self) -> Result<BTreeMap<String, String>, EngineError> {
        let images = self
            .docker
            .list_images(Some(ListImagesOptions {
                all: false,
                ..Default::default()
            }))
            .await
            .map_err(|source| EngineError::ObjectList {
                what: "images",
                source,
            })?;
        let mut ids = BTreeMap::new();
        for img in images {
            for tag in &img.repo_tags {
                if tag == "<none>:<none>" {
                    continue;
                }
                ids.insert(tag.clone(), img.id.clone());
                if let Some(short) = tag.strip_suffix(":latest") {
                    ids.insert(short.to_string(), img.id.clone());
                }
                for prefix in ["docker.io/library/", "docker.io/"] {
                    ids.insert(format!("{prefix}{tag}"), img.id.clone());
                }
            }
            ids.insert(img.id.clone(), img.id.clone());
        }
        Ok(ids)
    }

    pub async fn create_network(&self, n: &DesiredNetwork) -> Result<(), EngineError> {
        let req = NetworkCreateRequest {
            name: n.name.clone(),
            driver: Some("bridge".into()),
            labels: Some(hashmap(&n.labels)),
            ..Default::default()
        };
        self.docker
            .create_network(req)
            .await
            .map(|_| ())
            .map_err(|source| EngineError::NetworkCreate {
                name: n.name.clone(),
                source,
            })
    }

    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Err(e) if !is_not_found(&e) => Err(EngineError::NetworkRemove {
                name: name.into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    pub async fn create_volume(&self, v: &DesiredVolume) -> Result<(), EngineError> {
        let req = VolumeCreateRequest {
            name: Some(v.name.clone()),
            labels: Some(hashmap(&v.labels)),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|source| EngineError::VolumeCreate {
                name: v.name.clone(),
                source,
            })
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Err(e) if !is_not_found(&e) => Err(EngineError::VolumeRemove {
                name: name.into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Creates (not starts) a container exactly as `c.config` says, under `name`.
    /// `secrets` holds the secret values by secret name; they go into the
    /// environment and nowhere else.
    pub async fn create_container(
        &self,
        name: &str,
        c: &DesiredContainer,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let cfg = &c.config;
        let err = |source| EngineError::ContainerCreate {
            name: name.to_string(),
            source,
        };
        let mut labels = hashmap(&cfg.labels);
        labels.insert(LABEL_HASH.into(), c.hash.clone());
        labels.insert(LABEL_CONFIG.into(), cfg.canonical());
        if let Some(rev) = &c.revision {
            labels.insert(crate::core::desired::LABEL_REVISION.into(), rev.clone());
        }
        let env: Vec<String> = cfg
            .env
            .iter()
            .chain(secrets.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let port_key = format!("{}/tcp", cfg.port);
        let binding = EnginePortBinding {
            host_ip: Some("127.0.0.1".into()),
            // An empty host port asks the engine for a free one.
            host_port: Some(cfg.publish.map(|p| p.to_string()).unwrap_or_default()),
        };
        let mut mounts: Vec<Mount> = cfg
            .mounts
            .iter()
            .map(|(target, volume)| Mount {
                target: Some(target.clone()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            })
            .collect();
        // Assets: the cached file itself, read-only.
        mounts.extend(c.asset_sources.iter().map(|(target, host)| Mount {
            target: Some(target.clone()),
            source: Some(host.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }));
        // One GPU by its UUID, never "all of them" (count -1).
        let device_requests = cfg.gpu.as_ref().map(|uuid| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                device_ids: Some(vec![uuid.clone()]),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]
        });
        let mut networks = cfg.networks.iter();
        // Engines before API 1.44 accept one network at create; the rest are
        // connected before the first start.
        let first = networks.next();
        let endpoint = |aliases: &Vec<String>| EndpointSettings {
            aliases: if aliases.is_empty() {
                None
            } else {
                Some(aliases.clone())
            },
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(cfg.image.clone()),
            cmd: cfg.command.clone(),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(HostConfig {
                // As a CFS quota rather than NanoCpus: same enforcement, but the engine
                // accepts a class larger than the host (a 4-CPU class on 2 cores).
                cpu_period: Some(CPU_PERIOD),
                cpu_quota: Some(cfg.nano_cpus / 1_000_000_000 * CPU_PERIOD),
                memory: Some(cfg.memory),
                port_bindings: Some(HashMap::from([(port_key, Some(vec![binding]))])),
                mounts: Some(mounts),
                device_requests,
                init: Some(true),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                network_mode: first.map(|(n, _)| n.clone()),
                ..Default::default()
            }),
            networking_config: first.map(|(n, aliases)| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(n.clone(), endpoint(aliases))])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let id = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(err)?
            .id;
        for (net, aliases) in networks {
            let req = NetworkConnectRequest {
                container: id.clone(),
                endpoint_config: Some(endpoint(aliases)),
            };
            if let Err(e) = self.docker.connect_network(net, req).await {
                let _ = self.remove_container(&id, name).await;
                return Err(err(e));
            }
        }
        Ok(id)
    }

    pub async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        match self.docker.start_container(id, None).await {
            Err(e) if !is_not_modified(&e) => Err(EngineError::ContainerChange {
                verb: "start",
                name: name.into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    pub async fn stop_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let opts = StopContainerOptionsBuilder::default().t(10).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Err(e) if !is_not_modified(&e) && !is_not_found(&e) => {
                Err(EngineError::ContainerChange {
                    verb: "stop",
                    name: name.into(),
                    source: e,
                })
            }
            _ => Ok(()),
        }
    }

    pub async fn rename_container(
        &self,
        id: &str,
        name: &str,
        new_name: &str,
    ) -> Result<(), EngineError> {
        let opts = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.docker
            .rename_container(id, opts)
            .await
            .map_err(|source| EngineError::ContainerChange {
                verb: "rename",
                name: name.into(),
                source,
            })
    }

    /// Removes a container, stopping it first; absent already is fine.
    pub async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(opts)).await {
            Err(e) if !is_not_found(&e) => Err(EngineError::ContainerChange {
                verb: "remove",
                name: name.into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The container's state word and the host port its `private` TCP port is
    /// published on, if any; `None` when the container is gone.
    pub async fn state_and_port(&self, id: &str, private: u16) -> Option<(String, Option<u16>)> {
        let c = self.docker.inspect_container(id, None).await.ok()?;
        let state = c
            .state
            .and_then(|s| s.status)
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let port = c
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&format!("{private}/tcp")).cloned().flatten())
            .and_then(|b| {
                b.into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
            });
        Some((state, port))
    }

    /// The host port a running container is published on, if any.
    pub async fn published_port(&self, id: &str) -> Option<u16> {
        let c = self.docker.inspect_container(id, None).await.ok()?;
        if c.state.and_then(|s| s.running) != Some(true) {
            return None;
        }
        c.network_settings
            .and_then(|n| n.ports)?
            .into_values()
            .flatten()
            .flatten()
            .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
    }

    /// The last `n` lines a container wrote, stdout and stderr together.
    pub async fn logs_tail(&self, id: &str, n: usize) -> String {
        let mut out = String::new();
        let mut stream = std::pin::pin!(self.logs(id, false, Some(n)));
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk);
        }
        out
    }

    /// How many times the engine has restarted a container (its restart policy at
    /// work after crashes), and for how many seconds it has been up since its last
    /// start; `None` when the container is gone.
    pub async fn restarts(&self, id: &str) -> Option<(i64, u64)> {
        let c = self.docker.inspect_container(id, None).await.ok()?;
        let started = c
            .state
            .and_then(|s| s.started_at)
            .and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
        let up = started
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Some((c.restart_count.unwrap_or(0), up))
    }

    /// One stats sample: (CPU percent over the engine's sampling interval, memory
    /// used, memory limit). `None` when the container is not running.
    pub async fn stats(&self, id: &str) -> Option<(f64, u64, u64)> {
        let opts = StatsOptionsBuilder::default().stream(false).build();
        let s = self.docker.stats(id, Some(opts)).next().await?.ok()?;
        let cpu = s.cpu_stats?;
        let pre = s.precpu_stats?;
        let total = cpu.cpu_usage.as_ref()?.total_usage? as f64
            - pre.cpu_usage.as_ref()?.total_usage.unwrap_or(0) as f64;
        let system =
            cpu.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
        let cpus = cpu.online_cpus.unwrap_or(1) as f64;
        let percent = if system > 0.0 {
            total / system * cpus * 100.0
        } else {
            0.0
        };
        let mem = s.memory_stats?;
        Some((percent, mem.usage.unwrap_or(0), mem.limit.unwrap_or(0)))
    }

    /// The container's logs as a stream of text chunks.
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> impl Stream<Item = Result<String, EngineError>> + '_ {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into()))
            .build();
        let owned = name.to_string();
        self.docker.logs(name, Some(opts)).map(move |chunk| {
            chunk
                .map(|c| c.to_string())
                .map_err(|source| EngineError::LogsRead {
                    name: owned.clone(),
                    source,
                })
        })
    }

    /// Builds an image from a tar build context (Dockerfile at its root) with the
    /// engine's build endpoint, and returns the image ID. On failure the error
    /// carries the last lines of the build log.
    pub async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError> {
        let opts = BuildImageOptionsBuilder::default()
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(opts, None, Some(bollard::body_full(context.into())));
        let mut log: Vec<String> = Vec::new();
        let fail = |log: &[String], message: String| {
            let tail = log
                .iter()
                .rev()
                .take(15)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
            EngineError::ImageBuild {
                tag: tag.to_string(),
                message: format!("{message}\nlast lines of the build log:\n{tail}"),
            }
        };
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| fail(&log, e.to_string()))?;
            if let Some(text) = info.stream {
                let text = strip_ansi(&text);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    on_line(line);
                    log.push(line.to_string());
                }
            }
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                return Err(fail(&log, e));
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        match id {
            Some(id) => Ok(id),
            None => {
                // Older engines report the ID only in the log; ask for the tag instead.
                let img = self
                    .docker
                    .inspect_image(tag)
                    .await
                    .map_err(|e| fail(&log, e.to_string()))?;
                img.id
                    .ok_or_else(|| fail(&log, "the engine reported no image ID".into()))
            }
        }
    }

    /// Imports a root filesystem tarball (`docker import`) as `repo:tag`, with
    /// Dockerfile `changes` (LABEL, ENV, ...) applied. Returns when the engine is done.
    pub async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
        tarball: impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes,
            ..Default::default()
        };
        let mut stream =
            self.docker
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

    /// An image's inspection, or `None` when there is no such image (404).
    async fn image(
        &self,
        reference: &str,
    ) -> Result<Option<bollard::models::ImageInspect>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(img)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(EngineError::ObjectList {
                what: "images",
                source,
            }),
        }
    }

    /// The architecture an image is for (`amd64`, `arm64`), if the image exists.
    pub async fn image_arch(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self
            .image(reference)
            .await?
            .and_then(|img| img.architecture))
    }

    /// Container events of a project (die, stop, kill, destroy, oom, start, ...),
    /// as `(action, container name)`: a hint that the engine drifted. Events can
    /// be missed, so the caller lists again rather than trusting them.
    pub fn container_events(
        &self,
        project: &str,
    ) -> impl Stream<Item = Result<(String, String), EngineError>> + '_ {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("berth.project={project}")],
            ),
        ]);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker.events(Some(opts)).map(|e| {
            let e = e.map_err(|source| EngineError::ObjectList {
                what: "events",
                source,
            })?;
            let name = e
                .actor
                .and_then(|a| a.attributes)
                .and_then(|a| a.get("name").cloned())
                .unwrap_or_default();
            Ok((e.action.unwrap_or_default(), name))
        })
    }

    /// The ID of an image, or `None` when there is no such image.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self.image(reference).await?.and_then(|img| img.id))
    }

    /// The labels of an image, or `None` when there is no such image.
    pub async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        Ok(self
            .image(reference)
            .await?
            .map(|img| btreemap(img.config.and_then(|c| c.labels))))
    }
}
