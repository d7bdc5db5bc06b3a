//! The health gate of a version: which check (`path`, `tcp`, `none`, or on a
//! swarm the image's own `command`), how long to wait and how often to ask.

use super::validate::Validator;
use super::*;

impl Validator {
    pub(super) fn health(&mut self, id: &str, raw: Option<&RawHealth>) -> Health {
        let mut health = Health::default();
        let Some(h) = raw else {
            return health;
        };
        let chosen: Vec<(&str, Pos)> = [
            h.path.as_ref().map(|p| ("path", Pos::from(p.referenced))),
            h.tcp.as_ref().map(|p| ("tcp", Pos::from(p.referenced))),
            h.none.as_ref().map(|p| ("none", Pos::from(p.referenced))),
            h.command
                .as_ref()
                .map(|p| ("command", Pos::from(p.referenced))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if chosen.len() > 1 {
            let names: Vec<&str> = chosen.iter().map(|(n, _)| *n).collect();
            self.err("S042",
                chosen[1].1,
                format!("{id}: health has more than one check ({})", names.join(", ")),
                "choose one: `path: /health` (GET answers 2xx or 3xx), `tcp: true` (the port accepts a connection), `none: true` (started is enough) or, on a swarm, `command: [...]` (exits 0)",
            );
        }
        for (flag, check) in [(&h.tcp, HealthCheck::Tcp), (&h.none, HealthCheck::None)] {
            match flag {
                Some(f) if f.value => health.check = check,
                Some(f) => self.err(
                    "S043",
                    Pos::from(f.referenced),
                    format!(
                        "{id}: health `{}: false` means nothing",
                        if check == HealthCheck::Tcp {
                            "tcp"
                        } else {
                            "none"
                        }
                    ),
                    "leave it out for the default check (`GET /`), or set it to `true`",
                ),
                None => {}
            }
        }
        if let Some(p) = &h.path {
            let bad = p
                .value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#');
            if !p.value.starts_with('/') || p.value.starts_with("//") || bad {
                self.err("S044",
                    Pos::from(p.referenced),
                    format!("{id}: health path `{}` is not a request path", p.value),
                    "write the path the service answers on, from its root: for example `/health` or `/healthz?full=1`",
                );
            } else {
                health.check = HealthCheck::Http {
                    path: p.value.clone(),
                };
            }
        }
        if let Some(c) = &h.command {
            let at = Pos::from(c.referenced);
            if !self.engine.capabilities().health_command {
                self.err("S045",
                    at,
                    format!("{id}: health `command` is for {}, where the engine runs it in each task", EngineKind::offering(|c| c.health_command)),
                    "on one engine berth asks the service from outside: use `path: /health` or `tcp: true`",
                );
            } else if c.value.first().is_none_or(|a| a.trim().is_empty()) {
                self.err("S046",
                    at,
                    format!("{id}: health `command` is empty"),
                    "name a program and its arguments, for example `command: [wget, -q, -O, /dev/null, http://127.0.0.1:8000/health]`",
                );
            } else {
                health.check = HealthCheck::Command {
                    argv: c.value.clone(),
                };
            }
        }
        for (field, value, min) in [("timeout", &h.timeout, 0), ("interval", &h.interval, 10)] {
            let Some(value) = value else { continue };
            match parse_duration_ms(&value.value) {
                Ok(ms) if ms >= min => {
                    if field == "timeout" {
                        health.timeout_ms = ms;
                    } else {
                        health.interval_ms = ms;
                    }
                }
                Ok(_) => self.err("S047", Pos::from(value.referenced), format!("{id}: health {field} `{}` is too short", value.value), "use at least 10ms"),
                Err(e) => self.err("S048", Pos::from(value.referenced), format!("{id}: health {field}: {e}"), "for example `timeout: 30s`, `interval: 250ms`; `timeout: 0s` starts without waiting"),
            }
        }
        health
    }

    /// Whether a version is a job (`job: true`), which publishes nothing.
    pub(super) fn job(&mut self, id: &str, s: &RawService, v: &RawVersion) -> bool {
        let job = pick(&v.job, &s.job);
        if let Some(flag) = job.filter(|f| f.value) {
            if pick(&v.publish, &s.publish).is_some() {
                self.err(
                    "S012",
                    Pos::from(flag.referenced),
                    format!(
                        "{id}: a job (`job: true`) serves nothing, so it cannot `publish` a port"
                    ),
                    "remove `publish`, or `job: true` to run it as a service",
                );
            }
        }
        job.is_some_and(|f| f.value)
    }

    /// A version's health gate; a job's is its exit, within its timeout.
    pub(super) fn gate(&mut self, id: &str, raw_health: Option<&RawHealth>, job: bool) -> Health {
        let mut health = self.health(id, raw_health);
        if job {
            // A job's only gate is its exit: the check is not asked, and the
            // timeout is how long one run may take.
            health.check = HealthCheck::None;
            if raw_health.is_none_or(|h| h.timeout.is_none()) {
                health.timeout_ms = JOB_TIMEOUT_MS;
            }
        }

        health
    }
}
