//! The dashboard at `/ui/`, served by the daemon's API listener: sign-in with a
//! berth token into a server-side session (the cookie holds a random session
//! ID, never the token), the overview rendered from the same `/status`
//! document, live over server-sent events, and actions gated by the token's
//! permissions and a per-session CSRF token. Assets are embedded; nothing is
//! fetched from elsewhere.

mod pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use subtle::ConstantTimeEq;

use super::api::{ApiState, Ask};
use crate::core::access::{Decision, Permission};

const COOKIE: &str = "berth_session";
/// A session ends this long after sign-in.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How often the live view looks for a new status document.
const LIVE_EVERY: Duration = Duration::from_millis(300);
/// How many lines the logs view starts with.
const LOG_LINES: usize = 200;

struct Session {
    /// The token signed in with, kept here only: each request is decided
    /// against the token list as `/status` decides a bearer token.
    token: String,
    /// Sent back with every action (a hidden field), so another site's form
    /// cannot act for the user.
    csrf: String,
    until: Instant,
}

/// The signed-in sessions, by session ID.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel gives random bytes");
    hex::encode(bytes)
}

impl Sessions {
    fn open(&self, token: String) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let mut all = self.0.lock().expect("no panics hold it");
        all.retain(|_, s| s.until > Instant::now());
        all.insert(
            id.clone(),
            Session {
                token,
                csrf: csrf.clone(),
                until: Instant::now() + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The session's (token, csrf) when the cookie names a live one.
    fn get(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = session_id(headers)?;
        let all = self.0.lock().expect("no panics hold it");
        let s = all.get(&id).filter(|s| s.until > Instant::now())?;
        Some((s.token.clone(), s.csrf.clone()))
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.0.lock().expect("no panics hold it").remove(&id);
        }
    }
}

/// The session ID the request's cookies carry.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        })
}

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/events", get(events))
        .route("/ui/reconcile", post(reconcile))
        .route("/ui/build", post(build))
        .route("/ui/rollback", post(rollback))
        .route("/ui/plan", get(plan))
        .route("/ui/logs", get(logs))
        .route("/ui/logs/events", get(log_events))
        .route(
            "/ui/ui.css",
            get(|| async { asset("text/css", include_str!("ui.css")) }),
        )
        .route(
            "/ui/ui.js",
            get(|| async { asset("text/javascript", include_str!("ui.js")) }),
        )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// What a signed-in user may do, decided now from the token list.
struct Viewer {
    name: String,
    csrf: String,
    token: String,
}

fn viewer(s: &ApiState, headers: &HeaderMap) -> Option<Viewer> {
    let (token, csrf) = s.sessions.get(headers)?;
    match s.tokens.decide(Some(&token), Permission::ServicesView) {
        Decision::Allow(name) => Some(Viewer { name, csrf, token }),
        _ => None,
    }
}

impl Viewer {
    fn may(&self, s: &ApiState, p: Permission) -> bool {
        matches!(s.tokens.decide(Some(&self.token), p), Decision::Allow(_))
    }
}

async fn overview(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let doc = s.status.read().expect("no panics hold it").clone();
    let may = mays(&s, &v, &headers);
    Html(pages::overview(&doc, &v.name, &v.csrf, &may, None).into_string()).into_response()
}

async fn login_form() -> Response {
    Html(pages::login(None).into_string()).into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(s): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim().to_string();
    match s.tokens.decide(Some(&token), Permission::ServicesView) {
        Decision::Allow(name) => {
            let (id, _) = s.sessions.open(token);
            tracing::info!(token = name, "dashboard sign-in");
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/ui/".to_string()),
                    (
                        header::SET_COOKIE,
                        format!(
                            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}",
                            SESSION_TTL.as_secs()
                        ),
                    ),
                ],
            )
                .into_response()
        }
        Decision::Forbidden(name) => (
            StatusCode::FORBIDDEN,
            Html(
                pages::login(Some(&format!(
                    "token `{name}` lacks services:view, which the dashboard needs"
                )))
                .into_string(),
            ),
        )
            .into_response(),
        Decision::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("this token is not known here")).into_string()),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ActionForm {
    csrf: String,
}

/// The viewer when the session holds `needed` and the form carries its CSRF
/// token; else the refusal (401, or 403 naming what is missing).
fn refuse(
    s: &ApiState,
    headers: &HeaderMap,
    form: &ActionForm,
    needed: Permission,
) -> Result<Viewer, Box<Response>> {
    let no = |status: StatusCode, why: String| Err(Box::new((status, why).into_response()));
    let Some(v) = viewer(s, headers) else {
        return no(
            StatusCode::UNAUTHORIZED,
            "sign in first: /ui/login\n".into(),
        );
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(v.csrf.as_bytes())) {
        return no(
            StatusCode::FORBIDDEN,
            "the form's CSRF token does not match this session\n".into(),
        );
    }
    if !v.may(s, needed) {
        return no(
            StatusCode::FORBIDDEN,
            format!("token `{}` lacks {}\n", v.name, needed.name()),
        );
    }
    Ok(v)
}

async fn logout(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err(r) = refuse(&s, &headers, &f, Permission::ServicesView) {
        return *r;
    }
    s.sessions.close(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/login".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

/// Hands an ask to the daemon and waits for its answer.
async fn ask(
    s: &ApiState,
    what: impl FnOnce(super::api::ReconcileReply) -> Ask,
) -> Result<String, String> {
    match super::api::hand(s, what).await {
        Some(answer) => answer.map_err(|e| e.to_string()),
        None => Err("the daemon is stopping".into()),
    }
}

/// An action from a form: checked, handed to the daemon, its result shown on
/// the overview in place.
async fn act(
    s: ApiState,
    headers: HeaderMap,
    f: ActionForm,
    needed: Permission,
    what: impl FnOnce(super::api::ReconcileReply) -> Ask,
    label: &'static str,
) -> Response {
    let v = match refuse(&s, &headers, &f, needed) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    tracing::info!(token = v.name, action = label, "dashboard action");
    let said = ask(&s, what).await;
    let doc = s.status.read().expect("no panics hold it").clone();
    let may = mays(&s, &v, &headers);
    Html(pages::overview(&doc, &v.name, &v.csrf, &may, Some((label, &said))).into_string())
        .into_response()
}

/// Reconcile now: the same ask as `POST /reconcile`.
async fn reconcile(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    act(
        s,
        headers,
        f,
        Permission::ServicesDeploy,
        Ask::Reconcile,
        "Reconcile",
    )
    .await
}

/// Build the file's images: the same ask as `POST /build`.
async fn build(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    act(s, headers, f, Permission::ImagesBuild, Ask::Build, "Build").await
}

#[derive(serde::Deserialize)]
struct RollbackForm {
    csrf: String,
    service: String,
    /// The version to make active; none: the one active before.
    #[serde(default)]
    to: Option<String>,
    /// Present: end the hold, back to what the file says.
    #[serde(default)]
    release: Option<String>,
}

/// Roll a service back to a version (or end its hold): the same hold as
/// `berth rollback`, handed to the daemon.
async fn rollback(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<RollbackForm>,
) -> Response {
    let (service, to, release) = (
        f.service,
        f.to.filter(|t| !t.is_empty()),
        f.release.is_some(),
    );
    let label = if release { "End hold" } else { "Roll back" };
    let what = move |reply| Ask::Rollback {
        service,
        to,
        release,
        reply,
    };
    act(
        s,
        headers,
        ActionForm { csrf: f.csrf },
        Permission::ServicesDeploy,
        what,
        label,
    )
    .await
}

/// What the file would change now, as `berth plan` prints it.
async fn plan(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let said = ask(&s, Ask::Plan).await;
    Html(pages::plan(&v.csrf, &said).into_string()).into_response()
}

#[derive(serde::Deserialize)]
struct Target {
    target: String,
}

/// A version's last lines (logs:view), then a live tail in the page.
async fn logs(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(t): axum::extract::Query<Target>,
) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    if !v.may(&s, Permission::LogsView) {
        return (
            StatusCode::FORBIDDEN,
            format!("token `{}` lacks logs:view\n", v.name),
        )
            .into_response();
    }
    let text = (s.logs)(t.target.clone(), LOG_LINES)
        .await
        .map(|t| crate::shell::docker::convert::strip_ansi(&t))
        .map_err(|e| e.to_string());
    Html(pages::logs(&v.csrf, &t.target, &text).into_string()).into_response()
}

/// The lines a version writes from now on, one event each, colour codes
/// stripped.
async fn log_events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(t): axum::extract::Query<Target>,
) -> Response {
    use futures_util::StreamExt;
    let Some(v) = viewer(&s, &headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first: /ui/login\n").into_response();
    };
    if !v.may(&s, Permission::LogsView) {
        return (
            StatusCode::FORBIDDEN,
            format!("token `{}` lacks logs:view\n", v.name),
        )
            .into_response();
    }
    let lines = match (s.follow)(t.target).await {
        Ok(lines) => lines,
        Err(e) => return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    };
    let events = lines.map(|chunk| {
        Ok::<_, Infallible>(Event::default().event("lines").data(
            crate::shell::docker::convert::strip_ansi(chunk.trim_end_matches('\n')),
        ))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What the viewer's token may do, for the buttons a page shows (the server
/// decides again on every action), and the host the viewer reached us by.
fn mays(s: &ApiState, v: &Viewer, headers: &HeaderMap) -> pages::Mays {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map(|a| a.host().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    pages::Mays {
        deploy: v.may(s, Permission::ServicesDeploy),
        build: v.may(s, Permission::ImagesBuild),
        logs: v.may(s, Permission::LogsView),
        host,
        csrf: v.csrf.clone(),
    }
}

#[derive(serde::Deserialize)]
struct Seen {
    /// The version of the document the page shows (`data-seen`).
    seen: Option<String>,
}

/// The overview's live part, sent again whenever the status document changes.
async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Seen>,
) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first: /ui/login\n").into_response();
    };
    let may = mays(&s, &v, &headers);
    let status = s.status.clone();
    let watching = Watching::new(s.watchers.clone());
    // The page names the document it was rendered from: no first event that
    // would render the same rows again.
    let seen = q.seen.unwrap_or_default();
    let stream = futures_util::stream::unfold(seen, move |last| {
        let (status, may) = (status.clone(), may.clone());
        let _watching = &watching;
        async move {
            loop {
                let doc = status.read().expect("no panics hold it").clone();
                let now = pages::version(&doc);
                if now != last {
                    let html = pages::live(&doc, &may).into_string();
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

/// One dashboard following the overview, counted while its stream lives.
struct Watching(std::sync::Arc<std::sync::atomic::AtomicUsize>);

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
