//! Wiring: each command gathers facts through the shell, asks the core what to do,
//! and has the shell do it. The only place that knows both halves.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use crate::cli::{Cli, Command};
use crate::core::desired::{
    resolve, BuildFact, BuildInput, Desired, DesiredContainer, Facts, LABEL_REVISION, LABEL_SCOPE,
    LABEL_SERVICE, LABEL_VERSION,
};
use crate::core::diag::{Diagnostic, Diagnostics};
use crate::core::hash::secret_hash;
use crate::core::plan::{self, short, Action, Observed, Plan, Step};
use crate::core::render::{plan_text, status_text, StatusRow, Style};
use crate::core::spec::{self, Runtime, Spec};
use crate::shell::baseimage::{self, BaseImageError};
use crate::shell::build::{self, BuildError};
use crate::shell::docker::{Engine, EngineError};
use crate::shell::lock::{self, LockError};
use crate::shell::source::{self, SourceError};
use crate::shell::{gpu, probe};

/// How many engine actions run at once within one phase of a plan.
const PARALLEL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    SpecInvalid(Diagnostics),
    #[error("{0}")]
    PlanRefused(Diagnostics),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    BaseImage(#[from] BaseImageError),
    #[error(
        "cannot read the saved plan {path}: {why}\n  help: make one with `berth plan --out {path}`"
    )]
    PlanRead { path: PathBuf, why: String },
    #[error("cannot write the plan to {path}: {source}")]
    PlanWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the saved plan {path} is stale: the engine changed since it was made\n{changes}\n  help: run `berth plan --out {path}` again, review it, then apply it")]
    PlanStale { path: PathBuf, changes: String },
    #[error("{failed} of {total} actions failed; later phases were not started\n{details}\n  help: fix the cause above and run `berth apply` again: it picks up where this one stopped")]
    ApplyFail {
        failed: usize,
        total: usize,
        details: String,
    },
    #[error("{0}")]
    Daemon(String),
    #[error("{failed}")]
    RolloutFail { failed: String },
    #[error("unknown runtime `{name}`\n  help: use one of python3.11, python3.12, python3.13 (each also -cuda), node20, node22")]
    RuntimeUnknown { name: String },
    #[error(
        "no container of `{target}` in project `{project}`\n  help: `berth status` lists what runs"
    )]
    ContainerFind { target: String, project: String },
    #[error("nothing to build for `{target}` in project `{project}`: no such service version is built from a package\n  help: `berth build` builds the versions that have `package:` and `runtime:`")]
    BuildTargetFind { target: String, project: String },
}

/// Runs one command; the exit code on success (plan's detailed exit code is 2).
pub async fn run(cli: Cli) -> Result<u8, AppError> {
    let verbose = cli.verbose;
    match cli.command {
        Command::Validate(f) => {
            load(&f.file)?;
            Ok(0)
        }
        Command::Schema => {
            print!("{}", spec::json_schema());
            Ok(0)
        }
        Command::Plan {
            file,
            json,
            detailed_exitcode,
            out,
            allow_empty,
        } => {
            let spec = load(&file.file)?;
            let engine = Engine::connect().await?;
            let plan = make_plan(
                &engine,
                &spec,
                &file.file,
                plan::Options {
                    allow_empty,
                    retry_failed: true,
                },
            )
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).expect("a plan always serializes")
                );
            } else {
                print!("{}", plan_text(&plan, style()));
            }
            if let Some(path) = out {
                let text = serde_json::to_string_pretty(&plan).expect("a plan always serializes");
                std::fs::write(&path, text + "\n").map_err(|source| AppError::PlanWrite {
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
        Command::Apply {
            file,
            plan,
            allow_empty,
        } => apply(&file.file, plan.as_deref(), allow_empty, verbose).await,
        Command::Status { file, json } => status(&file.file, json).await,
        Command::Logs {
            file,
            target,
            follow,
            tail,
        } => logs(&file.file, &target, follow, tail).await,
        Command::Destroy { file, volumes } => destroy(&file.file, volumes).await,
        Command::Baseimages { runtimes, all } => {
            let mut wanted = Vec::new();
            for name in &runtimes {
                match Runtime::ALL.iter().find(|r| r.name() == name) {
                    Some(r) => wanted.push(*r),
                    None => return Err(AppError::RuntimeUnknown { name: name.clone() }),
                }
            }
            if all {
                wanted = Runtime::ALL
                    .into_iter()
                    .filter(|r| {
                        !matches!(
                            baseimage::base_source(*r),
                            baseimage::BaseSource::Provided { .. }
                        )
                    })
                    .collect();
            }
            let engine = Engine::connect().await?;
            for line in baseimage::ensure_all(&engine, verbose, &wanted).await? {
                println!("{line}");
            }
            Ok(0)
        }
        Command::Doctor(f) => doctor(&f.file).await,
        Command::Serve { file, gateway } => serve(&file.file, gateway).await,
        Command::Watch {
            file,
            git,
            reference,
            path,
            interval,
            listen,
            token_file,
            gateway,
        } => {
            let interval = crate::daemon::parse_duration(&interval).map_err(AppError::Daemon)?;
            let token = match token_file {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| {
                            AppError::Daemon(format!(
                                "cannot read the token file {}: {e}",
                                f.display()
                            ))
                        })?
                        .trim()
                        .to_string(),
                ),
                None => std::env::var("BERTH_TOKEN").ok(),
            }
            .filter(|t| !t.is_empty());
            let source = match git {
                Some(url) => crate::daemon::WatchSource::Git {
                    url,
                    reference,
                    path,
                },
                None => crate::daemon::WatchSource::File(
                    file.unwrap_or_else(|| PathBuf::from("services.yaml")),
                ),
            };
            crate::daemon::run(crate::daemon::WatchOptions {
                source,
                interval,
                listen,
                token,
                verbose,
                gateway,
            })
            .await
        }
        Command::Package { dir, out } => {
            let out = out.unwrap_or_else(|| {
                let name = dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()));
                PathBuf::from(format!(
                    "{}.tar.gz",
                    name.unwrap_or_else(|| "package".into())
                ))
            });
            let (ctx, size) =
                crate::shell::package::package_dir(&dir, &out).map_err(BuildError::from)?;
            println!(
                "{}: {} files, {size} bytes, content {}",
                out.display(),
                ctx.len(),
                &ctx.hash()[..12]
            );
            Ok(0)
        }
        Command::Build { file, target } => build_only(&file.file, target.as_deref(), verbose).await,
    }
}

fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

pub(crate) fn load(file: &Path) -> Result<Spec, AppError> {
    let text = source::read_spec(file)?;
    spec::parse(&file.display().to_string(), &text).map_err(AppError::SpecInvalid)
}

fn refused(file: &Path, items: Vec<Diagnostic>) -> AppError {
    AppError::PlanRefused(Diagnostics {
        file: file.display().to_string(),
        items,
    })
}

/// Facts of this host for the spec: one image list, the secrets' variables, and
/// the GPU inventory only when a GPU class is asked for.
async fn desired(engine: &Engine, spec: &Spec, file: &Path) -> Result<Desired, AppError> {
    let wants_gpu = spec
        .versions()
        .any(|v| v.machine.gpu_memory_bytes().is_some());
    let image_ids = engine.image_ids().await?;
    let builds = build_facts(engine, spec, file, &image_ids).await?;
    let facts = Facts {
        builds,
        image_ids,
        env: source::secret_env(spec),
        gpus: if wants_gpu {
            gpu::inventory().0
        } else {
            Default::default()
        },
    };
    resolve(spec, &facts).map_err(|items| refused(file, items))
}

/// For every version built from a package: read and check the package, resolve
/// its dependencies, and find out whether its image (and base) already exist.
async fn build_facts(
    engine: &Engine,
    spec: &Spec,
    file: &Path,
    image_ids: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BuildFact>, AppError> {
    let mut facts = BTreeMap::new();
    let mut arch = None;
    let mut checked = std::collections::BTreeSet::new();
    for v in spec.versions() {
        let (spec::Source::Package(p), Some(runtime)) = (&v.source, v.runtime) else {
            continue;
        };
        let arch = match &arch {
            Some(a) => a,
            None => arch.insert(engine.version().await?.1),
        };
        let input = BuildInput {
            id: v.id(),
            package: build::package_path(file, p).display().to_string(),
            runtime,
            extras: v.extras.clone(),
            command: v.command.clone(),
        };
        let prepared = build::prepare(&input, arch).await?;
        let base_id = image_ids.get(&prepared.base);
        if base_id.is_some() && checked.insert(prepared.base.clone()) {
            baseimage::check_arch(engine, &prepared.base, arch).await?;
        }
        if base_id.is_none() {
            if let baseimage::BaseSource::Provided { why, how } = baseimage::base_source(runtime) {
                return Err(BaseImageError::RuntimeUnavailable {
                    runtime: runtime.name(),
                    why: why.into(),
                    how: how.into(),
                }
                .into());
            }
        }
        let tag = base_id.map(|id| {
            build::image_tag(
                &spec.project,
                &v.service,
                &v.version.to_string(),
                &build::with_base(&prepared, id).hash(),
            )
        });
        let image_id = tag.as_ref().and_then(|t| image_ids.get(t)).cloned();
        facts.insert(
            v.id(),
            BuildFact {
                input,
                source_hash: prepared.source_hash.clone(),
                base: prepared.base.clone(),
                base_missing: base_id.is_none(),
                tag,
                image_id,
                stripped: prepared.stripped.clone(),
            },
        );
    }
    Ok(facts)
}

pub(crate) async fn make_plan(
    engine: &Engine,
    spec: &Spec,
    file: &Path,
    opts: plan::Options,
) -> Result<Plan, AppError> {
    let (desired, observed) =
        tokio::join!(desired(engine, spec, file), engine.observe(&spec.project));
    let (desired, observed) = (desired?, observed?);
    plan::plan(&desired, &observed, &opts).map_err(|items| refused(file, items))
}

async fn apply(
    file: &Path,
    saved: Option<&Path>,
    allow_empty: bool,
    verbose: bool,
) -> Result<u8, AppError> {
    let engine = Engine::connect().await?;
    if let Some(path) = saved {
        let plan = read_plan(path)?;
        let _lock = take_lock(&plan.project, "apply")?;
        let observed = engine.observe(&plan.project).await?;
        check_fresh(path, &plan, &observed)?;
        return execute_and_report(&engine, &plan, path, verbose).await;
    }
    let spec = load(file)?;
    let _lock = take_lock(&spec.project, "apply")?;
    // Planned under the lock, so a concurrent apply cannot make it stale.
    let plan = make_plan(
        &engine,
        &spec,
        file,
        plan::Options {
            allow_empty,
            retry_failed: true,
        },
    )
    .await?;
    execute_and_report(&engine, &plan, file, verbose).await
}

fn take_lock(project: &str, command: &str) -> Result<lock::ProjectLock, AppError> {
    Ok(lock::acquire(project, command, |holder| {
        eprintln!("waiting for the lock on project `{project}`, held by {holder}");
    })?)
}

fn read_plan(path: &Path) -> Result<Plan, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| AppError::PlanRead {
        path: path.into(),
        why: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| AppError::PlanRead {
        path: path.into(),
        why: format!("not a berth plan ({e})"),
    })
}

/// Refuses a saved plan when the engine no longer looks as it did, naming what changed.
fn check_fresh(path: &Path, plan: &Plan, observed: &Observed) -> Result<(), AppError> {
    if observed.fingerprint(&plan.project) == plan.fingerprint {
        return Ok(());
    }
    let now = observed.summary(&plan.project);
    let mut changes = Vec::new();
    for line in &plan.observed {
        if !now.contains(line) {
            changes.push(format!("  - was: {line}"));
        }
    }
    for line in &now {
        if !plan.observed.contains(line) {
            changes.push(format!("  + now: {line}"));
        }
    }
    Err(AppError::PlanStale {
        path: path.into(),
        changes: changes.join("\n"),
    })
}

/// Secret values for every container the plan creates, checked against the hashes
/// the plan recorded, before the first action.
pub(crate) fn plan_secrets(
    plan: &Plan,
    origin: &Path,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, AppError> {
    let mut all = BTreeMap::new();
    let mut problems = Vec::new();
    for step in &plan.steps {
        let (Action::CreateContainer { container } | Action::ReplaceContainer { container, .. }) =
            &step.action
        else {
            continue;
        };
        let mut values = BTreeMap::new();
        for (name, var) in &container.secret_sources {
            let id = format!("{}@{}", container.service, container.version);
            match std::env::var(var) {
                Err(_) => problems.push(Diagnostic::new(
                    None,
                    format!("{id}: secret `{name}` reads the environment variable `{var}`, which is not set"),
                    format!("export {var}=... in the environment that runs berth"),
                )),
                Ok(v) if Some(&secret_hash(&plan.project, name, &v)) != container.config.secrets.get(name) => {
                    problems.push(Diagnostic::new(
                        None,
                        format!("{id}: secret `{name}` (from `{var}`) changed since the plan was made"),
                        "make the plan again with the current value",
                    ))
                }
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
            }
        }
        all.insert(container.name.clone(), values);
    }
    if problems.is_empty() {
        Ok(all)
    } else {
        Err(refused(origin, problems))
    }
}

async fn execute_and_report(
    engine: &Engine,
    plan: &Plan,
    origin: &Path,
    verbose: bool,
) -> Result<u8, AppError> {
    let secrets = plan_secrets(plan, origin)?;
    if plan.is_empty() {
        println!(
            "No changes: the engine matches the file ({} unchanged).",
            plan.unchanged.len()
        );
    } else {
        execute(engine, plan, &secrets, verbose, None).await?;
        let (c, r, s, d) = plan.counts();
        println!(
            "Applied: {c} created, {r} replaced, {s} started, {d} removed, {} unchanged.",
            plan.unchanged.len()
        );
    }
    if !plan.failed.is_empty() {
        return Err(AppError::RolloutFail {
            failed: plan.failed.join("\n  "),
        });
    }
    // Where each service answers: one more list call, read-only.
    let observed = engine.observe(&plan.project).await?;
    for c in observed
        .containers
        .iter()
        .filter(|c| c.owned_by(&plan.project))
    {
        println!(
            "  {:<32} {}",
            c.subject(&plan.project),
            url(c).unwrap_or_else(|| format!("({})", c.state))
        );
    }
    Ok(0)
}

/// Where a container answers on the host, if it is published.
fn url(c: &plan::ObservedContainer) -> Option<String> {
    c.ports
        .iter()
        .find_map(|p| p.public.map(|port| format!("http://127.0.0.1:{port}/")))
}

/// Why one step of a plan failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Base(#[from] BaseImageError),
    #[error("{0}")]
    Pending(String),
    #[error("{id} never became healthy: GET / must answer 2xx within {timeout_ms} ms, and the last try said: {why}\n  the container is kept stopped as {kept}; its last log lines:\n{logs}\n  help: fix the service (or its `health:` timeout) and apply again; what ran before keeps running")]
    Unhealthy {
        id: String,
        why: String,
        timeout_ms: u64,
        kept: String,
        logs: String,
    },
}

/// Carries out a plan's steps; what one phase builds, a later phase uses.
struct Executor<'a> {
    engine: &'a Engine,
    project: &'a str,
    secrets: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// `service@version` -> the image ID its build produced.
    built: std::sync::Mutex<BTreeMap<String, String>>,
    verbose: bool,
    /// The commit the desired state came from (`berth watch --git`), labelled on
    /// the containers this apply creates.
    revision: Option<&'a str>,
}

/// Runs the plan's steps phase by phase; within a phase, up to [`PARALLEL`] at once,
/// each printed as it completes. A failure lets the phase finish, then stops.
pub(crate) async fn execute(
    engine: &Engine,
    plan: &Plan,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    verbose: bool,
    revision: Option<&str>,
) -> Result<(), AppError> {
    let style = style();
    let ex = Executor {
        engine,
        project: &plan.project,
        secrets,
        built: Default::default(),
        verbose,
        revision,
    };
    let ex = &ex;
    let mut failures = Vec::new();
    for phase in 0..=Action::LAST_PHASE {
        let steps = plan.steps.iter().filter(|s| s.action.phase() == phase);
        // Builds are CPU-heavy: one at a time; engine calls run side by side.
        let width = if phase == 1 { 1 } else { PARALLEL };
        let mut running =
            futures_util::stream::iter(steps.map(|step| async move { (step, ex.run(step).await) }))
                .buffer_unordered(width);
        while let Some((step, result)) = running.next().await {
            let subject = step.action.subject(&plan.project);
            match result {
                Ok(()) => {
                    let (mark, past) = match step.action.verb() {
                        "create" => ("+", "created"),
                        "build" => ("+", "built"),
                        "replace" => ("~", "replaced"),
                        "start" => (">", "started"),
                        _ => ("-", "removed"),
                    };
                    let head = if style.color {
                        format!("\x1b[1m{mark} {past:<9}\x1b[0m")
                    } else {
                        format!("{mark} {past:<9}")
                    };
                    println!("{head} {subject}");
                }
                Err(e) => {
                    let first = e.to_string();
                    eprintln!(
                        "! failed    {subject}: {}",
                        first.lines().next().unwrap_or("")
                    );
                    failures.push(format!("  {subject}: {e}"));
                }
            }
        }
        if !failures.is_empty() {
            return Err(AppError::ApplyFail {
                failed: failures.len(),
                total: plan.steps.len(),
                details: failures.join("\n"),
            });
        }
    }
    Ok(())
}

impl Executor<'_> {
    async fn run(&self, step: &Step) -> Result<(), StepError> {
        let engine = self.engine;
        match &step.action {
            Action::BuildBase { runtime, .. } => {
                let mut say = |l: String| eprintln!("  {l}");
                baseimage::ensure_runtime(engine, *runtime, &mut say).await?;
            }
            Action::BuildImage {
                service,
                version,
                build,
            } => {
                let id = self.build(service, version, build).await?;
                self.built
                    .lock()
                    .expect("no panics hold it")
                    .insert(build.input.id.clone(), id);
            }
            Action::CreateNetwork { network } => engine.create_network(network).await?,
            Action::CreateVolume { volume } => engine.create_volume(volume).await?,
            Action::CreateContainer { container } => {
                let c = self.with_image(container)?;
                create_and_start(engine, &c, self.secrets_of(&c)).await?;
            }
            Action::ReplaceContainer { old_id, container } => {
                let c = self.with_image(container)?;
                replace(engine, old_id, &c, self.secrets_of(&c)).await?;
            }
            Action::StartContainer { id, name, .. } => engine.start_container(id, name).await?,
            Action::RemoveContainer { id, name, .. } | Action::RemoveLeftover { id, name, .. } => {
                engine.remove_container(id, name).await?
            }
            Action::RemoveNetwork { name, .. } => engine.remove_network(name).await?,
        }
        Ok(())
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
                let id = built.get(&b.input.id).ok_or_else(|| {
                    StepError::Pending(format!("the image of {} was not built", b.input.id))
                })?;
                c.config.image = id.clone();
                c.hash = c.config.hash();
            }
        }
        Ok(c)
    }

    /// Builds a service image from its package, checking that the package is still
    /// what the plan saw. Returns the image ID.
    async fn build(
        &self,
        service: &str,
        version: &str,
        b: &BuildFact,
    ) -> Result<String, StepError> {
        let engine = self.engine;
        let (_, arch) = engine.version().await?;
        let prepared = build::prepare(&b.input, &arch).await?;
        if prepared.source_hash != b.source_hash {
            return Err(BuildError::SourceChange {
                id: b.input.id.clone(),
                planned: b.source_hash[..12].to_string(),
                now: prepared.source_hash[..12].to_string(),
            }
            .into());
        }
        let base_id = engine.image_id(&prepared.base).await?.ok_or_else(|| {
            StepError::Pending(format!("the base image {} is missing", prepared.base))
        })?;
        let ctx = build::with_base(&prepared, &base_id);
        let tag = build::image_tag(self.project, service, version, &ctx.hash());
        let labels = BTreeMap::from([
            ("berth.project".to_string(), self.project.to_string()),
            ("berth.service".to_string(), service.to_string()),
            ("berth.version".to_string(), version.to_string()),
            (
                "berth.runtime".to_string(),
                b.input.runtime.name().to_string(),
            ),
            (
                "org.opencontainers.image.title".to_string(),
                format!("{}/{service}", self.project),
            ),
            (
                "org.opencontainers.image.version".to_string(),
                version.to_string(),
            ),
        ]);
        let progress = progress_bar(&tag);
        let verbose = self.verbose;
        let started = std::time::Instant::now();
        build::ensure_image(engine, &tag, &ctx, labels, |line| {
            if verbose {
                eprintln!("  | {line}");
            }
            if let Some(p) = &progress {
                p.set_message(format!(
                    "{tag}: {}",
                    line.chars().take(80).collect::<String>()
                ));
            }
        })
        .await?;
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        tracing::debug!(
            tag,
            seconds = started.elapsed().as_secs_f64(),
            "image built"
        );
        engine.image_id(&tag).await?.ok_or_else(|| {
            StepError::Pending(format!("the engine has no image {tag} after building it"))
        })
    }
}

/// A spinner with the build's current line, on a terminal only.
fn progress_bar(tag: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let p = indicatif::ProgressBar::new_spinner();
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    p.set_message(format!("{tag}: building"));
    Some(p)
}

/// Creates and starts a container, then waits for it to pass its health gate.
/// One that does not start is removed again, so the next plan sees a clean
/// "create"; one that starts but never answers is stopped and kept aside as
/// `<name>-failed-<id>` for inspection (the next plan removes it and tries again).
async fn create_and_start(
    engine: &Engine,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<String, StepError> {
    create_and_start_as(engine, &c.name, c, secrets).await
}

/// [`create_and_start`] under another name than the desired one (a replace's
/// successor starts beside its predecessor).
async fn create_and_start_as(
    engine: &Engine,
    name: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<String, StepError> {
    let id = engine.create_container(name, c, secrets).await?;
    if let Err(e) = engine.start_container(&id, name).await {
        let _ = engine.remove_container(&id, name).await;
        return Err(e.into());
    }
    if let Err(why) = wait_healthy(engine, &id, c).await {
        let logs = engine.logs_tail(&id, 10).await;
        let _ = engine.stop_container(&id, name).await;
        let failed = format!("{}-failed-{}", c.name, short(&id));
        let _ = engine.rename_container(&id, name, &failed).await;
        return Err(StepError::Unhealthy {
            id: format!("{}@{}", c.service, c.version),
            why,
            timeout_ms: c.health.timeout_ms,
            kept: failed,
            logs: logs
                .trim_end()
                .lines()
                .map(|l| format!("    | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    Ok(id)
}

/// Asks `GET /` on the container's published port every interval until a 2xx,
/// the timeout, or the container stopping. Err says what the last answer was.
async fn wait_healthy(engine: &Engine, id: &str, c: &DesiredContainer) -> Result<(), String> {
    let h = c.health;
    if h.timeout_ms == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(h.timeout_ms);
    let mut last = "no answer yet".to_string();
    loop {
        match engine.state_and_port(id, c.config.port).await {
            None => return Err("the container disappeared".into()),
            Some((state, _)) if state == "exited" || state == "dead" => {
                return Err(format!("the container {state} (last answer: {last})"));
            }
            Some((_, None)) => last = "the port is not published yet".into(),
            Some((_, Some(port))) => {
                match probe::get_root(port, std::time::Duration::from_secs(2)).await {
                    Ok(status) if (200..300).contains(&status) => return Ok(()),
                    Ok(status) => last = format!("GET / answered {status}"),
                    Err(e) => last = format!("GET / failed: {e}"),
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(std::time::Duration::from_millis(h.interval_ms)).await;
    }
}

/// Replace under the same name. Without a fixed host port or keeps, the new
/// container starts beside the old one and must be healthy before the old one
/// stops; otherwise the old one is stopped and moved aside first, and put back if
/// the new one fails. Killed midway, a renamed container (`-old-`, `-next-`) is
/// a leftover the next plan removes.
async fn replace(
    engine: &Engine,
    old_id: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<(), StepError> {
    let aside = format!("{}-old-{}", c.name, short(old_id));
    if c.config.publish.is_none() && c.config.mounts.is_empty() {
        // Side by side: the successor starts under a temporary name while the old
        // container keeps serving, and takes over only once it is healthy. (A fixed
        // host port, or keeps two processes must not share, need stop-first.)
        let next = format!("{}-next-{}", c.name, &c.hash[..12]);
        let new_id = create_and_start_as(engine, &next, c, secrets).await?;
        engine.stop_container(old_id, &c.name).await?;
        engine.rename_container(old_id, &c.name, &aside).await?;
        engine.rename_container(&new_id, &next, &c.name).await?;
        return Ok(engine.remove_container(old_id, &aside).await?);
    }
    // Stopped first: the engine cannot rename a container that is restarting.
    engine.stop_container(old_id, &c.name).await?;
    engine.rename_container(old_id, &c.name, &aside).await?;
    match create_and_start(engine, c, secrets).await {
        Ok(_) => Ok(engine.remove_container(old_id, &aside).await?),
        Err(e) => {
            let _ = engine.rename_container(old_id, &aside, &c.name).await;
            let _ = engine.start_container(old_id, &c.name).await;
            Err(e)
        }
    }
}

/// `berth build [SERVICE[@VERSION]]`: the build steps of the plan, and nothing else.
async fn build_only(file: &Path, target: Option<&str>, verbose: bool) -> Result<u8, AppError> {
    let spec = load(file)?;
    let engine = Engine::connect().await?;
    let image_ids = engine.image_ids().await?;
    let mut facts = build_facts(&engine, &spec, file, &image_ids).await?;
    facts.retain(|id, _| match target {
        None => true,
        Some(t) if t.contains('@') => id == t,
        Some(t) => id.split('@').next() == Some(t),
    });
    if facts.is_empty() {
        return Err(AppError::BuildTargetFind {
            target: target.unwrap_or("any service").into(),
            project: spec.project,
        });
    }
    let mut steps = Vec::new();
    let mut bases = std::collections::BTreeSet::new();
    for (id, b) in &facts {
        if b.base_missing && bases.insert(b.base.clone()) {
            steps.push(Step {
                action: Action::BuildBase {
                    runtime: b.input.runtime,
                    tag: b.base.clone(),
                },
                reasons: vec![],
            });
        }
        let (service, version) = id.split_once('@').expect("ids are service@version");
        match &b.image_id {
            Some(_) => println!("= cached    {}", b.tag.as_deref().unwrap_or(id)),
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
    let plan = Plan {
        project: spec.project.clone(),
        fingerprint: String::new(),
        observed: vec![],
        steps,
        unchanged: vec![],
        failed: vec![],
    };
    execute(&engine, &plan, &BTreeMap::new(), verbose, None).await?;
    Ok(0)
}

/// The routes of a spec over what runs now: one list call.
pub(crate) async fn route_table(
    engine: &Engine,
    spec: &Spec,
) -> Result<crate::core::route::RouteTable, AppError> {
    let observed = engine.observe(&spec.project).await?;
    Ok(crate::core::route::routes(spec, &observed))
}

/// `berth serve`: the gateway alone, its routes refreshed every second from the
/// file and the engine (a file that does not parse keeps the last routes).
async fn serve(file: &Path, addr: std::net::SocketAddr) -> Result<u8, AppError> {
    let engine = Engine::connect().await?;
    let table = std::sync::Arc::new(std::sync::RwLock::new(
        crate::core::route::RouteTable::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    crate::shell::gateway::serve(addr, table.clone(), async {
        let _ = stopped.await;
    })
    .await
    .map_err(|e| AppError::Daemon(e.to_string()))?;
    tracing::warn!(%addr, "gateway listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AppError::Daemon(e.to_string()))?;
    loop {
        match load(file) {
            Ok(spec) => match route_table(&engine, &spec).await {
                Ok(t) => *table.write().expect("no panics hold it") = t,
                Err(e) => tracing::warn!(error = %e, "cannot refresh the routes"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "the file does not parse; keeping the last routes")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = stop.send(());
    Ok(0)
}

async fn status(file: &Path, json: bool) -> Result<u8, AppError> {
    let spec = load(file)?;
    let engine = Engine::connect().await?;
    let rows = status_rows(&engine, &spec.project, true).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows always serialize")
        );
    } else {
        print!("{}", status_text(&rows));
    }
    Ok(0)
}

/// Every owned container as `status` shows it: one list call, then per running
/// container a health probe and (with `usage`) one stats sample, side by side.
pub(crate) async fn status_rows(
    engine: &Engine,
    project: &str,
    usage: bool,
) -> Result<Vec<StatusRow>, AppError> {
    let observed = engine.observe(project).await?;
    let ours: Vec<&plan::ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .collect();
    let rows = futures_util::future::join_all(ours.iter().map(|c| async move {
        let running = c.state == "running";
        let port = c.ports.iter().find_map(|p| p.public);
        let probe = match (running, port) {
            (true, Some(p)) => Some(probe::health(p).await),
            _ => None,
        };
        let stats = if running && usage {
            engine.stats(&c.id).await
        } else {
            None
        };
        let (restarts, up_secs) = engine.restarts(&c.id).await.unwrap_or((0, 0));
        let health = if c.name.contains("-failed-") {
            "failed".to_string()
        } else {
            crate::core::render::health_word(&c.state, restarts, up_secs, probe)
        };
        StatusRow {
            service: c.label(LABEL_SERVICE).to_string(),
            version: c.label(LABEL_VERSION).to_string(),
            container: c.name.clone(),
            state: c.state.clone(),
            health,
            restarts,
            url: url(c),
            scope: c.label(LABEL_SCOPE).to_string(),
            revision: c.labels.get(LABEL_REVISION).cloned(),
            cpu_percent: stats.map(|s| s.0),
            memory_bytes: stats.map(|s| s.1),
            memory_limit_bytes: stats.map(|s| s.2),
        }
    }))
    .await;
    Ok(rows)
}

async fn logs(
    file: &Path,
    target: &str,
    follow: bool,
    tail: Option<usize>,
) -> Result<u8, AppError> {
    let spec = load(file)?;
    let engine = Engine::connect().await?;
    let (service, version) = match target.split_once('@') {
        Some((s, v)) => (s.to_string(), Some(v.to_string())),
        None => (target.to_string(), None),
    };
    let version = version.or_else(|| {
        spec.services
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.active.to_string())
    });
    let observed = engine.observe(&spec.project).await?;
    let found = observed.containers.iter().find(|c| {
        c.owned_by(&spec.project)
            && c.label(LABEL_SERVICE) == service
            && version
                .as_deref()
                .is_none_or(|v| c.label(LABEL_VERSION) == v)
    });
    let Some(c) = found else {
        return Err(AppError::ContainerFind {
            target: target.to_string(),
            project: spec.project,
        });
    };
    let mut stream = std::pin::pin!(engine.logs(&c.id, follow, tail));
    while let Some(chunk) = stream.next().await {
        print!("{}", chunk?);
    }
    Ok(0)
}

async fn destroy(file: &Path, volumes: bool) -> Result<u8, AppError> {
    let spec = load(file)?;
    let project = spec.project.as_str();
    let engine = Engine::connect().await?;
    let _lock = take_lock(project, "destroy")?;
    let observed = engine.observe(project).await?;
    let ours = observed.containers.iter().filter(|c| c.owned_by(project));
    let mut removing = futures_util::stream::iter(ours.map(|c| {
        let engine = &engine;
        async move { (c, engine.remove_container(&c.id, &c.name).await) }
    }))
    .buffer_unordered(PARALLEL);
    let mut removed = 0;
    while let Some((c, r)) = removing.next().await {
        r?;
        removed += 1;
        println!("- removed   {}", c.subject(project));
    }
    drop(removing);
    let owned = |labels: &BTreeMap<String, String>| {
        labels
            .get(crate::core::desired::LABEL_PROJECT)
            .map(String::as_str)
            == Some(project)
    };
    for n in observed.networks.iter().filter(|n| owned(&n.labels)) {
        engine.remove_network(&n.name).await?;
        println!("- removed   network {}", n.name);
    }
    let mut kept = Vec::new();
    for v in observed.volumes.iter().filter(|v| owned(&v.labels)) {
        if volumes {
            engine.remove_volume(&v.name).await?;
            println!("- removed   volume {}", v.name);
        } else {
            kept.push(v.name.clone());
        }
    }
    println!("Destroyed project `{project}`: {removed} containers removed.");
    if !kept.is_empty() {
        println!(
            "Kept {} volume(s) ({}); `berth destroy --volumes` removes them.",
            kept.len(),
            kept.join(", ")
        );
    }
    Ok(0)
}

async fn doctor(file: &Path) -> Result<u8, AppError> {
    let mut ok = true;
    match Engine::connect().await {
        Ok(engine) => {
            let (version, arch) = engine.version().await?;
            println!("ok    engine: Docker {version} on {arch}");
            match engine.image_labels(baseimage::BUSYBOX_TAG).await? {
                Some(_) => println!("ok    base image {} present", baseimage::BUSYBOX_TAG),
                None => println!(
                    "note  base image {} missing: `berth baseimages` builds it",
                    baseimage::BUSYBOX_TAG
                ),
            }
        }
        Err(e) => {
            ok = false;
            println!("FAIL  engine: {e}");
        }
    }
    let (inventory, driver) = gpu::inventory();
    match (&inventory.problem, driver) {
        (Some(why), _) => println!("note  GPUs: none usable: {why}"),
        (None, d) => {
            let d = d.unwrap_or_default();
            println!("ok    GPUs: driver {}, CUDA {}", d.version, d.cuda);
            for g in &inventory.gpus {
                println!(
                    "      [{}] {} {} {} MiB",
                    g.index,
                    g.uuid,
                    g.name,
                    g.memory_total >> 20
                );
            }
        }
    }
    if let Ok(spec) = load(file) {
        for v in spec.versions() {
            if let Some(p) = v.publish {
                match std::net::TcpListener::bind(("127.0.0.1", p)) {
                    Ok(_) => println!("ok    port {p} ({}) is free", v.id()),
                    Err(_) => println!(
                        "note  port {p} ({}) is in use (fine if berth already runs it)",
                        v.id()
                    ),
                }
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}
