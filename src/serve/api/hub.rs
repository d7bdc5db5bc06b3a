//! A listener for several projects (`watch --projects`): each project's API
//! and dashboard under `/projects/NAME/`, decided with that project's
//! grants; at the root, one sign-in for all of them, `/healthz`, `/status` of
//! every project the token may view, and the dashboard's list of projects.

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::html;

use super::{ApiState, Door};
use crate::core::access::{Decision, Permission, Scope};
use crate::core::report::{Outcome, StatusDocument};

/// The projects a listener serves, in the projects file's order.
#[derive(Clone)]
pub struct Hub {
    pub door: Door,
    pub projects: Vec<(String, ApiState)>,
}

impl FromRef<Hub> for Door {
    fn from_ref(h: &Hub) -> Door {
        h.door.clone()
    }
}

/// The root's routes and every project's under `/projects/NAME`.
pub fn router(hub: Hub) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .merge(super::ui::door())
        .with_state(hub.clone());
    for (name, state) in hub.projects {
        app = app.nest(&format!("/projects/{name}"), super::project_router(state));
    }
    app.layer(tower_http::compression::CompressionLayer::new())
}

/// `ok` while every project's engine answers; else 503 naming each that
/// does not.
async fn healthz(State(h): State<Hub>) -> Response {
    let down: Vec<String> = h
        .projects
        .iter()
        .filter_map(|(name, s)| {
            let why = s.engine_down.read().expect("no panics hold it").clone()?;
            Some(format!("project {name}: engine unreachable: {why}\n"))
        })
        .collect();
    match down.is_empty() {
        true => "ok\n".into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, down.concat()).into_response(),
    }
}

/// Each project the token may view, with its status document (excerpts of
/// container output where it may read logs).
fn visible(h: &Hub, token: Option<&str>) -> Vec<(String, StatusDocument)> {
    h.projects
        .iter()
        .filter(|(_, s)| {
            matches!(
                s.decide(token, Permission::ServicesView),
                Decision::Allow(_)
            )
        })
        .map(|(name, s)| {
            let doc = s.status.read().expect("no panics hold it").clone();
            let doc = match s.decide(token, Permission::LogsView) {
                Decision::Allow(_) => doc,
                _ => doc.without_excerpts(),
            };
            (name.clone(), doc)
        })
        .collect()
}

#[derive(serde::Serialize)]
struct Listed {
    project: String,
    status: StatusDocument,
}

/// `{"projects": [{"project", "status"}]}` for the projects the token may
/// view; 401 without a known token, 403 for one that may view none.
async fn status(State(h): State<Hub>, headers: HeaderMap) -> Response {
    let token = crate::serve::forward::presented(&headers);
    let needed = Permission::ServicesView;
    let decision = h.door.tokens.decide(token.as_deref(), needed, Scope::Any);
    if let Some(r) = super::refusal(decision, needed, None) {
        return r;
    }
    let projects: Vec<Listed> = visible(&h, token.as_deref())
        .into_iter()
        .map(|(project, status)| Listed { project, status })
        .collect();
    axum::Json(serde_json::json!({ "projects": projects })).into_response()
}

/// The dashboard's first page: the projects the signed-in token may view,
/// each with how its services fare and its last reconcile.
async fn index(State(h): State<Hub>, headers: HeaderMap) -> Response {
    let Some((token, csrf)) = h.door.sessions.get(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let Decision::Allow(who) =
        h.door
            .tokens
            .decide(Some(&token), Permission::ServicesView, Scope::Any)
    else {
        return Redirect::to("/ui/login").into_response();
    };
    let projects = visible(&h, Some(&token));
    let body = html! {
        (super::ui::top(&csrf, Some(&who)))
        main {
            h2 { "Projects" }
            table.projects {
                thead { tr { th { "Project" } th { "Services" } th { "Failing" } th { "Last reconcile" } } }
                tbody {
                    @for (name, doc) in &projects {
                        @let failing = doc.services.iter().filter(|r| r.state != "running" && r.state != "exited").count();
                        tr data-project=(name) {
                            td { a href=(format!("/projects/{name}/ui/")) { (name) } }
                            td { (doc.services.len()) }
                            td { (failing) }
                            td {
                                @match (&doc.last_error, &doc.last_reconcile) {
                                    (Some(e), _) => span.error { (e.lines().next().unwrap_or("")) },
                                    (None, Some(r)) => span { (match r.result { Outcome::Ok => "ok", Outcome::Error => "error" }) " · " (format!("{:?}", r.trigger).to_lowercase()) },
                                    (None, None) => span { "not yet" },
                                }
                            }
                        }
                    }
                }
            }
            @if projects.is_empty() { p.hint { "This token may view none of the projects here." } }
        }
    };
    Html(super::ui::page("Projects", Some(&csrf), body).into_string()).into_response()
}
