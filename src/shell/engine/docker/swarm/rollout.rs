//! Following a version's rollout on a swarm: an update from the spec version
//! it was read at, the service looked up, its update state watched until it
//! ends (done, rolled back, paused, stuck), and its tasks' errors named.

use super::*;

impl Swarm {
    /// Updates service `id` (version `name`) to `spec`, from its spec version `version`.
    pub(super) async fn update(
        &self,
        id: &str,
        name: &str,
        spec: bollard::models::ServiceSpec,
        version: u64,
    ) -> Result<(), EngineError> {
        let opts = UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        self.docker
            .client()
            .await?
            .update_service(id, spec, opts, None)
            .await
            .map(|_| ())
            .map_err(|source| object_error("update", "service", name, source))
    }

    pub(super) async fn service(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::Service>, EngineError> {
        match self
            .docker
            .client()
            .await?
            .inspect_service(id, None::<InspectServiceOptions>)
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(object_error("inspect", "service", id, source)),
        }
    }

    /// Waits until the service's tasks run and a rollout (if any) ended: an
    /// error names the version when Swarm rolled the update back or paused it.
    pub(super) async fn await_rollout(
        &self,
        id: &str,
        name: &str,
        replicas: u64,
    ) -> Result<(), EngineError> {
        let started = tokio::time::Instant::now();
        let deadline = started + ROLLOUT_LIMIT;
        let mut steady: Option<tokio::time::Instant> = None;
        let fail = |message: String| EngineError::VersionRollout {
            name: name.to_string(),
            message,
        };
        loop {
            let service = self
                .service(id)
                .await?
                .ok_or_else(|| fail("the service went away during its rollout".into()))?;
            let status = service.update_status.as_ref();
            let state = status.and_then(|s| s.state);
            let said = status.and_then(|s| s.message.clone()).unwrap_or_default();
            match state {
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
                | Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
                    return Err(fail(format!(
                        "Swarm rolled the update back: its new tasks failed ({said}); the previous configuration keeps running\n  help: `docker service ps {} --no-trunc` shows why the new tasks failed",
                        service_name(name)
                    )))
                }
                Some(ServiceUpdateStatusStateEnum::PAUSED) => {
                    return Err(fail(format!("Swarm paused the update: {said}")))
                }
                Some(ServiceUpdateStatusStateEnum::UPDATING) => {}
                Some(ServiceUpdateStatusStateEnum::COMPLETED) => {
                    // Swarm watched the new tasks itself.
                    if self.running_tasks(id).await? >= replicas {
                        return Ok(());
                    }
                }
                _ => {
                    // A new service: running for the monitor period without
                    // a break, as Swarm judges an update (a task that starts
                    // and exits is not a running service).
                    let running = self.running_tasks(id).await?;
                    if running >= replicas {
                        let since = *steady.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= MONITOR {
                            return Ok(());
                        }
                    } else {
                        steady = None;
                    }
                    // Tasks Swarm cannot place or start say why; after a grace
                    // period that is the answer, not a five-minute wait.
                    if started.elapsed() >= STUCK_AFTER {
                        if let Some(why) = self.task_error(id).await? {
                            return Err(fail(format!(
                                "{running} of {replicas} task(s) run; Swarm says: {why}\n  help: `docker service ps {} --no-trunc` shows every task",
                                service_name(name)
                            )));
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(format!(
                    "the rollout did not end within {} s",
                    ROLLOUT_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The newest error among the service's tasks (`no suitable node`, a
    /// rejected limit, a failed start), if any.
    pub(super) async fn task_error(&self, id: &str) -> Result<Option<String>, EngineError> {
        let tasks = tasks::tasks(&self.docker, "service", id).await?;
        Ok(tasks
            .into_iter()
            .filter_map(|t| {
                let status = t.status?;
                let said = status.err.filter(|e| !e.is_empty())?;
                Some((
                    status.timestamp.map(|t| t.to_string()).unwrap_or_default(),
                    said,
                ))
            })
            .max()
            .map(|(_, said)| said))
    }

    pub(super) async fn running_tasks(&self, id: &str) -> Result<u64, EngineError> {
        let list = self.services("id", id).await?;
        Ok(list
            .first()
            .and_then(|s| s.service_status.as_ref())
            .and_then(|s| s.running_tasks)
            .unwrap_or(0))
    }
}
