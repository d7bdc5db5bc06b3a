//! What runs now, read-only: the status rows (`status`, `/status`), the container
//! a `logs` target names, where a container answers.

use crate::core::desired::{LABEL_JOB, LABEL_REVISION, LABEL_SCOPE, LABEL_SERVICE, LABEL_VERSION};
use crate::core::health::{classify, reason, HealthFacts};
use crate::core::plan::{Observed, ObservedContainer};
use crate::core::render::{JobRun, StatusRow};
use crate::core::role::ContainerRole;
use crate::core::spec::Spec;
use crate::shell::engine::{Engine, Restarts};
use crate::shell::probe;

use super::ConvergeError;

/// Where a container answers on the host, if it is published.
pub fn url(c: &ObservedContainer) -> Option<String> {
    c.ports.iter().find_map(|p| {
        // On one host the engine publishes on loopback; a swarm's task on its
        // node's address.
        let ip = match p.ip.as_deref() {
            None | Some("") | Some("0.0.0.0") | Some("::") => "127.0.0.1",
            Some(ip) => ip,
        };
        p.public.map(|port| format!("http://{ip}:{port}/"))
    })
}

/// Every owned container as `status` shows it: one list call, then per running
/// container a health probe and (with `usage`) one stats sample, side by side.
pub async fn status_rows(
    engine: &dyn Engine,
    project: &str,
    usage: bool,
) -> Result<Vec<StatusRow>, ConvergeError> {
    let observed = engine.observe(project).await?;
    Ok(rows_of(engine, project, &observed, usage, None).await)
}

/// How many containers are looked at at once: each look holds an inspection,
/// a probe and a stats sample (which the engine takes a second to answer), and
/// a thousand at once would only raise the memory high-water mark.
const LOOKS_AT_ONCE: usize = 64;

/// The restart counts and start times of containers already inspected, by
/// container ID: a daemon keeps them between looks and forgets them all at any
/// engine event of the project (a restart is one) and after acting, so an idle
/// daemon inspects nothing.
#[derive(Default)]
pub struct Known(std::sync::Mutex<std::collections::HashMap<String, Restarts>>);

impl Known {
    pub fn forget(&self) {
        self.0.lock().expect("no panics hold it").clear();
    }

    fn get(&self, id: &str) -> Option<Restarts> {
        self.0.lock().expect("no panics hold it").get(id).copied()
    }

    fn keep(&self, id: &str, r: Restarts) {
        self.0
            .lock()
            .expect("no panics hold it")
            .insert(id.to_string(), r);
    }
}

/// [`status_rows`] over containers already listed; `known`: restarts kept
/// from earlier looks (see [`Known`]).
pub async fn rows_of(
    engine: &dyn Engine,
    project: &str,
    observed: &Observed,
    usage: bool,
    known: Option<&Known>,
) -> Vec<StatusRow> {
    use futures_util::StreamExt;
    // By index: a closure over `&ObservedContainer` would make the future not
    // `Send` (rustc's higher-ranked lifetimes, see `converge::execute`), and
    // the futures made ahead instead would take 1 KB each, 1 MB at 1,000.
    let ours: Vec<usize> = (0..observed.containers.len())
        .filter(|&i| observed.containers[i].owned_by(project))
        .collect();
    let routes = &crate::core::active::observed(project, observed);
    futures_util::stream::iter(ours)
        .map(move |i| {
            row_of(
                engine,
                project,
                &observed.containers[i],
                routes,
                usage,
                known,
            )
        })
        .buffered(LOOKS_AT_ONCE)
        .collect()
        .await
}

/// One container's status row: a health probe (or a swarm's own verdict), a
/// stats sample with `usage`, and its restarts (from `known` when kept).
async fn row_of(
    engine: &dyn Engine,
    project: &str,
    c: &ObservedContainer,
    routes: &crate::core::active::Routes,
    usage: bool,
    known: Option<&Known>,
) -> StatusRow {
    let running = c.state == "running";
    let port = c.ports.iter().find_map(|p| p.public);
    let check = c.health_check();
    let unchecked = check == crate::core::spec::HealthCheck::None;
    let judged = match running {
        true => engine.judged_healthy(&c.id).await.ok().flatten(),
        false => None,
    };
    let (answered, probe_error) = match (running, port, judged) {
        (_, _, Some(up)) => (
            Some(up),
            (!up).then(|| "Swarm's health check of its tasks fails".to_string()),
        ),
        (true, Some(p), None) if !unchecked => {
            match probe::check(p, &check, std::time::Duration::from_secs(2)).await {
                Ok(()) => (Some(true), None),
                Err(e) => (Some(false), Some(e.to_string())),
            }
        }
        _ => (None, None),
    };
    let stats = match running && usage {
        true => engine.usage(&c.id).await.ok().flatten(),
        false => None,
    };
    let restarts = match known.and_then(|k| k.get(&c.id)) {
        Some(r) => r,
        None => {
            let r = engine.restarts(&c.id).await.ok().flatten();
            if let (Some(k), Some(r)) = (known, r) {
                k.keep(&c.id, r);
            }
            r.unwrap_or_default()
        }
    };
    let (service, version) = (c.label(LABEL_SERVICE), c.label(LABEL_VERSION));
    let role = ContainerRole::of_labelled(&c.name, project, service, version);
    // A job's row says how its run went, with the last lines of its log
    // (excerpts: a reader without logs:view gets them cut).
    let run = match c.label(LABEL_JOB) == "true" {
        false => None,
        true => {
            let ran = engine
                .run_of(&c.id)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let logs = engine
                .logs_tail(&c.id, JOB_LOG_LINES)
                .await
                .unwrap_or_default();
            let lines: Vec<&str> = logs.lines().collect();
            let excerpt = crate::core::redact::excerpt(&lines, std::iter::empty());
            Some(JobRun {
                exit_code: ran.exit_code,
                secs: ran.secs,
                log_tail: excerpt
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from)
                    .collect(),
            })
        }
    };
    let facts = HealthFacts {
        state: &c.state,
        role,
        restarts: restarts.count,
        up_secs: restarts.up_secs(),
        answered,
        unchecked,
        job: run.as_ref().map(|r| r.exit_code),
    };
    let health = classify(facts);
    let health_reason = Some(reason(health, &facts, probe_error.as_deref()));
    let config = c.recorded_config();
    StatusRow {
        gpu: config.as_ref().and_then(|c| c.gpu.clone()),
        assets: config
            .as_ref()
            .map(|c| {
                c.assets
                    .iter()
                    .map(|(path, sha)| format!("{path} (sha256 {})", crate::core::plan::short(sha)))
                    .collect()
            })
            .unwrap_or_default(),
        service: service.to_string(),
        version: version.to_string(),
        // Only a version under its canonical name has passed its gate and
        // may hold the path; a failed or probationary one never shows active.
        // The routes record says which version is active (a switch restarts
        // nothing, so no container label could).
        active: routes.is_active(service, version) && role == Some(ContainerRole::Canonical),
        container: c.name.clone(),
        state: c.state.clone(),
        tasks: engine.capabilities().rolls_out.then(|| c.status.clone()),
        health,
        health_reason,
        restarts: restarts.count,
        url: url(c),
        scope: c.label(LABEL_SCOPE).to_string(),
        revision: c.labels.get(LABEL_REVISION).cloned(),
        up_secs: running.then_some(restarts.up_secs()),
        cpu_percent: stats.map(|s| s.cpu_percent),
        memory_bytes: stats.map(|s| s.memory_bytes),
        memory_limit_bytes: stats.map(|s| s.memory_limit_bytes),
        run,
        // Known from the file and the holds record, not the engine: the
        // commands that have them add it (`status`).
        held_against: None,
    }
}

/// How many of a job's last log lines its status row carries.
const JOB_LOG_LINES: usize = 5;

/// The container of `SERVICE` (its active version) or `SERVICE@VERSION`.
pub async fn find_target(
    engine: &dyn Engine,
    project: &str,
    spec: Option<&Spec>,
    target: &str,
) -> Result<ObservedContainer, ConvergeError> {
    let (service, version) = match target.split_once('@') {
        Some((s, v)) => (s.to_string(), Some(v.to_string())),
        None => (target.to_string(), None),
    };
    let version = version.or_else(|| {
        spec?
            .services
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.active.to_string())
    });
    let observed = engine.observe(project).await?;
    let routes = crate::core::active::observed(project, &observed);
    let mut candidates: Vec<ObservedContainer> = observed
        .containers
        .into_iter()
        .filter(|c| {
            c.owned_by(project)
                && c.label(LABEL_SERVICE) == service
                && version
                    .as_deref()
                    .is_none_or(|v| c.label(LABEL_VERSION) == v)
        })
        .collect();
    // Without the file to say which version is active, the routes record says.
    candidates.sort_by_key(|c| {
        let canonical = c.name
            == crate::core::desired::container_name(project, &service, c.label(LABEL_VERSION));
        (
            !(routes.is_active(&service, c.label(LABEL_VERSION)) && canonical),
            !canonical,
        )
    });
    candidates
        .into_iter()
        .next()
        .ok_or_else(|| ConvergeError::ContainerNotFound {
            target: target.to_string(),
            project: project.to_string(),
        })
}
