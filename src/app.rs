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
use crate::shell::{gateway, gpu, probe, state};

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
    #[error("{0}")]
    TokensInvalid(Diagnostics),
    #[error("cannot write the token file {path}: {source}")]
    TokensWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::shell::state::StateError),
    #[error(transparent)]
    Listener(#[from] crate::shell::api::ApiError),
    #[error(
        "no service `{service}` in {file}\n  help: `berth status` lists the services that run"
    )]
    ServiceFind { service: String, file: PathBuf },
    #[error("cannot roll back: {why}\n  help: {help}")]
    RollbackRefuse { why: String, help: String },
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
                for n in hold_notes(&spec) {
                    println!("{n}");
                }
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
        Command::Serve {
            file,
            gateway,
            tokens,
        } => serve(&file.file, gateway, tokens.as_deref()).await,
        Command::Rollback { file, service, to } => {
            rollback(&file.file, &service, to.as_deref(), verbose).await
        }
        Command::Token {
            command:
                crate::cli::TokenCommand::Add {
                    name,
                    permission,
                    tokens,
                },
        } => token_add(&tokens, &name, &permission),
        Command::Watch {
            file,
            git,
            reference,
            path,
            interval,
            listen,
            token_file,
            gateway,
            tokens,
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
            let tokens = load_tokens(tokens.as_deref(), token.as_deref())?;
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
                tokens,
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

/// Reads and validates the file, then applies the rollback holds that still
/// apply (`berth rollback`), so every command sees the same active versions.
pub(crate) fn load(file: &Path) -> Result<Spec, AppError> {
    let text = source::read_spec(file)?;
    let spec = spec::parse(&file.display().to_string(), &text).map_err(AppError::SpecInvalid)?;
    let holds = state::holds(&spec.project);
    Ok(spec.with_holds(&holds).0)
}

/// After a successful converge: remember each service's active version (for
/// `berth rollback`) and forget the holds that no longer apply (the file's
/// `active` changed since).
pub(crate) fn settle(spec: &Spec) {
    let holds = state::holds(&spec.project);
    let kept: BTreeMap<_, _> = holds
        .iter()
        .filter(|(name, h)| {
            spec.services
                .iter()
                .any(|s| &&s.name == name && s.file_active.as_ref() == Some(&h.file_active))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let result = if kept.len() != holds.len() {
        state::write_holds(&spec.project, &kept)
    } else {
        Ok(())
    };
    if let Err(e) = result.and_then(|_| state::record_active(spec)) {
        tracing::warn!(error = %e, "cannot record the active versions");
    }
}

/// The notes `plan` and `apply` print for services a rollback holds.
fn hold_notes(spec: &Spec) -> Vec<String> {
    spec.services
        .iter()
        .filter_map(|s| {
            let file = s.file_active.as_ref()?;
            Some(format!(
                "note: `{}` is held at {} by `berth rollback`; the file says `active: \"{file}\"`. Set `active: \"{}\"` to keep it; changing `active` ends the hold.",
                s.name, s.active, s.active
            ))
        })
        .collect()
}

fn refused(file: &Path, items: Vec<Diagnostic>) -> AppError {
    AppError::PlanRefused(Diagnostics {
        file: file.display().to_string(),
        items,
    })
}

/// Facts of this host for the spec: one image list, the secrets' variables, the
/// assets (fetched and verified now, so a bad one changes nothing), and the GPU
/// inventory only when a GPU class or a CUDA runtime is asked for.
async fn desired(engine: &Engine, spec: &Spec, file: &Path) -> Result<Desired, AppError> {
    let (gpus, cuda) = host_gpus(spec);
    let image_ids = engine.image_ids().await?;
    let builds = build_facts(engine, spec, file, &image_ids, cuda).await?;
    let facts = Facts {
        builds,
        image_ids,
        env: source::secret_env(spec),
        gpus,
        assets: asset_facts(spec, file).await?,
    };
    resolve(spec, &facts).map_err(|items| refused(file, items))
}

/// The GPU inventory and the CUDA version the driver supports, asked of NVML only
/// when the spec has a GPU class or a CUDA runtime (most hosts have no GPU).
fn host_gpus(spec: &Spec) -> (crate::core::desired::GpuInventory, Option<(u32, u32)>) {
    let wants = spec
        .versions()
        .any(|v| v.machine.gpu_memory_bytes().is_some() || v.runtime.is_some_and(|r| r.is_cuda()));
    if !wants {
        return Default::default();
    }
    let (inventory, driver) = gpu::inventory();
    let cuda = driver.and_then(|d| crate::core::gpu::parse_cuda(&d.cuda));
    (inventory, cuda)
}

/// Every asset of the spec from the cache, fetching (and verifying) the missing
/// ones; every problem is reported, with the asset's place in the file.
async fn asset_facts(
    spec: &Spec,
    file: &Path,
) -> Result<BTreeMap<String, crate::core::desired::AssetFact>, AppError> {
    use crate::shell::asset;
    let mut wanted: BTreeMap<&str, (&spec::Asset, String)> = BTreeMap::new();
    for v in spec.versions() {
        for a in &v.assets {
            wanted.entry(a.url.as_str()).or_insert((a, v.id()));
        }
    }
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let client = asset::client();
    let mut facts = BTreeMap::new();
    let mut problems = Vec::new();
    for (url, (a, id)) in wanted {
        match asset::ensure(&client, a).await {
            Ok(f) => {
                facts.insert(url.to_string(), f);
            }
            Err(e) => problems.push(Diagnostic::new(Some(a.pos), format!("{id}: {e}"), e.help())),
        }
    }
    if problems.is_empty() {
        Ok(facts)
    } else {
        Err(refused(file, problems))
    }
}

/// For every version built from a package: read and check the package, resolve
/// its dependencies, and find out whether its image (and base) already exist.
async fn build_facts(
    engine: &Engine,
    spec: &Spec,
    file: &Path,
    image_ids: &BTreeMap<String, String>,
    driver_cuda: Option<(u32, u32)>,
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
        // A CUDA runtime is built on the newest CUDA base the driver supports;
        // the choice names the base, so it is part of the image's hash.
        let cuda = match runtime.is_cuda() {
            false => None,
            true => match crate::core::gpu::cuda_base(driver_cuda) {
                Ok(((major, minor), why)) => {
                    tracing::info!(
                        id = v.id(),
                        cuda = format!("{major}.{minor}"),
                        why,
                        "CUDA base chosen"
                    );
                    Some(format!("{major}.{minor}"))
                }
                Err(why) => {
                    return Err(refused(
                        file,
                        vec![Diagnostic::new(
                            Some(v.pos),
                            format!("{}: runtime `{}`: {why}", v.id(), runtime.name()),
                            "upgrade the NVIDIA driver, or use a runtime without -cuda",
                        )],
                    ))
                }
            },
        };
        let input = BuildInput {
            id: v.id(),
            package: build::package_path(file, p).display().to_string(),
            runtime,
            extras: v.extras.clone(),
            command: v.command.clone(),
            cuda,
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
                    how: format!("{how} (here: {})", prepared.base),
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
    let code = execute_and_report(&engine, &plan, file, verbose).await?;
    settle(&spec);
    for n in hold_notes(&spec) {
        println!("{n}");
    }
    Ok(code)
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
                replace(engine, self.project, old_id, &c, self.secrets_of(&c)).await?;
            }
            Action::StartContainer { id, name, .. } => engine.start_container(id, name).await?,
            Action::RemoveContainer { id, name, .. } => {
                // No longer declared: gateways stop routing to it and finish what
                // they sent before it goes.
                if let Some(port) = engine.published_port(id).await {
                    drain_gateways(self.project, port).await;
                }
                engine.remove_container(id, name).await?
            }
            Action::RemoveLeftover { id, name, .. } => engine.remove_container(id, name).await?,
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
/// container starts beside the old one and must be healthy before it takes the
/// name; then every gateway switches to it and drains the old one, and only then
/// is the old one stopped. With a fixed port or keeps, the old one is stopped and
/// moved aside first, and put back if the new one fails. Killed midway, a renamed
/// container (`-old-`, `-next-`) is a leftover the next plan removes.
async fn replace(
    engine: &Engine,
    project: &str,
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
        let old_port = engine
            .state_and_port(old_id, c.config.port)
            .await
            .and_then(|(_, p)| p);
        // Both renames happen while the old one still serves: a gateway that looks
        // in between routes to it (`-old-`), never to nothing.
        engine.rename_container(old_id, &c.name, &aside).await?;
        engine.rename_container(&new_id, &next, &c.name).await?;
        if let Some(port) = old_port {
            drain_gateways(project, port).await;
        }
        engine.stop_container(old_id, &aside).await?;
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

/// How long a gateway may take to finish the requests in flight to a container
/// that is leaving, before it is stopped anyway.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Tells every gateway of the project (in this process or another) to route away
/// from `port` now, and waits until the requests they sent there are done. A
/// gateway that no longer answers is forgotten.
async fn drain_gateways(project: &str, port: u16) {
    let gateways = state::gateways(project);
    futures_util::future::join_all(gateways.into_iter().map(|(file, addr)| async move {
        match gateway::drain(addr, port, DRAIN_TIMEOUT).await {
            Ok(0) => tracing::debug!(%addr, port, "gateway drained"),
            Ok(left) => tracing::warn!(%addr, port, left, "requests still in flight after the drain timeout"),
            Err(e) => {
                tracing::info!(%addr, error = %e, "a registered gateway does not answer; forgetting it");
                let _ = std::fs::remove_file(file);
            }
        }
    }))
    .await;
}

/// `berth build [SERVICE[@VERSION]]`: the build steps of the plan, and nothing else.
async fn build_only(file: &Path, target: Option<&str>, verbose: bool) -> Result<u8, AppError> {
    let spec = load(file)?;
    let engine = Engine::connect().await?;
    let (_, cached) = build_images(&engine, &spec, file, target, verbose).await?;
    for tag in cached {
        println!("= cached    {tag}");
    }
    Ok(0)
}

/// The build steps of the plan for `target` (default: every version built from
/// a package), and nothing else: (images built, tags already there).
pub(crate) async fn build_images(
    engine: &Engine,
    spec: &Spec,
    file: &Path,
    target: Option<&str>,
    verbose: bool,
) -> Result<(usize, Vec<String>), AppError> {
    let image_ids = engine.image_ids().await?;
    let (_, cuda) = host_gpus(spec);
    let mut facts = build_facts(engine, spec, file, &image_ids, cuda).await?;
    facts.retain(|id, _| match target {
        None => true,
        Some(t) if t.contains('@') => id == t,
        Some(t) => id.split('@').next() == Some(t),
    });
    if facts.is_empty() {
        return Err(AppError::BuildTargetFind {
            target: target.unwrap_or("any service").into(),
            project: spec.project.clone(),
        });
    }
    let mut steps = Vec::new();
    let mut cached = Vec::new();
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
    let plan = Plan {
        project: spec.project.clone(),
        fingerprint: String::new(),
        observed: vec![],
        steps,
        unchanged: vec![],
        failed: vec![],
        warnings: vec![],
    };
    execute(engine, &plan, &BTreeMap::new(), verbose, None).await?;
    Ok((plan.builds(), cached))
}

/// The routes over what runs now: one list call.
pub(crate) async fn route_table(
    engine: &Engine,
    project: &str,
) -> Result<crate::core::route::RouteTable, AppError> {
    let observed = engine.observe(project).await?;
    Ok(crate::core::route::routes(project, &observed))
}

/// The tokens the gateway and the API accept: the token file's (hashed), plus a
/// token given in clear (`BERTH_TOKEN`, `--token-file`), which may do anything.
pub(crate) fn load_tokens(
    file: Option<&Path>,
    root: Option<&str>,
) -> Result<crate::core::access::Tokens, AppError> {
    let mut tokens = match file {
        None => Default::default(),
        Some(f) => {
            let text = source::read_spec(f)?;
            crate::core::access::parse_tokens(&f.display().to_string(), &text)
                .map_err(AppError::TokensInvalid)?
        }
    };
    if let Some(t) = root {
        tokens = tokens.with_root(t);
    }
    Ok(tokens)
}

/// A gateway's route refresh: one list call for the project named in `project`
/// (none yet: the routes stay as they are).
pub(crate) fn routes_refresh(
    engine: &Engine,
    project: std::sync::Arc<std::sync::RwLock<Option<String>>>,
) -> gateway::Refresh {
    let engine = engine.clone();
    std::sync::Arc::new(move || {
        let e = engine.clone();
        let project = project.read().expect("no panics hold it").clone();
        Box::pin(async move { route_table(&e, &project?).await.ok() })
    })
}

/// Starts a gateway for `project` whose routes come from the engine (every
/// refresh is one list call), and registers its control address so that applies
/// in any process switch and drain it.
pub(crate) async fn start_gateway(
    engine: &Engine,
    project: &str,
    addr: std::net::SocketAddr,
    tokens: crate::core::access::Tokens,
    table: std::sync::Arc<std::sync::RwLock<crate::core::route::RouteTable>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(gateway::Running, state::GatewayRegistration), AppError> {
    let state = gateway::GatewayState {
        table,
        tokens: std::sync::Arc::new(tokens),
        refresh: routes_refresh(
            engine,
            std::sync::Arc::new(std::sync::RwLock::new(Some(project.to_string()))),
        ),
    };
    let running = gateway::serve(addr, state, shutdown).await?;
    let registration = state::register_gateway(project, running.control)?;
    Ok((running, registration))
}

/// `berth serve`: the gateway alone, for what runs. Its routes follow the
/// engine (refreshed every second, and at once when an apply switches a
/// container); the file only names the project.
async fn serve(
    file: &Path,
    addr: std::net::SocketAddr,
    tokens: Option<&Path>,
) -> Result<u8, AppError> {
    let spec = load(file)?;
    let tokens = load_tokens(tokens, std::env::var("BERTH_TOKEN").ok().as_deref())?;
    let engine = Engine::connect().await?;
    let table = std::sync::Arc::new(std::sync::RwLock::new(
        route_table(&engine, &spec.project).await?,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_running, _registration) =
        start_gateway(&engine, &spec.project, addr, tokens, table.clone(), async {
            let _ = stopped.await;
        })
        .await?;
    tracing::warn!(%addr, "gateway listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AppError::Daemon(e.to_string()))?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        match route_table(&engine, &spec.project).await {
            Ok(t) => *table.write().expect("no panics hold it") = t,
            Err(e) => tracing::warn!(error = %e, "cannot refresh the routes"),
        }
    }
    let _ = stop.send(());
    Ok(0)
}

/// `berth rollback SERVICE [--to VERSION]`: makes the version that was active
/// before (or the one named) active again, when it is still declared and runs
/// healthy. It holds until the file's `active` for that service changes.
async fn rollback(
    file: &Path,
    service: &str,
    to: Option<&str>,
    verbose: bool,
) -> Result<u8, AppError> {
    let spec = load(file)?;
    let Some(svc) = spec.services.iter().find(|s| s.name == service) else {
        return Err(AppError::ServiceFind {
            service: service.into(),
            file: file.into(),
        });
    };
    let declared: Vec<String> = svc.versions.iter().map(|v| v.version.to_string()).collect();
    let current = svc.active.to_string();
    let target = match to {
        Some(v) if declared.iter().any(|d| d == v) => v.to_string(),
        Some(v) => {
            return Err(AppError::RollbackRefuse {
                why: format!("`{service}` declares no version {v}"),
                help: format!("pick one of {}", declared.join(", ")),
            })
        }
        None => state::history(&spec.project)
            .get(service)
            .and_then(|h| {
                h.iter()
                    .rev()
                    .find(|v| **v != current && declared.contains(v))
                    .cloned()
            })
            .ok_or_else(|| AppError::RollbackRefuse {
                why: format!("no version of `{service}` other than {current} was active before and is still declared"),
                help: format!("name one with `berth rollback {service} --to VERSION` ({})", declared.join(", ")),
            })?,
    };
    if target == current {
        return Err(AppError::RollbackRefuse {
            why: format!("{service}@{target} is already active"),
            help: "nothing to do".into(),
        });
    }
    let engine = Engine::connect().await?;
    let _lock = take_lock(&spec.project, "rollback")?;
    // Only to a version that serves now: a rollback is for when things are bad.
    let observed = engine.observe(&spec.project).await?;
    let name = crate::core::desired::container_name(&spec.project, service, &target);
    let health = match observed.containers.iter().find(|c| c.name == name) {
        Some(c) if c.state == "running" => match c.ports.iter().find_map(|p| p.public) {
            Some(port) => probe::health(port).await.to_string(),
            None => "not published".into(),
        },
        Some(c) => c.state.clone(),
        None => "not running".into(),
    };
    if health != "healthy" {
        return Err(AppError::RollbackRefuse {
            why: format!("{service}@{target} is {health}, so it cannot take over"),
            help: format!(
                "`berth status` shows why; `berth logs {service}@{target}` shows its logs"
            ),
        });
    }
    let file_active = svc
        .file_active
        .clone()
        .unwrap_or_else(|| svc.active.clone());
    let before = state::holds(&spec.project);
    let mut holds = before.clone();
    if target == file_active.to_string() {
        holds.remove(service);
    } else {
        holds.insert(
            service.to_string(),
            crate::core::spec::ActiveHold {
                version: semver::Version::parse(&target).expect("declared versions parse"),
                file_active: file_active.clone(),
            },
        );
    }
    state::write_holds(&spec.project, &holds)?;
    let held = load(file)?;
    let result = async {
        let plan = make_plan(
            &engine,
            &held,
            file,
            plan::Options {
                allow_empty: false,
                retry_failed: true,
            },
        )
        .await?;
        execute_and_report(&engine, &plan, file, verbose).await
    }
    .await;
    if let Err(e) = result {
        // Nothing changes hands when the switch failed: the hold goes too.
        let _ = state::write_holds(&spec.project, &before);
        return Err(e);
    }
    settle(&held);
    println!("Rolled back `{service}` to {target} (it was {current}).");
    if target != file_active.to_string() {
        println!(
            "The file still says `active: \"{file_active}\"`; berth keeps {target} active until that changes. To keep it, set `active: \"{target}\"` under `services.{service}` in {}.",
            file.display()
        );
    }
    Ok(0)
}

/// `berth token add NAME -p PERMISSION...`: a new random token, printed once;
/// only its SHA-256 is appended to the token file.
fn token_add(file: &Path, name: &str, permissions: &[String]) -> Result<u8, AppError> {
    use crate::core::access::{token_entry, Permission};
    let refuse = |message: String, help: String| {
        AppError::TokensInvalid(Diagnostics {
            file: file.display().to_string(),
            items: vec![Diagnostic::new(None, message, help)],
        })
    };
    let mut perms = Vec::new();
    for p in permissions {
        match Permission::parse(p) {
            Some(p) => perms.push(p),
            None => {
                return Err(refuse(
                    format!("unknown permission `{p}`"),
                    format!(
                        "use some of {}",
                        Permission::ALL.map(Permission::name).join(", ")
                    ),
                ))
            }
        }
    }
    if !spec::is_valid_name(name) {
        return Err(refuse(
            format!("token name `{name}` is not valid"),
            "use a lowercase letter, then up to 31 lowercase letters, digits or dashes".into(),
        ));
    }
    let existing = std::fs::read_to_string(file).unwrap_or_default();
    if !existing.trim().is_empty() {
        let tokens = crate::core::access::parse_tokens(&file.display().to_string(), &existing)
            .map_err(AppError::TokensInvalid)?;
        if tokens.tokens.iter().any(|t| t.name == name) {
            return Err(refuse(
                format!("a token named `{name}` exists already"),
                "pick another name, or delete its entry from the file first".into(),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Daemon(format!("no randomness: {e}")))?;
    let value = format!("berth_{}", hex::encode(bytes));
    let mut text = if existing.trim().is_empty() {
        "tokens:\n".to_string()
    } else {
        existing
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&token_entry(name, &value, &perms));
    std::fs::write(file, text).map_err(|source| AppError::TokensWrite {
        path: file.into(),
        source,
    })?;
    eprintln!(
        "Added token `{name}` to {} (only its SHA-256 is stored). It is shown this once:",
        file.display()
    );
    println!("{value}");
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
    Ok(rows_of(engine, project, &observed, usage).await)
}

/// [`status_rows`] over containers already listed.
pub(crate) async fn rows_of(
    engine: &Engine,
    project: &str,
    observed: &Observed,
    usage: bool,
) -> Vec<StatusRow> {
    let ours: Vec<&plan::ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(project))
        .collect();
    futures_util::future::join_all(ours.iter().map(|c| async move {
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
        } else if c.name.contains("-next-") && running {
            // A successor on probation: its health gate is still running.
            "starting".to_string()
        } else {
            crate::core::render::health_word(&c.state, restarts, up_secs, probe)
        };
        let config: Option<crate::core::hash::ContainerConfig> = c
            .labels
            .get(crate::core::desired::LABEL_CONFIG)
            .and_then(|t| serde_json::from_str(t).ok());
        StatusRow {
            gpu: config.as_ref().and_then(|c| c.gpu.clone()),
            assets: config
                .as_ref()
                .map(|c| {
                    c.assets
                        .iter()
                        .map(|(path, sha)| format!("{path} (sha256 {})", &sha[..12.min(sha.len())]))
                        .collect()
                })
                .unwrap_or_default(),
            service: c.label(LABEL_SERVICE).to_string(),
            version: c.label(LABEL_VERSION).to_string(),
            active: c.label(crate::core::desired::LABEL_ACTIVE) == "true",
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
    .await
}

async fn logs(
    file: &Path,
    target: &str,
    follow: bool,
    tail: Option<usize>,
) -> Result<u8, AppError> {
    let spec = load(file)?;
    let engine = Engine::connect().await?;
    let c = find_target(&engine, &spec, target).await?;
    let mut stream = std::pin::pin!(engine.logs(&c.id, follow, tail));
    while let Some(chunk) = stream.next().await {
        print!("{}", chunk?);
    }
    Ok(0)
}

/// The container of `SERVICE` (its active version) or `SERVICE@VERSION`.
pub(crate) async fn find_target(
    engine: &Engine,
    spec: &Spec,
    target: &str,
) -> Result<plan::ObservedContainer, AppError> {
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
    let found = observed.containers.into_iter().find(|c| {
        c.owned_by(&spec.project)
            && c.label(LABEL_SERVICE) == service
            && version
                .as_deref()
                .is_none_or(|v| c.label(LABEL_VERSION) == v)
    });
    found.ok_or_else(|| AppError::ContainerFind {
        target: target.to_string(),
        project: spec.project.clone(),
    })
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
                    "      [{}] {} {}: {} MiB, {} MiB free",
                    g.index,
                    g.uuid,
                    g.name,
                    g.memory_total >> 20,
                    g.memory_free >> 20
                );
            }
            match crate::core::gpu::cuda_base(crate::core::gpu::parse_cuda(&d.cuda)) {
                Ok(((a, b), _)) => println!("ok    CUDA base for -cuda runtimes: {a}.{b}"),
                Err(why) => println!("note  -cuda runtimes cannot run here: {why}"),
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
