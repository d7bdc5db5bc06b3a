//! The gateways of a project: started with routes that follow the engine, and
//! told to switch and drain before a container they route to stops.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::core::access::Tokens;
use crate::core::plan::Observed;
use crate::core::route::{self, RouteTable};
use crate::serve::api::ApiError;
use crate::serve::gateway::{self, GatewayState, Look, Refresh, Running};
use crate::serve::listen::Bounds;
use crate::shell::engine::{Engine, EngineError, SharedEngine};
use crate::shell::settings::Settings;
use crate::shell::state::{self, GatewayRegistration, StateError};

/// How long a gateway may take to finish the requests in flight to a container
/// that is leaving, before it is stopped anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Tells every gateway of the project (in this process or another) to route away
/// from `port` now, and waits until the requests they sent there are done. A
/// gateway that no longer answers is forgotten.
pub async fn drain(settings: &Settings, project: &str, port: u16, look: Look) {
    let gateways = state::gateways(&settings.state_dir, project);
    futures_util::future::join_all(gateways.into_iter().map(|(file, addr)| async move {
        match gateway::drain(addr, port, DRAIN_TIMEOUT, look).await {
            Ok(0) => tracing::debug!(%addr, port, "gateway drained"),
            Ok(left) => tracing::warn!(%addr, port, left, "requests still in flight after the drain timeout"),
            Err(e) => {
                tracing::info!(%addr, error = %e, "a registered gateway does not answer; forgetting it");
                let _ = std::fs::remove_file(file);
            }
        }
    }))
    .await;
}

/// The routes over what runs now: one list call.
pub async fn route_table(engine: &dyn Engine, project: &str) -> Result<RouteTable, EngineError> {
    let observed = engine.observe(project).await?;
    Ok(routes_over(project, &observed).await)
}

/// The last look a gateway's refresh took at one project.
pub type Seen = Arc<std::sync::Mutex<Option<(String, Observed)>>>;

/// The routes over what runs now, as [`route_table`]; with [`Look::Record`]
/// only the volumes (the routes record) are listed again, over the
/// containers `seen` last time (a switch moves none; at 500 services that
/// saves the containers' list, a few tens of milliseconds).
pub async fn route_table_after(
    engine: &dyn Engine,
    project: &str,
    look: Look,
    seen: &Seen,
) -> Result<RouteTable, EngineError> {
    // Copied only where it is read: a full look replaces it.
    let last = match look {
        Look::Record => seen
            .lock()
            .expect("no panics hold it")
            .clone()
            .filter(|(p, _)| p == project),
        Look::All => None,
    };
    let mut observed = None;
    if let Some((_, mut o)) = last {
        o.volumes = engine.observe_volumes(project).await?;
        // A version the record names that was not there last time (a new
        // service's) means the containers changed too: look at them all.
        let routes = crate::core::active::observed(project, &o);
        let names: std::collections::HashSet<&str> =
            o.containers.iter().map(|c| c.name.as_str()).collect();
        let known = routes.active.iter().all(|(service, version)| {
            names.contains(crate::core::desired::container_name(project, service, version).as_str())
        });
        if known {
            observed = Some(o);
        }
    }
    let observed = match observed {
        Some(o) => o,
        None => engine.observe(project).await?,
    };
    let table = routes_over(project, &observed).await;
    *seen.lock().expect("no panics hold it") = Some((project.to_string(), observed));
    Ok(table)
}

/// The routes over an observation, each container's own address kept only
/// where this process reaches it.
pub async fn routes_over(project: &str, observed: &crate::core::plan::Observed) -> RouteTable {
    let mut table = route::routes(project, observed);
    gateway::reach_directly(&mut table).await;
    table
}

/// A gateway's route refresh: one list call, to the engine `engine` holds
/// then, for the project named in `project` (none yet: the routes stay as
/// they are).
pub fn refresh(engine: Arc<RwLock<SharedEngine>>, project: Arc<RwLock<Option<String>>>) -> Refresh {
    let seen = Seen::default();
    Arc::new(move |look| {
        let e = engine.read().expect("no panics hold it").clone();
        let project = project.read().expect("no panics hold it").clone();
        let seen = seen.clone();
        Box::pin(async move {
            route_table_after(e.as_ref(), &project?, look, &seen)
                .await
                .ok()
        })
    })
}

/// A project's engine and name (once known), as a daemon holds them.
pub type Cells = (Arc<RwLock<SharedEngine>>, Arc<RwLock<Option<String>>>);

/// The routes of every project one gateway serves, each in its slot (the
/// projects file's order), and the table the gateway routes by: their
/// merge, where a project listed first keeps a path two projects name
/// (`core::route::merge`).
pub struct Board {
    slots: std::sync::Mutex<Vec<Option<(String, RouteTable)>>>,
    /// Each slot's last look, which a switch's refresh reads the record over.
    seen: Vec<Seen>,
    table: Arc<RwLock<RouteTable>>,
    conflicts: RwLock<Vec<route::Conflict>>,
}

impl Board {
    pub fn new(slots: usize) -> Board {
        Board {
            slots: std::sync::Mutex::new(vec![None; slots]),
            seen: (0..slots).map(|_| Seen::default()).collect(),
            table: Default::default(),
            conflicts: Default::default(),
        }
    }

    /// A project's routes over `observed`, its daemon's own look: kept for
    /// the next switch's refresh too.
    pub async fn look(&self, slot: usize, project: &str, observed: &Observed) {
        let table = routes_over(project, observed).await;
        if let Some(seen) = self.seen.get(slot) {
            *seen.lock().expect("no panics hold it") =
                Some((project.to_string(), observed.clone()));
        }
        self.set(slot, project, table);
    }

    /// The table the gateway routes by.
    pub fn table(&self) -> Arc<RwLock<RouteTable>> {
        self.table.clone()
    }

    /// A project's routes as it sees them now; the merge is made again.
    pub fn set(&self, slot: usize, project: &str, table: RouteTable) {
        let mut slots = self.slots.lock().expect("no panics hold it");
        if let Some(s) = slots.get_mut(slot) {
            *s = Some((project.to_string(), table));
        }
        let listed: Vec<(&str, &RouteTable)> = slots
            .iter()
            .flatten()
            .map(|(p, t)| (p.as_str(), t))
            .collect();
        let (merged, conflicts) = route::merge(&listed);
        for c in &conflicts {
            tracing::warn!(
                project = c.project,
                prefix = c.prefix,
                holder = c.holder,
                "a path another project routes already is left out of the gateway"
            );
        }
        *self.table.write().expect("no panics hold it") = merged;
        *self.conflicts.write().expect("no panics hold it") = conflicts;
    }

    /// What the gateway routes for `project` (prefix -> `service@version`),
    /// and the paths of its own it leaves out for another's.
    pub fn of(
        &self,
        project: &str,
    ) -> (
        std::collections::BTreeMap<String, String>,
        Vec<route::Conflict>,
    ) {
        let table = self.table.read().expect("no panics hold it");
        let routes = table
            .routes
            .iter()
            .filter(|(_, r)| r.project == project)
            .map(|(p, r)| (p.clone(), format!("{}@{}", r.service, r.version)))
            .collect();
        let conflicts = self.conflicts.read().expect("no panics hold it");
        let mine = conflicts
            .iter()
            .filter(|c| c.project == project)
            .cloned()
            .collect();
        (routes, mine)
    }
}

/// A gateway's route refresh over every project on `board`: one list call
/// each, to the engine each project's daemon holds then (a project not
/// known yet keeps its slot as it is).
pub fn refresh_board(board: Arc<Board>, cells: Vec<Cells>) -> Refresh {
    Arc::new(move |look| {
        let now: Vec<(usize, SharedEngine, Option<String>)> = cells
            .iter()
            .enumerate()
            .map(|(slot, (e, p))| {
                let e = e.read().expect("no panics hold it").clone();
                (slot, e, p.read().expect("no panics hold it").clone())
            })
            .collect();
        let board = board.clone();
        Box::pin(async move {
            for (slot, e, project) in now {
                let Some(project) = project else { continue };
                let Some(seen) = board.seen.get(slot) else {
                    continue;
                };
                if let Ok(t) = route_table_after(e.as_ref(), &project, look, seen).await {
                    board.set(slot, &project, t);
                }
            }
            let table = board.table.read().expect("no panics hold it").clone();
            Some(table)
        })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayStartError {
    #[error(transparent)]
    Listener(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Keeps `table` the project's routes as the engine says, asked every
/// `every` (what changes without a drain: drift, another tool) through the
/// gateway's own `refresh`, so a switch's refresh reads the record over this
/// look: the standalone gateway's follower; the daemon's follows its
/// reconciles.
pub async fn follow_routes(refresh: Refresh, table: Arc<RwLock<RouteTable>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match refresh(Look::All).await {
            Some(t) => *table.write().expect("no panics hold it") = t,
            None => tracing::warn!("cannot refresh the routes"),
        }
    }
}

/// Starts a gateway whose routes come from `refresh` (see [`refresh`]),
/// serving until `shutdown`.
pub async fn start(
    refresh: Refresh,
    addr: SocketAddr,
    tokens: Tokens,
    table: Arc<RwLock<RouteTable>>,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, ApiError> {
    let state = GatewayState {
        table,
        tokens: Arc::new(tokens),
        refresh,
    };
    gateway::serve(addr, state, bounds, shutdown).await
}

/// Announces a gateway's control address, so that applies in any process switch
/// and drain it; the registration goes when the value is dropped.
pub fn register(
    settings: &Settings,
    project: &str,
    running: &Running,
) -> Result<GatewayRegistration, StateError> {
    state::register_gateway(&settings.state_dir, project, running.control)
}
