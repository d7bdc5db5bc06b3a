//! The dashboard at `/ui/`, served by the daemon's API listener: sign-in with a
//! berth token into a server-side session (the cookie holds a random session
//! ID, never the token), the overview rendered from the same `/status`
//! document, live over server-sent events, and actions gated by the token's
//! permissions and a per-session CSRF token. Assets are embedded; nothing is
//! fetched from elsewhere.

mod diff;
mod pages;
mod service;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use subtle::ConstantTimeEq;

use super::{ApiState, Ask};
use crate::core::access::{Decision, Permission};

mod sessions;

pub use sessions::Sessions;
use sessions::SESSION_TTL;

const COOKIE: &str = crate::core::credential::SESSION_COOKIE;
/// The sign-in form's own CSRF cookie (double submit: the form's hidden field
/// must match it), so no other page can sign a browser in.
const LOGIN_COOKIE: &str = "berth_login";
/// How long the live view waits before it looks for a new status document.
const LIVE_EVERY: Duration = Duration::from_millis(300);
/// How many lines the logs view starts with.
const LOG_LINES: usize = 200;
/// The largest form the dashboard reads (its forms are a token and a few names).
const FORM_LIMIT: usize = 16 * 1024;

/// A form's body, read only once the caller has been checked: a stranger's
/// request never gets its body read, and a big one is a 413.
async fn form<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, Response> {
    use axum::extract::FromRequest;
    match Form::<T>::from_request(req, &()).await {
        Ok(Form(f)) => Ok(f),
        Err(e) => Err(e.into_response()),
    }
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
        .route("/ui/apply", post(apply))
        .route("/ui/restart", post(restart))
        .route("/ui/service", get(service_page))
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
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
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

    /// The status document as this viewer may read it: excerpts of container
    /// output only with logs:view.
    fn document(&self, s: &ApiState) -> crate::core::report::StatusDocument {
        let doc = s.status.read().expect("no panics hold it").clone();
        match self.may(s, Permission::LogsView) {
            true => doc,
            false => doc.without_excerpts(),
        }
    }
}

async fn overview(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let doc = v.document(&s);
    let may = mays(&s, &v, &headers);
    Html(pages::overview(&doc, &v.name, &v.csrf, &may, None).into_string()).into_response()
}

/// The sign-in form, with a fresh CSRF value in its hidden field and cookie.
async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let csrf = sessions::random_hex();
    (
        status,
        [(
            header::SET_COOKIE,
            format!("{LOGIN_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/ui/login"),
        )],
        Html(pages::login(&csrf, error).into_string()),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// Whether a request comes from this dashboard's own pages: an `Origin` (or,
/// without one, `Sec-Fetch-Site`) that names another site is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
        return host.is_some_and(|h| h.eq_ignore_ascii_case(authority));
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none")
}

/// The sign-in form's CSRF cookie.
fn login_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(LOGIN_COOKIE)
                .and_then(|r| r.strip_prefix('='))
                .map(String::from)
        })
}

/// Sign-in: limited per client address, refused from another site and without
/// the form's CSRF value, all before the body is read.
async fn login(State(s): State<ApiState>, req: Request) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    if let Err(wait) = s.sessions.attempt(client) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            format!(
                "too many sign-ins from {client}: at most {} a minute; try again in {} s\n",
                sessions::SIGN_INS,
                wait.as_secs().max(1)
            ),
        )
            .into_response();
    }
    if !same_origin(req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "a sign-in must come from the dashboard's own page\n",
        )
            .into_response();
    }
    let cookie = login_cookie(req.headers());
    let f: LoginForm = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let matches = cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(f.csrf.as_bytes())));
    if !matches || f.csrf.is_empty() {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("this sign-in form has expired or came from elsewhere: sign in again"),
        );
    }
    let token = crate::core::credential::from_form(&f.token);
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
        Decision::Forbidden(name) => login_page(
            StatusCode::FORBIDDEN,
            Some(&format!(
                "token `{name}` lacks services:view, which the dashboard needs"
            )),
        ),
        Decision::Unauthenticated => login_page(
            StatusCode::UNAUTHORIZED,
            Some("this token is not known here"),
        ),
    }
}

/// What every action's form carries: the session's CSRF token.
trait Csrf {
    fn csrf(&self) -> &str;
}

#[derive(serde::Deserialize)]
struct ActionForm {
    csrf: String,
}

impl Csrf for ActionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The viewer, their form and the request's headers when the session holds
/// `needed` and the form carries its CSRF token; else the refusal (401, or
/// 403 naming what is missing). The session is checked before the body is
/// read: a stranger's form is never read at all.
// The refusal is the handler's answer, returned as it is (axum's `Response`
// is large by nature; boxing it would only be unboxed again).
#[allow(clippy::result_large_err)]
async fn checked<T: serde::de::DeserializeOwned + Csrf>(
    s: &ApiState,
    req: Request,
    needed: Permission,
) -> Result<(Viewer, T, HeaderMap), Response> {
    let no = |status: StatusCode, why: String| Err((status, why).into_response());
    let headers = req.headers().clone();
    let Some(v) = viewer(s, &headers) else {
        return no(
            StatusCode::UNAUTHORIZED,
            "sign in first: /ui/login\n".into(),
        );
    };
    let f: T = form(req).await?;
    if !bool::from(f.csrf().as_bytes().ct_eq(v.csrf.as_bytes())) {
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
    Ok((v, f, headers))
}

async fn logout(State(s): State<ApiState>, req: Request) -> Response {
    let headers = match checked::<ActionForm>(&s, req, Permission::ServicesView).await {
        Ok((_, _, headers)) => headers,
        Err(r) => return r,
    };
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
    what: impl FnOnce(super::ReconcileReply) -> Ask,
) -> Result<String, String> {
    match super::hand(s, what).await {
        Some(answer) => answer.map_err(|e| e.to_string()),
        None => Err("the daemon is stopping".into()),
    }
}

/// An action from a form: checked, handed to the daemon (what to ask is made
/// from the form), its result shown on the overview in place.
async fn act<T: serde::de::DeserializeOwned + Csrf>(
    s: ApiState,
    req: Request,
    needed: Permission,
    what: impl FnOnce(
        T,
    ) -> (
        Box<dyn FnOnce(super::ReconcileReply) -> Ask + Send>,
        &'static str,
    ),
) -> Response {
    let (v, f, headers) = match checked::<T>(&s, req, needed).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (what, label) = what(f);
    tracing::info!(token = v.name, action = label, "dashboard action");
    let said = ask(&s, what).await;
    let doc = v.document(&s);
    let may = mays(&s, &v, &headers);
    Html(pages::overview(&doc, &v.name, &v.csrf, &may, Some((label, &said))).into_string())
        .into_response()
}

/// Reconcile now: the same ask as `POST /reconcile`.
async fn reconcile(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ServicesDeploy, |_: ActionForm| {
        (Box::new(Ask::Reconcile), "Reconcile")
    })
    .await
}

/// Build the file's images: the same ask as `POST /build`.
async fn build(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ImagesBuild, |_: ActionForm| {
        (Box::new(Ask::Build), "Build")
    })
    .await
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

impl Csrf for RollbackForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Roll a service back to a version (or end its hold): the same hold as
/// `berth rollback`, handed to the daemon.
async fn rollback(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ServicesDeploy, |f: RollbackForm| {
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
        (Box::new(what), label)
    })
    .await
}

/// What the file would change now, as `berth plan` computes it, field by
/// field, with "Apply" for that plan.
async fn plan(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let said = ask(&s, Ask::Plan).await.and_then(|json| {
        serde_json::from_str::<crate::core::plan::Plan>(&json).map_err(|e| e.to_string())
    });
    let may = mays(&s, &v, &headers);
    Html(diff::plan(&v.csrf, &may, &said).into_string()).into_response()
}

#[derive(serde::Deserialize)]
struct ApplyForm {
    csrf: String,
    /// The digest of the plan the page showed.
    digest: String,
}

impl Csrf for ApplyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// "Apply" on the plan page: a reconcile that carries out the plan shown, or
/// nothing when it is no longer the plan.
async fn apply(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ServicesDeploy, |f: ApplyForm| {
        let digest = f.digest;
        let what = move |reply| Ask::Apply { digest, reply };
        (Box::new(what), "Apply")
    })
    .await
}

#[derive(serde::Deserialize)]
struct RestartForm {
    csrf: String,
    /// `SERVICE@VERSION`.
    target: String,
}

impl Csrf for RestartForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// "Restart" of one version: its container stopped and started again.
async fn restart(State(s): State<ApiState>, req: Request) -> Response {
    let (v, f, headers) = match checked::<RestartForm>(&s, req, Permission::ServicesDeploy).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    tracing::info!(
        token = v.name,
        action = "Restart",
        target = f.target,
        "dashboard action"
    );
    let (target, who) = (f.target.clone(), v.name.clone());
    let said = ask(&s, move |reply| Ask::Restart { target, who, reply }).await;
    let service = f.target.split('@').next().unwrap_or("").to_string();
    service_response(&s, &v, &headers, &service, Some(("Restart", &said)))
}

#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

/// A service's own page.
async fn service_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(n): axum::extract::Query<Named>,
) -> Response {
    let Some(v) = viewer(&s, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    service_response(&s, &v, &headers, &n.name, None)
}

fn service_response(
    s: &ApiState,
    v: &Viewer,
    headers: &HeaderMap,
    name: &str,
    said: pages::Said,
) -> Response {
    let doc = v.document(s);
    let may = mays(s, v, headers);
    let usage = s.usage.read().expect("no panics hold it").clone();
    let page = service::service(&doc, &v.name, &v.csrf, &may, name, &usage, now(), said);
    Html(page.into_string()).into_response()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    /// The service whose page follows (else the overview).
    service: Option<String>,
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
struct Focused(
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
