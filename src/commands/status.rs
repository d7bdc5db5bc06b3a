//! `berth status`: every owned container with its state, health, URL and usage.

use std::path::Path;

use crate::converge::{self, observe};
use crate::core::render::status_text;

use super::{CommandError, Output};

pub async fn run(out: &Output, file: &Path, json: bool) -> Result<u8, CommandError> {
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect().await?;
    let rows = observe::status_rows(ctx.engine.as_ref(), &spec.project, true).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows always serialize")
        );
    } else {
        print!("{}", status_text(&rows));
        // A rollback hold is part of what runs and why: say it, with how it ends.
        for note in crate::core::render::hold_notes(&spec) {
            println!("{note}");
        }
    }
    Ok(0)
}
