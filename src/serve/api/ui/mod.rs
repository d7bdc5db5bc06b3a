//! The dashboard at `/ui/`, served by the daemon's API listener: sign-in with a
//! berth token into a server-side session (the cookie holds a random session
//! ID, never the token), the overview rendered from the same `/status`
//! document, live over server-sent events, and actions gated by the token's
//! permissions and a per-session CSRF token. Assets are embedded; nothing is
//! fetched from elsewhere.

mod actions;
mod diff;
mod live;
mod pages;
mod service;

use actions::*;
use live::*;

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
use crate::core::access::{Decision, Permission, Scope};

mod sessions;

pub(super) use pages::{page, top};
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

/// One project's pages. Their links are relative, so the same pages serve
/// at `/ui/` and under `/projects/NAME/ui/`.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("ui/") }))
        .route("/ui/", get(overview))
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
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
}

/// Signing in and out, and the pages' assets: the listener's, whatever
/// projects it serves.
pub fn door<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    super::Door: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
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

/// How a refusal to a request without a viewer is answered.
#[derive(Clone, Copy)]
enum Asked {
    /// A page: sent to the sign-in form.
    Page,
    /// A form or a stream: 401 in words.
    Data,
}

/// The signed-in viewer, when their token may view this project; else the
/// way to sign in (none, or a token no longer known) or a 403 naming the
/// project (a token that may view others).
// The refusal is the handler's answer, returned as it is.
#[allow(clippy::result_large_err)]
fn viewer(s: &ApiState, headers: &HeaderMap, asked: Asked) -> Result<Viewer, Response> {
    let signed = s.sessions.get(headers);
    let decision = signed
        .as_ref()
        .map(|(token, _)| s.decide(Some(token), Permission::ServicesView));
    match (signed, decision) {
        (Some((token, csrf)), Some(Decision::Allow(name))) => Ok(Viewer { name, csrf, token }),
        (Some(_), Some(Decision::Forbidden(name))) => {
            let project = s.project.read().expect("no panics hold it").clone();
            Err((
                StatusCode::FORBIDDEN,
                format!(
                    "token `{name}` lacks services:view in project {}\n",
                    project.as_deref().unwrap_or("(not known yet)")
                ),
            )
                .into_response())
        }
        _ => Err(match asked {
            Asked::Page => Redirect::to("/ui/login").into_response(),
            Asked::Data => (StatusCode::UNAUTHORIZED, "sign in first: /ui/login\n").into_response(),
        }),
    }
}

impl Viewer {
    fn may(&self, s: &ApiState, p: Permission) -> bool {
        matches!(s.decide(Some(&self.token), p), Decision::Allow(_))
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
    let v = match viewer(&s, &headers, Asked::Page) {
        Ok(v) => v,
        Err(r) => return r,
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
async fn login(State(s): State<super::Door>, req: Request) -> Response {
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
    // A token that may view any project signs in; each project's pages
    // decide again for their own.
    match s
        .tokens
        .decide(Some(&token), Permission::ServicesView, Scope::Any)
    {
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
                            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
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
struct Named {
    name: String,
}

/// A service's own page.
async fn service_page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(n): axum::extract::Query<Named>,
) -> Response {
    let v = match viewer(&s, &headers, Asked::Page) {
        Ok(v) => v,
        Err(r) => return r,
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
