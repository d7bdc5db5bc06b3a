//! `berth serve`: the gateway alone, for what runs. Its routes follow the engine
//! (refreshed every second, and at once when an apply switches a container); the
//! file only names the project.

use crate::cli::ServeArgs;
use std::sync::{Arc, RwLock};

use crate::converge::{self, gateways};

use super::{load_tokens, CommandError, Output};

pub async fn run(out: &Output, args: ServeArgs) -> Result<u8, CommandError> {
    let (file, addr) = (args.file.file.as_path(), args.gateway);
    let (tokens, root_token) = (args.tokens.as_deref(), args.token.token.as_deref());
    let bounds = super::bounds(args.max_connections);
    let spec = converge::load(&out.settings, file)?;
    let tokens = load_tokens(tokens, root_token)?;
    // One engine is connected when first needed; a swarm's manager now.
    let ctx = out.connect_for(spec.engine).await?;
    let engine = ctx.engine.as_ref();
    // Listening comes first: routes follow once the engine answers.
    let first = gateways::route_table(engine, &spec.project)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no routes yet: the engine does not answer");
            Default::default()
        });
    let table = Arc::new(RwLock::new(first));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let project = Arc::new(RwLock::new(Some(spec.project.clone())));
    let refresh = gateways::refresh(Arc::new(RwLock::new(ctx.engine.clone())), project);
    let running = gateways::start(
        refresh.clone(),
        addr,
        tokens,
        table.clone(),
        bounds,
        async {
            let _ = stopped.await;
        },
    )
    .await?;
    let _registration = gateways::register(&out.settings, &spec.project, &running)?;
    tracing::info!(%addr, "gateway listening");
    let follower = tokio::spawn(gateways::follow_routes(
        refresh,
        table,
        std::time::Duration::from_secs(1),
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(CommandError::SignalListen)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    follower.abort();
    let _ = stop.send(());
    Ok(0)
}
