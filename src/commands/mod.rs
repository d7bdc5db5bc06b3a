//! One module per command: each a thin function from parsed arguments to an
//! exit code, over the converge path and the shell. `main` reports their errors.

pub mod apply;
pub mod baseimages;
pub mod build;
pub mod completions;
pub mod destroy;
pub mod doctor;
pub mod gc;
pub mod logs;
pub mod package;
pub mod plan;
pub mod rollback;
pub mod schema;
pub mod serve;
pub mod status;
pub mod token;
pub mod validate;
pub mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::build::baseimage::BaseImageError;
use crate::build::BuildError;
use crate::cli::{Cli, Command, TokenCommand};
use crate::converge::{Context, ConvergeError};
use crate::core::diag::Diagnostics;
use crate::core::spec::EngineKind;
use crate::daemon::DaemonError;
use crate::serve::api::ApiError;
use crate::shell::engine::EngineError;
use crate::shell::settings::Settings;
use crate::shell::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Converge(#[from] ConvergeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    BaseImage(#[from] BaseImageError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Listener(#[from] ApiError),
    #[error(transparent)]
    State(#[from] crate::shell::state::StateError),
    #[error("cannot write the plan to {path}: {source}")]
    PlanWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    TokensInvalid(Diagnostics),
    #[error("{0}")]
    ProjectsInvalid(Diagnostics),
    #[error("cannot read the projects file {path}: {source}\n  help: pass a readable file to --projects")]
    ProjectsRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the token file {path}: {source}\n  help: fix its permissions, or pass another file with --tokens")]
    TokensRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the token file {path}: {source}")]
    TokensWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a random token: {0}")]
    TokenMake(getrandom::Error),
    #[error("cannot read the token file {path}: {source}\n  help: --token-file names a file holding one token")]
    TokenFileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    NotifyRead(#[from] crate::shell::notices::NotifyRead),
    #[error("cannot read the webhook secret {path}: {why}\n  help: write the secret the git host signs with into that file (`openssl rand -hex 32 > {path}`), and give the host the same one")]
    WebhookSecretRead { path: PathBuf, why: String },
    #[error("unknown runtime `{name}`\n  help: use one of python3.11, python3.12, python3.13 (each also -cuda), node20, node22")]
    RuntimeUnknown { name: String },
    #[error("cannot listen for signals: {0}")]
    SignalListen(std::io::Error),
}

/// Runs one command; the exit code on success (plan's detailed exit code is 2).
pub async fn run(cli: Cli, settings: Settings) -> Result<u8, CommandError> {
    let verbose = cli.verbose;
    let out = Output {
        verbose,
        color: std::io::stdout().is_terminal() && !settings.env.contains_key("NO_COLOR"),
        settings,
    };
    match cli.command {
        Command::Validate(f) => validate::run(&out, &f.file),
        Command::Schema => schema::run(),
        Command::Completions(a) => completions::run(a),
        Command::Plan(a) => plan::run(&out, a).await,
        Command::Apply(a) => apply::run(&out, a).await,
        Command::Status(a) => status::run(&out, a).await,
        Command::Logs(a) => logs::run(&out, a).await,
        Command::Destroy(a) => destroy::run(&out, a).await,
        Command::Gc(a) => gc::run(&out, a).await,
        Command::Baseimages(a) => baseimages::run(&out, a).await,
        Command::Doctor(f) => doctor::run(&out, &f.file).await,
        Command::Serve(a) => serve::run(&out, a).await,
        Command::Rollback(a) => rollback::run(&out, a).await,
        Command::Token {
            command: TokenCommand::Add(a),
        } => token::add(a),
        Command::Watch(args) => watch::run(&out, *args).await,
        Command::Package(a) => package::run(a),
        Command::Build(a) => build::run(&out, a).await,
    }
}

/// What every command knows before it starts: the settings read at start and how
/// to print.
pub struct Output {
    pub settings: Settings,
    pub verbose: bool,
    pub color: bool,
}

impl Output {
    /// The converge context over this host's Docker engine, reached by the
    /// command's first call (see `shell::engine::host`): only for what has no
    /// file to name an engine (`baseimages`, `doctor`). A command with a file
    /// connects with [`Output::connect_for`] its `engine`.
    pub async fn connect_host(&self) -> Result<Context, CommandError> {
        Ok(self.connect_later())
    }

    /// Connected to the engine a file names: one Docker engine, or a swarm's
    /// manager (checked to be one).
    pub async fn connect_for(&self, kind: EngineKind) -> Result<Context, CommandError> {
        use tracing::Instrument;
        let span = tracing::info_span!(target: "berth::timing", "connect");
        let engine = crate::shell::engine::for_kind(kind, &self.settings)
            .instrument(span)
            .await?;
        Ok(Context {
            engine,
            ..self.connect_later()
        })
    }

    /// For the long-running commands (`watch`, `serve`): they listen at once
    /// and connect to the engine when first needed, retrying while it does not
    /// answer (their `/healthz` says so meanwhile).
    pub fn connect_later(&self) -> Context {
        Context {
            engine: crate::shell::engine::host(&self.settings),
            settings: self.settings.clone(),
            verbose: self.verbose,
            color: self.color,
            confine: None,
            private_assets: false,
        }
    }
}

/// The bounds of every listener, with the user's cap on connections.
fn bounds(max_connections: usize) -> crate::serve::listen::Bounds {
    crate::serve::listen::raise_fd_limit();
    crate::serve::listen::Bounds {
        max_connections: max_connections.max(1),
        ..Default::default()
    }
}

/// The tokens the gateway and the API accept: the token file's (hashed), plus a
/// token given in clear (`BERTH_TOKEN`, `--token-file`), which may do anything.
/// Where `berth token add` writes tokens and `serve` and `watch` read them,
/// unless `--tokens` says otherwise: in the working directory.
pub const DEFAULT_TOKENS: &str = "tokens.yaml";

pub fn load_tokens(
    file: Option<&std::path::Path>,
    root: Option<&str>,
) -> Result<crate::core::access::Tokens, CommandError> {
    // `berth token add` writes here by default, so `serve` and `watch` read
    // it by default: one place for both.
    let default = std::path::Path::new(DEFAULT_TOKENS);
    let file = file.or_else(|| default.is_file().then_some(default));
    if file == Some(default) {
        tracing::info!("reading tokens from ./{DEFAULT_TOKENS}");
    }
    let mut tokens = match file {
        None => Default::default(),
        Some(f) => {
            let text = crate::shell::source::read_spec(f)?;
            crate::core::access::parse_tokens(&f.display().to_string(), &text)
                .map_err(CommandError::TokensInvalid)?
        }
    };
    if let Some(t) = root.filter(|t| !t.is_empty()) {
        tokens = tokens.with_root(t);
    }
    Ok(tokens)
}
