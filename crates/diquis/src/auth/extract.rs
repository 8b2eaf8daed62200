//! Request extractors: who is calling an API ([`Caller`], [`RootCaller`]) or a page ([`PageCaller`]).
//!
//! API clients send `Authorization: Bearer <jwt>`; the browser sends the session cookie, and
//! then every state-changing request must also carry the session's CSRF token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::Identity;
use super::jwt::TokenError;
use super::session::{AUTH_COOKIE, CSRF_HEADER, cookie, secrets_equal};
use crate::state::AppState;
use crate::web::envelope::ApiError;

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub identity: Identity,
    /// Whether the credentials came from the session cookie (then CSRF applies).
    pub via_cookie: bool,
}

/// How credentials were found on a request.
pub enum Credentials {
    /// A valid identity.
    Valid(Identity, bool),
    /// None were sent.
    Missing,
    /// Some were sent but refused.
    Refused(TokenError),
}

/// Reads a bearer token (header) or else the session cookie, and checks that it is not revoked.
pub async fn credentials(parts: &Parts, state: &AppState) -> Credentials {
    let (verdict, via_cookie) = token_credentials(parts, state);
    match verdict {
        Credentials::Valid(identity, _) => match state.revocations.check(&identity).await {
            Ok(()) => Credentials::Valid(identity, via_cookie),
            Err(e) => Credentials::Refused(e),
        },
        other => other,
    }
}

/// The signature, issuer, audience and lifetime checks of [`credentials`], without the database.
fn token_credentials(parts: &Parts, state: &AppState) -> (Credentials, bool) {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    if let Some(token) = bearer {
        return match state.jwt.validate(token) {
            Ok(id) => (Credentials::Valid(id, false), false),
            Err(e) => (Credentials::Refused(e), false),
        };
    }
    match cookie(&parts.headers, AUTH_COOKIE) {
        Some(token) => match state.jwt.validate(&token) {
            Ok(id) => (Credentials::Valid(id, true), true),
            Err(e) => (Credentials::Refused(e), true),
        },
        None => (Credentials::Missing, false),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match credentials(parts, state).await {
            Credentials::Valid(identity, via_cookie) => {
                if via_cookie && !is_safe(&parts.method) {
                    let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    let expected = identity.csrf.as_deref().unwrap_or("");
                    if expected.is_empty() || !secrets_equal(sent, expected) {
                        return Err(ApiError::forbidden(
                            "Missing or wrong CSRF token: send the X-CSRF-Token header with cookie authentication.",
                        ));
                    }
                }
                Ok(Caller { identity, via_cookie })
            }
            Credentials::Missing => Err(ApiError::unauthorized("Authentication required: send a Bearer token.")),
            Credentials::Refused(TokenError::Expired) => Err(ApiError::unauthorized("The token has expired.")),
            Credentials::Refused(TokenError::Invalid(_)) => Err(ApiError::unauthorized("The token is invalid.")),
            Credentials::Refused(TokenError::Revoked) => Err(ApiError::unauthorized("The token has been revoked.")),
            Credentials::Refused(TokenError::Unavailable) => {
                Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The token cannot be checked now; try again shortly."))
            }
            Credentials::Refused(TokenError::Outdated) => {
                Err(ApiError::unauthorized("The token is from an earlier version: sign in again."))
            }
        }
    }
}

/// A caller with role `root` in tenant `root` (tenant management, the jobs dashboard).
#[derive(Debug, Clone)]
pub struct RootCaller(pub Caller);

impl FromRequestParts<AppState> for RootCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.identity.is_root_admin() {
            return Err(ApiError::forbidden("This requires the root role."));
        }
        Ok(RootCaller(caller))
    }
}

/// A signed-in browser user; anyone else is redirected to the login page.
#[derive(Debug, Clone)]
pub struct PageCaller(pub Identity);

/// Where an anonymous page request goes.
pub struct LoginRedirect(String);

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        Redirect::to(&self.0).into_response()
    }
}

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match credentials(parts, state).await {
            Credentials::Valid(identity, true) => Ok(PageCaller(identity)),
            Credentials::Refused(TokenError::Unavailable) => {
                Err((StatusCode::SERVICE_UNAVAILABLE, "The session cannot be checked now; try again shortly.").into_response())
            }
            _ => {
                let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let target = format!("/login?returnUrl={}", crate::web::html::url_encode(here));
                Err(LoginRedirect(target).into_response())
            }
        }
    }
}

/// A signed-in browser user with role `root`; others get 403, anonymous ones the login page.
#[derive(Debug, Clone)]
pub struct RootPageCaller(pub Identity);

impl FromRequestParts<AppState> for RootPageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let PageCaller(identity) = PageCaller::from_request_parts(parts, state).await?;
        if !identity.is_root_admin() {
            return Err((StatusCode::FORBIDDEN, "This page requires the root role.").into_response());
        }
        Ok(RootPageCaller(identity))
    }
}
