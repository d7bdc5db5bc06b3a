//! `POST /hooks/push`: a git host's push webhook, for `watch --git`. The
//! delivery's credential is its authentication (no token): the core decides
//! what to believe (`core::webhook`); a push to the followed branch wakes the
//! git follower at once, and anything else changes nothing. The poll stays
//! as the safety net.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::core::webhook::{self, Event, Seen};

/// How many delivery IDs are remembered, to know a replay.
const REMEMBERED: usize = 1024;

/// What the listener knows to take push webhooks.
pub struct Hook {
    secret: Vec<u8>,
    /// The followed branch (`main`).
    reference: String,
    /// Wakes the git follower: it fetches now instead of at its next poll.
    wake: Arc<tokio::sync::Notify>,
    seen: Mutex<Seen>,
    counts: Counts,
}

/// Deliveries by outcome, for `/metrics`.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
    ignored: AtomicU64,
    replayed: AtomicU64,
}

impl Hook {
    pub fn new(secret: Vec<u8>, reference: &str, wake: Arc<tokio::sync::Notify>) -> Hook {
        Hook {
            secret,
            reference: reference.to_string(),
            wake,
            seen: Mutex::new(Seen::new(REMEMBERED)),
            counts: Counts::default(),
        }
    }

    /// The deliveries by outcome, in Prometheus' text format.
    pub fn metrics(&self) -> String {
        let c = &self.counts;
        let mut out = String::from(
            "# HELP berth_webhooks_total Push webhook deliveries by outcome.\n# TYPE berth_webhooks_total counter\n",
        );
        for (outcome, n) in [
            ("accepted", &c.accepted),
            ("refused", &c.refused),
            ("ignored", &c.ignored),
            ("replayed", &c.replayed),
        ] {
            out.push_str(&format!(
                "berth_webhooks_total{{outcome=\"{outcome}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out
    }

    /// One delivery: 202 when it wakes the follower; 200 with why when it is
    /// believed but asks nothing (another branch, another event, a replay);
    /// 401 when its credential does not hold.
    fn take(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let count = |n: &AtomicU64| n.fetch_add(1, Ordering::Relaxed);
        let delivery = match webhook::verify(&pairs, body, &self.secret) {
            Ok(d) => d,
            Err(refusal) => {
                count(&self.counts.refused);
                tracing::warn!(why = %refusal, "push webhook refused");
                return (StatusCode::UNAUTHORIZED, format!("{refusal}\n"));
            }
        };
        let host = delivery.host.name();
        let (reference, after) = match delivery.event {
            Event::Push { reference, after } => (reference, after),
            Event::Other(event) => {
                count(&self.counts.ignored);
                return (
                    StatusCode::OK,
                    format!("ignored: a {host} `{event}` event, not a push\n"),
                );
            }
        };
        if !webhook::is_followed(&reference, &self.reference) {
            count(&self.counts.ignored);
            return (
                StatusCode::OK,
                format!(
                    "ignored: a push to {reference}; this daemon follows {}\n",
                    self.reference
                ),
            );
        }
        if let Some(id) = &delivery.id {
            let first = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first_time(id);
            if !first {
                count(&self.counts.replayed);
                return (
                    StatusCode::OK,
                    format!("replayed: delivery {id} was taken already\n"),
                );
            }
        }
        count(&self.counts.accepted);
        let commit = after.as_deref().unwrap_or("?");
        tracing::info!(host, reference, commit, "push webhook: fetching now");
        self.wake.notify_one();
        (
            StatusCode::ACCEPTED,
            format!("fetching {reference} ({commit})\n"),
        )
    }
}

/// The route's handler; 404 where the daemon takes no webhooks.
pub(super) async fn push(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    match &s.hook {
        Some(hook) => hook.take(&headers, &body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this daemon takes no webhooks: start `berth watch --git URL --webhook-secret FILE`\n",
        )
            .into_response(),
    }
}

/// `hook`, shared with the listener.
pub type SharedHook = Option<Arc<Hook>>;
