//! The dashboard's pages, rendered on the server (maud escapes every value):
//! readable without JavaScript; the script only keeps the live part current.

use maud::{html, Markup, DOCTYPE};

use crate::core::health::Health;
use crate::core::render::{ago, StatusRow};
use crate::core::report::{Outcome, ReconcileReport, SourceReport, StatusDocument};

pub(in crate::serve::api) fn page(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
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

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            main.narrow {
                h1 { "berth" }
                form method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(csrf);
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
    /// The host the viewer reached the daemon by: gateway links use it when
    /// the gateway listens on every address.
    pub host: String,
    /// The session's CSRF token, for the forms in the live part.
    pub csrf: String,
}

/// The bar at the top of every signed-in page.
pub(in crate::serve::api) fn top(csrf: &str, who: Option<&str>) -> Markup {
    html! {
        header {
            h1 { a href="/ui/" { "berth" } }
            nav aria-label="Views" {
                a href="./" { "Overview" }
                a href="plan" { "What would change" }
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

/// An action's outcome, shown on the page it returns to: its label, and what
/// the daemon answered.
pub type Said<'a> = Option<(&'a str, &'a Result<String, String>)>;

/// An action's outcome as one line; an error collapsible below its first line.
pub(super) fn said_line(said: Said) -> Markup {
    html! {
        @if let Some((label, said)) = said {
            @match said {
                Ok(s) => p #said.result.ok role="status" { (label) ": " (s) },
                Err(e) => div #said.result.error role="alert" { (label) " failed: " (collapsed(e)) },
            }
        }
    }
}

/// A long error (an apply's, with a health gate's log lines and help) as its
/// first line and the line of each failed step (`  project/service@version:
/// why`), the rest behind a disclosure.
pub(super) fn collapsed(text: &str) -> Markup {
    let step = |l: &str| {
        l.starts_with("  ")
            && !l.starts_with("   ")
            && l.trim_start()
                .split_once(": ")
                .is_some_and(|(s, _)| s.contains('/') && s.contains('@') && !s.contains(' '))
    };
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let (shown, rest): (Vec<&str>, Vec<&str>) = lines.partition(|l| step(l));
    let rest = rest.join("\n");
    html! {
        span.first { (first) }
        @for l in &shown { span.step-error { (l.trim_start()) } }
        @if !rest.trim().is_empty() {
            details.collapsed { summary { "More: its log lines and how to fix it" } pre { (rest) } }
        }
    }
}

pub fn overview(doc: &StatusDocument, who: &str, csrf: &str, may: &Mays, said: Said) -> Markup {
    page(
        "Overview",
        Some(csrf),
        html! {
            (top(csrf, Some(who)))
            main {
                // An action's error that is the document's own is said there.
                @match said {
                    Some((label, Err(e))) if doc.last_error.as_ref() == Some(e) => {
                        p #said.result.error role="alert" { (label) " failed: " a href="#last-reconcile" { "why, below" } }
                    }
                    _ => (said_line(said)),
                }
                @if doc.manual {
                    p #manual.hint { "Manual sync: a change of the file or the engine waits until someone applies it, from " a href="plan" { "What would change" } "." }
                }
                div.actions {
                    @if may.deploy {
                        form method="post" action="reconcile" data-confirm="Reconcile the engine to the file now?" {
                            input type="hidden" name="csrf" value=(csrf);
                            button #reconcile type="submit" { "Reconcile now" }
                        }
                    }
                    @if may.build {
                        form method="post" action="build" data-confirm="Build the file's images now?" {
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
                section #live aria-live="polite" data-seen=(version(doc)) { (live(doc, may)) }
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

/// A short name for a status document's content: the live view sends the
/// rows again only when it changes.
pub fn version(doc: &StatusDocument) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(doc).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn health_mark(h: Health) -> &'static str {
    match h {
        Health::Healthy => "✓",
        Health::Starting => "…",
        Health::Unhealthy => "✗",
        Health::Failed => "⚠",
        Health::CrashLooping => "↻",
        Health::Unknown => "?",
        Health::Completed => "✓",
        Health::Running => "…",
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
        (holds(doc, may))
        table #services {
            caption { "Services and versions" }
            (head(may))
            tbody {
                @for r in &doc.services { (row(doc, r, may)) }
                @if doc.services.is_empty() { tr { td colspan="14" { "Nothing of this project runs yet." } } }
            }
        }
    }
}

/// The versions table's head; on a narrow screen each row is a card and
/// each cell says its column itself (`data-label`).
pub(super) fn head(may: &Mays) -> Markup {
    html! {
        thead { tr {
            @for c in COLUMNS { th scope="col" { (c) } }
            @if may.deploy { th scope="col" { span.sr { "Actions" } } }
        } }
    }
}

const COLUMNS: [&str; 12] = [
    "Service",
    "Version",
    "Health",
    "State",
    "Up",
    "Restarts",
    "CPU",
    "Memory",
    "URL",
    "Scope",
    "Revision",
    "GPU · assets",
];

/// The version's URL through the gateway, when the gateway routes to it.
fn gateway_url(doc: &StatusDocument, r: &StatusRow, may: &Mays) -> Option<String> {
    let g = doc.gateway.as_ref()?;
    let path = g.path_of(&r.service, &r.version)?;
    let addr: std::net::SocketAddr = g.address.parse().ok()?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() => may.host.clone(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Some(format!("http://{host}:{}{path}/", addr.port()))
}

fn health_cell(r: &StatusRow) -> Markup {
    let reason = r.health_reason.as_deref().unwrap_or("");
    let bad = matches!(
        r.health,
        Health::Unhealthy | Health::Failed | Health::CrashLooping
    );
    html! {
        td.health title=(reason) {
            @if let Some(run) = &r.run {
                // A job's run: how it ended, and the last lines of its log.
                details { summary { span aria-hidden="true" { (health_mark(r.health)) } " " (r.health.word()) " · " (run.describe()) }
                    span.reason { (reason) }
                    @if !run.log_tail.is_empty() { pre.log-tail { (run.log_tail.join("\n")) } } }
            } @else if bad && !reason.is_empty() {
                details { summary { span aria-hidden="true" { (health_mark(r.health)) } " " (r.health.word()) } span.reason { (reason) } }
            } @else {
                span aria-hidden="true" { (health_mark(r.health)) } " " (r.health.word())
            }
        }
    }
}

pub(super) fn row(doc: &StatusDocument, r: &StatusRow, may: &Mays) -> Markup {
    let gateway = gateway_url(doc, r, may);
    let target = format!("{}@{}", r.service, r.version);
    html! {
        tr data-service=(r.service) data-version=(r.version) data-health=(r.health.word()) data-scope=(r.scope) {
            td { a.service href=(format!("service?name={}", r.service)) { (r.service) }
                @if may.logs { " " a.logs href=(format!("logs?target={target}")) { "logs" } } }
            td { (r.version) @if r.active { " " span.badge { "active" } } }
            (health_cell(r))
            td { (r.tasks.clone().unwrap_or_else(|| r.state.clone())) }
            td { (r.up_secs.map(ago).unwrap_or_else(|| "-".into())) }
            td { (r.restarts) }
            td { (r.cpu_percent.map(|c| format!("{c:.1}%")).unwrap_or_else(|| "-".into())) }
            td { @match (r.memory_bytes, r.memory_limit_bytes) {
                (Some(m), Some(l)) => (format!("{} / {} MiB", m >> 20, l >> 20)),
                (Some(m), None) => (format!("{} MiB", m >> 20)),
                _ => "-",
            } }
            td.urls {
                @if let Some(g) = &gateway { a.gateway href=(g) { (g) } br; }
                @if let Some(u) = &r.url { a.direct href=(u) title="direct, bypassing the gateway" { (u) } }
                @if gateway.is_none() && r.url.is_none() { "-" }
            }
            td { (r.scope) }
            td { (r.revision.as_deref().map(|v| &v[..v.len().min(12)]).unwrap_or("-")) }
            td title=(r.assets.join("\n")) {
                (r.gpu.as_deref().map(|g| &g[..g.len().min(12)]).unwrap_or("-"))
                @if !r.assets.is_empty() { " · " (r.assets.len()) " asset(s)" }
            }
            @if may.deploy {
                td { div.acts {
                    @if !r.active && r.health == Health::Healthy {
                        form method="post" action="rollback" data-confirm=(format!("Make {target} the active version of {}? It holds until the file's active changes.", r.service)) {
                            input type="hidden" name="csrf" value=(may.csrf);
                            input type="hidden" name="service" value=(r.service);
                            input type="hidden" name="to" value=(r.version);
                            button.rollback type="submit" { "Make active" }
                        }
                    }
                    @if r.state == "running" {
                        form method="post" action="restart" data-confirm=(format!("Restart {target}? Its container stops and starts again.")) {
                            input type="hidden" name="csrf" value=(may.csrf);
                            input type="hidden" name="target" value=(target);
                            button.restart type="submit" aria-label=(format!("Restart {target}")) { "Restart" }
                        }
                    }
                } }
            }
        }
    }
}

/// The rollbacks holding a version active, and how each ends.
pub(super) fn holds(doc: &StatusDocument, may: &Mays) -> Markup {
    html! {
        @if !doc.holds.is_empty() {
            section #holds aria-labelledby="holds-title" {
                h2 #holds-title { "Rollback holds" }
                ul { @for h in &doc.holds {
                    li data-service=(h.service) {
                        code { (h.service) } " runs " strong { (h.version) } " while the file says "
                        code { "active: \"" (h.file_active) "\"" } ". The hold ends when the file's "
                        code { "active" } " changes (set it to " code { (h.version) } " to keep it), or with "
                        code { "berth rollback " (h.service) " --release" } "."
                        @if may.deploy {
                            form.inline method="post" action="rollback" data-confirm=(format!("End the hold: make {} run {} again, as the file says?", h.service, h.file_active)) {
                                input type="hidden" name="csrf" value=(may.csrf);
                                input type="hidden" name="service" value=(h.service);
                                input type="hidden" name="release" value="1";
                                button.release type="submit" { "End hold" }
                            }
                        }
                    }
                } }
            }
        }
    }
}

fn reconcile_line(r: &ReconcileReport) -> Markup {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.at);
    html! {
        tr {
            td { time datetime=(humantime::format_rfc3339_seconds(at).to_string()) { (humantime::format_rfc3339_seconds(at).to_string()) } }
            td { (r.trigger.word()) }
            td { (match r.result { Outcome::Ok => "ok", Outcome::Error => "error" }) }
            td { (format!("{:.2} s", r.duration_seconds)) }
            td.error { @if let Some(e) = &r.error { (e.lines().next().unwrap_or("")) } }
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
            dt { "Drift corrections" }
            dd #drift { (doc.drift_corrections) " step(s) since start" }
            // A failed rollout is the last error too: said once, its first
            // line shown and the health gate's report behind it.
            @if let Some(e) = &doc.rollout_error { dt { "Failed rollout" } dd #rollout-error.error { (collapsed(e)) } }
            @if let Some(e) = doc.last_error.as_ref().filter(|e| Some(*e) != doc.rollout_error.as_ref()) {
                dt { "Error" } dd #last-error.error { (collapsed(e)) }
            }
        }
        @if let Some(last) = &doc.last_reconcile {
            details.recent {
                summary { "Last reconciles" }
                table {
                    thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Trigger" } th scope="col" { "Result" } th scope="col" { "Took" } th scope="col" { "Error" } } }
                    tbody { (reconcile_line(last)) @for r in &doc.recent { (reconcile_line(r)) } }
                }
            }
        }
    }
}
