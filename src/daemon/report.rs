//! The daemon's report: the typed `/status` document and the `/metrics` text,
//! kept current after every reconcile and every source error.

use std::sync::{Arc, RwLock};

use crate::core::render::StatusRow;
use crate::core::report::{
    metrics_text, Counters, GatewayReport, HoldReport, Outcome, ReconcileReport, SourceReport,
    StatusDocument, Trigger, RECENT,
};
use crate::core::timeline::ServiceEvent;
use crate::shell::git;

use super::WatchSource;

pub struct Report {
    /// Served as `GET /status`.
    pub status: Arc<RwLock<StatusDocument>>,
    /// Served as `GET /metrics`.
    pub metrics: Arc<RwLock<String>>,
    pub counters: Counters,
    /// Why the source could not be read (a failed fetch, a refused commit), until
    /// it can again. Reported beside the last reconcile, which used the last good state.
    pub source_error: Option<String>,
    /// Why the last rollout failed (a step's error: the health gate's answer and
    /// the container's last lines), until a reconcile succeeds.
    pub rollout_error: Option<String>,
    /// The commit converged to (git sources).
    pub revision: Option<String>,
    /// The rollbacks that hold a version active, as of the last reconcile.
    pub holds: Vec<HoldReport>,
    /// The gateway and its routes, as of the last reconcile.
    pub gateway: Option<GatewayReport>,
    /// What happened to the services, newest first.
    pub events: Vec<ServiceEvent>,
    /// The services the reconcile being reported acted on.
    pub touched: Vec<String>,
    /// The subject line of the commit it converged from (git).
    pub subject: Option<String>,
    /// Each service's active version and why, from the last file read.
    pub actives: Vec<crate::core::report::ActiveReport>,
    /// `watch --manual`: changes wait for an ask.
    pub manual: bool,
}

impl Report {
    pub fn new(source: &WatchSource) -> Report {
        let source = match source {
            WatchSource::File(p) => SourceReport::File {
                path: p.display().to_string(),
            },
            WatchSource::Git {
                url,
                reference,
                path,
            } => SourceReport::Git {
                url: git::redact(url),
                reference: reference.clone(),
                path: path.clone(),
            },
        };
        Report {
            status: Arc::new(RwLock::new(StatusDocument::new(source))),
            metrics: Arc::new(RwLock::new(String::new())),
            counters: Counters::default(),
            source_error: None,
            rollout_error: None,
            revision: None,
            holds: Vec::new(),
            gateway: None,
            events: Vec::new(),
            touched: Vec::new(),
            subject: None,
            actives: Vec::new(),
            manual: false,
        }
    }

    /// Writes the events alone into the `/status` document (a restart, a
    /// rollback: their reconcile was reported before them).
    pub fn publish_events(&self) {
        self.status.write().expect("no panics hold it").events = self.events.clone();
    }

    pub fn record_source_error(&mut self, e: &str) {
        self.counters.errors += 1;
        self.source_error = Some(e.to_string());
        let mut doc = self.status.write().expect("no panics hold it");
        doc.last_error = Some(e.to_string());
        doc.source_error = Some(e.to_string());
    }

    /// Writes what a look saw (`watch --manual` between asks) into the
    /// `/status` document: the rows, holds, routes and actives; the
    /// reconcile history stays as it is.
    pub fn publish_look(&self, rows: Vec<StatusRow>) {
        let mut doc = self.status.write().expect("no panics hold it");
        replace_rows(&mut doc, rows);
        doc.holds = self.holds.clone();
        doc.gateway = self.gateway.clone();
        doc.actives = self.actives.clone();
        doc.manual = self.manual;
        doc.source_error = self.source_error.clone();
    }

    /// Writes the holds alone into the `/status` document (an undone rollback:
    /// no reconcile to report).
    pub fn publish_holds(&self) {
        self.status.write().expect("no panics hold it").holds = self.holds.clone();
    }

    /// Writes the rows of some containers alone into the `/status` document,
    /// each in place of the row of the same container (a look at health, with
    /// no reconcile to report); a container that has no row is left out.
    pub fn publish_rows_of(&self, rows: Vec<StatusRow>) {
        let mut doc = self.status.write().expect("no panics hold it");
        for new in rows {
            if let Some(old) = doc
                .services
                .iter_mut()
                .find(|r| r.container == new.container)
            {
                let mut new = new;
                keep_sample(&mut new, old);
                *old = new;
            }
        }
    }

    /// Writes the `/status` document (the rows, when given, replace the last
    /// ones) and the `/metrics` text.
    pub fn publish(&self, rows: Option<Vec<StatusRow>>, trigger: Trigger, error: Option<&str>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let c = &self.counters;
        {
            let mut doc = self.status.write().expect("no panics hold it");
            if let Some(rows) = rows {
                replace_rows(&mut doc, rows);
            }
            doc.revision = self.revision.clone();
            if let Some(before) = doc.last_reconcile.take() {
                doc.recent.insert(0, before);
                doc.recent.truncate(RECENT);
            }
            doc.last_reconcile = (c.reconciles > 0).then(|| ReconcileReport {
                at: now,
                trigger,
                result: if error.is_some() {
                    Outcome::Error
                } else {
                    Outcome::Ok
                },
                error: error.map(String::from),
                duration_seconds: c.last_duration,
                revision: self.revision.clone(),
                subject: self.subject.clone(),
                touched: self.touched.clone(),
            });
            doc.events = self.events.clone();
            doc.actives = self.actives.clone();
            doc.manual = self.manual;
            doc.last_error = error.map(String::from).or(self.source_error.clone());
            doc.source_error = self.source_error.clone();
            doc.rollout_error = self.rollout_error.clone();
            doc.drift_corrections = c.drift_corrections;
            doc.holds = self.holds.clone();
            doc.gateway = self.gateway.clone();
        }
        *self.metrics.write().expect("no panics hold it") = metrics_text(c);
    }
}

/// Puts `rows` in place of the document's; the last CPU and memory sample of
/// each container stays until the next one.
fn replace_rows(doc: &mut StatusDocument, mut rows: Vec<StatusRow>) {
    let sampled: std::collections::HashMap<&str, &StatusRow> = doc
        .services
        .iter()
        .filter(|o| o.cpu_percent.is_some())
        .map(|o| (o.container.as_str(), o))
        .collect();
    for r in rows.iter_mut() {
        if let Some(old) = sampled.get(r.container.as_str()) {
            keep_sample(r, old);
        }
    }
    doc.services = rows;
}

/// A new row of a container takes its last CPU and memory sample, if it has
/// none of its own (a look samples nothing; the sampler does, every few s).
fn keep_sample(new: &mut StatusRow, old: &StatusRow) {
    if new.cpu_percent.is_none() {
        new.cpu_percent = old.cpu_percent;
        new.memory_bytes = old.memory_bytes;
        new.memory_limit_bytes = old.memory_limit_bytes;
    }
}
