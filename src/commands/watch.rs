//! `berth watch`: the daemon, with its options resolved from the command line.

use std::path::{Path, PathBuf};

use crate::cli::WatchArgs;
use crate::daemon::{self, ProjectOptions, WatchOptions, WatchSource};

use super::{load_tokens, CommandError, Output};

pub async fn run(out: &Output, args: WatchArgs) -> Result<u8, CommandError> {
    let token = match &args.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|source| CommandError::TokenFileRead {
                    path: f.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => args.root.token.clone(),
    };
    let tokens = load_tokens(args.tokens.as_deref(), token.as_deref())?;
    let projects = match &args.projects {
        Some(file) => listed(file)?,
        None => vec![ProjectOptions {
            name: None,
            source: match args.git {
                Some(url) => WatchSource::Git {
                    url,
                    reference: args.reference,
                    path: args.path,
                },
                None => {
                    WatchSource::File(args.file.unwrap_or_else(|| PathBuf::from("services.yaml")))
                }
            },
            webhook_secret: secret(args.webhook_secret.as_deref())?,
        }],
    };
    let notify = match &args.notify {
        Some(path) => Some(crate::shell::notices::read(path)?),
        None => None,
    };
    let mut ctx = out.connect_later();
    ctx.private_assets = args.allow_private_assets;
    Ok(daemon::run(
        ctx,
        WatchOptions {
            projects,
            interval: args.interval,
            listen: args.listen,
            tokens,
            gateway: args.gateway,
            manual: args.manual,
            bounds: super::bounds(args.max_connections),
            notify,
        },
    )
    .await?)
}

/// A push webhook's shared secret, read from its file.
fn secret(path: Option<&Path>) -> Result<Option<Vec<u8>>, CommandError> {
    let Some(path) = path else { return Ok(None) };
    let read = crate::shell::source::secret_file(path);
    read.map(Some)
        .map_err(|why| CommandError::WebhookSecretRead {
            path: path.to_path_buf(),
            why,
        })
}

/// The projects of a projects file, each path in it read from the file's
/// own directory.
fn listed(file: &Path) -> Result<Vec<ProjectOptions>, CommandError> {
    use crate::core::projects::{parse_projects, ProjectSource};
    let text = std::fs::read_to_string(file).map_err(|source| CommandError::ProjectsRead {
        path: file.to_path_buf(),
        source,
    })?;
    let entries = parse_projects(&file.display().to_string(), &text)
        .map_err(CommandError::ProjectsInvalid)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut projects = Vec::new();
    for e in entries {
        let source = match e.source {
            ProjectSource::File(f) => WatchSource::File(dir.join(f)),
            ProjectSource::Git {
                url,
                reference,
                path,
            } => WatchSource::Git {
                url,
                reference,
                path,
            },
        };
        let webhook_secret = e.webhook_secret.map(|w| dir.join(w));
        projects.push(ProjectOptions {
            name: Some(e.name),
            source,
            webhook_secret: secret(webhook_secret.as_deref())?,
        });
    }
    Ok(projects)
}
