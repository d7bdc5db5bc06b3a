//! The process environment, read once at start into a value that is passed down:
//! no module reads the environment after this (tests set values, never `set_var`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where berth keeps its local state: locks, records, caches.
    pub state_dir: PathBuf,
    /// The static busybox the local base image is made from (`BERTH_BUSYBOX`).
    pub busybox: PathBuf,
    /// The Debian mirror debootstrap uses (`BERTH_DEBIAN_MIRROR`).
    pub debian_mirror: String,
    /// The Python berth runs pip with on the host (`BERTH_PYTHON`).
    pub python: String,
    /// The environment at start: secrets name variables of it.
    pub env: Arc<BTreeMap<String, String>>,
    /// The npm registry Node dependencies are installed from (`npm_config_registry`,
    /// as npm itself reads it; default the public one).
    pub npm_registry: String,
    /// Where pip finds packages besides its index (`PIP_FIND_LINKS`, as pip
    /// reads it): a source distribution there is built like one of the index's.
    pub pip_find_links: Vec<String>,
    /// The indexes pip uses (`PIP_INDEX_URL`, then `PIP_EXTRA_INDEX_URL`); an
    /// empty first one means pip's own default, asked of pip when needed.
    pub pip_indexes: Vec<String>,
    /// Where the engine is (`DOCKER_HOST`, else the local socket), for messages.
    pub engine_address: String,
    /// How long connecting to the engine may take, agreeing on an API version
    /// and a ping included (`BERTH_ENGINE_TIMEOUT`, default 5s).
    pub engine_timeout: Duration,
    /// The age identities encrypted secrets are opened with
    /// (`BERTH_AGE_KEY_FILE`).
    pub age_key_file: Option<PathBuf>,
}

/// The engine answers a ping in milliseconds; five seconds is a hung engine.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);

impl Settings {
    /// From the environment of this process. `state_dir` is `--state-dir` or
    /// `$BERTH_STATE_DIR` (clap reads it); else `$XDG_STATE_HOME/berth`, else
    /// `~/.local/state/berth`.
    pub fn from_process(state_dir: Option<PathBuf>) -> Settings {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Settings::from_env(state_dir, env)
    }

    /// From a given environment (tests hand one in).
    pub fn from_env(state_dir: Option<PathBuf>, env: BTreeMap<String, String>) -> Settings {
        let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let state_dir = state_dir
            .or_else(|| var("BERTH_STATE_DIR").map(PathBuf::from))
            .or_else(|| var("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("berth")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state/berth")))
            .unwrap_or_else(|| PathBuf::from("/tmp/berth-state"));
        Settings {
            state_dir,
            busybox: var("BERTH_BUSYBOX")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/bin/busybox")),
            debian_mirror: var("BERTH_DEBIAN_MIRROR")
                .unwrap_or_else(|| "http://deb.debian.org/debian".into()),
            python: var("BERTH_PYTHON").unwrap_or_else(|| "python3".into()),
            npm_registry: var("npm_config_registry")
                .or_else(|| var("NPM_CONFIG_REGISTRY"))
                .unwrap_or_else(|| "https://registry.npmjs.org/".into()),
            pip_find_links: var("PIP_FIND_LINKS")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            pip_indexes: std::iter::once(var("PIP_INDEX_URL").unwrap_or_default())
                .chain(
                    var("PIP_EXTRA_INDEX_URL")
                        .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                        .unwrap_or_default(),
                )
                .collect(),
            engine_address: var("DOCKER_HOST")
                .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
            engine_timeout: var("BERTH_ENGINE_TIMEOUT")
                .and_then(|t| humantime::parse_duration(&t).ok())
                .unwrap_or(ENGINE_TIMEOUT),
            age_key_file: var("BERTH_AGE_KEY_FILE").map(PathBuf::from),
            env: Arc::new(env),
        }
    }
}
