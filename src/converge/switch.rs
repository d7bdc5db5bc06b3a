//! A change of active version, carried out as a routing change: the routes
//! record says the new version is active (every gateway then routes the path
//! there), the new version answers to the service's name, the old version's
//! requests drain, and only then does it give up the name. No container is
//! stopped, started or replaced.

use std::collections::BTreeMap;

use tracing::Instrument;

use crate::core::active;
use crate::core::audit::owner_problem;
use crate::core::desired::{container_name, routed_apart};
use crate::core::plan::{ContainerRef, Switch};
use crate::shell::engine::Engine;

use super::StepError;
use super::{gateways, Context};
use crate::serve::gateway::Look;

/// Runs one `Route` step: `generation` is the record the plan read, `records`
/// the record volumes there were then.
pub async fn route(
    ctx: &Context,
    project: &str,
    generation: u64,
    active_now: &BTreeMap<String, String>,
    records: &[String],
    switches: &[Switch],
) -> Result<(), StepError> {
    let engine = ctx.engine.as_ref();
    let owners = switches.iter().map(|s| async move {
        let name = container_name(project, &s.service, &s.to);
        ensure_ours(engine, project, &name, &s.service, &s.to, true).await
    });
    let owners = futures_util::future::join_all(owners).await;
    let mut apart = true;
    for labels in owners {
        apart &= labels?.is_some_and(|l| routed_apart(&l, project));
    }
    let releasing: BTreeMap<String, Vec<String>> = switches
        .iter()
        .filter(|s| !s.release.is_empty())
        .map(|s| (s.service.clone(), s.release.clone()))
        .collect();
    // The record is the switch: gateways read it on their next refresh.
    let record = || async {
        write(
            ctx,
            project,
            generation + 1,
            active_now,
            &releasing,
            records,
        )
        .instrument(tracing::info_span!(target: "berth::timing", "record"))
        .await
    };
    // The engine moves a name by disconnecting the container from its scope
    // networks and connecting it again (a tenth of a second), and its
    // address there changes. A version on the serve network is routed to at
    // its address there, which the move leaves alone: the record goes first,
    // and the gateways route to it at once. One made before the serve network
    // takes the name first, while nothing routes to it yet. (The record
    // written first for such a version dropped requests the gateways sent it.)
    // Either way the versions that take a path answer to the service's name
    // before the old ones give it up, so the name never resolves to nothing.
    //
    // Every gateway routes the paths anew once told (after a switch on the
    // serve network, from the record alone: no address it routes to moved);
    // what they sent to a releasing version finishes before it gives up the
    // name (its address may change).
    let look = match apart {
        true => Look::Record,
        false => Look::All,
    };
    let drain = async {
        let mut ports = Vec::new();
        for s in switches {
            for version in &s.release {
                let name = container_name(project, &s.service, version);
                if let Some(port) = engine.published_port(&name).await? {
                    ports.push(port);
                }
            }
        }
        if ports.is_empty() {
            // Port 0 is nobody's: the gateways refresh and answer at once.
            ports.push(0);
        }
        let drains = ports
            .iter()
            .map(|&p| gateways::drain(&ctx.settings, project, p, look));
        let span = tracing::info_span!(target: "berth::timing", "drain");
        futures_util::future::join_all(drains)
            .instrument(span)
            .await;
        Ok::<(), StepError>(())
    };
    if apart {
        record().await?;
        super::rollout::crash_point("route-recorded");
        // The gateways are told at once; the name moves meanwhile.
        let (drained, taken) =
            futures_util::future::join(drain, take_names(engine, project, switches)).await;
        taken?;
        super::rollout::crash_point("aliased");
        drained?;
    } else {
        take_names(engine, project, switches).await?;
        super::rollout::crash_point("aliased");
        record().await?;
        super::rollout::crash_point("route-recorded");
        drain.await?;
    }

    let giving = switches.iter().flat_map(|s| {
        s.release.iter().map(move |version| async move {
            let name = container_name(project, &s.service, version);
            if ensure_ours(engine, project, &name, &s.service, version, false)
                .await?
                .is_some()
            {
                engine.set_alias(&name, &s.service, false).await?;
            }
            Ok::<(), StepError>(())
        })
    });
    first_error(futures_util::future::join_all(giving).await)?;
    if !releasing.is_empty() {
        let previous = [active::record_name(project, generation + 1)];
        write(
            ctx,
            project,
            generation + 2,
            active_now,
            &BTreeMap::new(),
            &previous,
        )
        .await?;
        super::rollout::crash_point("route-recorded");
    }
    // The releasing versions' new addresses, for the gateways.
    gateways::drain(&ctx.settings, project, 0, Look::All).await;
    Ok(())
}

/// The versions that take a path answer to the service's name, all at once.
async fn take_names(
    engine: &dyn Engine,
    project: &str,
    switches: &[Switch],
) -> Result<(), StepError> {
    let taking = switches.iter().map(|s| async move {
        let name = container_name(project, &s.service, &s.to);
        engine.set_alias(&name, &s.service, true).await?;
        Ok::<(), StepError>(())
    });
    let span = tracing::info_span!(target: "berth::timing", "alias");
    first_error(
        futures_util::future::join_all(taking)
            .instrument(span)
            .await,
    )
}

/// Writes the routes record `generation`, then removes the `older` ones.
async fn write(
    ctx: &Context,
    project: &str,
    generation: u64,
    active_now: &BTreeMap<String, String>,
    releasing: &BTreeMap<String, Vec<String>>,
    older: &[String],
) -> Result<(), StepError> {
    let engine = ctx.engine.as_ref();
    let record = active::record(project, generation, active_now, releasing);
    if let Some(labels) = engine.object_labels(true, &record.name).await? {
        if !crate::core::observed::owned(&labels, project) {
            return Err(StepError::ObjectForeign {
                what: "volume",
                name: record.name,
                project: project.into(),
            });
        }
        // Ours already (a switch killed after writing it): the newer one wins.
        engine.remove_volume(&record.name).await?;
    }
    engine.create_volume(&record).await?;
    for name in older.iter().filter(|n| **n != record.name) {
        engine.remove_volume(name).await?;
    }
    Ok(())
}

/// The labels of `name` when it is the project's container of
/// `service@version`: refused when it is someone else's; `Ok(None)` (nothing
/// to do) when it is gone and `required` is false.
async fn ensure_ours(
    engine: &dyn Engine,
    project: &str,
    name: &str,
    service: &str,
    version: &str,
    required: bool,
) -> Result<Option<BTreeMap<String, String>>, StepError> {
    let expected = ContainerRef {
        id: name.to_string(),
        name: name.to_string(),
        subject: format!("{project}/{service}@{version}"),
    };
    let foreign = |why: String| StepError::ContainerForeign {
        id: name.to_string(),
        why,
    };
    match engine.container_owner(name).await? {
        None if required => Err(foreign("it is gone".into())),
        None => Ok(None),
        Some(now) => match owner_problem(project, &expected, &now.name, &now.labels) {
            Some(why) => Err(foreign(why)),
            None => Ok(Some(now.labels)),
        },
    }
}

fn first_error(results: Vec<Result<(), StepError>>) -> Result<(), StepError> {
    results.into_iter().collect()
}
