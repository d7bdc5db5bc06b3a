//! Rollouts: a container created, started and health-gated; a replace side by
//! side (or stop-first with a fixed port or keeps) with the gateways drained
//! before the old container stops.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::desired::DesiredContainer;
use crate::core::plan::short;
use crate::core::role::ContainerRole;
use crate::serve::gateway::Look;
use crate::shell::engine::{ContainerState, Engine};
use crate::shell::probe;

use super::StepError;
use super::{gateways, Context};

/// A container that never passed its health gate.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.words())]
pub struct Unhealthy {
    pub id: String,
    pub check: String,
    pub why: String,
    pub timeout_ms: u64,
    pub kept: String,
    pub logs: String,
    /// A job's run failed (its gate is its exit).
    pub job: bool,
}

impl Unhealthy {
    fn words(&self) -> String {
        let Unhealthy {
            id,
            check,
            why,
            timeout_ms,
            kept,
            logs,
            job,
        } = self;
        match job {
            false => format!("{id} never became healthy: its check is {check} within {timeout_ms} ms, and the last try said: {why}\n  the container is kept stopped as {kept}; from its log:\n{logs}\n  help: fix the service (or its `health:` check or timeout) and apply again; what ran before keeps running"),
            true => format!("{id}: the job failed: {why}\n  the container is kept stopped as {kept}; from its log:\n{logs}\n  help: fix the job and apply again (`berth apply` runs a failed job again; `watch` does not, until its content changes); what ran before is kept"),
        }
    }
}

/// Creates and starts `c` on probation as `<name>-next-<hash12>` and waits for
/// its health gate. One that does not start is removed again; one that starts
/// but never answers is stopped and kept aside as `<name>-failed-<id12>` for
/// inspection (the next plan removes it and tries again). Only the caller's
/// rename to the canonical name marks it converged: a kill before that leaves a
/// `-next-` container, which no plan mistakes for a gated one.
pub async fn start_on_probation(
    ctx: &Context,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<String, StepError> {
    let engine = ctx.engine.as_ref();
    let next = ContainerRole::Next.name(&c.name, &c.hash);
    let id = engine.create_container(&next, c, secrets).await?;
    crash_point("created");
    if let Err(e) = engine.start_container(&id, &next).await {
        let _ = engine.remove_container(&id, &next).await;
        return Err(e.into());
    }
    crash_point("started");
    if let Err(why) = wait_healthy(engine, &id, c).await {
        let logs = engine.logs_tail(&id, 200).await.unwrap_or_default();
        let _ = engine.stop_container(&id, &next).await;
        let failed = ContainerRole::Failed.name(&c.name, short(&id));
        let _ = engine.rename_container(&id, &next, &failed).await;
        // The one place container output enters berth's documents: the
        // secrets this container was given are masked, and every line is
        // marked as an excerpt (shown only to tokens with logs:view).
        let values = secrets.values().map(String::as_str);
        let exposed = engine.exposed_ports(&id).await.unwrap_or_default();
        let why = crate::core::health::gate_words(&why.to_string(), c.config.port, &exposed);
        return Err(Unhealthy {
            id: format!("{}@{}", c.service, c.version),
            check: c.health.check.describe(),
            why: crate::core::redact::mask(&why, values.clone()),
            timeout_ms: c.health.timeout_ms,
            kept: failed,
            job: c.config.job,
            logs: crate::core::redact::excerpt(
                &crate::core::report::decisive_lines(&logs, 12),
                values,
            ),
        }
        .into());
    }
    crash_point("gated");
    Ok(id)
}

/// A new version: started on probation, and given its canonical name once gated.
pub async fn create(
    ctx: &Context,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<(), StepError> {
    if ctx.engine.capabilities().rolls_out {
        ctx.engine.deploy(None, &c.name, c, secrets).await?;
        return Ok(());
    }
    let id = start_on_probation(ctx, c, secrets).await?;
    let next = ContainerRole::Next.name(&c.name, &c.hash);
    rename(ctx.engine.as_ref(), &id, &next, &c.name, true).await?;
    crash_point("renamed");
    Ok(())
}

/// Renames a container, even one the engine is restarting (a process that
/// exits at once under `health: { none: true }`, a crash loop): the engine
/// cannot rename it then ("sandbox not found"), so it is stopped, renamed,
/// and started again when `start_again` (a version that stays), left
/// stopped otherwise (a predecessor on its way out).
async fn rename(
    engine: &dyn Engine,
    id: &str,
    from: &str,
    to: &str,
    start_again: bool,
) -> Result<(), StepError> {
    let Err(first) = engine.rename_container(id, from, to).await else {
        return Ok(());
    };
    // A version that stays serves nobody yet under its new name: stopping and
    // starting it again costs nothing (the engine's state lags its process,
    // so no look can tell a run that just ended). A predecessor is stopped
    // early only when it is down or has been restarted: one that serves
    // keeps serving whatever failed.
    if !start_again {
        let running = engine
            .container_state(id, 0)
            .await?
            .is_some_and(|s| s.state == "running");
        let restarted = engine.restarts(id).await?.is_some_and(|r| r.count > 0);
        if running && !restarted {
            return Err(first.into());
        }
    }
    engine.stop_container(id, from).await?;
    // The engine may take a moment to let go of the ended run's sandbox.
    let mut tries = 0;
    while let Err(e) = engine.rename_container(id, from, to).await {
        tries += 1;
        if tries == 10 {
            return Err(e.into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if start_again {
        engine.start_container(id, to).await?;
    }
    Ok(())
}

/// Puts a predecessor an interrupted replace left aside back under its name.
pub async fn restore(
    engine: &dyn Engine,
    id: &str,
    name: &str,
    canonical: &str,
) -> Result<(), StepError> {
    if name != canonical {
        engine.rename_container(id, name, canonical).await?;
    }
    engine.start_container(id, canonical).await?;
    Ok(())
}

/// What a health gate saw instead of a healthy version (or a job that ran to
/// exit code 0 in time).
#[derive(Debug, thiserror::Error)]
enum GateFail {
    #[error("the container disappeared")]
    ContainerGone,
    #[error("the process exited with code {code}{} (a service keeps running; its check is {check})", if *.restarting { "; the engine restarts it" } else { "" })]
    ProcessExited {
        code: i64,
        restarting: bool,
        check: String,
    },
    #[error("the container {state} (last answer: {last})")]
    ContainerStopped { state: String, last: String },
    /// The timeout passed; the last try's words.
    #[error("{last}")]
    CheckTimeout { last: String },
    #[error("the job exited with code {code} after {took}")]
    JobFailed { code: i64, took: String },
    #[error("the job's container {state} without an exit code")]
    JobStopped { state: String },
    #[error("the job still ran after {limit} (its `health.timeout`)")]
    JobTimeout { limit: String },
}

/// Runs the container's health check every interval until it passes, the
/// timeout, or the process ends. Err says what was seen last.
async fn wait_healthy(engine: &dyn Engine, id: &str, c: &DesiredContainer) -> Result<(), GateFail> {
    let h = &c.health;
    if h.timeout_ms == 0 {
        return Ok(());
    }
    if c.config.job {
        return wait_run(engine, id, c).await;
    }
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(h.timeout_ms);
    let mut next_word = started + WORD_EVERY;
    let mut last = "no answer yet".to_string();
    let mut tries = 0u32;
    loop {
        match engine.container_state(id, c.config.port).await {
            Ok(None) => return Err(GateFail::ContainerGone),
            Err(e) => last = format!("the engine did not say: {e}"),
            // A process that ended is the answer, whatever the port says: a
            // script that prints and exits is not a service.
            Ok(Some(ContainerState {
                exit_code: Some(code),
                state,
                ..
            })) => {
                return Err(GateFail::ProcessExited {
                    code,
                    restarting: state == "restarting" || state == "running",
                    check: h.check.describe(),
                });
            }
            Ok(Some(ContainerState { state, .. })) if state == "exited" || state == "dead" => {
                return Err(GateFail::ContainerStopped { state, last });
            }
            Ok(Some(ContainerState { port: None, .. })) => {
                last = "the port is not published yet".into()
            }
            Ok(Some(ContainerState {
                port: Some(port), ..
            })) => match probe::check(port, &h.check, Duration::from_secs(2)).await {
                Ok(()) => return Ok(()),
                Err(why) => last = why.to_string(),
            },
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(GateFail::CheckTimeout { last });
        }
        // A gate can take a while: say what is awaited, every few seconds.
        if now >= next_word {
            next_word = now + WORD_EVERY;
            crate::say::info(&format!(
                "  {}@{}: waiting for {} ({} s of {} s; last: {last})",
                c.service,
                c.version,
                h.check.describe(),
                (now - started).as_secs(),
                h.timeout_ms / 1000
            ));
        }
        tries += 1;
        tokio::time::sleep(gate_pause(tries, h.interval_ms)).await;
    }
}

/// A job's gate: its run ends within the timeout with exit code 0. Err says
/// how it ended (or that it still ran).
async fn wait_run(engine: &dyn Engine, id: &str, c: &DesiredContainer) -> Result<(), GateFail> {
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(c.health.timeout_ms);
    let mut next_word = started + WORD_EVERY;
    let mut tries = 0u32;
    loop {
        let took = || {
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
        };
        match engine.container_state(id, c.config.port).await {
            Ok(None) => return Err(GateFail::ContainerGone),
            Ok(Some(ContainerState {
                exit_code: Some(0), ..
            })) => return Ok(()),
            Ok(Some(ContainerState {
                exit_code: Some(code),
                ..
            })) => {
                return Err(GateFail::JobFailed {
                    code,
                    took: took().to_string(),
                })
            }
            Ok(Some(ContainerState { state, .. })) if state == "exited" || state == "dead" => {
                return Err(GateFail::JobStopped { state })
            }
            Ok(Some(_)) | Err(_) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let limit = Duration::from_millis(c.health.timeout_ms);
            return Err(GateFail::JobTimeout {
                limit: humantime::format_duration(limit).to_string(),
            });
        }
        if now >= next_word {
            next_word = now + WORD_EVERY;
            crate::say::info(&format!(
                "  {}@{}: the job runs ({} s of at most {} s)",
                c.service,
                c.version,
                (now - started).as_secs(),
                c.health.timeout_ms / 1000
            ));
        }
        tries += 1;
        tokio::time::sleep(gate_pause(tries, 250)).await;
    }
}

/// The pause before the gate's next check: a service usually answers within
/// milliseconds of its start, so the first checks come quickly (10, 20, 40 ms
/// ...) and then every `interval_ms`.
fn gate_pause(tries: u32, interval_ms: u64) -> Duration {
    Duration::from_millis((10u64 << tries.min(16)).min(interval_ms))
}

/// How often a gate that is still waiting says so.
const WORD_EVERY: Duration = Duration::from_secs(5);

/// Replace under the same name. Without a fixed host port or keeps, the new
/// container starts beside the old one and must pass its gate before it takes
/// the name; then every gateway switches to it and drains the old one, and only
/// then is the old one stopped. With a fixed port or keeps, the old one is
/// stopped and moved aside first, and put back if the new one fails. `old_name`
/// is where the old one is now (aside already, when an earlier replace was
/// interrupted). Killed midway, the plan that follows finds the old one under
/// its canonical name or aside as `-old-`, and the new one as `-next-` until it
/// passed its gate: see the planner.
pub async fn replace(
    ctx: &Context,
    project: &str,
    old_id: &str,
    old_name: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> Result<(), StepError> {
    let engine = ctx.engine.as_ref();
    // An orchestrator rolls the version out in place, gated by its own checks.
    if engine.capabilities().rolls_out {
        engine.deploy(Some(old_id), old_name, c, secrets).await?;
        return Ok(());
    }
    let aside = ContainerRole::Old.name(&c.name, short(old_id));
    let next = ContainerRole::Next.name(&c.name, &c.hash);
    if crate::core::plan::side_by_side(c) {
        // Side by side: the successor starts under a temporary name while the old
        // container keeps serving, and takes over only once it is healthy. (A fixed
        // host port, or keeps two processes must not share, need stop-first.)
        let new_id = start_on_probation(ctx, c, secrets).await?;
        let old_state = engine.container_state(old_id, c.config.port).await?;
        let old_port = old_state.as_ref().and_then(|s| s.port);
        // A predecessor the engine keeps restarting (a crash loop) serves
        // nothing, and the engine cannot rename a container while it restarts
        // ("sandbox not found"): it is stopped before it moves aside.
        if old_state.is_some_and(|s| s.state != "running") {
            engine.stop_container(old_id, old_name).await?;
        }
        // Both renames happen while the old one still serves: a gateway that looks
        // in between routes to it (`-old-`), never to nothing.
        if old_name != aside {
            rename(engine, old_id, old_name, &aside, false).await?;
            crash_point("moved-aside");
        }
        rename(engine, &new_id, &next, &c.name, true).await?;
        crash_point("renamed");
        if let Some(port) = old_port {
            gateways::drain(&ctx.settings, project, port, Look::All).await;
        }
        engine.stop_container(old_id, &aside).await?;
        crash_point("stopped-old");
        return Ok(engine.remove_container(old_id, &aside).await?);
    }
    // Stopped first: the engine cannot rename a container that is restarting.
    engine.stop_container(old_id, old_name).await?;
    crash_point("stopped-old");
    if old_name != aside {
        engine.rename_container(old_id, old_name, &aside).await?;
        crash_point("moved-aside");
    }
    match start_on_probation(ctx, c, secrets).await {
        Ok(new_id) => {
            engine.rename_container(&new_id, &next, &c.name).await?;
            crash_point("renamed");
            Ok(engine.remove_container(old_id, &aside).await?)
        }
        Err(e) => {
            let _ = restore(engine, old_id, &aside, &c.name).await;
            Err(e)
        }
    }
}

/// A place an apply may be killed at, for the crash-injection tests: in debug
/// builds, `BERTH_CRASH_AT=<point>[#<n>]` kills the process with SIGKILL (no
/// unwinding, no cleanup) the n-th time (default: the first) it passes `point`.
/// Release builds have no such hook.
pub fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    {
        static PASSED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let Ok(spec) = std::env::var("BERTH_CRASH_AT") else {
            return;
        };
        let (want, nth) = match spec.split_once('#') {
            Some((p, n)) => (p, n.parse().unwrap_or(1)),
            None => (spec.as_str(), 1),
        };
        if want != point {
            return;
        }
        let mut passed = PASSED.lock().unwrap_or_else(|e| e.into_inner());
        passed.push(point.to_string());
        if passed.len() == nth {
            crate::say::error(&format!("berth: crash point `{point}` #{nth}: killed"));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
