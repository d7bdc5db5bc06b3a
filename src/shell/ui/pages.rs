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

/// What the signed-in token may do: which buttons and links a page shows.
#[derive(Debug, Clone, Default)]
pub struct Mays {
    pub deploy: bool,
    pub build: bool,
    pub logs: bool,
}

/// The bar at the top of every signed-in page.
fn top(csrf: &str, who: Option<&str>) -> Markup {
    html! {
        header {
            h1 { a href="/ui/" { "berth" } }
            nav aria-label="Views" {
                a href="/ui/" { "Overview" }
                a href="/ui/plan" { "What would change" }
            }
            span #live-state.live-state role="status" {}
            @if let Some(who) = who { span.who { "signed in as " strong { (who) } } }
            form method="post" action="/ui/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        }
    }
}

pub fn overview(
    doc: &StatusDocument,
    who: &str,
    csrf: &str,
    may: &Mays,
    said: Option<(&str, &Result<String, String>)>,
) -> Markup {
    page(
        "Overview",
        Some(csrf),
        html! {
            (top(csrf, Some(who)))
            main {
                @if let Some((label, said)) = said {
                    @match said {
                        Ok(s) => p.result.ok role="status" { (label) ": " (s) },
                        Err(e) => p.result.error role="alert" { (label) " failed: " pre { (e) } },
                    }
                }
                div.actions {
                    @if may.deploy {
                        form method="post" action="/ui/reconcile" data-confirm="Reconcile the engine to the file now?" {
                            input type="hidden" name="csrf" value=(csrf);
                            button #reconcile type="submit" { "Reconcile now" }
                        }
                    }
                    @if may.build {
                        form method="post" action="/ui/build" data-confirm="Build the file's images now?" {
                            input type="hidden" name="csrf" value=(csrf);
                            button #build type="submit" { "Build images" }
                        }
                    }
                }
                div.filters role="search" {
                    label { "Filter " input #filter-text type="search" placeholder="service, version, URL"; }
                    label { "Health " select #filter-health {
                        option value="" { "any" }
                        @for h in ["healthy", "starting", "unhealthy", "failed", "crash-looping", "unknown", "unchecked", "-"] {
                            option value=(h) { (h) }
                        }
                    } }
                    label { "Scope " input #filter-scope type="search" placeholder="global, database:…"; }
                }
                section #live aria-live="polite" { (live(doc, may)) }
            }
        },
    )
}

pub fn plan(csrf: &str, said: &Result<String, String>) -> Markup {
    page(
        "What would change",
        Some(csrf),
        html! {
            (top(csrf, None))
            main {
                h2 { "What the file would change" }
                p.hint { "The plan of the file against the engine now, as " code { "berth plan" } " prints it; nothing is done." }
                @match said {
                    Ok(text) => pre #plan { (text) },
                    Err(e) => p.error role="alert" { pre { (e) } },
                }
            }
        },
    )
}

pub fn logs(csrf: &str, target: &str, text: &Result<String, String>) -> Markup {
    page(
        &format!("Logs of {target}"),
        Some(csrf),
        html! {
            (top(csrf, None))
            main {
                h2 { "Logs of " code { (target) } }
                div.filters role="search" {
                    label { "Search " input #log-search type="search"; }
                    label { input #log-pause type="checkbox"; " pause" }
                    label { input #log-wrap type="checkbox" checked; " wrap" }
                }
                @match text {
                    Ok(t) => pre #log.wrap data-target=(target) {
                        @for line in t.lines() { span.line { (line) "\n" } }
                    },
                    Err(e) => p.error role="alert" { (e) },
                }
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
pub fn live(doc: &StatusDocument, may: &Mays) -> Markup {
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
                @for r in &doc.services { (row(r, may)) }
                @if doc.services.is_empty() { tr { td colspan="11" { "Nothing of this project runs yet." } } }
            }
        }
    }
}

fn row(r: &StatusRow, may: &Mays) -> Markup {
    html! {
        tr data-service=(r.service) data-version=(r.version) data-health=(r.health.word()) data-scope=(r.scope) {
            td { (r.service)
                @if may.logs { " " a.logs href=(format!("/ui/logs?target={}@{}", r.service, r.version)) { "logs" } } }
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
            @if let Some(e) = &doc.rollout_error { dt { "Failed rollout" } dd #rollout-error.error { pre { (e) } } }
        }
    }
}
