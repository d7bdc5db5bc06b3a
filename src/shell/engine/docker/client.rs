//! Docker's errors as the engine's, and the connection to it: a bollard client made on
//! first use within the engine timeout, so a hung engine is a named error and
//! a daemon can listen before its engine answers.

use bollard::errors::Error as BollardError;

use super::SharedEngine;
use crate::shell::settings::Settings;

pub use crate::shell::engine::error::EngineError;

/// The engine's name in berth's words about it.
pub(super) const ENGINE: &str = "Docker";

/// A failed call on one object, in engine-neutral terms: a 404 is absent, a
/// 409 a name held already, anything else a refusal with bollard's words as
/// the source.
pub(super) fn object_error(
    verb: &'static str,
    what: &'static str,
    name: impl AsRef<str>,
    e: BollardError,
) -> EngineError {
    let name = name.as_ref().to_string();
    match &e {
        BollardError::DockerResponseServerError {
            status_code: 404, ..
        } => EngineError::ObjectNotFound { verb, what, name },
        BollardError::DockerResponseServerError {
            status_code: 409, ..
        } if verb == "create" => EngineError::ObjectConflict { what, name },
        _ => EngineError::ObjectRefused {
            verb,
            what,
            name,
            source: Box::new(e),
        },
    }
}

/// A failed list call.
pub(super) fn list_error(what: &'static str) -> impl Fn(BollardError) -> EngineError {
    move |e| EngineError::ObjectList {
        what,
        source: Box::new(e),
    }
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
            Err(EngineError::ObjectList { source, .. })
                if source
                    .downcast_ref::<BollardError>()
                    .is_some_and(is_unreachable) =>
            {
                Err(EngineError::EngineUnreachable {
                    engine: ENGINE,
                    address: self.address.clone(),
                    source,
                })
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn unreachable(&self, source: BollardError) -> EngineError {
        EngineError::EngineUnreachable {
            engine: ENGINE,
            address: self.address.clone(),
            source: Box::new(source),
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
                    engine: ENGINE,
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
            Err(e) => Err(object_error("inspect", "container", id, e)),
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
            Err(e) => Err(object_error("inspect", "image", reference, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::engine::Fault;

    fn answered(status_code: u16) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: "the engine's own words".into(),
        }
    }

    #[test]
    fn an_engine_answer_becomes_the_engine_neutral_fault_with_its_words_kept() {
        let check = |verb, status, fault: Fault, text: &str| {
            let e = object_error(verb, "container", "p-web-1.0.0", answered(status));
            assert_eq!(e.fault(), fault, "{verb} answered {status}");
            assert_eq!(e.to_string(), text);
            assert!(!e.engine_away());
        };
        check(
            "start",
            404,
            Fault::Absent,
            "cannot start container p-web-1.0.0: the engine has no such container",
        );
        check(
            "create",
            409,
            Fault::Conflict,
            "a container named p-web-1.0.0 exists already",
        );
        check("rename", 409, Fault::Refused, "cannot rename container p-web-1.0.0: Docker responded with status code 409: the engine's own words");
        check("stop", 500, Fault::Refused, "cannot stop container p-web-1.0.0: Docker responded with status code 500: the engine's own words");
        let e = list_error("containers")(answered(500));
        assert_eq!(e.fault(), Fault::Refused);
        let source = std::error::Error::source(&e).expect("the engine's error is the source");
        assert!(source.downcast_ref::<BollardError>().is_some());
    }

    #[tokio::test]
    async fn an_engine_with_no_socket_is_away_and_named_by_its_address() {
        let env = [("DOCKER_HOST", "unix:///nonexistent/berth-test.sock")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = Settings::from_env(Some("/nonexistent".into()), env);
        let e = Docker::connect(&settings)
            .await
            .err()
            .expect("no engine there");
        assert_eq!(e.fault(), Fault::Unreachable);
        assert!(e.engine_away());
        assert!(
            e.to_string().starts_with(
                "cannot reach the Docker engine at unix:///nonexistent/berth-test.sock: "
            ),
            "{e}"
        );
    }
}
