//! The command line: clap definitions only. What each command does lives in
//! `commands`, one module each.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Declarative services on one Docker engine: plan, apply, converge."
)]
pub struct Cli {
    /// Print more: build logs, engine calls.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log format: text, or json (one object per line, for log collectors).
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Where berth keeps its locks, records and caches (default
    /// $XDG_STATE_HOME/berth, else ~/.local/state/berth).
    #[arg(long, global = true, env = "BERTH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct FileArg {
    /// The services file.
    #[arg(short = 'f', long = "file", default_value = "services.yaml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProjectArg {
    /// Act on this project by name, without reading the services file.
    #[arg(long, value_name = "NAME", value_parser = parse_project)]
    pub project: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the file; prints nothing but errors.
    Validate(FileArg),
    /// Show what apply would do, and why, field by field.
    Plan(PlanArgs),
    /// Converge the engine to the file, printing each action as it happens.
    Apply(ApplyArgs),
    /// Every owned container: service, version, state, health, port, CPU and memory.
    Status(StatusArgs),
    /// A container's logs.
    Logs(LogsArgs),
    /// Remove everything the project owns; keeps survive unless --volumes.
    Destroy(DestroyArgs),
    /// Remove the project's built images that no container uses (previous images and dependency caches included).
    Gc(GcArgs),
    /// Print the JSON Schema of services.yaml.
    Schema,
    /// Print a shell completion script: `berth completions bash > ~/.local/share/bash-completion/completions/berth`.
    Completions(CompletionsArgs),
    /// Build the local base images (berth-local/*) from Debian packages and PyPI, if missing or stale.
    Baseimages(BaseimagesArgs),
    /// Check the engine, base images, GPUs, the host's neighbour table and ports.
    Doctor(FileArg),
    /// The daemon: converge now, then on every change of the file or the branch,
    /// and whenever the engine drifts. Stops on SIGTERM or Ctrl-C; services keep running.
    Watch(Box<WatchArgs>),
    /// Serve the routing gateway for what runs, without converging anything.
    Serve(ServeArgs),
    /// Make the version that was active before (or --to VERSION) active again,
    /// when it runs healthy; it holds until the file's `active` changes.
    Rollback(RollbackArgs),
    /// Manage the tokens of the gateway and the API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Make a deterministic .tar.gz code package of a directory (same content, same bytes).
    Package(PackageArgs),
    /// Build the images of services built from code, without running them.
    Build(BuildArgs),
}

/// The arguments of `berth plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when there are changes (0: none, 1: error), as Terraform does.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan, with a fingerprint of the engine state, for `apply --plan`.
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// Allow a file with no services to remove everything.
    #[arg(long)]
    pub allow_empty: bool,
}

/// The arguments of `berth apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Apply exactly this saved plan, or refuse if the engine changed since.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Allow a file with no services to remove everything.
    #[arg(long)]
    pub allow_empty: bool,
}

/// The arguments of `berth status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub project: ProjectArg,
    /// Print the rows as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `berth logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub project: ProjectArg,
    /// SERVICE or SERVICE@VERSION (default: the active version).
    pub target: String,
    /// Keep printing new lines as the container writes them.
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// The arguments of `berth destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub project: ProjectArg,
    /// Remove the keeps (named volumes) too.
    #[arg(long)]
    pub volumes: bool,
    /// Leave the images berth built for the project (removed by default).
    #[arg(long)]
    pub keep_images: bool,
}

/// The arguments of `berth gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub project: ProjectArg,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// The arguments of `berth completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// The arguments of `berth baseimages`.
#[derive(Debug, Args)]
pub struct BaseimagesArgs {
    /// Runtimes whose bases to build too (python3.11, python3.13, node20, node22, ...).
    pub runtimes: Vec<String>,
    /// Every runtime base that can be built on this machine.
    #[arg(long)]
    pub all: bool,
}

/// The arguments of `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// The gateway's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7780", value_parser = parse_addr)]
    pub gateway: std::net::SocketAddr,
    /// The token file (hashed tokens with permissions; default ./tokens.yaml
    /// when it exists, where `berth token add` writes); $BERTH_TOKEN may do anything.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    #[command(flatten)]
    pub token: RootToken,
    /// At most this many connections at once; more wait in the kernel's queue.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_connections: usize,
}

/// The arguments of `berth rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// The service to roll back.
    pub service: String,
    /// The version to make active (default: the one active before).
    #[arg(long, value_name = "VERSION", conflicts_with = "release")]
    pub to: Option<String>,
    /// End the service's rollback hold: the file's `active` serves again.
    #[arg(long)]
    pub release: bool,
}

/// The arguments of `berth package`.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The source directory (`.berthignore` and the usual exclusions apply).
    pub dir: PathBuf,
    /// The archive to write (default: DIR's name + .tar.gz).
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

/// The arguments of `berth build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// SERVICE or SERVICE@VERSION (default: every one built from a package).
    pub target: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token: printed once, stored only as its SHA-256 in the token file.
    Add(TokenAddArgs),
}

/// The arguments of `berth token add`.
#[derive(Debug, Args)]
pub struct TokenAddArgs {
    /// The token's name (shown in logs instead of the token).
    #[arg(value_parser = parse_project)]
    pub name: String,
    /// A permission: services:view, services:deploy, services:stop, logs:view,
    /// images:build; `PERMISSION@PROJECT` grants it in that project alone.
    #[arg(short = 'p', long = "permission", required = true, value_parser = parse_permission)]
    pub permission: Vec<String>,
    /// The token file.
    #[arg(long, value_name = "FILE", default_value = "tokens.yaml")]
    pub tokens: PathBuf,
}

/// A token with every permission, from the environment (`BERTH_TOKEN`); a flag
/// would show in `ps`, so there is none in the help.
#[derive(Debug, Args, Clone)]
pub struct RootToken {
    #[arg(
        long = "token",
        env = "BERTH_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The services file to follow (default ./services.yaml, unless --git).
    #[arg(short = 'f', long = "file", conflicts_with_all = ["git", "projects"])]
    pub file: Option<PathBuf>,
    /// A git repository to follow instead (https, ssh, file:// or a path).
    #[arg(long, conflicts_with = "projects")]
    pub git: Option<String>,
    /// A file listing several projects to follow, each from its own file or
    /// repository, with one listener and one gateway for all of them.
    #[arg(long, value_name = "FILE")]
    pub projects: Option<PathBuf>,
    /// The branch to follow.
    #[arg(long = "ref", default_value = "main", requires = "git")]
    pub reference: String,
    /// The services file inside the repository.
    #[arg(long, default_value = "services.yaml", requires = "git")]
    pub path: String,
    /// How often to fetch the branch and fully resync with the engine (30s, 1m, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_interval)]
    pub interval: std::time::Duration,
    /// Serve /status, /metrics, /healthz and POST /reconcile on this address.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Option<std::net::SocketAddr>,
    /// A file holding a bearer token with every permission (else $BERTH_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub root: RootToken,
    /// The token file (hashed tokens with permissions) for the API and the
    /// gateway (default ./tokens.yaml when it exists, where `berth token add` writes).
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve the routing gateway on this address too.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub gateway: Option<std::net::SocketAddr>,
    /// Converge only when asked (the dashboard's Apply or Reconcile, POST
    /// /reconcile, a rollback), as Argo CD's manual sync: a change of the
    /// file, the branch or the engine is shown as a plan, never carried out
    /// by itself.
    #[arg(long)]
    pub manual: bool,
    /// Let a services file from --git fetch assets from loopback, link-local or
    /// private addresses (refused by default: a repository should not make
    /// berth fetch internal endpoints).
    #[arg(long)]
    pub allow_private_assets: bool,
    /// At most this many connections at once on each listener (API, gateway).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_connections: usize,
    /// A file holding the shared secret of push webhooks: `POST /hooks/push`
    /// on --listen (GitHub, GitLab, Gitea/Forgejo or generic signatures)
    /// fetches the followed branch at once; the poll stays.
    #[arg(long, value_name = "FILE", requires = "git")]
    pub webhook_secret: Option<PathBuf>,
    /// A file naming where each reconcile's outcome is sent: generic signed
    /// JSON webhooks, Slack/Mattermost incoming webhooks, ntfy topics.
    #[arg(long, value_name = "FILE")]
    pub notify: Option<PathBuf>,
}

/// `30s`, `1m`, `500ms`, `2h` -> a duration of more than zero.
/// `HOST:PORT` for a listener: an IP address, or `localhost` (loopback, IPv4).
pub fn parse_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let local = text
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"));
    local
        .as_deref()
        .unwrap_or(text)
        .parse()
        .map_err(|_| {
            format!("`{text}` is not an address to listen on: write HOST:PORT, for example 127.0.0.1:7780, localhost:7780 or 0.0.0.0:7780")
        })
}

/// A project's (or a token's) name: `[a-z][a-z0-9-]{0,31}`.
pub fn parse_project(text: &str) -> Result<String, String> {
    if berth_core::spec::is_valid_name(text) {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not a valid name: a lowercase letter, then up to 31 lowercase letters, digits or dashes"))
    }
}

pub fn parse_permission(text: &str) -> Result<String, String> {
    berth_core::access::Grant::parse(text).map(|_| text.to_string())
}

pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match berth_core::spec::parse_duration_ms(text)? {
        0 => Err(format!("`{text}` must be more than zero")),
        ms => Ok(std::time::Duration::from_millis(ms)),
    }
}
