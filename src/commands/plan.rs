//! `berth plan`: what apply would do, and why, field by field.

use crate::cli::PlanArgs;

use crate::converge::{self, facts};
use crate::core::plan::Options;
use crate::core::render::{hold_notes, plan_text, Style};

use super::{CommandError, Output};

pub async fn run(out: &Output, args: PlanArgs) -> Result<u8, CommandError> {
    let PlanArgs {
        file,
        json,
        detailed_exitcode,
        out: saved,
        allow_empty,
    } = args;
    let file = file.file.as_path();
    let spec = converge::load(&out.settings, file)?;
    let ctx = out.connect_for(spec.engine).await?;
    let opts = Options {
        allow_empty,
        retry_failed: true,
    };
    let plan = facts::make_plan(&ctx, &spec, file, opts).await?;
    let rendered = tracing::info_span!(target: "berth::timing", "render").entered();
    let text = serde_json::to_string_pretty(&plan).expect("a plan always serializes");
    if json {
        println!("{text}");
    } else {
        print!("{}", plan_text(&plan, Style { color: out.color }));
        for n in hold_notes(&spec) {
            println!("{n}");
        }
    }
    drop(rendered);
    if let Some(path) = saved {
        std::fs::write(&path, text + "\n").map_err(|source| CommandError::PlanWrite {
            path: path.clone(),
            source,
        })?;
        if !json {
            println!(
                "Saved the plan to {}; `berth apply --plan {}` applies exactly it.",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    })
}
