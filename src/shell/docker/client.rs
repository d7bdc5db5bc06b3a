//! The engine's errors, and the connection to it: a bollard client made on
//! first use within the engine timeout, so a hung engine is a named error and
//! a daemon can listen before its engine answers.

use bollard::errors::Error as BollardError;

use super::SharedEngine;
use crate::shell::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot copy volume {from} to {to}: {why}\n  help: the data stays in {from}; fix the cause and apply again")]
    VolumeCopy {
        from: String,
        to: String,
        why: String,
    },
    #[error("cannot reach the Docker engine: {0}\n  help: start the Docker engine, or point DOCKER_HOST at it; `berth doctor` checks the set-up")]
    EngineConnect(#[source] BollardError),
    #[error("cannot reach the Docker engine at {address}: {source}\n  help: start the Docker engine, or point DOCKER_HOST at it; `berth doctor` checks the set-up")]
    EngineReach {
        address: String,
        source: BollardError,
    },
    #[error("the Docker engine at {address} did not answer within {}\n  help: check that it runs and answers (`docker info`); a slow one may be given longer with BERTH_ENGINE_TIMEOUT=30s", humantime::format_duration(*after))]
    EngineUnanswered {
        address: String,
        after: std::time::Duration,
    },
    #[error("cannot list {what} on the engine: {source}")]
    ObjectList {
        what: &'static str,
        source: BollardError,
    },
    #[error("cannot inspect {what} {name}: {source}")]
    ObjectInspect {
        what: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("cannot create network {name}: {source}")]
    NetworkCreate { name: String, source: BollardError },
    #[error("cannot remove network {name}: {source}")]
    NetworkRemove { name: String, source: BollardError },
    #[error("cannot remove image {name}: {source}")]
    ImageRemove { name: String, source: BollardError },
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
    #[error("cannot read {dir} of image {reference}: {message}")]
    ImageRead {
        reference: String,
        dir: String,
        message: String,
    },
    #[error("cannot load image {tag}: {message}")]
    ImageLoad { tag: String, message: String },
    #[error("cannot send the build context of {tag}: {message}\n  help: make the plan again; if a package keeps changing, stop what writes to it")]
    ContextSend { tag: String, message: String },
    #[error("the engine at {address} is not a swarm manager\n  help: point DOCKER_HOST at a manager of the swarm (`docker node ls` answers there), or remove `engine: swarm` from the file")]
    SwarmMissing { address: String },
    #[error("cannot {verb} service {name}: {source}")]
    ServiceChange {
        verb: &'static str,
        name: String,
        source: BollardError,
    },
    #[error("{name}: {message}")]
    ServiceRollout { name: String, message: String },
    #[error("cannot push image {tag} to its registry: {message}\n  help: check that the registry answers the manager (`berth doctor`), and that the manager trusts it (`insecure-registries` for a plain-HTTP one)")]
    ImagePush { tag: String, message: String },
    #[error("cannot create Swarm secret {name}: {message}")]
    SecretCreate { name: String, message: String },
    #[error("{what} is not available on engine: swarm yet")]
    SwarmUnsupported { what: &'static str },
    /// Engine-neutral: another object holds the name.
    #[error("a {what} named {name} exists already")]
    ObjectConflict { what: &'static str, name: String },
}

pub(super) fn is_not_found(e: &BollardError) -> bool {
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
pub(super) fn is_not_modified(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

/// Whether a call failed for want of an engine to talk to (no socket, a
/// refused connection), not because of what the engine said.
fn is_unreachable(e: &BollardError) -> bool {
    match e {
        BollardError::HyperLegacyError { err } => err.is_connect(),
        BollardError::SocketNotFoundError(_) | BollardError::IOError { .. } => true,
        _ => false,
    }
}

/// A single-host Docker engine, connected on first use (and again after a
/// failed try), so a daemon can listen before its engine answers.
#[derive(Clone)]
pub struct Docker {
    /// Made on first use (see [`Docker::client`]).
    client: std::sync::Arc<tokio::sync::OnceCell<bollard::Docker>>,
    address: String,
    timeout: std::time::Duration,
}

impl Docker {
    /// An engine that connects when first asked (see [`Docker::client`]).
    pub fn lazy(settings: &Settings) -> Docker {
        Docker {
            client: Default::default(),
            address: settings.engine_address.clone(),
            timeout: settings.engine_timeout,
        }
    }

    /// Connected now: a command fails fast when the engine does not answer.
    pub async fn connect(settings: &Settings) -> Result<Docker, EngineError> {
        let docker = Docker::lazy(settings);
        docker.client().await?;
        Ok(docker)
    }

    /// Connected on first use, behind the trait.
    pub fn shared_lazy(settings: &Settings) -> SharedEngine {
        std::sync::Arc::new(Docker::lazy(settings))
    }

    /// The client, connecting first if no try has succeeded yet: the engine at
    /// DOCKER_HOST (or the local socket), pinged within the engine timeout, so a
    /// socket that accepts and never answers is an error naming the engine's
    /// address, not a wait of minutes.
    ///
    /// No API version is agreed: bollard sends every request without one (it
    /// joins an absolute path over its `/vX.Y` base), so the engine answers in
    /// its own. Asking for it (`GET /version`) made Docker run `runc --version`
    /// and ask containerd, about 7 ms of a no-op plan, for a number nothing
    /// used. `tests/engine_connect.rs` holds bollard to that.
    /// The address the engine is reached at, as configured.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    pub(super) async fn client(&self) -> Result<bollard::Docker, EngineError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let client = bollard::Docker::connect_with_host(&self.address)
                    .map_err(|source| self.unreachable(source))?;
                self.within_timeout(async {
                    client
                        .ping()
                        .await
                        .map_err(|source| self.unreachable(source))
                })
                .await?;
                Ok(client)
            })
            .await?;
        Ok(client.clone())
    }

    /// The client for a command's first calls (the plan's lists), without the
    /// ping: they say by themselves whether the engine is there, one round
    /// trip sooner. [`Docker::first_calls`] names an engine they could not
    /// reach as the ping would have, and takes their answer as the ping's.
    pub(super) fn client_unpinged(&self) -> Result<bollard::Docker, EngineError> {
        match self.client.get() {
            Some(client) => Ok(client.clone()),
            None => bollard::Docker::connect_with_host(&self.address)
                .map_err(|source| self.unreachable(source)),
        }
    }

    /// `calls` made with `client` ([`Docker::client_unpinged`]), within the
    /// engine timeout: their failure to connect is the engine's not being
    /// there, and their answer makes the client the connected one.
    pub(super) async fn first_calls<T>(
        &self,
        client: bollard::Docker,
        calls: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        match self.within_timeout(calls).await {
            Ok(done) => {
                // Another first call may have set it already: either is good.
                let _ = self.client.set(client);
                Ok(done)
            }
            Err(EngineError::ObjectList { source, .. }) if is_unreachable(&source) => {
                Err(self.unreachable(source))
            }
            Err(e) => Err(e),
        }
    }

    fn unreachable(&self, source: BollardError) -> EngineError {
        EngineError::EngineReach {
            address: self.address.clone(),
            source,
        }
    }

    /// `work`, or the error that names an engine which did not answer within
    /// the engine timeout.
    pub(super) async fn within_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(EngineError::EngineUnanswered {
                    address: self.address.clone(),
                    after: self.timeout,
                })
            })
    }

    /// A container's inspection, or `None` when there is no such container (404).
    pub(super) async fn inspect(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, EngineError> {
        match self.client().await?.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(EngineError::ObjectInspect {
                what: "container",
                name: id.into(),
                source,
            }),
        }
    }

    /// An image's inspection, or `None` when there is no such image (404).
    pub(super) async fn image(
        &self,
        reference: &str,
    ) -> Result<Option<bollard::models::ImageInspect>, EngineError> {
        match self.client().await?.inspect_image(reference).await {
            Ok(img) => Ok(Some(img)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(EngineError::ObjectInspect {
                what: "image",
                name: reference.into(),
                source,
            }),
        }
    }
}
