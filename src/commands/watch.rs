//! `berth watch`: the daemon, with its options resolved from the command line.

use std::path::PathBuf;

use crate::cli::WatchArgs;
use crate::daemon::{self, WatchOptions, WatchSource};

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
    let source = match args.git {
        Some(url) => WatchSource::Git {
            url,
            reference: args.reference,
            path: args.path,
        },
        None => WatchSource::File(args.file.unwrap_or_else(|| PathBuf::from("services.yaml"))),
    };
    let webhook_secret = match &args.webhook_secret {
        Some(path) => Some(crate::shell::source::secret_file(path).map_err(|why| {
            CommandError::WebhookSecretRead {
                path: path.clone(),
                why,
            }
        })?),
        None => None,
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
            source,
            interval: args.interval,
            listen: args.listen,
            tokens,
            gateway: args.gateway,
            manual: args.manual,
            bounds: super::bounds(args.max_connections),
            webhook_secret,
            notify,
        },
    )
    .await?)
}
