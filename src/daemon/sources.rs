//! What wakes the daemon: each source only sends [`Event`]s; the loop alone acts.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::shell::engine::SharedEngine;
use crate::shell::git::{self, GitSource};

use super::Event;

/// Sends `Tick` every `interval` (not at once: the daemon converges at start anyway).
pub async fn ticker(interval: Duration, tx: mpsc::Sender<Event>) {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        if tx.send(Event::Tick).await.is_err() {
            return;
        }
    }
}

/// Fetches the branch every interval (with backoff after failures) and reports
/// each new commit. After each checkout, only the trees that can still be read
/// are kept: the new one, the one reported before it (its event may be queued)
/// and `in_use`, the one the daemon converges from.
pub async fn follow_git(
    src: GitSource,
    interval: Duration,
    tx: mpsc::Sender<Event>,
    in_use: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    wake: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut last: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let s = src.clone();
        let known = last.clone();
        let used = in_use.clone();
        let result = tokio::task::spawn_blocking(move || {
            let rev = s.fetch()?;
            if known.as_deref() == Some(rev.as_str()) {
                return Ok(None);
            }
            let file = s.checkout(&rev)?;
            let used = used.lock().map(|u| u.clone()).unwrap_or_default();
            let keep: Vec<&str> = [Some(rev.as_str()), known.as_deref(), used.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let removed = s.prune(&keep);
            if removed > 0 {
                tracing::debug!(removed, "old checkouts removed");
            }
            let subject = s.subject(&rev);
            Ok::<_, git::GitError>(Some((rev, file, subject)))
        })
        .await
        .unwrap_or_else(|e| {
            Err(git::GitError::TreeCheckout {
                revision: "?".into(),
                message: e.to_string(),
            })
        });
        let event = match result {
            Ok(None) => {
                failures = 0;
                None
            }
            Ok(Some((revision, file, subject))) => {
                failures = 0;
                last = Some(revision.clone());
                Some(Event::GitFetched {
                    revision,
                    file,
                    subject,
                })
            }
            Err(e) => {
                failures += 1;
                // A refused commit is not retried until the branch moves again.
                if let git::GitError::CommitRefuse { revision, .. } = &e {
                    last = Some(revision.clone());
                }
                Some(Event::GitFailed(e.to_string()))
            }
        };
        if let Some(ev) = event {
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        // The next poll, or at once when a push webhook says the branch moved.
        tokio::select! {
            _ = tokio::time::sleep(git::next_delay(interval, failures)) => {}
            _ = wake.notified() => {}
        }
    }
}

/// The engine actions that mean a container drifted from what was converged.
const DRIFT: [&str; 9] = [
    "die", "stop", "kill", "destroy", "oom", "pause", "rename", "update", "remove",
];

/// Follows the engine's events for the project; reconnects with backoff, and
/// after a reconnect asks for a reconcile (events may have been missed).
pub async fn follow_engine(engine: SharedEngine, project: String, tx: mpsc::Sender<Event>) {
    let mut failures = 0u32;
    loop {
        let mut events = engine.container_events(&project);
        while let Some(item) = events.next().await {
            match item {
                Ok(e) => {
                    failures = 0;
                    if DRIFT.iter().any(|a| e.action.starts_with(a)) {
                        let _ = tx.send(Event::EngineChanged(e)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "engine events interrupted");
                    break;
                }
            }
        }
        drop(events);
        failures += 1;
        tokio::time::sleep(git::next_delay(Duration::from_secs(1), failures)).await;
        let _ = tx
            .send(Event::EngineChanged(crate::shell::engine::ContainerEvent {
                action: "reconnect".into(),
                container: String::new(),
                at_nanos: 0,
            }))
            .await;
    }
}

/// How often the daemon asks the engine whether it answers, for `/healthz`.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Asks the engine for its version every [`PING_INTERVAL`], at most `timeout`
/// each, and records why it did not answer (`None` once it does again).
pub async fn ping_engine(
    engine: SharedEngine,
    timeout: Duration,
    down: std::sync::Arc<std::sync::RwLock<Option<String>>>,
) {
    loop {
        // Twice the engine timeout: connecting has its own bound (and the
        // better message); this one catches an engine that hangs later.
        let why = match tokio::time::timeout(timeout * 2, engine.version()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string().lines().next().unwrap_or("").to_string()),
            Err(_) => Some(format!(
                "no answer within {}",
                humantime::format_duration(timeout * 2)
            )),
        };
        if why.is_some() != down.read().expect("no panics hold it").is_some() {
            match &why {
                Some(w) => tracing::warn!(why = w, "the engine does not answer"),
                None => tracing::info!("the engine answers again"),
            }
        }
        *down.write().expect("no panics hold it") = why;
        tokio::time::sleep(PING_INTERVAL).await;
    }
}

/// Sends `Shutdown` on SIGTERM or Ctrl-C.
pub async fn signals(tx: mpsc::Sender<Event>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = tx.send(Event::Shutdown).await;
}
