//! `berth destroy`: remove everything the project owns; keeps survive unless
//! `--volumes`. Only objects labelled with the project are touched.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use crate::cli::DestroyArgs;
use crate::converge::{self, execute::PARALLEL};
use crate::core::desired::LABEL_PROJECT;
use crate::serve::gateway::Look;
use crate::shell::engine::{Engine, Fault};

use super::{apply, CommandError, Output};

pub async fn run(out: &Output, args: DestroyArgs) -> Result<u8, CommandError> {
    let (file, project) = (args.file.file.as_path(), args.project.project.as_deref());
    let (volumes, keep_images) = (args.volumes, args.keep_images);
    let (project, spec) = converge::project_of(&out.settings, file, project)?;
    let project = project.as_str();
    let ctx = out
        .connect_for(spec.map(|s| s.engine).unwrap_or_default())
        .await?;
    let engine = ctx.engine.as_ref();
    let _lock = apply::lock(&ctx, project, "destroy").await?;
    // A daemon that follows the project would create everything again.
    if let Some(holder) = crate::shell::lock::follower(&out.settings.state_dir, project) {
        crate::say::warn(&format!(
            "a `berth watch` daemon ({holder}) follows project {project}: it will create everything again at its next reconcile; stop it first (SIGTERM or Ctrl-C) to keep the project down"
        ));
    }
    let observed = engine.observe(project).await?;
    // Gateways stop routing to what goes and finish what they sent it first,
    // as a plan's removals do (one look at the registrations when none runs).
    let ports: Vec<u16> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .flat_map(|c| c.ports.iter().filter_map(|p| p.public))
        .collect();
    if !crate::shell::state::gateways(&ctx.settings.state_dir, project).is_empty() {
        let drains = ports
            .iter()
            .map(|&p| converge::gateways::drain(&ctx.settings, project, p, Look::All));
        futures_util::future::join_all(drains).await;
    }
    // The project's built images go as soon as no container of it uses them,
    // beside the containers' removals rather than after them all.
    let images = match keep_images {
        true => Vec::new(),
        false => engine.project_images(project).await?,
    };
    let mut users: BTreeMap<&str, usize> = images.iter().map(|(id, _)| (id.as_str(), 0)).collect();
    let ours: Vec<_> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .collect();
    let image_of: Vec<Option<String>> = ours
        .iter()
        .map(|c| c.recorded_config().map(|config| config.image))
        .collect();
    for id in image_of.iter().flatten() {
        if let Some(n) = users.get_mut(id.as_str()) {
            *n += 1;
        }
    }
    // A cluster's versions name their image by its registry digest, not the
    // ID here, and their tasks stop a while after the service is gone: there,
    // the images wait for the networks and volumes too, as they always did.
    let early = !engine.capabilities().rolls_out;
    let (free, freed) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (id, _) in users.iter().filter(|(_, n)| early && **n == 0) {
        let _ = free.send(id.to_string());
    }
    // Made before the first await, so that the future stays `Send` (see
    // `converge::execute`).
    let removals: Vec<_> = ours
        .iter()
        .zip(&image_of)
        .map(|(c, image)| async move { (c, image, engine.remove_container(&c.id, &c.name).await) })
        .collect();
    let containers = async {
        let mut removing = futures_util::stream::iter(removals).buffer_unordered(PARALLEL);
        let mut removed = 0;
        while let Some((c, image, r)) = removing.next().await {
            r?;
            removed += 1;
            println!("- removed   {}", c.subject(project));
            let Some(n) = image.as_deref().and_then(|i| users.get_mut(i)) else {
                continue;
            };
            *n -= 1;
            if early && *n == 0 {
                let _ = free.send(image.clone().unwrap_or_default());
            }
        }
        drop(free);
        Ok::<usize, CommandError>(removed)
    };
    let tags: BTreeMap<&str, &[String]> = images
        .iter()
        .map(|(id, tags)| (id.as_str(), tags.as_slice()))
        .collect();
    let freed =
        futures_util::stream::unfold(
            freed,
            |mut rx| async move { rx.recv().await.map(|id| (id, rx)) },
        );
    let images_gone = remove_images(engine, freed, &tags);
    let (removed, images) = futures_util::future::join(containers, images_gone).await;
    let (removed, images) = (removed?, images?);
    let owned = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
    };
    // A network or volume the engine refuses to remove (it can count an
    // endpoint after its container is gone) stops nothing else: the rest
    // goes, then the first refusal is the command's error.
    let mut refused = None;
    for n in observed.networks.iter().filter(|n| owned(&n.labels)) {
        match engine.remove_network(&n.name).await {
            Ok(()) => println!("- removed   network {}", n.name),
            Err(e) => {
                println!("! kept      network {}: {e}", n.name);
                refused.get_or_insert(e);
            }
        }
    }
    let mut kept = Vec::new();
    for v in observed.volumes.iter().filter(|v| owned(&v.labels)) {
        // The routes record says what routes where; with no container left,
        // nothing does.
        let record = crate::core::active::is_record(&v.labels);
        if !record && !volumes {
            kept.push(v.name.clone());
            continue;
        }
        match engine.remove_volume(&v.name).await {
            Ok(()) if record => {}
            Ok(()) => println!("- removed   volume {}", v.name),
            Err(e) => {
                println!("! kept      volume {}: {e}", v.name);
                refused.get_or_insert(e);
            }
        }
    }
    // A rollback hold outlives nothing it held.
    let dir = &out.settings.state_dir;
    let holds = crate::shell::state::holds(dir, project).map_err(converge::ConvergeError::from)?;
    if !holds.is_empty() {
        crate::shell::state::write_holds(dir, project, &Default::default())
            .map_err(converge::ConvergeError::from)?;
        println!("- ended     rollback holds");
    }
    let images = match early {
        true => images,
        false => {
            // Collected first: a closure over the borrowed map would keep the
            // command's future from being `Send` (see `converge::execute`).
            let all: Vec<String> = tags.keys().map(|id| id.to_string()).collect();
            remove_images(engine, futures_util::stream::iter(all), &tags).await?
        }
    };
    if let Some(e) = refused {
        return Err(e.into());
    }
    println!("Destroyed project `{project}`: {removed} containers and {images} images removed.");
    if !kept.is_empty() {
        println!(
            "Kept {} volume(s) ({}); `berth destroy --volumes` removes them.",
            kept.len(),
            kept.join(", ")
        );
    }
    Ok(0)
}

/// Removes each image as `freed` hands it over (4 at once; the images berth
/// built for the project, as `compose down --rmi local` would; the local
/// bases are shared and stay). One another image is built on is refused until
/// that one is gone: those are removed again at the end, one at a time.
async fn remove_images(
    engine: &dyn Engine,
    freed: impl futures_util::Stream<Item = String>,
    tags: &BTreeMap<&str, &[String]>,
) -> Result<usize, CommandError> {
    let said = |id: &str| {
        let name = tags
            .get(id)
            .and_then(|t| t.first())
            .map_or(id, String::as_str);
        println!("- removed   image {name}");
    };
    let mut later = Vec::new();
    let removing = freed
        .map(|id| async move { (engine.remove_image(&id).await, id) })
        .buffer_unordered(4);
    let mut removing = std::pin::pin!(removing);
    let mut removed = 0;
    while let Some((r, id)) = removing.next().await {
        match r {
            Ok(()) => {
                removed += 1;
                said(&id);
            }
            Err(e) if e.fault() == Fault::Conflict => later.push(id),
            Err(e) => return Err(e.into()),
        }
    }
    for id in later {
        engine.remove_image(&id).await?;
        removed += 1;
        said(&id);
    }
    Ok(removed)
}
