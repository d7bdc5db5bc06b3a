//! What a signed-in user asks of the dashboard: sign-out, reconcile,
//! build, roll back, apply exactly the plan shown, restart a version. Every
//! action is a form checked for its session, CSRF token and permission
//! before its body is read, then the API's own ask.

use super::*;

#[derive(serde::Deserialize)]
pub(super) struct ActionForm {
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
pub(super) async fn checked<T: serde::de::DeserializeOwned + Csrf>(
    s: &ApiState,
    req: Request,
    needed: Permission,
) -> Result<(Viewer, T, HeaderMap), Response> {
    let no = |status: StatusCode, why: String| Err((status, why).into_response());
    let headers = req.headers().clone();
    let v = viewer(s, &headers, Asked::Data)?;
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

/// Sign-out: the session's own form (its CSRF token), whatever the token
/// may do.
pub(super) async fn logout(State(s): State<super::super::Door>, req: Request) -> Response {
    let headers = req.headers().clone();
    let Some((_, csrf)) = s.sessions.get(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first: /ui/login\n").into_response();
    };
    let f: ActionForm = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !bool::from(f.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            "the form's CSRF token does not match this session\n",
        )
            .into_response();
    }
    s.sessions.close(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/login".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

/// Hands an ask to the daemon and waits for its answer.
pub(super) async fn ask(
    s: &ApiState,
    what: impl FnOnce(crate::serve::api::ReconcileReply) -> Ask,
) -> Result<String, String> {
    match crate::serve::api::hand(s, what).await {
        Some(answer) => answer.map_err(|e| e.to_string()),
        None => Err("the daemon is stopping".into()),
    }
}

/// An action from a form: checked, handed to the daemon (what to ask is made
/// from the form), its result shown on the overview in place.
pub(super) async fn act<T: serde::de::DeserializeOwned + Csrf>(
    s: ApiState,
    req: Request,
    needed: Permission,
    what: impl FnOnce(
        T,
    ) -> (
        Box<dyn FnOnce(crate::serve::api::ReconcileReply) -> Ask + Send>,
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
pub(super) async fn reconcile(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ServicesDeploy, |_: ActionForm| {
        (Box::new(Ask::Reconcile), "Reconcile")
    })
    .await
}

/// Build the file's images: the same ask as `POST /build`.
pub(super) async fn build(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ImagesBuild, |_: ActionForm| {
        (Box::new(Ask::Build), "Build")
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct RollbackForm {
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
pub(super) async fn rollback(State(s): State<ApiState>, req: Request) -> Response {
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
pub(super) async fn plan(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let v = match viewer(&s, &headers, Asked::Page) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let said = ask(&s, Ask::Plan).await.and_then(|json| {
        serde_json::from_str::<crate::core::plan::Plan>(&json).map_err(|e| e.to_string())
    });
    let may = mays(&s, &v, &headers);
    Html(diff::plan(&v.csrf, &may, &said).into_string()).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct ApplyForm {
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
pub(super) async fn apply(State(s): State<ApiState>, req: Request) -> Response {
    act(s, req, Permission::ServicesDeploy, |f: ApplyForm| {
        let digest = f.digest;
        let what = move |reply| Ask::Apply { digest, reply };
        (Box::new(what), "Apply")
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct RestartForm {
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
pub(super) async fn restart(State(s): State<ApiState>, req: Request) -> Response {
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
