//! Notifications, pure: a reconcile's outcome as one kind (applied, nothing
//! to do, drift repaired, a gate failed with the old version kept, rolled
//! back by berth or by Swarm, a source refused, failed), the sinks it goes
//! to, and the message each kind of sink gets. A rollback is never called a
//! success. Messages carry berth's own words only (container output enters
//! them masked, through `redact`, as it entered the error); a sink's secret
//! never enters a message.

use serde::{Deserialize, Serialize};

/// What a reconcile (or a rollback) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A change of source carried out.
    Applied,
    /// A change of source that needed no step.
    NothingToDo,
    /// What drifted put back (no change of source).
    DriftRepaired,
    /// A new version failed its health gate; the running one was kept.
    GateFailed,
    /// A version taken back: by `berth rollback` or the dashboard, or by
    /// Swarm after its new tasks failed.
    RolledBack,
    /// The file or commit was refused as invalid; nothing changed.
    SourceRefused,
    /// Anything else that failed.
    Failed,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Applied,
        Kind::NothingToDo,
        Kind::DriftRepaired,
        Kind::GateFailed,
        Kind::RolledBack,
        Kind::SourceRefused,
        Kind::Failed,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Kind::Applied => "applied",
            Kind::NothingToDo => "nothing-to-do",
            Kind::DriftRepaired => "drift-repaired",
            Kind::GateFailed => "gate-failed",
            Kind::RolledBack => "rolled-back",
            Kind::SourceRefused => "source-refused",
            Kind::Failed => "failed",
        }
    }

    /// Whether the outcome asks someone to look.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Kind::GateFailed | Kind::RolledBack | Kind::SourceRefused | Kind::Failed
        )
    }
}

/// A failed apply's kind from its failures, in berth's own words: Swarm
/// rolled an update back, a new version never passed its gate, or another
/// failure.
pub fn kind_of_failure(details: &str) -> Kind {
    if details.contains("Swarm rolled the update back") {
        Kind::RolledBack
    } else if details.contains("health gate") || details.contains("never became healthy") {
        Kind::GateFailed
    } else {
        Kind::Failed
    }
}

/// One outcome, as every sink gets it (the generic sink, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `berth.notice/v1`: the shape of this document.
    pub schema: String,
    pub kind: Kind,
    pub project: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// What started it: file, git, engine, tick, api, start, rollback.
    pub trigger: String,
    /// The commit converged from (under `watch --git`).
    pub revision: Option<String>,
    pub subject: Option<String>,
    /// The services it concerns.
    pub services: Vec<String>,
    /// One line: what happened.
    pub summary: String,
    /// The error's words, when it failed.
    pub detail: Option<String>,
}

pub const SCHEMA: &str = "berth.notice/v1";

impl Notice {
    /// The first line a person reads: `[berth] shop: gate-failed — …`.
    pub fn headline(&self) -> String {
        let at = self
            .revision
            .as_deref()
            .map(|r| format!(" at {}", &r[..r.len().min(12)]))
            .unwrap_or_default();
        format!(
            "[berth] {}: {}{at} — {}",
            self.project,
            self.kind.word(),
            self.summary
        )
    }

    /// The text of a chat message: the headline, the commit's subject, and
    /// the error's first lines.
    pub fn text(&self) -> String {
        let mut out = self.headline();
        if let Some(s) = &self.subject {
            out.push_str(&format!("\ncommit: {s}"));
        }
        if let Some(d) = &self.detail {
            let lines: Vec<&str> = d.lines().take(12).collect();
            out.push_str(&format!("\n{}", lines.join("\n")));
        }
        out
    }

    /// A Slack or Mattermost incoming webhook's body.
    pub fn slack(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text() })
    }

    /// ntfy's title, priority (1 to 5) and tags; the body is [`Notice::text`].
    pub fn ntfy(&self) -> (String, u8, String) {
        let priority = match self.kind {
            Kind::NothingToDo => 2,
            Kind::Applied | Kind::DriftRepaired => 3,
            Kind::GateFailed | Kind::RolledBack | Kind::SourceRefused | Kind::Failed => 4,
        };
        let tag = match self.kind.is_bad() {
            true => "warning",
            false => "white_check_mark",
        };
        (
            format!("berth {}: {}", self.project, self.kind.word()),
            priority,
            format!("{tag},{}", self.kind.word()),
        )
    }
}

/// Where notices go, as the notify file says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sinks {
    pub sinks: Vec<Sink>,
    /// How often a delivery is tried, and the first pause between tries
    /// (doubling after each).
    #[serde(default)]
    pub retry: Retry,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// `webhook` (the JSON notice, signed), `slack` (Slack and Mattermost
    /// incoming webhooks), `ntfy`.
    pub kind: SinkKind,
    pub url: String,
    /// The file holding the secret a `webhook` sink's deliveries are signed
    /// with (`X-Berth-Signature-256`).
    #[serde(default)]
    pub secret_file: Option<String>,
    /// Only these outcomes (every one when left out).
    #[serde(default)]
    pub kinds: Option<Vec<Kind>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    Webhook,
    Slack,
    Ntfy,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub attempts: u32,
    /// Milliseconds before the second try.
    pub first_ms: u64,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_ms: 1000,
        }
    }
}

impl Sink {
    pub fn wants(&self, kind: Kind) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// The sink as it may be logged: its scheme and host alone. An incoming
    /// webhook's path is its secret (Slack's `/services/T/B/KEY`), an ntfy
    /// topic is as good as one, and a URL may carry `user:password@`.
    pub fn shown(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or(authority);
        format!("{scheme}://{host}/…")
    }
}

/// Why a notify file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinksRefused {
    #[error("{0}")]
    Shape(String),
    #[error("sink {index}: url `{url}` is not an http(s) URL")]
    UrlBad { index: usize, url: String },
    #[error(
        "sink {index}: a `{kind}` sink takes no secret_file (only `webhook` sinks are signed)"
    )]
    SecretMisplaced { index: usize, kind: &'static str },
    #[error("retry: attempts must be 1 to 20")]
    RetryBad,
}

impl Sinks {
    /// The notify file's text, read and checked.
    pub fn parse(text: &str) -> Result<Sinks, SinksRefused> {
        let s: Sinks =
            serde_saphyr::from_str(text).map_err(|e| SinksRefused::Shape(e.to_string()))?;
        for (index, sink) in s.sinks.iter().enumerate() {
            let rest = sink
                .url
                .strip_prefix("https://")
                .or_else(|| sink.url.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return Err(SinksRefused::UrlBad {
                    index,
                    url: sink.url.clone(),
                });
            }
            let kind = match sink.kind {
                SinkKind::Webhook => None,
                SinkKind::Slack => Some("slack"),
                SinkKind::Ntfy => Some("ntfy"),
            };
            if let (Some(kind), Some(_)) = (kind, &sink.secret_file) {
                return Err(SinksRefused::SecretMisplaced { index, kind });
            }
        }
        if !(1..=20).contains(&s.retry.attempts) {
            return Err(SinksRefused::RetryBad);
        }
        Ok(s)
    }
}

/// The pause before try `n` (the second try is `n == 1`): the first pause,
/// doubled each time, at most a minute.
pub fn backoff_ms(retry: &Retry, n: u32) -> u64 {
    retry
        .first_ms
        .saturating_mul(1u64 << n.saturating_sub(1).min(16))
        .min(60_000)
}
