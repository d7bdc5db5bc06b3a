//! `berth destroy`: remove everything the project owns; keeps survive unless
//! `--volumes`. Only objects labelled with the project are touched.

use crate::cli::DestroyArgs;

use futures_util::StreamExt;

use crate::converge::{self, execute::PARALLEL};
use crate::core::desired::LABEL_PROJECT;

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
            .map(|&p| converge::gateways::drain(&ctx.settings, project, p));
        futures_util::future::join_all(drains).await;
    }
    // Made before the first await, so that the future stays `Send` (see
    // `converge::execute`).
    let removals: Vec<_> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .map(|c| async move { (c, engine.remove_container(&c.id, &c.name).await) })
        .collect();
    let mut removing = futures_util::stream::iter(removals).buffer_unordered(PARALLEL);
    let mut removed = 0;
    while let Some((c, r)) = removing.next().await {
        r?;
        removed += 1;
        println!("- removed   {}", c.subject(project));
    }
    drop(removing);
    let owned = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
    };
    for n in observed.networks.iter().filter(|n| owned(&n.labels)) {
        engine.remove_network(&n.name).await?;
        println!("- removed   network {}", n.name);
    }
    let mut kept = Vec::new();
    for v in observed.volumes.iter().filter(|v| owned(&v.labels)) {
        // The routes record says what routes where; with no container left,
        // nothing does.
        if crate::core::active::is_record(&v.labels) {
            engine.remove_volume(&v.name).await?;
        } else if volumes {
            engine.remove_volume(&v.name).await?;
            println!("- removed   volume {}", v.name);
        } else {
            kept.push(v.name.clone());
        }
    }
    // The images berth built for the project go too (as `compose down
    // --rmi local` would); the local bases are shared and stay.
    let mut images = 0;
    if !keep_images {
        for (id, tags) in engine.project_images(project).await? {
            engine.remove_image(&id).await?;
            images += 1;
            let name = tags.first().cloned().unwrap_or_else(|| id.clone());
            println!("- removed   image {name}");
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
