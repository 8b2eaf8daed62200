//! The jobs dashboard at `/jobs`, for root administrators only (session cookie or Bearer token),
//! in the app's own layout (header, navigation, sign-out, themes), with its action forms
//! protected by the session's CSRF token and live updates through the notification hub: every
//! process publishes `JobsChanged` to the root administrators' group when it changed jobs
//! ([`publish_job_changes`]), through the Redis backplane when there is one, so the dashboard
//! moves on every node whichever node ran the job.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::PreEscaped;
use signalr::{HubLifetimeManager, SerializedMessage};
use signalr_protocol::message::{HubMessage, InvocationMessage};
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;
use crate::auth::extract::{Credentials, credentials};
use crate::auth::session::{AUTH_COOKIE, cookie, secrets_equal};
use crate::notifications::hub::HUB_PATH;
use crate::notifications::publisher::ROOT_GROUP;
use crate::state::AppState;
use crate::web::assets::SIGNALR_PATH;

/// The hub method the dashboard listens to.
pub const JOBS_CHANGED: &str = "JobsChanged";

/// At most one `JobsChanged` per this interval and process (changes in between are coalesced).
const COALESCE: Duration = Duration::from_millis(250);

struct SessionCsrf {
    state: AppState,
}

impl jobs::dashboard::CsrfGuard for SessionCsrf {
    fn token(&self, headers: &HeaderMap) -> String {
        cookie(headers, AUTH_COOKIE).and_then(|t| self.state.jwt.validate(&t).ok()).and_then(|i| i.csrf).unwrap_or_default()
    }

    fn verify(&self, headers: &HeaderMap, token: &str) -> bool {
        let expected = self.token(headers);
        !expected.is_empty() && secrets_equal(&expected, token)
    }
}

/// The app's page layout around the dashboard; the identity comes from [`require_root`].
struct AppLayout {
    /// Whether this node serves the web pages (else the header has no link to them).
    web: bool,
}

impl jobs::dashboard::DashboardLayout for AppLayout {
    fn render(&self, _headers: &HeaderMap, extensions: &Extensions, page: jobs::dashboard::LayoutPage<'_>) -> String {
        let title = page.title.strip_suffix(" · Jobs").unwrap_or(page.title);
        // Trusted: the parts are markup the dashboard's templates rendered (values escaped there).
        let (head, body, scripts) = (PreEscaped(page.head), PreEscaped(page.body), PreEscaped(page.scripts));
        crate::web::html::page_on(&format!("{title} · Jobs"), extensions.get::<Identity>(), head, body, scripts, self.web)
    }
}

/// The dashboard router behind the root-role check.
pub fn guarded(state: AppState) -> Router<AppState> {
    let options = jobs::dashboard::DashboardOptions {
        csrf: Some(Arc::new(SessionCsrf { state: state.clone() })),
        layout: Some(Arc::new(AppLayout { web: state.role.serves_web() })),
        live: Some(jobs::dashboard::LiveOptions {
            hub_url: HUB_PATH.to_owned(),
            event: JOBS_CHANGED.to_owned(),
            scripts: vec![SIGNALR_PATH.to_owned()],
        }),
        base_path: Some("/jobs".to_owned()),
        // A tenant's jobs link back to its row on the tenants page, which only web nodes serve.
        key_links: if state.role.serves_web() {
            vec![jobs::dashboard::KeyLink { prefix: "tenant:".to_owned(), label: "Tenant".to_owned(), href: "/tenants?id={}".to_owned() }]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let dashboard = jobs::dashboard::router_with(state.jobs.clone(), options);
    Router::new().fallback_service(dashboard).layer(axum::middleware::from_fn_with_state(state, require_root))
}

async fn require_root(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let verdict = credentials(&parts, &state).await;
    let mut request = Request::from_parts(parts, body);
    match verdict {
        Credentials::Valid(identity, _) if identity.is_root_admin() => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Credentials::Valid(..) => (StatusCode::FORBIDDEN, "The jobs dashboard requires the root role.").into_response(),
        Credentials::Refused(crate::auth::jwt::TokenError::Unavailable) => {
            (StatusCode::SERVICE_UNAVAILABLE, "The session cannot be checked now; try again shortly.").into_response()
        }
        _ => {
            let path = request
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .and_then(|u| u.0.path_and_query().map(|p| p.as_str().to_string()))
                .unwrap_or_else(|| "/jobs".to_string());
            let target = format!("/login?returnUrl={}", crate::web::html::url_encode(&path));
            Redirect::to(&target).into_response()
        }
    }
}

/// Sends `JobsChanged` (no arguments) to the root administrators' hub group whenever this
/// process changed jobs, at most once per 250 ms, until `shutdown`.
pub async fn publish_job_changes(store: jobs::JobStore, lifetime: Arc<dyn HubLifetimeManager>, shutdown: CancellationToken) {
    let mut changes = store.subscribe_changes();
    let message = Arc::new(SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
        headers: Default::default(),
        invocation_id: None,
        target: JOBS_CHANGED.to_owned(),
        arguments: Vec::new(),
        stream_ids: Vec::new(),
    })));
    loop {
        tokio::select! {
            r = changes.recv() => match r {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.cancelled() => return,
        }
        // Coalesce a burst into one signal: the dashboards re-read the storage anyway.
        tokio::select! {
            _ = tokio::time::sleep(COALESCE) => {}
            _ = shutdown.cancelled() => return,
        }
        while changes.try_recv().is_ok() {}
        if let Err(e) = lifetime.send_group(ROOT_GROUP, message.clone()).await {
            tracing::debug!(error = %e, "JobsChanged not sent");
        }
    }
}
