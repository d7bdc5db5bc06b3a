//! Notices delivered to the sinks of `watch --notify`: each sink has a queue
//! and a task of its own, so a slow or failing sink delays no other, and a
//! reconcile never waits (`send` only queues; a full queue drops the notice,
//! said at WARN). A delivery is tried `retry.attempts` times with a doubling
//! pause; a `webhook` sink's body is signed (`X-Berth-Signature-256`,
//! HMAC-SHA256 with its secret, as GitHub signs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::notice::{backoff_ms, Notice, Retry, Sink, SinkKind, Sinks};

/// How many notices wait for one sink before new ones are dropped.
const QUEUE: usize = 256;

/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// The notify file read: its sinks and each `webhook` sink's secret.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub sinks: Sinks,
    /// Per sink, in order: its signing secret.
    pub secrets: Vec<Option<Vec<u8>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot use the notify file {path}: {why}\n  help: {help}")]
pub struct NotifyRead {
    pub path: PathBuf,
    pub why: String,
    pub help: &'static str,
}

/// Reads and checks the notify file and its sinks' secret files (relative
/// to it), once, at start.
pub fn read(path: &Path) -> Result<NotifyConfig, NotifyRead> {
    let refuse = |why: String, help| NotifyRead {
        path: path.to_path_buf(),
        why,
        help,
    };
    let shape = "write `sinks:` with a list of { kind: webhook | slack | ntfy, url, secret_file?, kinds? } (docs/contract.md, section 7)";
    let text = std::fs::read_to_string(path).map_err(|e| refuse(e.to_string(), shape))?;
    let sinks = Sinks::parse(&text).map_err(|e| refuse(e.to_string(), shape))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut secrets = Vec::new();
    for sink in &sinks.sinks {
        let secret = match &sink.secret_file {
            None => None,
            Some(f) => {
                let file = dir.join(f);
                Some(super::source::secret_file(&file).map_err(|why| {
                    refuse(
                        format!("its secret_file {}: {why}", file.display()),
                        "write the secret the receiver checks signatures with into that file",
                    )
                })?)
            }
        };
        secrets.push(secret);
    }
    Ok(NotifyConfig { sinks, secrets })
}

/// The sinks' queues.
#[derive(Clone)]
pub struct Notifier {
    queues: Vec<(Sink, mpsc::Sender<Notice>)>,
}

impl Notifier {
    /// One task per sink, each delivering its queue in order.
    pub fn start(config: NotifyConfig) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(TRY_TIMEOUT)
            .build()
            .expect("a client with a timeout builds");
        let retry = config.sinks.retry.clone();
        let queues = config
            .sinks
            .sinks
            .into_iter()
            .zip(config.secrets)
            .map(|(sink, secret)| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver_all(
                    client.clone(),
                    sink.clone(),
                    secret,
                    retry.clone(),
                    rx,
                ));
                (sink, tx)
            })
            .collect();
        Notifier { queues }
    }

    /// Queues `notice` for every sink that wants its kind; never waits.
    pub fn send(&self, notice: &Notice) {
        for (sink, tx) in &self.queues {
            if sink.wants(notice.kind) && tx.try_send(notice.clone()).is_err() {
                tracing::warn!(
                    sink = sink.shown(),
                    kind = notice.kind.word(),
                    "notice dropped: the sink's queue is full"
                );
            }
        }
    }
}

async fn deliver_all(
    client: reqwest::Client,
    sink: Sink,
    secret: Option<Vec<u8>>,
    retry: Retry,
    mut rx: mpsc::Receiver<Notice>,
) {
    while let Some(notice) = rx.recv().await {
        let mut tries = 0;
        loop {
            tries += 1;
            let why = match deliver(&client, &sink, secret.as_deref(), &notice).await {
                Ok(()) => break,
                Err(why) => why,
            };
            if tries >= retry.attempts {
                tracing::warn!(
                    sink = sink.shown(),
                    kind = notice.kind.word(),
                    tries,
                    why,
                    "notice not delivered; given up"
                );
                break;
            }
            tracing::debug!(
                sink = sink.shown(),
                tries,
                why,
                "notice not delivered; tried again"
            );
            tokio::time::sleep(Duration::from_millis(backoff_ms(&retry, tries))).await;
        }
    }
}

/// One try: `Err` says why it did not arrive (no answer, or not a 2xx).
async fn deliver(
    client: &reqwest::Client,
    sink: &Sink,
    secret: Option<&[u8]>,
    notice: &Notice,
) -> Result<(), String> {
    let req = client.post(&sink.url);
    let req = match sink.kind {
        SinkKind::Webhook => {
            let body = serde_json::to_vec(notice).expect("a notice serializes");
            let mut req = req
                .header("Content-Type", "application/json")
                .header("X-Berth-Event", notice.kind.word());
            if let Some(secret) = secret {
                req = req.header(
                    "X-Berth-Signature-256",
                    crate::core::webhook::sign(secret, &body),
                );
            }
            req.body(body)
        }
        SinkKind::Slack => req
            .header("Content-Type", "application/json")
            .body(notice.slack().to_string()),
        SinkKind::Ntfy => {
            let (title, priority, tags) = notice.ntfy();
            req.header("Title", title)
                .header("Priority", priority.to_string())
                .header("Tags", tags)
                .body(notice.text())
        }
    };
    // reqwest's error names the URL, which is the sink's secret: not said.
    let answer = req
        .send()
        .await
        .map_err(|e| format!("no answer ({})", error_kind(&e)))?;
    match answer.status().is_success() {
        true => Ok(()),
        false => Err(format!("answered {}", answer.status())),
    }
}

/// What kind of failure a try was, without the URL reqwest's words carry.
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "the request failed"
    } else {
        "the exchange failed"
    }
}
