//! The validated model: what a file means once every rule holds.

#[allow(unused_imports)]
use super::*;

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

/// The health gate: a started container must pass its `check` within
/// `timeout_ms` (asked every `interval_ms`); 0 means it is not waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub timeout_ms: u64,
    pub interval_ms: u64,
    #[serde(default)]
    pub check: HealthCheck,
}

/// How long one run of a job may take unless `health.timeout` says.
pub const JOB_TIMEOUT_MS: u64 = 600_000;

impl Default for Health {
    fn default() -> Self {
        Health {
            timeout_ms: 30_000,
            interval_ms: 250,
            check: HealthCheck::default(),
        }
    }
}

/// What counts as healthy, as the platforms berth replaces define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheck {
    /// `GET <path>` answers 2xx or 3xx (default: `GET /`).
    Http { path: String },
    /// The port accepts a TCP connection.
    Tcp,
    /// Started is enough; `status` shows it as `unchecked`.
    None,
    /// Swarm: a command inside the task exits 0 (Swarm runs it).
    Command { argv: Vec<String> },
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck::Http { path: "/".into() }
    }
}

impl HealthCheck {
    /// The `berth.health` label: absent for the default, so containers made
    /// before health checks could be chosen keep their hash.
    pub fn label(&self) -> Option<String> {
        match self {
            HealthCheck::Http { path } if path == "/" => None,
            HealthCheck::Http { path } => Some(format!("GET {path}")),
            HealthCheck::Tcp => Some("tcp".into()),
            HealthCheck::None => Some("none".into()),
            HealthCheck::Command { argv } => Some(format!(
                "cmd {}",
                serde_json::to_string(argv).expect("strings always serialize")
            )),
        }
    }

    /// Reads the label back; an absent or unknown one is the default.
    pub fn from_label(label: Option<&str>) -> HealthCheck {
        match label {
            Some("tcp") => HealthCheck::Tcp,
            Some("none") => HealthCheck::None,
            Some(l) => match (l.strip_prefix("GET "), l.strip_prefix("cmd ")) {
                (Some(path), _) => HealthCheck::Http { path: path.into() },
                (_, Some(argv)) => serde_json::from_str(argv)
                    .map(|argv| HealthCheck::Command { argv })
                    .unwrap_or_default(),
                _ => HealthCheck::default(),
            },
            None => HealthCheck::default(),
        }
    }

    /// How the check reads in messages: `GET /health`, `a TCP connection`, ...
    pub fn describe(&self) -> String {
        match self {
            HealthCheck::Http { path } => format!("GET {path} answering 2xx or 3xx"),
            HealthCheck::Tcp => "the port accepting a TCP connection".into(),
            HealthCheck::None => "nothing (started is enough)".into(),
            HealthCheck::Command { argv } => format!("`{}` exiting 0", argv.join(" ")),
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
    pub source: SecretSource,
    pub pos: Pos,
}

/// Where a secret's value is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A variable of berth's own environment.
    Env(String),
    /// A name in the file's `secrets_file`, decrypted in memory.
    Encrypted(String),
}

/// The prefix of an encrypted secret's key among the secret values.
pub const ENCRYPTED_KEY: &str = "age:";

impl SecretRef {
    /// The key of its value among the secret values berth holds: the
    /// variable's name, or `age:NAME`.
    pub fn key(&self) -> String {
        match &self.source {
            SecretSource::Env(var) => var.clone(),
            SecretSource::Encrypted(name) => format!("{ENCRYPTED_KEY}{name}"),
        }
    }
}

/// An encrypted secrets file that is not a mapping of names to text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretsFileShape(pub String);

/// The entries of an encrypted secrets file (NAME: armored value), still
/// encrypted; read from its text, nothing opened.
pub fn secrets_file_entries(text: &str) -> Result<BTreeMap<String, String>, SecretsFileShape> {
    serde_saphyr::from_str(text).map_err(|e| SecretsFileShape(e.to_string()))
}

/// Where a secret's value is read, in words, from its key.
pub fn secret_origin(key: &str) -> String {
    match key.strip_prefix(ENCRYPTED_KEY) {
        Some(name) => format!("`{name}` of the encrypted secrets file"),
        None => format!("the environment variable `{key}`"),
    }
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
    /// Node: the package ships its own `node_modules`.
    pub vendored: bool,
    /// A job: runs to completion once per content, never restarted.
    pub job: bool,
    /// Swarm: tasks of this version (1 on one engine).
    pub replicas: u32,
    pub machine: Machine,
    pub scope: Scope,
    pub path: String,
    /// Where `path` is written (the version's own position when defaulted).
    pub path_pos: Pos,
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
    /// Whether the file names `active` (else the highest version is).
    pub active_declared: bool,
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
    pub engine: EngineKind,
    /// Swarm: where images built here are pushed (HOST:PORT).
    pub registry: Option<String>,
    /// The age-encrypted secrets file, as written (relative to the file).
    pub secrets_file: Option<String>,
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
