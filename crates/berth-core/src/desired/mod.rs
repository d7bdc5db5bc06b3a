//! Desired state: a validated [`Spec`] plus facts about this host, resolved into the
//! exact engine objects that should exist (containers, networks, volumes).
//!
//! Facts (image IDs, secret values, GPUs) are gathered by the shell and passed in,
//! so this stays a pure function that tests can drive with made-up hosts.

mod container;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diag::Diagnostic;
use super::gpu::{self, GpuRequest};
use super::hash::{sha256_hex, ContainerConfig};
pub use super::placement::{SwarmFacts, GPU_RESOURCE, LABEL_CLASS, RESERVE_SHARE};
use super::spec::{Health, Runtime, Scope, Spec};

pub const LABEL_PROJECT: &str = "berth.project";
pub const LABEL_SERVICE: &str = "berth.service";
pub const LABEL_VERSION: &str = "berth.version";
pub const LABEL_SCOPE: &str = "berth.scope";
pub const LABEL_HASH: &str = "berth.hash";
/// The canonical configuration the hash was computed from (see [`ContainerConfig`]).
pub const LABEL_CONFIG: &str = "berth.config";
pub const LABEL_KEEP: &str = "berth.keep";
/// The service URL path the gateway routes to the container.
pub const LABEL_PATH: &str = "berth.path";
/// `true` on the active version's container, as berth set it before the
/// routes record (`core::active`); read only when there is no record.
pub const LABEL_ACTIVE: &str = "berth.active";
/// `true` when the gateway serves it without a token.
pub const LABEL_PUBLIC: &str = "berth.public";
/// The commit a container was created from; not part of the hash, so a commit
/// that does not change a service does not replace it.
pub const LABEL_REVISION: &str = "berth.revision";
/// The health check, when it is not the default `GET /`.
pub const LABEL_HEALTH: &str = "berth.health";
/// `true` on a job's container: it runs to completion (`status` reads its run
/// from the container alone).
pub const LABEL_JOB: &str = "berth.job";

/// What a service version is built from: enough to build it again at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInput {
    /// `service@version`, for messages.
    pub id: String,
    /// The package: a `.tar.gz` file or a directory, as an absolute path.
    pub package: String,
    pub runtime: Runtime,
    pub extras: Vec<String>,
    /// Node: run the package's own `node_modules`, install nothing.
    #[serde(default)]
    pub vendored: bool,
    pub command: Option<Vec<String>>,
    /// The CUDA base (`12.4`) a `-cuda` runtime is built on, chosen by the driver.
    #[serde(default)]
    pub cuda: Option<String>,
    /// Swarm: the registry (`HOST:PORT`) the image is pushed to, so every node
    /// can pull it; it prefixes the image's tag.
    #[serde(default)]
    pub registry: Option<String>,
    /// The keeps' mount paths: the image holds each as a directory the app
    /// user owns, so a new volume is the service's to write.
    #[serde(default)]
    pub keeps: Vec<String>,
}

/// What the shell found out about building one service version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFact {
    pub input: BuildInput,
    /// Hash of the build context without the base image: a saved plan checks it.
    pub source_hash: String,
    /// The base image tag (berth-local/<runtime>:stable).
    pub base: String,
    /// The base is not in the engine yet and is built first.
    pub base_missing: bool,
    /// The image tag, known once the base is (it hashes the base's ID).
    pub tag: Option<String>,
    /// The image ID when that tag is already in the engine: nothing to build.
    pub image_id: Option<String>,
    /// The top-level directory the package was wrapped in, stripped.
    pub stripped: Option<String>,
    /// The command the image starts with, and why that one.
    #[serde(default)]
    pub entry: Option<String>,
}

/// What the host can offer, gathered by the shell.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `service@version` -> build facts, for versions built from packages.
    pub builds: BTreeMap<String, BuildFact>,
    /// Image reference -> image ID, for the references the engine has.
    pub image_ids: BTreeMap<String, String>,
    /// Environment variable -> value, for the variables secrets read.
    pub env: BTreeMap<String, String>,
    /// GPUs berth may hand out.
    pub gpus: GpuInventory,
    /// Asset URL -> the file fetched and verified for it.
    pub assets: BTreeMap<String, AssetFact>,
    /// What a swarm's nodes offer (empty on one engine).
    pub swarm: SwarmFacts,
}

/// An asset in the local cache: its content's SHA-256 and where the file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFact {
    pub sha256: String,
    /// The cached file on the host (bind-mounted read-only).
    pub path: String,
    pub size: u64,
}

pub use super::gpu::{Gpu, GpuInventory};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNetwork {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The project's serve network ([`serve_network_name`]): internal, and its
    /// containers do not reach each other; only this host reaches them there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serve: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredContainer {
    pub name: String,
    pub service: String,
    pub version: String,
    /// The reference the spec named, for messages (the config holds its ID).
    pub image_ref: String,
    /// Secret name -> the environment variable its value is read from at apply time.
    pub secret_sources: BTreeMap<String, String>,
    /// Container path -> the cached asset file on the host (the config holds its
    /// SHA-256; the host path differs between machines, so it is not hashed).
    #[serde(default)]
    pub asset_sources: BTreeMap<String, String>,
    /// Set when the image is built from a package.
    #[serde(default)]
    pub build: Option<BuildFact>,
    /// The commit this container is created from, when the source is git.
    #[serde(default)]
    pub revision: Option<String>,
    /// The gate a started container passes before apply goes on (not hashed:
    /// it decides how berth waits, not what runs).
    #[serde(default)]
    pub health: Health,
    /// Whether the gateway routes the service path here and the container
    /// answers to the service's name. Not hashed: a switch is a routing
    /// change (`core::active`), not a new container.
    #[serde(default)]
    pub active: bool,
    /// The host port asked for when `publish` is not set: the one the version
    /// had, so its direct URL survives a replace where the port is free. Not
    /// hashed (the engine may have to pick another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub config: ContainerConfig,
    pub hash: String,
}

/// The image field of a container whose image is built during apply; the
/// executor puts the built image's ID in its place and hashes again.
pub fn pending_image(tag: Option<&str>) -> String {
    format!("(to be built: {})", tag.unwrap_or("a new image"))
}

impl DesiredContainer {
    /// `project/service@version`, as plan lines name it.
    pub fn subject(&self, project: &str) -> String {
        format!("{project}/{}@{}", self.service, self.version)
    }

    /// The labels every engine gives the container: the configuration's, its
    /// hash, the configuration itself (what a plan diffs against), and the
    /// commit it came from.
    pub fn engine_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.config.labels.clone();
        labels.insert(LABEL_HASH.into(), self.hash.clone());
        labels.insert(LABEL_CONFIG.into(), self.config.canonical());
        if let Some(rev) = &self.revision {
            labels.insert(LABEL_REVISION.into(), rev.clone());
        }
        labels
    }

    /// Whether the gateway routes the service path to this version.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The same container with the service path (and the service's name on its
    /// networks) given to it or not; its hash stays.
    pub fn with_active(&self, active: bool) -> DesiredContainer {
        let mut c = self.clone();
        c.active = active;
        c
    }

    /// The project it belongs to (its `berth.project` label).
    fn project(&self) -> &str {
        self.config
            .labels
            .get(LABEL_PROJECT)
            .map_or("", String::as_str)
    }

    /// Network -> the aliases the container is created with: the service's
    /// name where it is active (a later switch moves it without a restart),
    /// on every network that carries names.
    pub fn create_networks(&self) -> BTreeMap<String, Vec<String>> {
        let mut networks = self.config.networks.clone();
        for (name, aliases) in networks.iter_mut() {
            if carries_names(self.project(), name) {
                aliases.extend(service_aliases(&self.service, self.active));
            }
        }
        networks
    }

    /// The hashes berth gave this configuration before, which a container
    /// still fits and is not replaced for: before the active mark left it (a
    /// `berth.active` label and the service alias were hashed), and before
    /// the serve network (the container then keeps the switch's older order,
    /// see `converge::switch`).
    pub fn earlier_hashes(&self, active: bool) -> [String; 3] {
        let mut before_serve = self.config.clone();
        before_serve
            .networks
            .retain(|name, _| carries_names(self.project(), name));
        let legacy = |config: &ContainerConfig| {
            let mut config = config.clone();
            config
                .labels
                .insert(LABEL_ACTIVE.to_string(), active.to_string());
            for aliases in config.networks.values_mut() {
                *aliases = service_aliases(&self.service, active);
            }
            config.hash()
        };
        [
            legacy(&self.config),
            before_serve.hash(),
            legacy(&before_serve),
        ]
    }
}

/// Everything that should exist on the engine for one project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub project: String,
    pub networks: Vec<DesiredNetwork>,
    pub volumes: Vec<DesiredVolume>,
    pub containers: Vec<DesiredContainer>,
    /// What is allowed but worth saying (an asset without a checksum).
    #[serde(default)]
    pub warnings: Vec<String>,
}

pub fn container_name(project: &str, service: &str, version: &str) -> String {
    format!("{project}-{service}-{version}")
}

pub fn network_name(project: &str, scope: &Scope) -> String {
    match scope {
        Scope::Global => format!("berth-{project}-global"),
        Scope::Database(db) => format!("berth-{project}-db-{db}"),
    }
}

/// The project's serve network: on one host, every version of a service
/// that declares more than one (one that can be switched to) joins it, and a
/// gateway on the host reaches the version at its address there. No
/// name is ever given on it, so moving a service's name (a disconnect and a
/// connect on the scope networks) never moves the address a gateway routes to.
/// None of the project's scope networks is called this (theirs end in
/// `-global` or start `-db-`).
pub fn serve_network_name(project: &str) -> String {
    format!("berth-{project}-serve")
}

/// Whether a service's name is given on `network`: on every network of the
/// project but its serve network.
pub fn carries_names(project: &str, network: &str) -> bool {
    network != serve_network_name(project)
}

/// The configuration a container was created with, as its `berth.config`
/// label records it (`None` without one, or one that does not parse).
pub fn recorded_config(labels: &BTreeMap<String, String>) -> Option<ContainerConfig> {
    serde_json::from_str(labels.get(LABEL_CONFIG)?).ok()
}

/// Whether a container (by its labels) was created on the project's serve
/// network, so that moving its name never moves the address the gateways
/// route to.
pub fn routed_apart(labels: &BTreeMap<String, String>, project: &str) -> bool {
    recorded_config(labels).is_some_and(|c| c.networks.contains_key(&serve_network_name(project)))
}

/// `/var/lib/data` -> `var-lib-data`: a volume-name-safe form of a keep path.
pub fn keep_slug(path: &str) -> String {
    let mut slug = String::new();
    for c in path.trim_matches('/').chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && slug.ends_with('-')) {
            slug.push(c);
        }
    }
    slug
}

/// `<project>-<service>-<slug>-<hash12>`: the slug is for people, the hash (of
/// project, service and path, each whole) keeps two keeps apart whose slugs
/// agree (`web` + `/x-data` and `web-x` + `/data`; `/a-b` and `/a/b`).
pub fn volume_name(project: &str, service: &str, keep: &str) -> String {
    let tag = sha256_hex(format!("{project}\0{service}\0{keep}").as_bytes());
    format!("{project}-{service}-{}-{}", keep_slug(keep), &tag[..12])
}

/// The name berth gave a keep's volume before names were collision-free; read
/// only to move its data to [`volume_name`].
pub fn legacy_volume_name(project: &str, service: &str, keep: &str) -> String {
    format!("{project}-{service}-{}", keep_slug(keep))
}

/// The network aliases of a version: the active one answers to the service's name.
fn service_aliases(service: &str, active: bool) -> Vec<String> {
    match active {
        true => vec![service.to_string()],
        false => Vec::new(),
    }
}

/// Resolves a spec against the host's facts. Every problem is collected: a missing
/// image, an unset secret variable, a GPU class the host cannot serve.
pub fn resolve(spec: &Spec, facts: &Facts) -> Result<Desired, Vec<Diagnostic>> {
    let project = &spec.project;
    let mut problems = Vec::new();
    let databases = spec.databases();

    let mut networks: BTreeMap<String, DesiredNetwork> = BTreeMap::new();
    let mut volumes: BTreeMap<String, DesiredVolume> = BTreeMap::new();
    let mut containers = Vec::new();
    let mut warnings = Vec::new();

    // A cluster's GPUs are its scheduler's to hand out, not this host's.
    let caps = spec.engine.capabilities();
    let requests: Vec<GpuRequest> = spec
        .versions()
        .filter(|_| caps.host_gpus)
        .filter_map(|v| {
            Some(GpuRequest {
                id: v.id(),
                class: v.machine.name().to_string(),
                memory: v.machine.gpu_memory_bytes()?,
                share: v.share_gpu,
            })
        })
        .collect();
    let gpus = match gpu::assign(&requests, &facts.gpus) {
        Ok(a) => a,
        Err(unplaced) => {
            for u in unplaced {
                let pos = spec
                    .versions()
                    .find(|v| v.id() == u.request.id)
                    .map(|v| v.pos);
                problems.push(Diagnostic::new("D001",
                    pos,
                    format!(
                        "{}: machine class `{}` needs a GPU with at least {} GiB to itself{}; {}",
                        u.request.id,
                        u.request.class,
                        u.request.memory >> 30,
                        if u.request.share { " or shared" } else { "" },
                        u.host
                    ),
                    "run it on a host with a suitable NVIDIA GPU and driver, allow sharing with `share_gpu: true` on the services that may share, or choose a CPU class (small, medium, large)",
                ));
            }
            BTreeMap::new()
        }
    };

    for svc in &spec.services {
        for v in &svc.versions {
            let active = v.version == svc.active;
            for a in v.assets.iter().filter(|a| a.sha256.is_none()) {
                let got = facts
                    .assets
                    .get(&a.url)
                    .map(|f| format!(" (fetched: sha256 {})", f.sha256))
                    .unwrap_or_default();
                warnings.push(format!(
                    "{}: asset `{}` ({}) has no sha256, so any content is accepted{got}; pin it with `sha256:`",
                    v.id(),
                    a.env,
                    a.url
                ));
            }
            let placed = container::container(
                project,
                v,
                active,
                &databases,
                facts,
                gpus.get(&v.id()),
                // Only a version that can be switched to needs it: a second
                // endpoint doubles what the engine does to start and remove
                // a container.
                caps.serve_network && svc.versions.len() > 1,
            )
            .and_then(|(mut c, nets, vols)| {
                if caps.placement {
                    super::placement::place(&mut c.config, v, &facts.swarm)?;
                    c.hash = c.config.hash();
                }
                Ok((c, nets, vols))
            });
            match placed {
                Ok((c, nets, vols)) => {
                    for n in nets {
                        networks.entry(n.name.clone()).or_insert(n);
                    }
                    for vol in vols {
                        volumes.entry(vol.name.clone()).or_insert(vol);
                    }
                    containers.push(c);
                }
                Err(mut d) => problems.append(&mut d),
            }
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|d| d.pos);
        return Err(problems);
    }
    Ok(Desired {
        project: project.clone(),
        networks: networks.into_values().collect(),
        volumes: volumes.into_values().collect(),
        containers,
        warnings,
    })
}

pub(crate) type Resolved = (DesiredContainer, Vec<DesiredNetwork>, Vec<DesiredVolume>);

/// The labels of a network or volume, `berth.hash` over the others included.
fn object_labels(
    name: &str,
    project: &str,
    scope: &Scope,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_PROJECT.to_string(), project.to_string());
    labels.insert(LABEL_SCOPE.to_string(), scope.label());
    for (k, v) in extra {
        labels.insert(k.to_string(), v.to_string());
    }
    let canonical = serde_json::to_string(&(name, &labels)).expect("plain data always serializes");
    labels.insert(LABEL_HASH.to_string(), sha256_hex(canonical.as_bytes()));
    labels
}
