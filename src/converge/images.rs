//! The project's built images after a converge: those its containers use and
//! each version's previous one stay, the rest goes (`core::retain` decides);
//! `berth gc` removes every image no container uses.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::desired::{container_name, LABEL_SERVICE, LABEL_VERSION};
use crate::core::plan::Observed;
use crate::core::retain::{self, ProjectImage};
use crate::shell::state;

use super::{Context, ConvergeError};

/// Image IDs of every container of the project, and `service@version` -> the
/// image of its canonical container.
fn used(project: &str, observed: &Observed) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut in_use = BTreeSet::new();
    let mut running = BTreeMap::new();
    for c in observed.containers.iter().filter(|c| c.owned_by(project)) {
        let Some(config) = c.recorded_config() else {
            continue;
        };
        let (service, version) = (c.label(LABEL_SERVICE), c.label(LABEL_VERSION));
        if c.name == container_name(project, service, version) {
            running.insert(format!("{service}@{version}"), config.image.clone());
        }
        in_use.insert(config.image);
    }
    (in_use, running)
}

async fn images(ctx: &Context, project: &str) -> Result<Vec<ProjectImage>, ConvergeError> {
    Ok(ctx
        .engine
        .project_images(project)
        .await?
        .into_iter()
        .map(|(id, tags)| ProjectImage { id, tags })
        .collect())
}

/// After a converge that changed something: advances the record of each
/// version's images and removes what neither a container nor the record keeps
/// (dependency caches stay). Said on stderr, never fatal: a leftover image is
/// only disk.
pub async fn prune(ctx: &Context, project: &str) {
    let result = async {
        let observed = ctx.engine.observe(project).await?;
        let (in_use, running) = used(project, &observed);
        let dir = &ctx.settings.state_dir;
        let record = retain::advance(&state::images(dir, project)?, &running);
        state::write_images(dir, project, &record)?;
        let all = images(ctx, project).await?;
        for image in retain::removable(&all, &in_use, &record, false) {
            ctx.engine.remove_image(&image.id).await?;
            crate::say::info(&format!(
                "  removed image {} (no container uses it, and it is no version's previous image)",
                image.name()
            ));
        }
        Ok::<_, ConvergeError>(())
    }
    .await;
    if let Err(e) = result {
        crate::say::warn(&format!("warning: unused images were not removed: {e}"));
    }
}

/// What `berth gc` removes: every image of the project no container uses,
/// previous images and dependency caches included. Removes them unless `dry_run`.
pub async fn collect(
    ctx: &Context,
    project: &str,
    dry_run: bool,
) -> Result<Vec<ProjectImage>, ConvergeError> {
    let observed = ctx.engine.observe(project).await?;
    let (in_use, running) = used(project, &observed);
    let all = images(ctx, project).await?;
    let gone: Vec<ProjectImage> = retain::removable(&all, &in_use, &Default::default(), true)
        .into_iter()
        .cloned()
        .collect();
    if !dry_run {
        for image in &gone {
            ctx.engine.remove_image(&image.id).await?;
        }
        // Only what runs is remembered now.
        let record = retain::advance(&Default::default(), &running);
        state::write_images(&ctx.settings.state_dir, project, &record)?;
    }
    Ok(gone)
}
