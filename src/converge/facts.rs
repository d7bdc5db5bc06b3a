//! Facts of this host for a spec, gathered through the shell, then handed to the
//! core: the desired state (`resolve`) and the plan (`plan`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::build;
use crate::build::baseimage::{self, BaseImageError};
use crate::core::desired::{
    resolve, AssetFact, BuildFact, BuildInput, Desired, Facts, GpuInventory, SwarmFacts,
};
use crate::core::diag::Diagnostic;
use crate::core::plan::{self, Plan};
use crate::core::spec::{self, Spec};
use crate::shell::{asset, gpu, source};

use super::{refused, Context, ConvergeError};

/// The plan for `spec` against what runs now: the facts and the observation are
/// gathered side by side.
pub async fn make_plan(
    ctx: &Context,
    spec: &Spec,
    file: &Path,
    opts: plan::Options,
) -> Result<Plan, ConvergeError> {
    Ok(plan_observed(ctx, spec, file, opts).await?.0)
}

/// [`make_plan`], with the observation it was made against (what runs, when
/// the plan is empty, without one more list call).
pub async fn plan_observed(
    ctx: &Context,
    spec: &Spec,
    file: &Path,
    opts: plan::Options,
) -> Result<(Plan, plan::Observed), ConvergeError> {
    // The first error ends both: an engine that never answers one of them is
    // named within its timeout, not after the other's.
    let (desired, observed) = tokio::try_join!(desired(ctx, spec, file), async {
        Ok(ctx.engine.observe(&spec.project).await?)
    })?;
    ports_free(ctx, spec, &desired, &observed)
        .await
        .map_err(|items| refused(file, items))?;
    let planned = {
        let _timed = tracing::info_span!(target: "berth::timing", "plan").entered();
        plan::plan(&desired, &observed, &opts)
    };
    let mut plan = planned.map_err(|items| refused(file, items))?;
    plan.engine = spec.engine;
    plan.secrets_file = sealed_file(spec, file).map(|f| f.display().to_string());
    Ok((plan, observed))
}

/// A fixed host port (`publish`) that something else holds would fail the
/// apply half-way: it is refused now, naming the holder where it can be found.
/// A port one of the project's own containers holds is the plan's business.
async fn ports_free(
    ctx: &Context,
    spec: &Spec,
    desired: &Desired,
    observed: &plan::Observed,
) -> Result<(), Vec<Diagnostic>> {
    let ours: std::collections::BTreeSet<u16> = observed
        .containers
        .iter()
        .filter(|c| c.owned_by(&spec.project))
        .flat_map(|c| c.ports.iter().filter_map(|p| p.public))
        .collect();
    let wanted: Vec<(&str, &str, u16)> = desired
        .containers
        .iter()
        .filter_map(|c| Some((c.service.as_str(), c.version.as_str(), c.config.publish?)))
        .filter(|(_, _, port)| !ours.contains(port))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let holders = ctx.engine.port_holders().await.unwrap_or_default();
    let mut problems = Vec::new();
    for (service, version, port) in wanted {
        let holder = match holders.get(&port) {
            Some(name) => format!("the container `{name}`, which is not this project's"),
            None => match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    "another process on this host (`ss -ltnp` names it)".to_string()
                }
                Err(_) => continue,
            },
        };
        let pos = spec
            .versions()
            .find(|v| v.service == service && v.version.to_string() == version)
            .map(|v| v.pos);
        problems.push(Diagnostic::new("F002",
            pos,
            format!("{service}@{version}: host port {port} (`publish`) is taken by {holder}"),
            "free the port, or choose another `publish:` port (or none: berth then picks a free loopback port)",
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The encrypted secrets file a spec names, beside its file.
fn sealed_file(spec: &Spec, file: &Path) -> Option<std::path::PathBuf> {
    let name = spec.secrets_file.as_ref()?;
    let dir = file.parent().unwrap_or(Path::new("."));
    Some(std::path::absolute(dir.join(name)).unwrap_or_else(|_| dir.join(name)))
}

/// The values of a spec's secrets, by key (`SecretRef::key`): its
/// variables of berth's environment, and the encrypted secrets file opened
/// in memory when a version reads one. Never written anywhere.
pub fn secret_values(
    ctx: &Context,
    spec: &Spec,
    file: &Path,
) -> Result<BTreeMap<String, String>, ConvergeError> {
    let mut values = source::secret_env(spec, &ctx.settings.env);
    let sealed = spec
        .versions()
        .flat_map(|v| v.secrets.values())
        .any(|s| matches!(s.source, spec::SecretSource::Encrypted(_)));
    if let (true, Some(path)) = (sealed, sealed_file(spec, file)) {
        values.extend(crate::shell::sealed::open(
            &path,
            ctx.settings.age_key_file.as_deref(),
        )?);
    }
    Ok(values)
}

/// One image list, the secrets' variables, the assets (fetched and verified now,
/// so a bad one changes nothing), and the GPU inventory only when a GPU class or
/// a CUDA runtime is asked for.
async fn desired(ctx: &Context, spec: &Spec, file: &Path) -> Result<Desired, ConvergeError> {
    use tracing::Instrument;
    let span = tracing::info_span!(target: "berth::timing", "desired");
    desired_now(ctx, spec, file).instrument(span).await
}

/// The facts gathered, and the desired state resolved from them.
async fn desired_now(ctx: &Context, spec: &Spec, file: &Path) -> Result<Desired, ConvergeError> {
    super::packages_exist(spec, file)?;
    let (gpus, cuda) = host_gpus(spec);
    let image_ids = ctx.engine.image_ids().await?;
    let builds = build_facts(ctx, spec, file, &image_ids, cuda).await?;
    let facts = Facts {
        builds,
        image_ids,
        env: secret_values(ctx, spec, file)?,
        gpus,
        assets: asset_facts(ctx, spec, file).await?,
        swarm: swarm_facts(ctx, spec).await?,
    };
    resolve(spec, &facts).map_err(|items| refused(file, items))
}

/// What a swarm's nodes offer (the largest node's CPUs); nothing on one engine.
async fn swarm_facts(ctx: &Context, spec: &Spec) -> Result<SwarmFacts, ConvergeError> {
    if !spec.engine.capabilities().placement {
        return Ok(SwarmFacts::default());
    }
    let nodes = ctx.engine.nodes().await?.unwrap_or_default();
    Ok(SwarmFacts {
        max_nano_cpus: nodes.iter().map(|n| n.nano_cpus).max().unwrap_or(0),
        gpu_nodes: nodes
            .iter()
            .filter(|n| {
                n.generic
                    .get(crate::core::desired::GPU_RESOURCE)
                    .is_some_and(|&g| g > 0)
            })
            .count(),
        nodes: nodes.len(),
        this_node: nodes
            .iter()
            .find(|n| n.this)
            .map(|n| n.id.clone())
            .unwrap_or_default(),
    })
}

/// The GPU inventory and the CUDA version the driver supports, asked of NVML only
/// when the spec has a GPU class or a CUDA runtime (most hosts have no GPU), and
/// never for a swarm (its nodes' GPUs are Swarm's).
fn host_gpus(spec: &Spec) -> (GpuInventory, Option<(u32, u32)>) {
    if !spec.engine.capabilities().host_gpus {
        return Default::default();
    }
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
    ctx: &Context,
    spec: &Spec,
    file: &Path,
) -> Result<BTreeMap<String, AssetFact>, ConvergeError> {
    let mut wanted: BTreeMap<&str, (&spec::Asset, String)> = BTreeMap::new();
    for v in spec.versions() {
        for a in &v.assets {
            wanted.entry(a.url.as_str()).or_insert((a, v.id()));
        }
    }
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    // A repository's file reaches public addresses only, unless its owner
    // allowed more on the command line.
    let guarded = ctx.confine.is_some() && !ctx.private_assets;
    let client = match guarded {
        true => asset::public_client(),
        false => asset::client(),
    };
    let cache = asset::cache_dir(&ctx.settings.state_dir);
    let mut facts = BTreeMap::new();
    let mut problems = Vec::new();
    for (url, (a, id)) in wanted {
        if let Some(why) = guarded.then(|| asset::private_url(url)).flatten() {
            problems.push(Diagnostic::new(
                "F003",
                Some(a.pos),
                format!("{id}: asset `{}` ({url}): {why}", a.env),
                "fetch it from a public address, or allow private ones with --allow-private-assets",
            ));
            continue;
        }
        match asset::ensure(&client, &cache, a).await {
            Ok(f) => {
                facts.insert(url.to_string(), f);
            }
            Err(e) => problems.push(Diagnostic::new(
                "F004",
                Some(a.pos),
                format!("{id}: {e}"),
                e.help(),
            )),
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
    ctx: &Context,
    spec: &Spec,
    file: &Path,
    image_ids: &BTreeMap<String, String>,
    driver_cuda: Option<(u32, u32)>,
) -> Result<BTreeMap<String, BuildFact>, ConvergeError> {
    let engine = ctx.engine.as_ref();
    let mut facts = BTreeMap::new();
    let mut arch = None;
    let mut bases = Bases {
        engine,
        ids: BTreeMap::new(),
        checked: BTreeSet::new(),
    };
    for v in spec.versions() {
        let (spec::Source::Package(p), Some(runtime)) = (&v.source, v.runtime) else {
            continue;
        };
        let arch = match &arch {
            Some(a) => a,
            None => arch.insert(engine.version().await?.arch),
        };
        let cuda = cuda_choice(file, v, runtime, driver_cuda)?;
        let package = package_within(ctx, file, v, p)?;
        let input = BuildInput {
            id: v.id(),
            package: package.display().to_string(),
            runtime,
            extras: v.extras.clone(),
            vendored: v.vendored,
            command: v
                .command
                .as_deref()
                .map(|c| crate::core::entry::expand_port(c, v.port)),
            cuda,
            registry: spec.registry.clone(),
            keeps: v.keeps.clone(),
        };
        // A base that cannot be had here is said before anything is read or
        // downloaded for the package (dependencies can be gigabytes).
        let base = baseimage::runtime_tag(runtime, input.cuda.as_deref());
        let base_id = bases.available(&base, runtime, arch).await?;
        let prepared = build::prepare(engine, &spec.project, &input, arch, &ctx.settings).await?;
        // Building a wheel from a source distribution builds a missing base.
        let base_id = match base_id {
            None => bases.again(&base).await?,
            id => id,
        };
        let base_id = match (base_id, &prepared.node) {
            (None, Some(_)) => bases.build_now(ctx, &base, &input).await?,
            (id, _) => id,
        };
        // Node dependencies are installed now, in their base, so an unreachable
        // registry is a plan error; without the base yet, apply installs them
        // right after building it, before anything else changes.
        let tag = match &base_id {
            None => None,
            Some(id) => {
                let deps_id = match &prepared.node {
                    Some(deps) => Some(
                        build::ensure_node_deps(engine, &spec.project, &input, deps, id).await?,
                    ),
                    None => None,
                };
                Some(build::image_tag(
                    &input,
                    &spec.project,
                    &v.service,
                    &build::with_base(&prepared, id, deps_id.as_deref()).hash(),
                ))
            }
        };
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
                entry: Some(prepared.entry.clone()),
            },
        );
    }
    Ok(facts)
}

/// The CUDA base a `-cuda` runtime is built on: the newest the driver
/// supports. The choice names the base, so it is part of the image's hash.
fn cuda_choice(
    file: &Path,
    v: &spec::Version,
    runtime: spec::Runtime,
    driver_cuda: Option<(u32, u32)>,
) -> Result<Option<String>, ConvergeError> {
    if !runtime.is_cuda() {
        return Ok(None);
    }
    match crate::core::gpu::cuda_base(driver_cuda) {
        Ok(((major, minor), why)) => {
            tracing::info!(
                id = v.id(),
                cuda = format!("{major}.{minor}"),
                why,
                "CUDA base chosen"
            );
            Ok(Some(format!("{major}.{minor}")))
        }
        Err(why) => Err(refused(
            file,
            vec![Diagnostic::new(
                "F005",
                Some(v.pos),
                format!("{}: runtime `{}`: {why}", v.id(), runtime.name()),
                "upgrade the NVIDIA driver, or use a runtime without -cuda",
            )],
        )),
    }
}

/// Where a version's package is; from a git repository (`confine`), only
/// inside it.
fn package_within(
    ctx: &Context,
    file: &Path,
    v: &spec::Version,
    p: &str,
) -> Result<std::path::PathBuf, ConvergeError> {
    let package = build::package_path(file, p);
    if let Some(root) = &ctx.confine {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        if Path::new(p).is_absolute() || !package.starts_with(&root) {
            return Err(refused(
                file,
                vec![Diagnostic::new("F006",
                    Some(v.pos),
                    format!(
                        "{}: package `{p}` resolves to {}, outside the repository",
                        v.id(),
                        package.display()
                    ),
                    "a services file from a git repository may name only paths inside that repository, relative to the file",
                )],
            ));
        }
    }
    Ok(package)
}

/// The runtime bases of a plan's builds by local ID (a build's FROM), asked
/// once each: on a swarm the image list names only what a node can pull
/// (by registry digest).
struct Bases<'e> {
    engine: &'e dyn crate::shell::engine::Engine,
    ids: BTreeMap<String, Option<String>>,
    /// Bases whose architecture was checked against the engine's.
    checked: BTreeSet<String>,
}

impl Bases<'_> {
    /// The base's ID, if the engine has it (its architecture checked once);
    /// a missing base that cannot be built here is an error now.
    async fn available(
        &mut self,
        base: &str,
        runtime: spec::Runtime,
        arch: &str,
    ) -> Result<Option<String>, ConvergeError> {
        let id = match self.ids.get(base) {
            Some(id) => id.clone(),
            None => {
                let id = self.engine.image_id(base).await?;
                self.ids.insert(base.to_string(), id.clone());
                id
            }
        };
        if id.is_some() && self.checked.insert(base.to_string()) {
            baseimage::check_arch(self.engine, base, arch).await?;
        }
        if id.is_none() {
            if let baseimage::BaseSource::Provided { why, how } = baseimage::base_source(runtime) {
                return Err(BaseImageError::RuntimeUnavailable {
                    runtime: runtime.name(),
                    why: why.into(),
                    how: format!("{how} (here: {base})"),
                }
                .into());
            }
        }
        Ok(id)
    }

    /// The base asked again (something may have built it meanwhile).
    async fn again(&mut self, base: &str) -> Result<Option<String>, ConvergeError> {
        let id = self.engine.image_id(base).await?;
        if id.is_some() {
            self.ids.insert(base.to_string(), id.clone());
        }
        Ok(id)
    }

    /// Node dependencies install in their base, at plan time: a missing base
    /// that can be built here is built now, so a plan that passes has its
    /// base and its dependencies, and apply cannot fail on them after
    /// minutes of building.
    async fn build_now(
        &mut self,
        ctx: &Context,
        base: &str,
        input: &BuildInput,
    ) -> Result<Option<String>, ConvergeError> {
        crate::say::info(&format!(
            "  {}: building the base {base} now, to install the Node dependencies at plan time",
            input.id
        ));
        baseimage::ensure_runtime(self.engine, &ctx.settings, input.runtime, &mut |l| {
            crate::say::info(&format!("  {l}"))
        })
        .await?;
        let id = self.engine.image_id(base).await?;
        self.ids.insert(base.to_string(), id.clone());
        Ok(id)
    }
}

/// Builds what `berth build [target]` asks for (the plan's build steps and
/// nothing else): (images built, tags already there).
pub async fn build_images(
    ctx: &Context,
    spec: &Spec,
    file: &Path,
    target: Option<&str>,
) -> Result<(usize, Vec<String>), ConvergeError> {
    let image_ids = ctx.engine.image_ids().await?;
    let (_, cuda) = host_gpus(spec);
    let facts = build_facts(ctx, spec, file, &image_ids, cuda).await?;
    let Some((plan, cached)) = plan::builds_only(&spec.project, &facts, target) else {
        return Err(ConvergeError::BuildTargetNotFound {
            target: target.unwrap_or("any service").into(),
            project: spec.project.clone(),
        });
    };
    super::execute::execute(ctx, &plan, &BTreeMap::new(), None).await?;
    Ok((plan.builds(), cached))
}
