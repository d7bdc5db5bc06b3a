//! The dashboard's "What would change": the plan of the file against what
//! runs, as `berth plan` computes it, drawn step by step with each changed
//! field's old and new value, and "Apply" for that very plan (its digest).

use maud::{html, Markup};

use crate::core::plan::{Plan, Reason, SENSITIVE};
use crate::core::render::{quote, reason_text, sign, summary_line};

use super::pages::{page, top, Mays};

/// The class a step's verb is coloured by.
fn tone(verb: &str) -> &'static str {
    match verb {
        "create" | "build" => "add",
        "replace" => "change",
        "start" | "restart" => "start",
        "route" => "route",
        _ => "remove",
    }
}

fn reason(r: &Reason) -> Markup {
    match r {
        Reason::Changed {
            field,
            old,
            new,
            sensitive,
        } => {
            let (old, new) = match sensitive {
                true => (
                    old.as_ref().map(|_| SENSITIVE.to_string()),
                    new.as_ref().map(|_| SENSITIVE.to_string()),
                ),
                false => (old.clone(), new.clone()),
            };
            html! {
                tr.field {
                    th scope="row" { code { (field) } }
                    td { del { (quote(&old)) } }
                    td { ins { (quote(&new)) } }
                }
            }
        }
        Reason::Note { .. } => html! {
            tr.note { td colspan="3" { (reason_text(r)) } }
        },
    }
}

pub fn plan(csrf: &str, may: &Mays, said: &Result<Plan, String>) -> Markup {
    page(
        "What would change",
        Some(csrf),
        html! {
            (top(csrf, None))
            main {
                h2 { "What the file would change" }
                p.hint { "The plan of the file against the engine now, as " code { "berth plan" } " computes it: each step, and each field with its live value and the file's. Nothing is done until you apply it." }
                @match said {
                    Ok(p) => (steps(p, may)),
                    Err(e) => div.error role="alert" { pre { (e) } },
                }
            }
        },
    )
}

fn steps(p: &Plan, may: &Mays) -> Markup {
    let summary = summary_line(p, false);
    html! {
        p #plan-summary { strong { (summary) } }
        @if p.is_empty() && p.failed.is_empty() {
            p #no-changes.ok { "No changes: the engine matches the file." }
        }
        ol #plan-steps {
            @for step in &p.steps {
                @let verb = step.action.verb();
                li class=(format!("step {}", tone(verb))) data-verb=(verb) {
                    div.step-head {
                        span.sign aria-hidden="true" { (sign(&step.action).0) }
                        " " strong { (verb) } " " code { (step.action.subject(&p.project)) }
                    }
                    table.fields {
                        thead { tr { th scope="col" { "Field" } th scope="col" { "Live" } th scope="col" { "File" } } }
                        tbody { @for r in &step.reasons { (reason(r)) } }
                    }
                }
            }
        }
        @for f in &p.failed { p.error { "! failed: " (f) } }
        @for w in &p.warnings { p.hint { "warning: " (w) } }
        @if may.deploy && !(p.is_empty() && p.failed.is_empty()) {
            form #apply method="post" action="apply" data-confirm=(format!("Apply this plan? {summary}")) {
                input type="hidden" name="csrf" value=(may.csrf);
                input type="hidden" name="digest" value=(p.digest());
                button #apply-button type="submit" { "Apply" }
                span.hint { " carries out exactly these steps; if the file or the engine moved since this page was drawn, nothing is done and you are told so." }
            }
        }
        details.plain {
            summary { "As " code { "berth plan" } " prints it" }
            pre #plan { (crate::core::render::plan_text(p, crate::core::render::Style { color: false })) }
        }
    }
}
