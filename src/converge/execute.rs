//! Carries out a plan's steps, phase by phase: exactly the steps of the plan it
//! is handed, each printed as it completes.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use futures_util::StreamExt;

use crate::build::baseimage;
use crate::build::layer;
use crate::build::{self, BuildError};
use crate::core::audit::owner_problem;
use crate::core::desired::{
    BuildFact, DesiredContainer, DesiredVolume, LABEL_PROJECT, LABEL_SERVICE,
};
use crate::core::plan::{Action, ContainerRef, Plan, Step};
use crate::serve::gateway::Look;

use super::rollout;
use super::{gateways, Context, ConvergeError, StepError};

/// How many engine actions run at once within one phase of a plan.
pub const PARALLEL: usize = 8;
/// How many rollouts berth waits for at once on an orchestrating engine.
pub const ORCHESTRATED_PARALLEL: usize = 64;

/// Carries out a plan's steps; what one phase builds, a later phase uses.
struct Executor<'a> {
    ctx: &'a Context,
    project: &'a str,
    secrets: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// `service@version`, and the image tag -> the image ID its build produced.
    built: std::sync::Mutex<BTreeMap<String, String>>,
    /// One build at a time per tag: versions with the same context wait for
    /// the first and find its image.
    building: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// The commit the desired state came from (`berth watch --git`), labelled on
    /// the containers this apply creates.
    revision: Option<&'a str>,
}

/// Runs the plan's steps phase by phase; within a phase, up to [`PARALLEL`] at once,
/// each printed as it completes. A failure lets the phase finish, then stops.
pub async fn execute(
    ctx: &Context,
    plan: &Plan,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    revision: Option<&str>,
) -> Result<(), ConvergeError> {
    let ex = Executor {
        ctx,
        project: &plan.project,
        secrets,
        built: Default::default(),
        building: Default::default(),
        revision,
    };
    let ex = &ex;
    let mut failures = Vec::new();
    for phase in 0..=Action::LAST_PHASE {
        // By index: closures over `&Step` held across an await keep the
        // future from being `Send` (rustc's higher-ranked lifetimes), and
        // `main` spawns every command; the steps' futures are then made as
        // they start, not all ahead.
        let steps: Vec<usize> = (0..plan.steps.len())
            .filter(|&i| plan.steps[i].action.phase() == phase)
            .collect();
        let steps = futures_util::stream::iter(steps).map(|i| {
            let step = &plan.steps[i];
            async move { (step, ex.run(step).await) }
        });
        // Builds are CPU-heavy: one at a time; engine calls run side by side.
        // Migrations copy whole volumes: one at a time too.
        let width = if phase == 1 || phase == 2 {
            1
        } else if ctx.engine.capabilities().rolls_out {
            // The orchestrator rolls each version out itself; berth only
            // waits, so every rollout of a phase runs at once.
            ORCHESTRATED_PARALLEL
        } else {
            PARALLEL
        };
        let mut running = steps.buffer_unordered(width);
        while let Some((step, result)) = running.next().await {
            let subject = step.action.subject(&plan.project);
            match result {
                Ok(()) => {
                    println!("{} {subject}", done_mark(&step.action, ctx.color));
                    rollout::crash_point("step");
                }
                Err(e) => {
                    let first = e.to_string();
                    crate::say::warn(&format!(
                        "! failed    {subject}: {}",
                        first.lines().next().unwrap_or("")
                    ));
                    failures.push(format!("  {subject}: {e}"));
                }
            }
        }
        if !failures.is_empty() {
            return Err(ConvergeError::ApplyFail {
                failed: failures.len(),
                total: plan.steps.len(),
                details: failures.join("\n"),
            });
        }
    }
    Ok(())
}

/// `+ created  `, `~ replaced `, ...: what a finished step prints before its subject.
fn done_mark(action: &Action, color: bool) -> String {
    let (mark, past) = match action.verb() {
        "create" => ("+", "created"),
        "build" => ("+", "built"),
        "replace" => ("~", "replaced"),
        "start" => (">", "started"),
        "restart" => (">", "restarted"),
        "route" => ("=", "routed"),
        _ => ("-", "removed"),
    };
    if color {
        format!("\x1b[1m{mark} {past:<9}\x1b[0m")
    } else {
        format!("{mark} {past:<9}")
    }
}

impl Executor<'_> {
    /// Checks, right before acting, that the container is still the project's,
    /// under the name and of the version the step says: a plan is a file, and
    /// the engine may have changed since it was read.
    async fn ensure_ours(&self, expected: &ContainerRef) -> Result<(), StepError> {
        let foreign = |why: String| StepError::ContainerForeign {
            id: crate::core::plan::short(&expected.id).to_string(),
            why,
        };
        let Some(now) = self.ctx.engine.container_owner(&expected.id).await? else {
            return Err(foreign("it is gone".into()));
        };
        match owner_problem(self.project, expected, &now.name, &now.labels) {
            Some(why) => Err(foreign(why)),
            None => Ok(()),
        }
    }

    /// A network or volume about to be created, asked of the engine now:
    /// whether one of that name is there already and the project's (made
    /// since the plan looked, e.g. by an apply killed while the engine was
    /// creating it); someone else's is refused.
    async fn ensure_free(&self, volume: bool, name: &str) -> Result<bool, StepError> {
        match self.ctx.engine.object_labels(volume, name).await? {
            Some(labels) if !crate::core::observed::owned(&labels, self.project) => {
                Err(StepError::ObjectForeign {
                    what: if volume { "volume" } else { "network" },
                    name: name.into(),
                    project: self.project.into(),
                })
            }
            found => Ok(found.is_some()),
        }
    }

    async fn run(&self, step: &Step) -> Result<(), StepError> {
        let engine = self.ctx.engine.as_ref();
        let existing = step.action.existing(self.project);
        if let Some(c) = &existing {
            self.ensure_ours(c).await?;
        }
        match &step.action {
            Action::BuildBase { runtime, .. } => {
                let mut say = |l: String| crate::say::info(&format!("  {l}"));
                baseimage::ensure_runtime(engine, &self.ctx.settings, *runtime, &mut say).await?;
            }
            Action::BuildImage {
                service,
                version,
                build,
            } => {
                let (tag, id) = self.build(service, version, build).await?;
                let mut built = self.built.lock().expect("no panics hold it");
                built.insert(build.input.id.clone(), id.clone());
                built.insert(tag, id);
            }
            Action::CreateNetwork { network } => {
                if !self.ensure_free(false, &network.name).await? {
                    engine.create_network(network).await?
                }
            }
            Action::CreateVolume { volume } => {
                if !self.ensure_free(true, &volume.name).await? {
                    engine.create_volume(volume).await?
                }
            }
            Action::MigrateVolume { volume, from, stop } => {
                self.migrate(volume, from, stop).await?
            }
            Action::CreateContainer { container } => {
                let c = self.with_image(container)?;
                rollout::create(self.ctx, &c, self.secrets_of(&c)).await?;
            }
            Action::ReplaceContainer {
                old_id, container, ..
            } => {
                let c = self.with_image(container)?;
                let old_name = &existing.as_ref().expect("a replace acts on one").name;
                let secrets = self.secrets_of(&c);
                rollout::replace(self.ctx, self.project, old_id, old_name, &c, secrets).await?;
            }
            Action::StartContainer { id, name, .. } => engine.start_container(id, name).await?,
            Action::RestartContainer { id, name, .. } => engine.restart_container(id, name).await?,
            Action::RestoreContainer {
                id,
                name,
                canonical,
                ..
            } => rollout::restore(engine, id, name, canonical).await?,
            Action::RemoveContainer { id, name, .. } => {
                // No longer declared: gateways stop routing to it and finish what
                // they sent before it goes.
                if let Some(port) = engine.published_port(id).await? {
                    gateways::drain(&self.ctx.settings, self.project, port, Look::All).await;
                }
                engine.remove_container(id, name).await?
            }
            Action::RemoveLeftover { id, name, .. } => engine.remove_container(id, name).await?,
            Action::RemoveNetwork { name, .. } => engine.remove_network(name).await?,
            Action::Route {
                generation,
                active,
                records,
                switches,
            } => {
                super::switch::route(
                    self.ctx,
                    self.project,
                    *generation,
                    active,
                    records,
                    switches,
                )
                .await?
            }
        }
        Ok(())
    }

    /// Copies a keep's data from the volume an earlier berth named to its
    /// collision-free volume, with the containers that use the old one stopped
    /// (started again if the copy fails: their replace comes later).
    async fn migrate(
        &self,
        volume: &DesiredVolume,
        from: &str,
        stop: &[ContainerRef],
    ) -> Result<(), StepError> {
        let engine = self.ctx.engine.as_ref();
        for c in stop {
            self.ensure_ours(c).await?;
        }
        for c in stop {
            engine.stop_container(&c.id, &c.name).await?;
        }
        let copied = async {
            self.ensure_free(true, &volume.name).await?;
            engine.create_volume(volume).await?;
            baseimage::ensure_busybox(engine, &self.ctx.settings, false).await?;
            let labels = BTreeMap::from([(LABEL_PROJECT.to_string(), self.project.to_string())]);
            let name = format!("{}-copy", volume.name);
            engine
                .copy_volume(baseimage::BUSYBOX_TAG, &name, labels, from, &volume.name)
                .await?;
            Ok::<(), StepError>(())
        }
        .await;
        if copied.is_err() {
            for c in stop {
                let _ = engine.start_container(&c.id, &c.name).await;
            }
        }
        copied
    }

    fn secrets_of(&self, c: &DesiredContainer) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.secrets.get(&c.name).unwrap_or(&NONE)
    }

    /// A container whose image was built in this apply gets that image's ID, and
    /// its hash is computed again over it.
    fn with_image(&self, c: &DesiredContainer) -> Result<DesiredContainer, StepError> {
        let mut c = c.clone();
        c.revision = self.revision.map(String::from);
        if let Some(b) = &c.build {
            if b.image_id.is_none() {
                let built = self.built.lock().expect("no panics hold it");
                // A version whose image another version's step built (same
                // context, same tag) finds it by the tag.
                let id = built
                    .get(&b.input.id)
                    .or_else(|| b.tag.as_ref().and_then(|t| built.get(t)))
                    .ok_or_else(|| StepError::ImageMissing(b.input.id.clone()))?;
                c.config.image = id.clone();
                c.hash = c.config.hash();
            }
        }
        Ok(c)
    }

    /// Builds a service image from its package, checking that the package is still
    /// what the plan saw. Returns the image's tag and ID.
    async fn build(
        &self,
        service: &str,
        version: &str,
        b: &BuildFact,
    ) -> Result<(String, String), StepError> {
        let engine = self.ctx.engine.as_ref();
        let arch = engine.version().await?.arch;
        let prepared =
            build::prepare(engine, self.project, &b.input, &arch, &self.ctx.settings).await?;
        if prepared.source_hash != b.source_hash {
            return Err(BuildError::SourceChange {
                id: b.input.id.clone(),
                planned: crate::core::plan::short(&b.source_hash).to_string(),
                now: crate::core::plan::short(&prepared.source_hash).to_string(),
            }
            .into());
        }
        let base_id = engine
            .image_id(&prepared.base)
            .await?
            .ok_or_else(|| StepError::BaseMissing(prepared.base.clone()))?;
        let deps_id = match &prepared.node {
            Some(deps) => {
                Some(build::ensure_node_deps(engine, self.project, &b.input, deps, &base_id).await?)
            }
            None => None,
        };
        let ctx = build::with_base(&prepared, &base_id, deps_id.as_deref());
        let tag = build::image_tag(&b.input, self.project, service, &ctx.hash());
        // No version among the labels: versions built from the same context
        // share the image.
        let labels = BTreeMap::from([
            (LABEL_PROJECT.to_string(), self.project.to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (
                "berth.runtime".to_string(),
                b.input.runtime.name().to_string(),
            ),
            (
                "org.opencontainers.image.title".to_string(),
                format!("{}/{service}", self.project),
            ),
        ]);
        let lock = self
            .building
            .lock()
            .expect("no panics hold it")
            .entry(tag.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        tracing::debug!(tag, version, "building");
        let progress = progress_bar(&tag);
        let verbose = self.ctx.verbose;
        let started = std::time::Instant::now();
        layer::ensure_service_image(
            engine,
            self.project,
            service,
            &tag,
            &ctx,
            &prepared,
            &base_id,
            labels,
            |line| {
                if verbose {
                    crate::say::info(&format!("  | {line}"));
                } else if progress.is_none() && build::is_step(line) {
                    // Without a terminal (CI logs), a line per build step shows
                    // where a long build is.
                    crate::say::info(&format!(
                        "  {service}@{version}: {}",
                        line.chars().take(120).collect::<String>()
                    ));
                }
                if let Some(p) = &progress {
                    p.set_message(format!(
                        "{tag}: {}",
                        line.chars().take(80).collect::<String>()
                    ));
                }
            },
        )
        .await?;
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        tracing::debug!(
            tag,
            seconds = started.elapsed().as_secs_f64(),
            "image built"
        );
        let id = engine
            .image_ref(&tag)
            .await?
            .ok_or_else(|| build::missing_after_build(&tag))?;
        Ok((tag, id))
    }
}

/// A spinner with the build's current line, on a terminal only.
fn progress_bar(tag: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || crate::say::json() {
        return None;
    }
    let p = indicatif::ProgressBar::new_spinner();
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    p.set_message(format!("{tag}: building"));
    Some(p)
}
