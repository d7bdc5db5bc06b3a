//! The services.yaml file: its raw serde/schemars types, and validation into a [`Spec`].
//!
//! Parsing keeps line/column positions ([`Spanned`]) for everything validation may
//! complain about; validation collects every problem, then yields a typed [`Spec`]
//! in which every rule of design.md section 1 already holds.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, Pos};

/// The version an unversioned service gets (`image:` without `version:`).
pub const UNVERSIONED: &str = "0.0.0";

/// The port the service contract says a service listens on.
pub const DEFAULT_PORT: u16 = 8000;

/// Machine classes: enforced container limits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Machine {
    Small,
    Medium,
    Large,
    SmallGpu,
    LargeGpu,
}

impl Machine {
    pub const ALL: [Machine; 5] = [
        Machine::Small,
        Machine::Medium,
        Machine::Large,
        Machine::SmallGpu,
        Machine::LargeGpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Machine::Small => "small",
            Machine::Medium => "medium",
            Machine::Large => "large",
            Machine::SmallGpu => "small-gpu",
            Machine::LargeGpu => "large-gpu",
        }
    }

    /// CPUs, in units of 10^-9 CPUs as the engine counts them.
    pub fn nano_cpus(self) -> i64 {
        let cpus = match self {
            Machine::Small => 2,
            Machine::Medium | Machine::SmallGpu => 4,
            Machine::Large => 8,
            Machine::LargeGpu => 16,
        };
        cpus * 1_000_000_000
    }

    pub fn memory_bytes(self) -> i64 {
        let gib = match self {
            Machine::Small => 4,
            Machine::Medium | Machine::SmallGpu => 8,
            Machine::Large | Machine::LargeGpu => 16,
        };
        gib << 30
    }

    /// The least GPU memory a class needs, or `None` for a CPU-only class.
    pub fn gpu_memory_bytes(self) -> Option<u64> {
        match self {
            Machine::SmallGpu => Some(4 << 30),
            Machine::LargeGpu => Some(8 << 30),
            _ => None,
        }
    }
}

/// Runtimes that berth builds images for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Runtime {
    #[serde(rename = "python3.11")]
    Python311,
    #[serde(rename = "python3.12")]
    Python312,
    #[serde(rename = "python3.13")]
    Python313,
    #[serde(rename = "python3.11-cuda")]
    Python311Cuda,
    #[serde(rename = "python3.12-cuda")]
    Python312Cuda,
    #[serde(rename = "python3.13-cuda")]
    Python313Cuda,
    #[serde(rename = "node20")]
    Node20,
    #[serde(rename = "node22")]
    Node22,
}

impl Runtime {
    pub const ALL: [Runtime; 8] = [
        Runtime::Python311,
        Runtime::Python312,
        Runtime::Python313,
        Runtime::Python311Cuda,
        Runtime::Python312Cuda,
        Runtime::Python313Cuda,
        Runtime::Node20,
        Runtime::Node22,
    ];

    /// Built on an NVIDIA CUDA base.
    pub fn is_cuda(self) -> bool {
        matches!(
            self,
            Runtime::Python311Cuda | Runtime::Python312Cuda | Runtime::Python313Cuda
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Python311Cuda => "python3.11-cuda",
            Runtime::Python312Cuda => "python3.12-cuda",
            Runtime::Python313Cuda => "python3.13-cuda",
            Runtime::Node20 => "node20",
            Runtime::Node22 => "node22",
        }
    }
}

fn parse_named<T: Copy>(all: &[T], name: fn(T) -> &'static str, text: &str) -> Option<T> {
    all.iter().copied().find(|v| name(*v) == text)
}

fn list_names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------
// Raw types: exactly what the file may say. `deny_unknown_fields` everywhere, so
// an unknown key is an error with its position.

/// `scope: global` or `scope: { database: NAME }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawScope {
    /// `global`: reachable from every database scope.
    Named(String),
    /// Bound to one database: lives on that database's network only.
    Database(RawDatabaseScope),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseScope {
    pub database: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    /// The environment variable of berth's own environment that holds the value.
    #[schemars(with = "String")]
    pub from_env: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAsset {
    /// The environment variable that receives the file's path in the container.
    #[schemars(with = "String")]
    pub env: Spanned<String>,
    /// Where to fetch it (http or https; redirects are followed).
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// The SHA-256 of its content (64 hex digits); without it, a warning.
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
}

/// `health: { timeout: 30s, interval: 250ms }`: the gate a new container passes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// How long to wait for the first 2xx answer (default 30s; `0s`: do not wait).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// How often to ask (default 250ms).
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
}

/// Declares the fields a service and a version share, once, so the two raw types
/// cannot drift apart (serde's `flatten` does not combine with `deny_unknown_fields`).
macro_rules! settings_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $extra:ident : $ety:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $extra: $ety,)*
            /// Bring your own container: an image reference.
            #[schemars(with = "Option<String>")]
            pub image: Option<Spanned<String>>,
            /// Build from code: a `.tar.gz` code package or a directory, relative to the file.
            #[schemars(with = "Option<String>")]
            pub package: Option<Spanned<String>>,
            /// The command to run, as a list (no shell).
            #[schemars(with = "Option<Vec<String>>")]
            pub command: Option<Spanned<Vec<String>>>,
            /// The runtime a package is built for.
            #[schemars(with = "Option<Runtime>")]
            pub runtime: Option<Spanned<String>>,
            /// Optional-dependency groups of pyproject.toml to install too.
            pub extras: Option<Vec<String>>,
            /// The machine class: enforced CPU, memory and GPU limits (default: small).
            #[schemars(with = "Option<Machine>")]
            pub machine: Option<Spanned<String>>,
            /// `global` (default) or `{ database: NAME }`.
            #[schemars(with = "Option<RawScope>")]
            pub scope: Option<Spanned<RawScope>>,
            /// The service URL path (default: /<service name>).
            #[schemars(with = "Option<String>")]
            pub path: Option<Spanned<String>>,
            /// The port the service listens on inside the container (default 8000).
            #[schemars(with = "Option<u16>")]
            pub port: Option<Spanned<u16>>,
            /// A fixed host port on 127.0.0.1; absent: a free port is chosen and reported.
            #[schemars(with = "Option<u16>")]
            pub publish: Option<Spanned<u16>>,
            /// Environment variables; scalar values are taken as their text.
            #[schemars(with = "Option<IndexMap<String, String>>")]
            pub env: Option<IndexMap<Spanned<String>, String>>,
            /// Secrets, read from berth's environment, never printed.
            #[schemars(with = "Option<IndexMap<String, RawSecret>>")]
            pub secrets: Option<IndexMap<Spanned<String>, RawSecret>>,
            /// Absolute paths that persist across restarts, replacements and versions.
            #[schemars(with = "Option<Vec<String>>")]
            pub keeps: Option<Vec<Spanned<String>>>,
            /// Files fetched once, verified, mounted read-only.
            #[schemars(with = "Option<Vec<RawAsset>>")]
            pub assets: Option<Spanned<Vec<RawAsset>>>,
            /// How long a new container may take to answer `GET /` with a 2xx.
            pub health: Option<RawHealth>,
            /// Whether a GPU class may share its GPU with other versions that allow
            /// it too (default false: one GPU to itself).
            #[schemars(with = "Option<bool>")]
            pub share_gpu: Option<Spanned<bool>>,
            /// Whether the gateway serves it without a token (default false: a
            /// request needs a token with `services:view`).
            #[schemars(with = "Option<bool>")]
            pub public: Option<Spanned<bool>>,
        }
    };
}

settings_struct!(
    /// One version of a service: any field set here overrides the service's.
    RawVersion {}
);

settings_struct!(
    /// A service: settings shared by its versions, and the versions themselves.
    RawService {
        /// Shorthand for one version: `version:` plus `image:`/`package:`.
        #[schemars(with = "Option<String>")]
        version: Option<Spanned<String>>,
        /// Versions that run side by side, keyed by semantic version.
        #[schemars(with = "Option<IndexMap<String, RawVersion>>")]
        versions: Option<IndexMap<Spanned<String>, RawVersion>>,
        /// The version the service path routes to (default: the highest).
        #[schemars(with = "Option<String>")]
        active: Option<Spanned<String>>,
    }
);

/// The whole file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "berth services.yaml")]
pub struct RawFile {
    /// Prefixes every container, network, volume and image: [a-z][a-z0-9-]{0,31}.
    #[schemars(with = "String")]
    pub project: Spanned<String>,
    /// The services, keyed by name: [a-z][a-z0-9-]{0,31}.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawService>")]
    pub services: IndexMap<Spanned<String>, RawService>,
}

/// The JSON Schema of services.yaml, as committed in schema/services.schema.json.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RawFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------
// Validated types.

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    Database(String),
}

impl Scope {
    /// The `berth.scope` label value.
    pub fn label(&self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Database(db) => format!("database:{db}"),
        }
    }
}

/// The health gate: a started container must answer `GET /` with a 2xx within
/// `timeout_ms` (asked every `interval_ms`); 0 means it is not waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub timeout_ms: u64,
    pub interval_ms: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            timeout_ms: 30_000,
            interval_ms: 250,
        }
    }
}

/// `30s`, `1m`, `250ms`, `2h` -> milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a duration: write 250ms, 30s, 5m or 1h");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let factor = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    Ok((n * factor).round() as u64)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Image(String),
    Package(String),
}

/// A file the service needs: fetched once into a content-addressed cache,
/// verified, mounted read-only, its path handed in `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub env: String,
    pub url: String,
    /// Lowercase hex; `None`: not given (a warning), the fetched content decides.
    pub sha256: Option<String>,
    pub pos: Pos,
}

/// A secret: the environment variable it is handed in, and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub from_env: String,
    pub pos: Pos,
}

/// One version of one service, with every service-level default already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub service: String,
    pub version: semver::Version,
    pub source: Source,
    pub command: Option<Vec<String>>,
    pub runtime: Option<Runtime>,
    pub extras: Vec<String>,
    pub machine: Machine,
    pub scope: Scope,
    pub path: String,
    pub port: u16,
    pub publish: Option<u16>,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretRef>,
    pub keeps: Vec<String>,
    pub health: Health,
    /// Served by the gateway without a token.
    pub public: bool,
    /// Files fetched once, verified, mounted read-only; their paths in `env`.
    pub assets: Vec<Asset>,
    /// May share its GPU with other versions that allow it.
    pub share_gpu: bool,
    /// Where the version is declared, for errors found after validation.
    pub pos: Pos,
}

impl Version {
    /// `service@version`, as every message names it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.service, self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The version the service path routes to: the file's, or a rollback's.
    pub active: semver::Version,
    /// Set while a rollback holds `active` away from what the file says: the file's.
    pub file_active: Option<semver::Version>,
    pub versions: Vec<Version>,
}

/// A rollback's hold on a service's active version: `version` stays active for as
/// long as the file still says `file_active` (a new `active` in the file ends it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveHold {
    pub version: semver::Version,
    pub file_active: semver::Version,
}

/// A valid services.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub project: String,
    /// Sorted by name.
    pub services: Vec<Service>,
}

impl Spec {
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.services.iter().flat_map(|s| s.versions.iter())
    }

    /// The spec with the rollback holds that still apply (the file still says what
    /// it said at the rollback, and the held version is still declared); returns
    /// the services whose hold no longer applies.
    pub fn with_holds(mut self, holds: &BTreeMap<String, ActiveHold>) -> (Spec, Vec<String>) {
        let mut stale = Vec::new();
        for (service, hold) in holds {
            let svc = self.services.iter_mut().find(|s| &s.name == service);
            match svc {
                Some(s)
                    if s.active == hold.file_active
                        && s.versions.iter().any(|v| v.version == hold.version) =>
                {
                    if s.active != hold.version {
                        s.file_active = Some(s.active.clone());
                        s.active = hold.version.clone();
                    }
                }
                _ => stale.push(service.clone()),
            }
        }
        (self, stale)
    }

    /// The databases some version is bound to, each once.
    pub fn databases(&self) -> std::collections::BTreeSet<&str> {
        self.versions()
            .filter_map(|v| match &v.scope {
                Scope::Database(db) => Some(db.as_str()),
                Scope::Global => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Parsing and validation.

/// Parses and validates one file's text. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Spec, Diagnostics> {
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| Diagnostics {
        file: file.to_string(),
        items: vec![syntax_diagnostic(&e)],
    })?;
    let mut v = Validator::default();
    let spec = v.file(raw);
    if v.items.is_empty() {
        Ok(spec)
    } else {
        v.items.sort_by_key(|d| d.pos);
        Err(Diagnostics {
            file: file.to_string(),
            items: v.items,
        })
    }
}

/// Turns a parser error into a diagnostic with a fix hint for the common cases.
fn syntax_diagnostic(e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e.location().map(Pos::from);
    let mut msg = e.without_snippet().to_string();
    // The parser appends the position itself; we print it in front instead.
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (message, help) = if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        (
            format!("duplicate key `{key}`"),
            "each key may appear once in a mapping: merge the two entries or rename one"
                .to_string(),
        )
    } else if msg.starts_with("unknown field") {
        (
            msg,
            "remove the key or fix its spelling; `berth schema` lists every key".to_string(),
        )
    } else {
        (
            msg,
            "fix the YAML at this position; `berth schema` describes the file".to_string(),
        )
    };
    Diagnostic::new(pos, message, help)
}

/// `[a-z][a-z0-9-]{0,31}`: names that prefix engine objects.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Default)]
struct Validator {
    items: Vec<Diagnostic>,
}

/// Service settings merged with one version's: the version's value wins.
fn pick<'a, T>(version: &'a Option<T>, service: &'a Option<T>) -> Option<&'a T> {
    version.as_ref().or(service.as_ref())
}

impl Validator {
    fn err(
        &mut self,
        pos: impl Into<Option<Pos>>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.items.push(Diagnostic::new(pos.into(), message, help));
    }

    fn name(&mut self, what: &str, name: &Spanned<String>) {
        if !is_valid_name(&name.value) {
            self.err(
                Pos::from(name.referenced),
                format!("{what} name `{}` is not valid", name.value),
                "use a lowercase letter, then up to 31 lowercase letters, digits or dashes ([a-z][a-z0-9-]{0,31})",
            );
        }
    }

    fn file(&mut self, raw: RawFile) -> Spec {
        self.name("project", &raw.project);
        let mut services = Vec::new();
        // publish port -> (who, where), to report clashes at the second use.
        let mut published: BTreeMap<u16, String> = BTreeMap::new();
        for (name, svc) in &raw.services {
            self.name("service", name);
            if let Some(s) = self.service(&name.value, Pos::from(name.referenced), svc) {
                for v in &s.versions {
                    if let Some(p) = v.publish {
                        if let Some(first) = published.get(&p) {
                            self.err(
                                v.pos,
                                format!("{}: host port {p} is already published by {first}", v.id()),
                                "give each service version its own `publish` port, or drop `publish` to get a free one",
                            );
                        } else {
                            published.insert(p, v.id());
                        }
                    }
                }
                services.push(s);
            }
        }
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Spec {
            project: raw.project.value,
            services,
        }
    }

    fn service(&mut self, name: &str, pos: Pos, svc: &RawService) -> Option<Service> {
        let empty = RawVersion::default();
        // (version text, its position, its own settings)
        let mut declared: Vec<(&str, Pos, Option<&RawVersion>)> = Vec::new();
        match (&svc.version, &svc.versions) {
            (Some(v), Some(_)) => {
                self.err(
                    Pos::from(v.referenced),
                    format!("service `{name}` has both `version` and `versions`"),
                    "use `version:` for a single version, or list every version under `versions:`",
                );
                return None;
            }
            (Some(v), None) => declared.push((&v.value, Pos::from(v.referenced), None)),
            (None, Some(vs)) => {
                if vs.is_empty() {
                    self.err(
                        pos,
                        format!("service `{name}` declares no versions"),
                        "add at least one entry under `versions:`",
                    );
                    return None;
                }
                declared.extend(
                    vs.iter()
                        .map(|(k, v)| (k.value.as_str(), Pos::from(k.referenced), Some(v))),
                );
            }
            (None, None) => declared.push((UNVERSIONED, pos, None)),
        }

        let mut versions = Vec::new();
        for (text, vpos, raw) in declared {
            let parsed = match semver::Version::parse(text) {
                Ok(v) => v,
                Err(e) => {
                    self.err(
                        vpos,
                        format!("service `{name}`: `{}` is not a semantic version ({e})", text),
                        "write versions as MAJOR.MINOR.PATCH, optionally with a pre-release: `1.2.0`, `2.0.0-rc.1`",
                    );
                    continue;
                }
            };
            if !parsed.build.is_empty() {
                self.err(
                    vpos,
                    format!("service `{name}`: version `{}` carries build metadata", text),
                    "drop the `+...` part: build metadata does not order versions and cannot be part of a container name",
                );
                continue;
            }
            if let Some(v) = self.version(name, parsed, vpos, svc, raw.unwrap_or(&empty)) {
                versions.push(v);
            }
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        let highest = versions.last()?.version.clone();
        let active = match &svc.active {
            None => highest,
            Some(a) => match semver::Version::parse(&a.value) {
                Ok(v) if versions.iter().any(|x| x.version == v) => v,
                _ => {
                    let declared: Vec<String> =
                        versions.iter().map(|v| v.version.to_string()).collect();
                    self.err(
                        Pos::from(a.referenced),
                        format!(
                            "service `{name}`: active version `{}` is not declared",
                            a.value
                        ),
                        format!(
                            "set `active` to one of the declared versions: {}",
                            declared.join(", ")
                        ),
                    );
                    return None;
                }
            },
        };
        Some(Service {
            name: name.to_string(),
            active,
            file_active: None,
            versions,
        })
    }

    fn version(
        &mut self,
        service: &str,
        version: semver::Version,
        pos: Pos,
        s: &RawService,
        v: &RawVersion,
    ) -> Option<Version> {
        let id = format!("{service}@{version}");
        let before = self.items.len();

        let source = match (pick(&v.image, &s.image), pick(&v.package, &s.package)) {
            (Some(i), None) => {
                if i.value.trim().is_empty() {
                    self.err(
                        Pos::from(i.referenced),
                        format!("{id}: `image` is empty"),
                        "name an image, for example `berth-local/busybox:stable`",
                    );
                }
                Some(Source::Image(i.value.clone()))
            }
            (None, Some(p)) => Some(Source::Package(p.value.clone())),
            (Some(i), Some(_)) => {
                self.err(
                    Pos::from(i.referenced),
                    format!("{id} sets both `image` and `package`"),
                    "keep exactly one: `image` to run a ready image, `package` to build from code",
                );
                None
            }
            (None, None) => {
                self.err(
                    pos,
                    format!("{id} has neither `image` nor `package`"),
                    "add `image: REFERENCE` to run a ready image, or `package: PATH` to build from code",
                );
                None
            }
        };

        let runtime = match pick(&v.runtime, &s.runtime) {
            None => None,
            Some(r) => match parse_named(&Runtime::ALL, Runtime::name, &r.value) {
                Some(rt) => Some(rt),
                None => {
                    self.err(
                        Pos::from(r.referenced),
                        format!("{id}: unknown runtime `{}`", r.value),
                        format!("use one of {}", list_names(&Runtime::ALL, Runtime::name)),
                    );
                    None
                }
            },
        };
        match (&source, runtime, pick(&v.runtime, &s.runtime)) {
            (Some(Source::Package(_)), None, None) => self.err(
                pos,
                format!("{id} builds from a package but names no `runtime`"),
                format!(
                    "add `runtime:` with one of {}",
                    list_names(&Runtime::ALL, Runtime::name)
                ),
            ),
            (Some(Source::Image(_)), _, Some(r)) => self.err(
                Pos::from(r.referenced),
                format!(
                    "{id}: `runtime` applies only to code packages, and this version runs an image"
                ),
                "remove `runtime`, or replace `image` with `package`",
            ),
            _ => {}
        }
        let extras = pick(&v.extras, &s.extras).cloned().unwrap_or_default();
        if !extras.is_empty() && matches!(source, Some(Source::Image(_))) {
            self.err(
                pos,
                format!("{id}: `extras` applies only to code packages"),
                "remove `extras`, or build from a `package`",
            );
        }

        let machine = match pick(&v.machine, &s.machine) {
            None => Machine::Small,
            Some(m) => parse_named(&Machine::ALL, Machine::name, &m.value).unwrap_or_else(|| {
                self.err(
                    Pos::from(m.referenced),
                    format!("{id}: unknown machine class `{}`", m.value),
                    format!("use one of {}", list_names(&Machine::ALL, Machine::name)),
                );
                Machine::Small
            }),
        };

        let scope = match pick(&v.scope, &s.scope) {
            None => Scope::Global,
            Some(sc) => match &sc.value {
                RawScope::Named(n) if n == "global" => Scope::Global,
                RawScope::Database(d) if is_valid_name(&d.database) => {
                    Scope::Database(d.database.clone())
                }
                RawScope::Database(d) => {
                    self.err(
                        Pos::from(sc.referenced),
                        format!("{id}: database name `{}` is not valid", d.database),
                        "use a lowercase letter, then up to 31 lowercase letters, digits or dashes",
                    );
                    Scope::Global
                }
                RawScope::Named(n) => {
                    self.err(
                        Pos::from(sc.referenced),
                        format!("{id}: unknown scope `{n}`"),
                        "write `scope: global`, or `scope: { database: NAME }` to bind the service to one database",
                    );
                    Scope::Global
                }
            },
        };

        let path = match pick(&v.path, &s.path) {
            None => format!("/{service}"),
            Some(p) => {
                if !p.value.starts_with('/') {
                    self.err(
                        Pos::from(p.referenced),
                        format!("{id}: path `{}` does not start with `/`", p.value),
                        format!("write it as `/{}`", p.value),
                    );
                }
                p.value.clone()
            }
        };

        let port = match pick(&v.port, &s.port) {
            None => DEFAULT_PORT,
            Some(p) => {
                if p.value == 0 {
                    self.err(
                        Pos::from(p.referenced),
                        format!("{id}: port 0 is not a port"),
                        "use the port the service listens on, 1 to 65535 (8000 by default)",
                    );
                }
                p.value
            }
        };
        let publish = pick(&v.publish, &s.publish).map(|p| {
            if p.value == 0 {
                self.err(
                    Pos::from(p.referenced),
                    format!("{id}: publish port 0 is not a port"),
                    "use 1 to 65535, or drop `publish` to get a free port",
                );
            }
            p.value
        });

        let command = pick(&v.command, &s.command).map(|c| {
            if c.value.is_empty() {
                self.err(
                    Pos::from(c.referenced),
                    format!("{id}: `command` is empty"),
                    "list the program and its arguments, or remove `command` to use the image's",
                );
            }
            c.value.clone()
        });

        // Service env first, then the version's on top.
        let mut env = BTreeMap::new();
        for map in [&s.env, &v.env].into_iter().flatten() {
            for (k, val) in map {
                self.env_name(&id, "environment variable", k);
                env.insert(k.value.clone(), val.clone());
            }
        }
        let mut secrets = BTreeMap::new();
        for map in [&s.secrets, &v.secrets].into_iter().flatten() {
            for (k, sec) in map {
                self.env_name(&id, "secret", k);
                if env.contains_key(&k.value) {
                    self.err(
                        Pos::from(k.referenced),
                        format!(
                            "{id}: `{}` is both an environment variable and a secret",
                            k.value
                        ),
                        "keep it in one of `env` or `secrets`",
                    );
                }
                if !is_env_name(&sec.from_env.value) {
                    self.err(
                        Pos::from(sec.from_env.referenced),
                        format!("{id}: secret `{}` reads `{}`, which is not an environment variable name", k.value, sec.from_env.value),
                        "name a variable of berth's environment: letters, digits and `_`, not starting with a digit",
                    );
                }
                secrets.insert(
                    k.value.clone(),
                    SecretRef {
                        from_env: sec.from_env.value.clone(),
                        pos: Pos::from(sec.from_env.referenced),
                    },
                );
            }
        }

        let mut keeps = Vec::new();
        for k in pick(&v.keeps, &s.keeps).into_iter().flatten() {
            if !k.value.starts_with('/') || k.value.split('/').any(|c| c == "..") {
                self.err(
                    Pos::from(k.referenced),
                    format!("{id}: keep path `{}` is not a plain absolute path", k.value),
                    "write the absolute path inside the container, without `..`, for example `/data`",
                );
            } else if keeps.contains(&k.value) {
                self.err(
                    Pos::from(k.referenced),
                    format!("{id}: keep path `{}` is listed twice", k.value),
                    "list each path once",
                );
            } else if k.value.trim_end_matches('/').is_empty() {
                self.err(
                    Pos::from(k.referenced),
                    format!("{id}: `/` cannot be kept"),
                    "keep a directory below `/`, for example `/data`",
                );
            } else {
                keeps.push(k.value.clone());
            }
        }

        let mut health = Health::default();
        if let Some(h) = pick(&v.health, &s.health) {
            for (field, value, min) in [("timeout", &h.timeout, 0), ("interval", &h.interval, 10)] {
                let Some(value) = value else { continue };
                match parse_duration_ms(&value.value) {
                    Ok(ms) if ms >= min => {
                        if field == "timeout" {
                            health.timeout_ms = ms;
                        } else {
                            health.interval_ms = ms;
                        }
                    }
                    Ok(_) => self.err(Pos::from(value.referenced), format!("{id}: health {field} `{}` is too short", value.value), "use at least 10ms"),
                    Err(e) => self.err(Pos::from(value.referenced), format!("{id}: health {field}: {e}"), "for example `timeout: 30s`, `interval: 250ms`; `timeout: 0s` starts without waiting"),
                }
            }
        }

        let public = pick(&v.public, &s.public).is_some_and(|p| p.value);

        let share_gpu = pick(&v.share_gpu, &s.share_gpu).is_some_and(|p| p.value);
        let mut assets: Vec<Asset> = Vec::new();
        for a in pick(&v.assets, &s.assets)
            .map(|a| a.value.as_slice())
            .unwrap_or(&[])
        {
            self.env_name(&id, "asset variable", &a.env);
            if env.contains_key(&a.env.value)
                || secrets.contains_key(&a.env.value)
                || assets.iter().any(|b| b.env == a.env.value)
            {
                self.err(
                    Pos::from(a.env.referenced),
                    format!(
                        "{id}: `{}` is set twice (env, secrets or another asset)",
                        a.env.value
                    ),
                    "give each asset its own variable name",
                );
            }
            let url = a.url.value.trim();
            let after_scheme = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if after_scheme.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
                self.err(
                    Pos::from(a.url.referenced),
                    format!("{id}: asset url `{url}` is not an http(s) URL"),
                    "write the full address, for example https://example.org/model.bin",
                );
            }
            let sha256 = a
                .sha256
                .as_ref()
                .map(|h| h.value.trim().to_ascii_lowercase());
            if let (Some(h), Some(raw)) = (&sha256, &a.sha256) {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.err(
                        Pos::from(raw.referenced),
                        format!(
                            "{id}: asset `{}`: sha256 `{}` is not 64 hex digits",
                            a.env.value, raw.value
                        ),
                        "write the SHA-256 of the file, as `sha256sum FILE` prints it",
                    );
                }
            }
            assets.push(Asset {
                env: a.env.value.clone(),
                url: url.to_string(),
                sha256,
                pos: Pos::from(a.env.referenced),
            });
        }

        if self.items.len() > before {
            return None;
        }
        Some(Version {
            service: service.to_string(),
            version,
            source: source?,
            command,
            runtime,
            extras,
            machine,
            scope,
            path,
            port,
            publish,
            env,
            secrets,
            keeps,
            health,
            public,
            assets,
            share_gpu,
            pos,
        })
    }

    fn env_name(&mut self, id: &str, what: &str, k: &Spanned<String>) {
        if !is_env_name(&k.value) {
            self.err(
                Pos::from(k.referenced),
                format!("{id}: {what} name `{}` is not valid", k.value),
                "use letters, digits and `_`, not starting with a digit",
            );
        } else if k.value.starts_with("BERTH_") {
            self.err(
                Pos::from(k.referenced),
                format!("{id}: {what} `{}` uses the reserved prefix BERTH_", k.value),
                "rename it: berth sets BERTH_* variables itself",
            );
        }
    }
}
