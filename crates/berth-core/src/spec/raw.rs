//! The raw types: exactly what the file may say (serde and schemars), with
//! `deny_unknown_fields` everywhere, so an unknown key is an error with its position.

#[allow(unused_imports)]
use super::*;

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
    #[schemars(with = "Option<String>")]
    pub from_env: Option<Spanned<String>>,
    /// The name of an age-encrypted value in the file's `secrets_file`,
    /// decrypted in memory with the key in `BERTH_AGE_KEY_FILE`.
    #[schemars(with = "Option<String>")]
    pub encrypted: Option<Spanned<String>>,
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

/// `health: { path: /health, timeout: 30s, interval: 250ms }`: the gate a new
/// container passes. The check is one of `path` (default `/`), `tcp: true`,
/// `none: true` or, on a swarm, `command: [...]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `GET <path>` must answer 2xx or 3xx (default `/`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// `true`: the port accepting a TCP connection is enough.
    #[schemars(with = "Option<bool>")]
    pub tcp: Option<Spanned<bool>>,
    /// `true`: started is enough (no check; `status` shows `unchecked`).
    #[schemars(with = "Option<bool>")]
    pub none: Option<Spanned<bool>>,
    /// `engine: swarm`: a command run inside the task (exit 0: healthy), for
    /// images that bring their own probe.
    #[schemars(with = "Option<Vec<String>>")]
    pub command: Option<Spanned<Vec<String>>>,
    /// How long to wait for the check to pass (default 30s; `0s`: do not wait).
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
            /// Node only: run the `node_modules` shipped in the package instead of
            /// installing package.json's dependencies (default false).
            #[schemars(with = "Option<bool>")]
            pub vendored: Option<Spanned<bool>>,
            /// A job: the version runs to completion once per content (its
            /// hash), not as a service; exit code 0 is success. Only
            /// `health.timeout` applies: how long a run may take (default 10m).
            #[schemars(with = "Option<bool>")]
            pub job: Option<Spanned<bool>>,
            /// Swarm: how many tasks run this version (default 1); `engine: docker` runs one.
            #[schemars(with = "Option<u32>")]
            pub replicas: Option<Spanned<u32>>,
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
            pub env: Option<IndexMap<Spanned<String>, Spanned<String>>>,
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
    /// `docker` (default: one engine) or `swarm` (DOCKER_HOST names a swarm manager).
    #[schemars(with = "Option<EngineKind>")]
    pub engine: Option<Spanned<String>>,
    /// Swarm: the registry images built here are pushed to, so every node can pull them (HOST:PORT).
    #[schemars(with = "Option<String>")]
    pub registry: Option<Spanned<String>>,
    /// A file beside this one (relative to it) mapping names to age-encrypted
    /// values (ASCII-armored), which secrets read with `encrypted: NAME`.
    #[schemars(with = "Option<String>")]
    pub secrets_file: Option<Spanned<String>>,
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
