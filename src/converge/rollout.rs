//! Rollouts: a container created, started and health-gated; a replace side by
//! side (or stop-first with a fixed port or keeps) with the gateways drained
//! before the old container stops.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::desired::DesiredContainer;
use crate::core::plan::short;
use crate::core::role::ContainerRole;
use crate::shell::engine::{ContainerState, Engine};
use crate::shell::probe;

use super::execute::StepError;
use super::{gateways, Context};

/// A container that never passed its health gate.
#[derive(Debug, thiserror::Error)]
#[error("{id} never became healthy: GET / must answer 2xx within {timeout_ms} ms, and the last try said: {why}\n  the container is kept stopped as {kept}; its last log lines:\n{logs}\n  help: fix the service (or its `health:` timeout) and apply again; what ran before keeps running")]
pub struct Unhealthy {
    pub id: String,
    pub why: String,
    pub timeout_ms: u64,
    pub kept: String,
    pub logs: String,
}

/// Creates and starts a container under `name` (its desired name, or a
/// successor's temporary one), then waits for it to pass its health gate. One
/// that does not start is removed again, so the next plan sees a clean "create";
/// one that starts but never answers is stopped and kept aside as
/// `<name>-failed-<id>` for inspection (the next plan removes it and tries again).
pub async fn create_and_start(
    ctx: &Context,
    name: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<String, StepError> {
    let engine = ctx.engine.as_ref();
    let id = engine.create_container(name, c, secrets).await?;
    if let Err(e) = engine.start_container(&id, name).await {
        let _ = engine.remove_container(&id, name).await;
        return Err(e.into());
    }
    if let Err(why) = wait_healthy(engine, &id, c).await {
        let logs = engine.logs_tail(&id, 10).await.unwrap_or_default();
        let _ = engine.stop_container(&id, name).await;
        let failed = ContainerRole::Failed.name(&c.name, short(&id));
        let _ = engine.rename_container(&id, name, &failed).await;
        return Err(Unhealthy {
            id: format!("{}@{}", c.service, c.version),
            why,
            timeout_ms: c.health.timeout_ms,
            kept: failed,
            logs: logs
                .trim_end()
                .lines()
                .map(|l| format!("    | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
        .into());
    }
    Ok(id)
}

/// Asks `GET /` on the container's published port every interval until a 2xx,
/// the timeout, or the container stopping. Err says what the last answer was.
async fn wait_healthy(engine: &dyn Engine, id: &str, c: &DesiredContainer) -> Result<(), String> {
    let h = c.health;
    if h.timeout_ms == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(h.timeout_ms);
    let mut last = "no answer yet".to_string();
    loop {
        match engine.container_state(id, c.config.port).await {
            Ok(None) => return Err("the container disappeared".into()),
            Err(e) => last = format!("the engine did not say: {e}"),
            Ok(Some(ContainerState { state, .. })) if state == "exited" || state == "dead" => {
                return Err(format!("the container {state} (last answer: {last})"));
            }
            Ok(Some(ContainerState { port: None, .. })) => {
                last = "the port is not published yet".into()
            }
            Ok(Some(ContainerState {
                port: Some(port), ..
            })) => match probe::get_root(port, Duration::from_secs(2)).await {
                Ok(status) if (200..300).contains(&status) => return Ok(()),
                Ok(status) => last = format!("GET / answered {status}"),
                Err(e) => last = format!("GET / failed: {e}"),
            },
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(h.interval_ms)).await;
    }
}

/// Replace under the same name. Without a fixed host port or keeps, the new
/// container starts beside the old one and must be healthy before it takes the
/// name; then every gateway switches to it and drains the old one, and only then
/// is the old one stopped. With a fixed port or keeps, the old one is stopped and
/// moved aside first, and put back if the new one fails. Killed midway, a renamed
/// container (`-old-`, `-next-`) is a leftover the next plan removes.
pub async fn replace(
    ctx: &Context,
    project: &str,
    old_id: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<(), StepError> {
    let engine = ctx.engine.as_ref();
    let aside = ContainerRole::Old.name(&c.name, short(old_id));
    if c.config.publish.is_none() && c.config.mounts.is_empty() {
        // Side by side: the successor starts under a temporary name while the old
        // container keeps serving, and takes over only once it is healthy. (A fixed
        // host port, or keeps two processes must not share, need stop-first.)
        let next = ContainerRole::Next.name(&c.name, &c.hash);
        let new_id = create_and_start(ctx, &next, c, secrets).await?;
        let old_port = engine
            .container_state(old_id, c.config.port)
            .await?
            .and_then(|s| s.port);
        // Both renames happen while the old one still serves: a gateway that looks
        // in between routes to it (`-old-`), never to nothing.
        engine.rename_container(old_id, &c.name, &aside).await?;
        engine.rename_container(&new_id, &next, &c.name).await?;
        if let Some(port) = old_port {
            gateways::drain(&ctx.settings, project, port).await;
        }
        engine.stop_container(old_id, &aside).await?;
        return Ok(engine.remove_container(old_id, &aside).await?);
    }
    // Stopped first: the engine cannot rename a container that is restarting.
    engine.stop_container(old_id, &c.name).await?;
    engine.rename_container(old_id, &c.name, &aside).await?;
    match create_and_start(ctx, &c.name, c, secrets).await {
        Ok(_) => Ok(engine.remove_container(old_id, &aside).await?),
        Err(e) => {
            let _ = engine.rename_container(old_id, &aside, &c.name).await;
            let _ = engine.start_container(old_id, &c.name).await;
            Err(e)
        }
    }
}
