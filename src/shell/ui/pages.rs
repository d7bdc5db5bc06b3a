//! The dashboard's pages, rendered on the server (maud escapes every value):
//! readable without JavaScript; the script only keeps the live part current.

use maud::{html, Markup, DOCTYPE};

use crate::core::health::Health;
use crate::core::render::{ago, StatusRow};
use crate::core::report::{Outcome, SourceReport, StatusDocument};

fn page(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(c) = csrf { meta name="csrf" content=(c); }
                title { (title) " · berth" }
                link rel="stylesheet" href="/ui/ui.css";
                script src="/ui/ui.js" defer {}
            }
            body { (body) }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            main.narrow {
                h1 { "berth" }
                form method="post" action="/ui/login" {
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    button type="submit" { "Sign in" }
                }
                p.hint { "A token from " code { "berth token add NAME -p services:view" } ", or the daemon's BERTH_TOKEN." }
            }
        },
    )
}

pub fn overview(
    doc: &StatusDocument,
    who: &str,
    csrf: &str,
    may_deploy: bool,
    said: Option<&Result<String, String>>,
) -> Markup {
    page(
        "Overview",
        Some(csrf),
        html! {
            header {
                h1 { "berth" }
                span #live-state.live-state role="status" { "live view starting" }
                span.who { "signed in as " strong { (who) } }
                form method="post" action="/ui/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Sign out" }
                }
            }
            main {
                @if let Some(said) = said {
                    @match said {
                        Ok(s) => p.result.ok role="status" { "Reconcile: " (s) },
                        Err(e) => p.result.error role="alert" { "Reconcile failed: " (e) },
                    }
                }
                @if may_deploy {
                    form.actions method="post" action="/ui/reconcile" {
                        input type="hidden" name="csrf" value=(csrf);
                        button #reconcile type="submit" { "Reconcile now" }
                    }
                }
                section #live aria-live="polite" { (live(doc)) }
            }
        },
    )
}

fn health_mark(h: Health) -> &'static str {
    match h {
        Health::Healthy => "✓",
        Health::Starting => "…",
        Health::Unhealthy => "✗",
        Health::Failed => "⚠",
        Health::CrashLooping => "↻",
        Health::Unknown => "?",
        Health::Unchecked | Health::NotRunning => "–",
    }
}

/// The part the live view replaces: counts, the daemon, the services.
pub fn live(doc: &StatusDocument) -> Markup {
    let count = |h: Health| doc.services.iter().filter(|r| r.health == h).count();
    html! {
        ul.counts {
            li { strong #count-services { (doc.services.len()) } " containers" }
            li { strong #count-healthy { (count(Health::Healthy)) } " healthy" }
            li { strong { (count(Health::Starting)) } " starting" }
            li { strong { (count(Health::Unhealthy) + count(Health::Failed) + count(Health::CrashLooping)) } " failing" }
        }
        (daemon(doc))
        table #services {
            caption { "Services and versions" }
            thead { tr {
                th scope="col" { "Service" } th scope="col" { "Version" } th scope="col" { "Health" }
                th scope="col" { "State" } th scope="col" { "Up" } th scope="col" { "Restarts" }
                th scope="col" { "CPU" } th scope="col" { "Memory" } th scope="col" { "URL" }
                th scope="col" { "Scope" } th scope="col" { "Revision" }
            } }
            tbody {
                @for r in &doc.services { (row(r)) }
                @if doc.services.is_empty() { tr { td colspan="11" { "Nothing of this project runs yet." } } }
            }
        }
    }
}

fn row(r: &StatusRow) -> Markup {
    html! {
        tr data-service=(r.service) data-version=(r.version) data-health=(r.health.word()) {
            td { (r.service) }
            td { (r.version) @if r.active { " " span.badge { "active" } } }
            td.health { span aria-hidden="true" { (health_mark(r.health)) } " " (r.health.word()) }
            td { (r.tasks.clone().unwrap_or_else(|| r.state.clone())) }
            td { (r.up_secs.map(ago).unwrap_or_else(|| "-".into())) }
            td { (r.restarts) }
            td { (r.cpu_percent.map(|c| format!("{c:.1}%")).unwrap_or_else(|| "-".into())) }
            td { @match (r.memory_bytes, r.memory_limit_bytes) {
                (Some(m), Some(l)) => (format!("{} / {} MiB", m >> 20, l >> 20)),
                (Some(m), None) => (format!("{} MiB", m >> 20)),
                _ => "-",
            } }
            td { @if let Some(u) = &r.url { a href=(u) { (u) } } @else { "-" } }
            td { (r.scope) }
            td { (r.revision.as_deref().map(|v| &v[..v.len().min(12)]).unwrap_or("-")) }
        }
    }
}

fn daemon(doc: &StatusDocument) -> Markup {
    html! {
        dl.daemon {
            dt { "Source" }
            dd { @match &doc.source {
                SourceReport::File { path } => { "file " code { (path) } },
                SourceReport::Git { url, reference, path } => { "git " code { (url) } " " (reference) " " code { (path) } },
            } }
            @if let Some(rev) = &doc.revision { dt { "Revision" } dd { code { (rev) } } }
            dt { "Last reconcile" }
            dd #last-reconcile { @match &doc.last_reconcile {
                None => "not yet",
                Some(r) => {
                    (match r.result { Outcome::Ok => "ok", Outcome::Error => "error" })
                    ", by " (r.trigger.word()) ", " (format!("{:.2} s", r.duration_seconds))
                },
            } }
            @if let Some(e) = &doc.last_error { dt { "Error" } dd.error { pre { (e) } } }
            @if let Some(e) = &doc.rollout_error { dt { "Failed rollout" } dd.error { pre { (e) } } }
        }
    }
}
