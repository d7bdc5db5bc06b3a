//! `berth gc`: remove the project's built images that no container uses, the
//! previous images kept for quick reverts and the dependency caches included.

use crate::cli::GcArgs;

use crate::converge;

use super::{apply, CommandError, Output};

pub async fn run(out: &Output, args: GcArgs) -> Result<u8, CommandError> {
    let (file, project) = (args.file.file.as_path(), args.project.project.as_deref());
    let dry_run = args.dry_run;
    let (project, spec) = converge::project_of(&out.settings, file, project)?;
    let ctx = out
        .connect_for(spec.map(|s| s.engine).unwrap_or_default())
        .await?;
    let _lock = apply::lock(&ctx, &project, "gc").await?;
    let gone = converge::images::collect(&ctx, &project, dry_run).await?;
    let verb = if dry_run {
        "would remove"
    } else {
        "- removed  "
    };
    for image in &gone {
        let what = if image.is_cache() {
            "a dependency cache; the next plan installs again"
        } else {
            "no container uses it"
        };
        println!("{verb} image {} ({what})", image.name());
    }
    match (gone.len(), dry_run) {
        (0, _) => println!("No unused images of project `{project}`."),
        (n, true) => println!("{n} image(s) of project `{project}` would be removed."),
        (n, false) => println!("Removed {n} image(s) of project `{project}`."),
    }
    Ok(0)
}
