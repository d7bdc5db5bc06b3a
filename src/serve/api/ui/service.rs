//! The dashboard's page of one service: its versions and which is active and
//! why, health with its reason, its URLs, the reconciles that touched it,
//! what happened to it on a timeline, CPU and memory over the last hour, and
//! its actions. Its live part is sent again over the same events as the
//! overview's.

use maud::{html, Markup};

use crate::core::report::{Outcome, StatusDocument};
use crate::core::usage::{path, History, WINDOW};

use super::pages::{holds, page, row, said_line, top, Mays, Said};

fn at_text(at: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[allow(clippy::too_many_arguments)]
pub fn service(
    doc: &StatusDocument,
    who: &str,
    csrf: &str,
    may: &Mays,
    name: &str,
    usage: &History,
    now: u64,
    said: Said,
) -> Markup {
    page(
        name,
        Some(csrf),
        html! {
            (top(csrf, Some(who)))
            main {
                (said_line(said))
                nav.crumbs aria-label="Breadcrumb" { a href="./" { "Overview" } " / " }
                h2 #service-name { (name) }
                section #live aria-live="polite" data-seen=(super::pages::version(doc)) data-service=(name) {
                    (live(doc, may, name, usage, now))
                }
            }
        },
    )
}

/// The part the live view replaces.
pub fn live(doc: &StatusDocument, may: &Mays, name: &str, usage: &History, now: u64) -> Markup {
    let rows: Vec<_> = doc.services.iter().filter(|r| r.service == name).collect();
    let active = doc.actives.iter().find(|a| a.service == name);
    let mut one = doc.clone();
    one.holds.retain(|h| h.service == name);
    let touched: Vec<_> = doc
        .last_reconcile
        .iter()
        .chain(doc.recent.iter())
        .filter(|r| r.touched.iter().any(|t| t == name))
        .collect();
    let events: Vec<_> = doc.events.iter().filter(|e| e.service == name).collect();
    html! {
        @if rows.is_empty() && active.is_none() {
            p.error role="alert" { "No service `" (name) "` in this project. " a href="./" { "Back to the overview" } }
        }
        @if let Some(a) = active {
            p #active { "Active: " strong { (a.active) } " — " span #active-why { (a.why) } }
        }
        (holds(&one, may))
        table #services {
            caption { "Versions" }
            (super::pages::head(may))
            tbody { @for r in &rows { (row(doc, r, may)) } }
        }
        section #usage aria-labelledby="usage-title" {
            h3 #usage-title { "CPU and memory, last hour" }
            @if rows.iter().all(|r| usage.of(&r.container).is_empty()) {
                p.hint { "Sampled every few seconds while a dashboard is open; none yet." }
            }
            div.charts {
                @for r in &rows {
                    @let samples = usage.of(&r.container);
                    @if !samples.is_empty() {
                        (chart(&r.version, &samples, now))
                    }
                }
            }
        }
        section #reconciles aria-labelledby="reconciles-title" {
            h3 #reconciles-title { "Reconciles that touched it" }
            @if touched.is_empty() {
                p.hint { "None of the last reconciles acted on it." }
            } @else {
                table {
                    thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Trigger" } th scope="col" { "Result" } th scope="col" { "Commit" } } }
                    tbody { @for r in &touched { tr {
                        td { time { (at_text(r.at)) } }
                        td { (r.trigger.word()) }
                        td { (match r.result { Outcome::Ok => "ok", Outcome::Error => "error" }) }
                        td.commit {
                            @if let Some(rev) = &r.revision { code { (&rev[..rev.len().min(12)]) } " " }
                            @if let Some(s) = &r.subject { (s) }
                            @if r.revision.is_none() && r.subject.is_none() { "-" }
                        }
                    } } }
                }
            }
        }
        section #timeline aria-labelledby="timeline-title" {
            h3 #timeline-title { "What happened" }
            @if events.is_empty() {
                p.hint { "Nothing since this daemon started." }
            }
            ol.timeline {
                @for e in &events {
                    li data-kind=(e.kind.word()) {
                        time { (at_text(e.at)) }
                        " " span.kind { (e.kind.word()) }
                        @if let Some(v) = &e.version { " " code { (v) } }
                        " " span.what { (e.text) }
                        @if let Some(rev) = &e.revision { " " code.rev { (&rev[..rev.len().min(12)]) } }
                    }
                }
            }
        }
    }
}

/// Two small lines of one version's last hour: CPU (% of a core) and memory.
fn chart(version: &str, samples: &[crate::core::usage::Sample], now: u64) -> Markup {
    let (w, h) = (240.0, 48.0);
    let cpu: Vec<(u64, f64)> = samples.iter().map(|s| (s.at, s.cpu_percent)).collect();
    let mem: Vec<(u64, f64)> = samples
        .iter()
        .map(|s| (s.at, s.memory_bytes as f64 / (1 << 20) as f64))
        .collect();
    let top_cpu = cpu.iter().map(|p| p.1).fold(1.0, f64::max);
    let top_mem = mem.iter().map(|p| p.1).fold(1.0, f64::max);
    let last = samples.last().copied();
    html! {
        figure.chart data-version=(version) {
            figcaption {
                code { (version) } " · CPU now "
                (last.map(|s| format!("{:.1}%", s.cpu_percent)).unwrap_or_default())
                " (top " (format!("{top_cpu:.1}%")) ") · memory now "
                (last.map(|s| format!("{} MiB", s.memory_bytes >> 20)).unwrap_or_default())
                " (top " (format!("{top_mem:.0} MiB")) ")"
            }
            svg viewBox=(format!("0 0 {w} {h}")) width="100%" height="48" role="img"
                aria-label=(format!("CPU and memory of {version} over the last {} minutes, {} samples", WINDOW / 60, samples.len())) {
                path.cpu d=(path(&cpu, now, w, h, 1.0)) {}
                path.mem d=(path(&mem, now, w, h, 1.0)) {}
                // The newest sample as a dot, so one sample shows too.
                @if let Some(end) = path(mem.last().map(std::slice::from_ref).unwrap_or(&[]), now, w, h, top_mem).strip_prefix('M') {
                    @let (x, y) = end.split_once(' ').unwrap_or(("0", "0"));
                    circle.mem cx=(x) cy=(y) r="2.5" {}
                }
            }
        }
    }
}
