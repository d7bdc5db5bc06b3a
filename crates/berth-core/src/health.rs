//! Health classification: what `status`, `/status` and the dashboard call a
//! container, from facts the shell gathered (engine state, restarts, uptime, the
//! answer of a probe). One function, so every view says the same word.

use serde::{Deserialize, Serialize};

use super::role::ContainerRole;

/// How long a running container that does not answer yet counts as starting
/// (the default health timeout).
pub const STARTING_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    Starting,
    Unhealthy,
    /// Kept aside after failing its health gate.
    Failed,
    /// The engine keeps restarting it.
    CrashLooping,
    /// Running, but with no published port to ask.
    Unknown,
    /// Running, and declared `health: { none: true }`: nothing is asked.
    Unchecked,
    /// A job that ran to completion (exit code 0).
    Completed,
    /// A job whose run is under way.
    Running,
    /// Not running.
    #[serde(rename = "-")]
    NotRunning,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Starting => "starting",
            Health::Unhealthy => "unhealthy",
            Health::Failed => "failed",
            Health::CrashLooping => "crash-looping",
            Health::Unknown => "unknown",
            Health::Unchecked => "unchecked",
            Health::Completed => "completed",
            Health::Running => "running",
            Health::NotRunning => "-",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// What is known of one container when it is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthFacts<'a> {
    /// The engine's state word: running, exited, restarting, ...
    pub state: &'a str,
    pub role: Option<ContainerRole>,
    /// Restarts by the engine's restart policy since the container was created.
    pub restarts: i64,
    /// Seconds up since its last start.
    pub up_secs: u64,
    /// Whether the service answered its health probe; `None` when not asked.
    pub answered: Option<bool>,
    /// Declared with no health check: started is enough.
    pub unchecked: bool,
    /// A job (`berth.job`), and its exit code once its run ended.
    pub job: Option<Option<i64>>,
}

/// A container kept aside after its gate is `failed`; a successor on probation
/// is `starting`; one the engine is restarting, or restarted three times or more
/// and up less than a minute since, is crash-looping, whatever a probe between
/// two crashes answers; one not answering yet but young is `starting`.
pub fn classify(f: HealthFacts<'_>) -> Health {
    let running = f.state == "running";
    if f.role == Some(ContainerRole::Failed) {
        return Health::Failed;
    }
    if let Some(exit) = f.job {
        // A job is judged by its run: under way, done, or failed.
        return match (running, exit) {
            (true, _) => Health::Running,
            (false, Some(0)) => Health::Completed,
            (false, Some(_)) => Health::Failed,
            (false, None) => Health::NotRunning,
        };
    }
    if f.role == Some(ContainerRole::Next) && running {
        return Health::Starting;
    }
    if f.state == "restarting" || (f.restarts >= 3 && f.up_secs < 60) {
        return Health::CrashLooping;
    }
    match (running, f.answered) {
        (true, _) if f.unchecked => Health::Unchecked,
        (true, Some(true)) => Health::Healthy,
        (true, Some(false)) if f.up_secs < STARTING_SECS => Health::Starting,
        (true, Some(false)) => Health::Unhealthy,
        (true, None) => Health::Unknown,
        (false, _) => Health::NotRunning,
    }
}

/// Why a container is judged as it is, in a sentence a user reads on hover:
/// the facts [`classify`] used, and the probe's answer (`probe_error`, when the
/// check failed) or the orchestrator's judgement.
pub fn reason(health: Health, f: &HealthFacts<'_>, probe_error: Option<&str>) -> String {
    let answer = probe_error.unwrap_or("its health check has not passed");
    match health {
        Health::Healthy => format!("its health check passes; up {}s", f.up_secs),
        Health::Starting if f.role == Some(ContainerRole::Next) => {
            "a new configuration on probation: its health gate decides whether it takes over".into()
        }
        Health::Starting => format!(
            "up {}s, under the {STARTING_SECS}s grace before it counts as unhealthy: {answer}",
            f.up_secs
        ),
        Health::Unhealthy => format!("up {}s and {answer}", f.up_secs),
        Health::Failed if f.job.is_some() => match f.job.flatten() {
            Some(code) => format!("the job exited with code {code}"),
            None => "the job failed".into(),
        },
        Health::Failed => {
            "its configuration failed the health gate; kept aside for its logs, the previous version serves".into()
        }
        Health::Completed => "the job ran to completion (exit code 0); it runs again when its content changes".into(),
        Health::Running => format!("the job's run is under way ({}s)", f.up_secs),
        Health::CrashLooping if f.state == "restarting" => format!(
            "the engine is restarting it ({} restarts so far)",
            f.restarts
        ),
        Health::CrashLooping => format!(
            "restarted {} times, and up only {}s since the last",
            f.restarts, f.up_secs
        ),
        Health::Unknown => "it publishes no port berth can check".into(),
        Health::Unchecked => "it declares no health check: running is enough".into(),
        Health::NotRunning => format!("it is {}", f.state),
    }
}

/// The host's neighbour (ARP) table, as the kernel bounds it: past `soft`
/// entries (`net.ipv4.neigh.default.gc_thresh2`) it evicts addresses still in
/// use, and it never holds more than `hard` (`gc_thresh3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourTable {
    pub soft: u64,
    pub hard: u64,
}

/// Whether a host that talks to `containers` containers on its bridges (each
/// probed for health, and each a gateway's backend) has room for them in its
/// neighbour table: `Ok` says how much, `Err` says what goes wrong and the fix.
/// Past the soft bound, connects to some containers wait for an address the
/// kernel evicted: their probes time out and they read unhealthy.
/// The host keeps fewer neighbour addresses than a file's containers need.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("neighbour table: the file declares {containers} containers, {how} the {kept} addresses this host keeps (net.ipv4.neigh.default.gc_thresh2; at most {most}, gc_thresh3): health probes and the gateway's connects to some containers time out, and they read unhealthy\n  help: raise it, e.g. `sysctl -w net.ipv4.neigh.default.gc_thresh1={} net.ipv4.neigh.default.gc_thresh2={raise} net.ipv4.neigh.default.gc_thresh3={}`", .raise / 2, .raise * 2)]
pub struct NeighbourTableShort {
    pub containers: u64,
    /// "more than" or "close to".
    pub how: &'static str,
    pub kept: u64,
    pub most: u64,
    /// The `gc_thresh2` to raise it to.
    pub raise: u64,
}

pub fn neighbour_room(containers: usize, t: NeighbourTable) -> Result<String, NeighbourTableShort> {
    let n = containers as u64;
    if n * 4 <= t.soft * 3 {
        return Ok(format!(
            "neighbour table: room for {} containers (gc_thresh2 {}); the file declares {n}",
            t.soft, t.soft
        ));
    }
    // Twice the containers, as a power of two, leaves room for the rest of
    // the host's neighbours and for growth.
    let soft = (n * 2).next_power_of_two().max(t.soft);
    let how = if n > t.soft { "more than" } else { "close to" };
    Err(NeighbourTableShort {
        containers: n,
        how,
        kept: t.soft,
        most: t.hard,
        raise: soft,
    })
}

/// What a failed health gate saw, in words that say what to change: with
/// no HTTP answer on the service's port, the ports the image says it
/// listens on (`EXPOSE`); with a 404 on the check's path, the `health`
/// setting. `why` is the last try's words, `port` the port the gate tried.
pub fn gate_words(why: &str, port: u16, exposed: &[u16]) -> String {
    let others: Vec<String> = exposed
        .iter()
        .filter(|p| **p != port)
        .map(|p| p.to_string())
        .collect();
    let silent = why.starts_with("GET ") && why.contains(" failed: ")
        || why.starts_with("nothing accepts connections");
    if silent {
        let base = format!("nothing answers HTTP on port {port} ({why})");
        return match others.as_slice() {
            [] => format!("{base}; a service answers HTTP on its `port` (8000 unless set): make it listen there, or set `port:` to where it listens"),
            [one] => format!("{base}; the image's EXPOSE says {one}: set `port: {one}`"),
            many => format!("{base}; the image's EXPOSE says {}: set `port:` to the one that serves HTTP", many.join(", ")),
        };
    }
    if let Some(path) = why
        .strip_prefix("GET ")
        .and_then(|r| r.strip_suffix(" answered 404"))
    {
        return format!("{why}: the service answers, but not at {path}; set `health: {{ path: /the/path/it/answers }}` (or `health: {{ tcp: true }}`)");
    }
    why.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `containers` on a host with the kernel's defaults (512 / 1,024); expects
    /// `Ok` or `Err` and words the answer holds.
    fn check(containers: usize, expect: Result<&[&str], &[&str]>) {
        let got = neighbour_room(
            containers,
            NeighbourTable {
                soft: 512,
                hard: 1024,
            },
        );
        let (text, words) = match (&got, expect) {
            (Ok(t), Ok(w)) => (t.clone(), w),
            (Err(e), Err(w)) => (e.to_string(), w),
            _ => panic!("{containers}: {got:?}"),
        };
        for w in words {
            assert!(text.contains(w), "{containers}: {w:?} not in {text}");
        }
    }

    #[test]
    fn a_few_hundred_containers_fit_the_default_table() {
        check(1, Ok(&["room for 512 containers", "declares 1"]));
        check(384, Ok(&["declares 384"]));
    }

    #[test]
    fn near_the_soft_bound_the_table_is_close_to_full() {
        check(385, Err(&["385 containers, close to the 512"]));
    }

    #[test]
    fn past_the_soft_bound_probes_time_out_and_the_fix_is_named() {
        check(
            1000,
            Err(&[
                "more than the 512 addresses",
                "at most 1024",
                "read unhealthy",
                "gc_thresh1=1024 net.ipv4.neigh.default.gc_thresh2=2048 net.ipv4.neigh.default.gc_thresh3=4096",
            ]),
        );
    }
}
