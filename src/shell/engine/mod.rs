//! The seam between the converge path and a container engine: what berth needs
//! of one, as a trait. Single-host Docker ([`docker::Docker`]) is the first
//! implementation; a Swarm one sits beside it. The converge path, the commands and
//! the daemon hold a [`SharedEngine`] and never name an implementation.
//!
//! Conventions every implementation keeps: an object that is absent (404) is
//! `Ok(None)` (or `Ok(())` for a removal), never an error; an engine that fails
//! or cannot be reached is an [`EngineError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::BoxStream;

use crate::core::desired::{DesiredContainer, DesiredNetwork, DesiredVolume};
use crate::core::plan::Observed;

pub mod docker;
pub mod error;
pub mod fake;

pub use error::{EngineError, Fault};

/// A container's name and labels, as the engine says now.
#[derive(Debug, Clone, Default)]
pub struct ContainerOwner {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What an engine says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// The engine's version, as `doctor` prints it.
    pub version: String,
    /// Its architecture (`amd64`, `arm64`): images built for it must match.
    pub arch: String,
}

/// A container's state word (running, exited, ...) and the host port its
/// service port is published on, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub state: String,
    pub port: Option<u16>,
    /// The exit code of the last run, once it has ended (also while the engine
    /// restarts it).
    pub exit_code: Option<i64>,
}

/// A job's run, as the engine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Run {
    /// `None` while it runs.
    pub exit_code: Option<i64>,
    pub secs: Option<f64>,
}

/// How often the engine has restarted a container and when it last started:
/// both change only with an engine event for it, so a daemon keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restarts {
    pub count: i64,
    pub started: Option<std::time::SystemTime>,
}

impl Restarts {
    /// Seconds since it last started (0 when unknown).
    pub fn up_secs(&self) -> u64 {
        self.started
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// One stats sample of a running container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}

/// An engine event about one of the project's containers: a hint that it drifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub action: String,
    pub container: String,
    /// When the engine says it happened, in nanoseconds since the Unix epoch;
    /// 0 when unknown.
    pub at_nanos: i64,
}

/// A node of a swarm, as `doctor` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub id: String,
    /// The node whose engine berth talks to (DOCKER_HOST).
    pub this: bool,
    pub hostname: String,
    /// `manager (leader)`, `manager` or `worker`.
    pub role: String,
    pub state: String,
    pub availability: String,
    pub labels: BTreeMap<String, String>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// Generic resources the node advertises (`NVIDIA-GPU` and its count).
    pub generic: BTreeMap<String, i64>,
}

pub type SharedEngine = Arc<dyn Engine>;

/// How an image is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Its steps reach no network: a build that runs code berth did not
    /// write (a source distribution's setup.py) reaches nothing.
    pub offline: bool,
}

/// The engine a file's `engine:` names, connected: the one place that maps a
/// kind to an implementation (a new engine is one more arm here and its
/// folder). One Docker engine connects on first use; a swarm's manager now
/// (checked to be one).
pub async fn for_kind(
    kind: crate::core::spec::EngineKind,
    settings: &super::settings::Settings,
) -> Result<SharedEngine, EngineError> {
    use crate::core::spec::EngineKind;
    match kind {
        EngineKind::Docker => Ok(host(settings)),
        EngineKind::Swarm => docker::Swarm::shared(settings).await,
    }
}

/// This host's engine (DOCKER_HOST, else the local socket), connected when
/// first needed: for what has no file to name an engine, and for the
/// long-running commands, which listen before the engine answers.
pub fn host(settings: &super::settings::Settings) -> SharedEngine {
    docker::Docker::shared_lazy(settings)
}

#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Which engine of a file's `engine:` this is.
    fn kind(&self) -> crate::core::spec::EngineKind;
    /// What the engine can do, as data: the converge path asks these, never
    /// which engine it is. An engine that `rolls_out` creates and replaces a
    /// version by [`Engine::deploy`]; berth never starts one on probation and
    /// renames it there.
    fn capabilities(&self) -> crate::core::spec::Capabilities {
        self.kind().capabilities()
    }
    /// Orchestrating engines: creates (`existing` None) or updates the version
    /// `name` to `c`, waits for the rollout to end and returns its ID; an error
    /// names the version when the engine rolled it back.
    async fn deploy(
        &self,
        _existing: Option<&str>,
        _name: &str,
        _c: &DesiredContainer,
        _secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        Err(EngineError::EngineUnsupported {
            engine: self.kind().name(),
            what: "deploy (the engine is not an orchestrator)",
        })
    }
    async fn version(&self) -> Result<EngineVersion, EngineError>;
    /// The swarm's nodes when this engine is a swarm manager; `None` otherwise.
    async fn nodes(&self) -> Result<Option<Vec<NodeInfo>>, EngineError> {
        Ok(None)
    }
    /// Whether the engine reaches registry `HOST:PORT`: `Err` says why not.
    async fn registry_reachable(&self, registry: &str) -> Result<Result<(), String>, EngineError> {
        let _ = registry;
        Ok(Err("this engine does not say".into()))
    }
    /// Everything under the project's names, ours or not, whatever the number of
    /// services in a constant number of calls.
    async fn observe(&self, project: &str) -> Result<Observed, EngineError>;
    /// The volumes of `observe` alone (the routes record is one): what a
    /// gateway reads again after a switch, which moves no container.
    async fn observe_volumes(
        &self,
        project: &str,
    ) -> Result<Vec<crate::core::observed::ObservedObject>, EngineError> {
        Ok(self.observe(project).await?.volumes)
    }
    /// Reference -> image ID for every local image tag.
    async fn image_ids(&self) -> Result<BTreeMap<String, String>, EngineError>;
    /// Host port -> the name of the running container that publishes it, over
    /// every container of the engine (whoever owns it).
    async fn port_holders(&self) -> Result<BTreeMap<u16, String>, EngineError>;
    /// The images built for `project` (labelled `berth.project`): (ID, tags).
    async fn project_images(
        &self,
        project: &str,
    ) -> Result<Vec<(String, Vec<String>)>, EngineError>;
    /// Removes an image and its untagged parents; absent is done.
    async fn remove_image(&self, id: &str) -> Result<(), EngineError>;
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError>;
    /// What a container of this engine runs the built image `tag` by: its ID on
    /// one host; on a swarm, its digest in the registry, pushed there first so
    /// that every node can pull it.
    async fn image_ref(&self, tag: &str) -> Result<Option<String>, EngineError> {
        self.image_id(tag).await
    }
    async fn image_arch(&self, reference: &str) -> Result<Option<String>, EngineError>;
    async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError>;

    /// The labels of the network or volume named `name` (`volume` says which);
    /// `None` when there is none. The executor asks it right before creating
    /// one, since the engine hands back an existing object of that name as if
    /// it had made it.
    async fn object_labels(
        &self,
        volume: bool,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError>;
    async fn create_network(&self, n: &DesiredNetwork) -> Result<(), EngineError>;
    async fn remove_network(&self, name: &str) -> Result<(), EngineError>;
    async fn create_volume(&self, v: &DesiredVolume) -> Result<(), EngineError>;
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;

    /// Creates (not starts) `c` under `name`; returns its ID.
    async fn create_container(
        &self,
        name: &str,
        c: &DesiredContainer,
        secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError>;
    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Gives the container (or version) `name` the DNS alias `alias` on its
    /// networks, or takes it away, without restarting it where the engine
    /// allows; `Ok(false)` when there was nothing to change or no such one.
    async fn set_alias(&self, name: &str, alias: &str, present: bool) -> Result<bool, EngineError>;
    async fn stop_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Stops and starts the container (a swarm: replaces the version's tasks,
    /// start-first), its configuration untouched.
    async fn restart_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    async fn rename_container(
        &self,
        id: &str,
        name: &str,
        new_name: &str,
    ) -> Result<(), EngineError>;
    /// Removes a container, stopping it first.
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Makes volume `to` hold exactly what volume `from` holds, by a one-shot
    /// container of `image` (a shell and cp) named `name`, labelled `labels`.
    async fn copy_volume(
        &self,
        image: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        from: &str,
        to: &str,
    ) -> Result<(), EngineError>;

    /// The state and published port of `private`/tcp; `None` when it is gone.
    async fn container_state(
        &self,
        id: &str,
        private: u16,
    ) -> Result<Option<ContainerState>, EngineError>;
    /// The host port a running container is published on.
    async fn published_port(&self, id: &str) -> Result<Option<u16>, EngineError>;
    /// The name and labels a container has now; `None` when it is gone.
    async fn container_owner(&self, id: &str) -> Result<Option<ContainerOwner>, EngineError>;
    async fn restarts(&self, id: &str) -> Result<Option<Restarts>, EngineError>;
    /// How a job's container ran: its exit code once it ended, and how long
    /// it ran (so far); `None` when it is gone.
    async fn run_of(&self, id: &str) -> Result<Option<Run>, EngineError> {
        let _ = id;
        Ok(None)
    }
    /// The TCP ports a container's image says it listens on (`EXPOSE`), for
    /// the words of a failed health gate; none where the engine cannot say.
    async fn exposed_ports(&self, id: &str) -> Result<Vec<u16>, EngineError> {
        let _ = id;
        Ok(Vec::new())
    }
    /// Whether the engine itself counts the version as up, for engines that
    /// check health themselves (Swarm: every task runs, past its health
    /// check); `None`: berth asks the service.
    async fn judged_healthy(&self, id: &str) -> Result<Option<bool>, EngineError> {
        let _ = id;
        Ok(None)
    }
    /// `None` when the container does not run.
    async fn usage(&self, id: &str) -> Result<Option<Usage>, EngineError>;
    /// The last `n` lines a container wrote, stdout and stderr together: its
    /// log stream, gathered.
    async fn logs_tail(&self, id: &str, n: usize) -> Result<String, EngineError> {
        use futures_util::StreamExt;
        let mut out = String::new();
        let mut stream = self.logs(id, false, Some(n));
        while let Some(chunk) = stream.next().await {
            out.push_str(&chunk?);
        }
        Ok(out)
    }
    fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<String, EngineError>>;
    /// Container events of the project; events can be missed, so callers list again.
    fn container_events(
        &self,
        project: &str,
    ) -> BoxStream<'static, Result<ContainerEvent, EngineError>>;

    /// Builds an image from a streamed tar build context; returns the image ID.
    async fn build_image(
        &self,
        tag: &str,
        context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        options: BuildOptions,
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<String, EngineError>;
    /// The regular files directly in directory `dir` of image `reference`
    /// (a wheel built there), read without starting anything.
    async fn image_files(
        &self,
        reference: &str,
        dir: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, EngineError>;
    /// What `reference` is made of, for an image berth assembles over it
    /// (`build::layer`); `None` when there is no such image.
    async fn image_parts(
        &self,
        reference: &str,
    ) -> Result<Option<crate::core::assemble::Parent>, EngineError>;
    /// Loads an image tarball (`docker load`) that names `tag`; it may leave out
    /// the layers the engine holds already.
    async fn load_image(
        &self,
        tag: &str,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError>;
    /// Imports a root filesystem tarball as `repo:tag` with Dockerfile `changes`.
    async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        changes: Vec<String>,
        tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError>;
}
