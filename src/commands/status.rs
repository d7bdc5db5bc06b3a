//! `berth status`: every owned container with its state, health, URL and usage.

use crate::cli::StatusArgs;

use crate::converge::{self, observe};
use crate::core::render::status_text;

use super::{CommandError, Output};

pub async fn run(out: &Output, args: StatusArgs) -> Result<u8, CommandError> {
    let (file, project) = (args.file.file.as_path(), args.project.project.as_deref());
    let json = args.json;
    let (project, spec) = converge::project_of(&out.settings, file, project)?;
    let ctx = out
        .connect_for(spec.as_ref().map(|s| s.engine).unwrap_or_default())
        .await?;
    let mut rows = observe::status_rows(ctx.engine.as_ref(), &project, true).await?;
    // A rollback hold is part of what runs and why, in `--json` too.
    for s in spec.iter().flat_map(|s| &s.services) {
        if let Some(file) = &s.file_active {
            for row in rows.iter_mut().filter(|r| r.service == s.name) {
                row.held_against = Some(file.to_string());
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows always serialize")
        );
    } else {
        print!("{}", status_text(&rows));
        // A rollback hold is part of what runs and why: say it, with how it ends.
        for note in spec.iter().flat_map(crate::core::render::hold_notes) {
            println!("{note}");
        }
    }
    Ok(0)
}
