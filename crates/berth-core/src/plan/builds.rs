//! The build steps of a plan: each missing base once, and each image to
//! build once, however many versions share its content.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Plan, Reason, Step};
use crate::desired::{BuildFact, Desired};

/// `berth build`'s plan: the build steps for `target` (`SERVICE` or
/// `SERVICE@VERSION`; every version built from a package when `None`) and
/// nothing else, with the tags already built. `None` when nothing matches.
pub fn builds_only(
    project: &str,
    facts: &BTreeMap<String, BuildFact>,
    target: Option<&str>,
) -> Option<(Plan, Vec<String>)> {
    let matches = |id: &str| match target {
        None => true,
        Some(t) if t.contains('@') => id == t,
        Some(t) => id.split('@').next() == Some(t),
    };
    let mut steps = Vec::new();
    let mut cached = Vec::new();
    let mut bases = BTreeSet::new();
    let mut any = false;
    for (id, b) in facts.iter().filter(|(id, _)| matches(id)) {
        any = true;
        if b.base_missing && bases.insert(b.base.clone()) {
            steps.push(Step {
                action: Action::BuildBase {
                    runtime: b.input.runtime,
                    tag: b.base.clone(),
                },
                reasons: vec![],
            });
        }
        let Some((service, version)) = id.split_once('@') else {
            continue;
        };
        match &b.image_id {
            Some(_) => cached.push(b.tag.clone().unwrap_or_else(|| id.clone())),
            None => steps.push(Step {
                action: Action::BuildImage {
                    service: service.into(),
                    version: version.into(),
                    build: b.clone(),
                },
                reasons: vec![],
            }),
        }
    }
    any.then(|| (Plan::of_steps(project, steps), cached))
}

/// The steps that build what `desired` needs and the engine lacks.
pub(super) fn steps(desired: &Desired) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut bases: BTreeSet<&str> = BTreeSet::new();
    let mut tags: BTreeSet<&String> = BTreeSet::new();
    for d in &desired.containers {
        let Some(b) = &d.build else { continue };
        if b.base_missing && bases.insert(&b.base) {
            steps.push(Step {
                action: Action::BuildBase {
                    runtime: b.input.runtime,
                    tag: b.base.clone(),
                },
                reasons: vec![Reason::note(format!(
                    "the {} runtime's base is not on the engine yet",
                    b.input.runtime.name()
                ))],
            });
        }
        // Versions built from the same context share one image: one step
        // builds it, and says for whom.
        if b.image_id.is_none() && b.tag.as_ref().is_some_and(|t| !tags.insert(t)) {
            continue;
        }
        if b.image_id.is_none() {
            let sharing: Vec<&str> = desired
                .containers
                .iter()
                .filter(|o| o.version != d.version && o.service == d.service)
                .filter(|o| {
                    o.build
                        .as_ref()
                        .is_some_and(|ob| ob.tag.is_some() && ob.tag == b.tag)
                })
                .map(|o| o.version.as_str())
                .collect();
            let mut why = format!("package {}", b.input.package);
            if let Some(w) = &b.stripped {
                why.push_str(&format!(
                    " (its single top-level directory `{w}/` is stripped)"
                ));
            }
            if !sharing.is_empty() {
                why.push_str(&format!(
                    "; the same image serves {} (same content)",
                    sharing.join(", ")
                ));
            }
            steps.push(Step {
                action: Action::BuildImage {
                    service: d.service.clone(),
                    version: d.version.clone(),
                    build: b.clone(),
                },
                reasons: std::iter::once(why)
                    .chain(b.entry.clone())
                    .map(Reason::note)
                    .collect(),
            });
        }
    }

    steps
}
