//! One project's daemon set up and run: its sources, its share of the
//! listener (the API state its asks come through) and its own event loop.
//! Each project has its own loop, channel, lock and sources, so a project
//! that fails or takes long never holds up another.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    batch, report, serve, sources, ticker, Current, Daemon, DaemonError, Event, ProjectOptions,
    WatchOptions, WatchSource,
};
use crate::converge::{gateways, Context};
use crate::core::report::Trigger;
use crate::serve::api::{self, ApiState, Door};
use crate::shell::git::GitSource;
use crate::shell::watch;

/// A project's daemon, ready to run its loop.
pub(super) struct Started {
    pub daemon: Daemon,
    rx: mpsc::Receiver<Event>,
    /// The commit the daemon converges from: its checkout is never pruned.
    checkout_in_use: Arc<std::sync::Mutex<Option<String>>>,
    /// The file watcher, kept alive while the loop runs.
    _file_watch: Option<watch::FileWatch>,
    /// What the listener serves for this project.
    api: Option<ApiState>,
}

/// Sets up one project: its sources send events from now on, its API state
/// (when the daemon listens) forwards asks to its loop.
pub(super) async fn project(
    ctx: &Context,
    opts: &WatchOptions,
    me: &ProjectOptions,
    slot: usize,
    door: &Door,
    board: Option<Arc<gateways::Board>>,
) -> Result<Started, DaemonError> {
    let (tx, rx) = mpsc::channel::<Event>(1024);
    let report = report::Report::new(&me.source);
    let engine = Arc::new(RwLock::new(ctx.engine.clone()));
    let checkout_in_use: Arc<std::sync::Mutex<Option<String>>> = Default::default();
    // A push webhook wakes the git follower, which fetches at once.
    let wake = Arc::new(tokio::sync::Notify::new());
    let (file_watch, current) = follow_source(ctx, opts, me, &tx, &checkout_in_use, &wake)?;
    let hook = match (&me.source, &me.webhook_secret) {
        (WatchSource::Git { reference, .. }, Some(secret)) => Some(Arc::new(
            api::hooks::Hook::new(secret.clone(), reference, wake.clone()),
        )),
        _ => None,
    };
    tokio::spawn(ticker(opts.interval, tx.clone()));
    tokio::spawn(sources::signals(tx.clone()));
    let shared_spec: Arc<RwLock<Option<crate::core::spec::Spec>>> = Default::default();
    // A named project's grants apply from the start; the one project of
    // `--file` or `--git` is known once its file parses.
    let named = Arc::new(RwLock::new(me.name.clone()));
    let api = opts.listen.map(|_| {
        let shared = serve::Shared {
            hook,
            door: door.clone(),
            project: named.clone(),
        };
        serve::api_state(ctx, &engine, &report, &shared_spec, &tx, shared)
    });
    let daemon = Daemon {
        ctx: ctx.clone(),
        engine,
        opts: opts.clone(),
        me: me.clone(),
        current,
        project: None,
        named,
        board,
        slot,
        shared_spec,
        gateway: None,
        _registration: None,
        own_until: 0,
        converged_revision: None,
        fetched_subject: None,
        logged_error: None,
        report,
        tx,
        known: Default::default(),
        health_due: Default::default(),
        _following: None,
        notifier: None,
        untold: false,
    };
    Ok(Started {
        daemon,
        rx,
        checkout_in_use,
        _file_watch: file_watch,
        api,
    })
}

/// What the listener serves: the one project at its root, or every project
/// under `/projects/NAME/` with the list of them at the root.
pub(super) fn listener_app(started: &[Started], door: Door) -> axum::Router {
    match started {
        [one] if one.daemon.me.name.is_none() => {
            api::router(one.api.clone().expect("a listener was asked for"))
        }
        _ => api::hub::router(api::hub::Hub {
            door,
            projects: started
                .iter()
                .filter_map(|p| Some((p.daemon.me.name.clone()?, p.api.clone()?)))
                .collect(),
        }),
    }
}

impl Started {
    /// The project's engine and name, as the gateway's refresh reads them.
    pub fn cells(&self) -> gateways::Cells {
        (self.daemon.engine.clone(), self.daemon.named.clone())
    }

    /// The project's event loop, until a shutdown.
    pub async fn run(self) {
        let Started {
            daemon: mut d,
            mut rx,
            checkout_in_use,
            _file_watch,
            api: _,
        } = self;
        d.notifier = d
            .opts
            .notify
            .clone()
            .map(crate::shell::notices::Notifier::start);
        d.report.manual = d.opts.manual;
        d.report.publish(None, Trigger::Start, None);
        match (d.current.is_some(), d.opts.manual) {
            (false, _) => {}
            (true, false) => {
                let _ = d.reconcile(Trigger::Start).await;
            }
            (true, true) => d.look_only().await,
        }
        while let Some(first) = rx.recv().await {
            // Everything queued now is one reconcile; a short pause lets a burst
            // (an editor's several writes, a container's die+stop) arrive whole.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut events = vec![first];
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            let batch = batch::Batch::of(events, d.own_until);
            if d.handle(batch, &checkout_in_use).await.is_break() {
                break;
            }
        }
    }
}

/// The file watcher (kept alive by the caller) or the git follower, and the
/// source known at start (a file; a repository's first commit comes as an
/// event).
fn follow_source(
    ctx: &Context,
    opts: &WatchOptions,
    me: &ProjectOptions,
    tx: &mpsc::Sender<Event>,
    checkout_in_use: &Arc<std::sync::Mutex<Option<String>>>,
    wake: &Arc<tokio::sync::Notify>,
) -> Result<(Option<watch::FileWatch>, Current), DaemonError> {
    match &me.source {
        WatchSource::File(path) => {
            let t = tx.clone();
            let watcher = watch::watch_file(path, watch::DEBOUNCE, move || {
                let _ = t.try_send(Event::FileChanged);
            })?;
            Ok((Some(watcher), Some((None, path.clone()))))
        }
        WatchSource::Git {
            url,
            reference,
            path,
        } => {
            let src = GitSource::new(url, reference, path, &ctx.settings.state_dir);
            tokio::spawn(sources::follow_git(
                src,
                opts.interval,
                tx.clone(),
                checkout_in_use.clone(),
                wake.clone(),
            ));
            Ok((None, None))
        }
    }
}
