//! Rolling updates of a running version on a swarm that change nothing of its
//! configuration: its DNS alias, and a restart. Swarm fixes a task's aliases
//! when the task is created, so moving the service's name is a rolling update
//! of that version (start-first, as every berth update); the gateway's route
//! flips without it (the routes record, `core::active`).

use super::spec::service_name;
use super::{EngineError, Swarm};

/// Gives the version `name` the alias `alias` on its networks, or takes it
/// away, and waits for the rollout; `Ok(false)` when it already was so, or
/// there is no such version.
pub(super) async fn set(
    swarm: &Swarm,
    name: &str,
    alias: &str,
    present: bool,
) -> Result<bool, EngineError> {
    let id = service_name(name);
    let Some(service) = swarm.service(&id).await? else {
        return Ok(false);
    };
    let Some(mut spec) = service.spec else {
        return Ok(false);
    };
    let mut changed = false;
    let networks = spec
        .task_template
        .as_mut()
        .and_then(|t| t.networks.as_mut());
    for attachment in networks.into_iter().flatten() {
        let aliases = attachment.aliases.get_or_insert_with(Vec::new);
        let has = aliases.iter().any(|a| a == alias);
        if has == present {
            continue;
        }
        match present {
            true => aliases.push(alias.to_string()),
            false => aliases.retain(|a| a != alias),
        }
        changed = true;
    }
    if !changed {
        return Ok(false);
    }
    let version = service.version.and_then(|v| v.index).unwrap_or_default();
    // By its ID: the rollout is followed with a filter on it.
    let id = service.id.unwrap_or(id);
    roll(swarm, &id, name, spec, version).await?;
    Ok(true)
}

/// Replaces the version's tasks (start-first) by moving its force-update
/// counter, as `docker service update --force` does.
pub(super) async fn restart(swarm: &Swarm, name: &str) -> Result<(), EngineError> {
    let id = service_name(name);
    let Some(service) = swarm.service(&id).await? else {
        return Ok(());
    };
    let Some(mut spec) = service.spec else {
        return Ok(());
    };
    let version = service.version.and_then(|v| v.index).unwrap_or_default();
    let id = service.id.unwrap_or(id);
    if let Some(t) = spec.task_template.as_mut() {
        t.force_update = Some(t.force_update.unwrap_or(0) + 1);
    }
    roll(swarm, &id, name, spec, version).await
}

async fn roll(
    swarm: &Swarm,
    id: &str,
    name: &str,
    spec: bollard::models::ServiceSpec,
    version: u64,
) -> Result<(), EngineError> {
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1);
    swarm.update(id, name, spec, version).await?;
    swarm.await_rollout(id, name, replicas as u64).await
}
