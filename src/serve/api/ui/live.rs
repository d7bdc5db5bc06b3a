//! The dashboard's live parts: a version's logs (the last lines, then a
//! live tail that starts from them again) and the overview's and a service
//! page's updates as server-sent events, counted so the daemon samples only
//! while someone watches.

use super::*;

#[derive(serde::Deserialize)]
pub(super) struct Target {
    target: String,
}

/// A version's last lines (logs:view), then a live tail in the page.
pub(super) async fn logs(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(t): axum::extract::Query<Target>,
) -> Response {
    let v = match viewer(&s, &headers, Asked::Page) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.may(&s, Permission::LogsView) {
        return (
            StatusCode::FORBIDDEN,
            format!("token `{}` lacks logs:view\n", v.name),
        )
            .into_response();
    }
    let text = match (s.logs)(t.target.clone(), LOG_LINES).await {
        Ok(lines) => {
            use futures_util::StreamExt;
            let text: String = lines.collect::<Vec<_>>().await.concat();
            Ok(crate::shell::engine::docker::convert::strip_ansi(&text))
        }
        Err(e) => Err(e.to_string()),
    };
    Html(pages::logs(&v.csrf, &t.target, &text).into_string()).into_response()
}

/// A version's last lines and then each line it writes, one event each,
/// colour codes stripped, after a `reset` event.
pub(super) async fn log_events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(t): axum::extract::Query<Target>,
) -> Response {
    use futures_util::StreamExt;
    let v = match viewer(&s, &headers, Asked::Data) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.may(&s, Permission::LogsView) {
        return (
            StatusCode::FORBIDDEN,
            format!("token `{}` lacks logs:view\n", v.name),
        )
            .into_response();
    }
    // The page's own last lines were read before this stream began: it
    // starts again from the last lines, after a `reset` that clears them, so
    // a line written between the page and this stream is never lost.
    let lines = match (s.follow)(t.target, LOG_LINES).await {
        Ok(lines) => lines,
        Err(e) => return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    };
    let reset = futures_util::stream::once(async {
        Ok::<_, Infallible>(Event::default().event("reset").data(""))
    });
    let events = reset.chain(lines.map(|chunk| {
        Ok::<_, Infallible>(Event::default().event("lines").data(
            crate::shell::engine::docker::convert::strip_ansi(chunk.trim_end_matches('\n')),
        ))
    }));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct Seen {
    /// The version of the document the page shows (`data-seen`).
    seen: Option<String>,
    /// The service whose page follows (else the overview).
    service: Option<String>,
}

/// The overview's live part, sent again whenever the status document changes.
pub(super) async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Seen>,
) -> Response {
    let v = match viewer(&s, &headers, Asked::Data) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let may = mays(&s, &v, &headers);
    let logs_view = may.logs;
    let status = s.status.clone();
    let usage = s.usage.clone();
    let service_name = q.service;
    let watching = Watching::new(s.watchers.clone());
    let focused = service_name
        .as_ref()
        .map(|n| Focused::new(s.focus.clone(), n));
    // The page names the document it was rendered from: no first event that
    // would render the same rows again.
    let seen = q.seen.unwrap_or_default();
    let stream = futures_util::stream::unfold(seen, move |last| {
        let (status, may, usage) = (status.clone(), may.clone(), usage.clone());
        let service_name = service_name.clone();
        // Both live as long as the stream: moved into it.
        let (_watching, _focused) = (&watching, &focused);
        async move {
            loop {
                let doc = status.read().expect("no panics hold it").clone();
                let now = pages::version(&doc);
                let doc = match logs_view {
                    true => doc,
                    false => doc.without_excerpts(),
                };
                if now != last {
                    let html = match &service_name {
                        None => pages::live(&doc, &may).into_string(),
                        Some(name) => {
                            let usage = usage.read().expect("no panics hold it").clone();
                            service::live(&doc, &may, name, &usage, self::now()).into_string()
                        }
                    };
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("overview").data(html)),
                        now,
                    ));
                }
                tokio::time::sleep(LIVE_EVERY).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A service's page following, counted while its stream lives: the sampler
/// samples that service every round.
pub(super) struct Focused(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    String,
);

impl Focused {
    fn new(
        focus: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
        name: &str,
    ) -> Focused {
        if let Ok(mut f) = focus.lock() {
            *f.entry(name.to_string()).or_default() += 1;
        }
        Focused(focus, name.to_string())
    }
}

impl Drop for Focused {
    fn drop(&mut self) {
        if let Ok(mut f) = self.0.lock() {
            if let Some(n) = f.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    f.remove(&self.1);
                }
            }
        }
    }
}

/// One dashboard following the overview, counted while its stream lives.
pub(super) struct Watching(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Watching {
    fn new(count: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Watching {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Watching(count)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
