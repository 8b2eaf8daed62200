//! The jobs dashboard at `/jobs`, for root administrators only (session cookie or Bearer token),
//! with its action forms protected by the session's CSRF token.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::extract::{Credentials, credentials};
use crate::auth::session::{AUTH_COOKIE, cookie, secrets_equal};
use crate::state::AppState;

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

/// The dashboard router behind the root-role check.
pub fn guarded(state: AppState) -> Router<AppState> {
    let options =
        jobs::dashboard::DashboardOptions { csrf: Some(std::sync::Arc::new(SessionCsrf { state: state.clone() })), ..Default::default() };
    let dashboard = jobs::dashboard::router_with(state.jobs.clone(), options);
    Router::new().fallback_service(dashboard).layer(axum::middleware::from_fn_with_state(state, require_root))
}

async fn require_root(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let verdict = credentials(&parts, &state).await;
    let request = Request::from_parts(parts, body);
    match verdict {
        Credentials::Valid(identity, _) if identity.is_root_admin() => next.run(request).await,
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
