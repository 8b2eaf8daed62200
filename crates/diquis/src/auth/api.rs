//! `POST /api/tokens` (sign in) and `POST /api/tokens/refresh` for API clients and SPAs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::ROOT_TENANT;
use super::tokens::{self, SignInError, TokenResponse};
use crate::security::{Refusal, check_sign_in};
use crate::state::AppState;
use crate::tenants::validation::string_field;
use crate::web::envelope::{ApiError, Envelope};

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Database(e) => ApiError::from(e),
            SignInError::RefreshTokenReused { .. } => ApiError::unauthorized(e.to_string()),
            other => ApiError::unauthorized(other.to_string()),
        }
    }
}

fn parse(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(ApiError::validation(vec!["The request body must be a JSON object.".into()])),
        Err(e) => Err(ApiError::validation(vec![format!("The request body is not valid JSON: {e}")])),
    }
}

/// `POST /api/tokens` `{email, password, tenant}` (tenant defaults to `root`). Refusals: 401,
/// 429 (rate limit, lockout) or 503 (hashing pool full) with `Retry-After`.
pub async fn sign_in(State(state): State<AppState>, body: Bytes) -> Response {
    match sign_in_checked(&state, &body).await {
        Ok(r) => r.into_response(),
        Err(SignInFailure::Api(e)) => e.into_response(),
        Err(SignInFailure::Refused(r)) => r.into_response(),
    }
}

/// A sign-in that did not succeed: a bad request or a refusal.
enum SignInFailure {
    Api(ApiError),
    Refused(Refusal),
}

impl From<ApiError> for SignInFailure {
    fn from(e: ApiError) -> Self {
        SignInFailure::Api(e)
    }
}

async fn sign_in_checked(state: &AppState, body: &Bytes) -> Result<Json<Envelope<TokenResponse>>, SignInFailure> {
    let body = parse(body)?;
    let mut problems = Vec::new();
    let email = string_field(&body, "email", &mut problems).map(str::trim).unwrap_or("").to_string();
    let password = string_field(&body, "password", &mut problems).unwrap_or("").to_string();
    let tenant = string_field(&body, "tenant", &mut problems).map(str::trim).filter(|t| !t.is_empty()).unwrap_or(ROOT_TENANT).to_string();
    if email.is_empty() && !problems.iter().any(|p| p.starts_with("'email'")) {
        problems.push("'email' is required.".into());
    }
    if password.is_empty() && !problems.iter().any(|p| p.starts_with("'password'")) {
        problems.push("'password' is required.".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems).into());
    }
    let user = match check_sign_in(state, &email, &password, &tenant).await {
        Ok(u) => u,
        Err(e) => {
            metrics::counter!("diquis_sign_in_failures_total").increment(1);
            tracing::info!(%email, %tenant, reason = %e, "sign-in refused");
            return Err(SignInFailure::Refused(e));
        }
    };
    Ok(Json(Envelope::ok(issue(state, &user, None).await?, vec![])))
}

/// Signs `user` in: a new session (refresh-token family) with its first refresh token, and an
/// access token naming it.
pub async fn issue(state: &AppState, user: &super::users::UserRow, csrf: Option<String>) -> Result<TokenResponse, ApiError> {
    let (session, refresh_token, expiry) =
        tokens::new_session(&state.db, &user.id, csrf.as_deref(), state.settings.jwt.refresh_days).await?;
    let identity = tokens::identity_of(&state.db, user, &session, csrf).await?;
    let token = state.jwt.issue(&identity);
    Ok(TokenResponse { token, refresh_token, refresh_token_expiry_time: expiry })
}

/// Uses a refresh token for `by`; a reused one has revoked its session, which is announced so
/// that the session's hub connections close on every node.
pub async fn use_refresh(state: &AppState, token: &str, by: tokens::RefreshBy) -> Result<tokens::Refreshed, SignInError> {
    let result = tokens::use_refresh_token(&state.db, token, by, state.settings.jwt.refresh_days).await;
    if let Err(SignInError::RefreshTokenReused { user_id, session_id }) = &result {
        tracing::warn!(user = %user_id, session = %session_id, "a rotated refresh token was reused: its session is revoked");
        state.revocations.announce(super::revocation::Revocation::Session { user_id: user_id.clone(), session_id: session_id.clone() });
    }
    result
}

/// `POST /api/tokens/refresh` `{refreshToken}`: a new access token and a new refresh token in
/// the same session (the old one is revoked; presenting it again revokes the session).
pub async fn refresh(State(state): State<AppState>, body: Bytes) -> Result<Json<Envelope<TokenResponse>>, ApiError> {
    let body = parse(&body)?;
    let mut problems = Vec::new();
    let token = string_field(&body, "refreshToken", &mut problems).unwrap_or("").to_string();
    if token.is_empty() && problems.is_empty() {
        problems.push("'refreshToken' is required.".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let refreshed = use_refresh(&state, &token, tokens::RefreshBy::Api).await?;
    let Some((refresh_token, expiry)) = refreshed.successor else {
        // Only browser refreshes have a grace time without a successor.
        return Err(SignInError::BadRefreshToken.into());
    };
    let identity = tokens::identity_of(&state.db, &refreshed.user, &refreshed.session_id, refreshed.csrf).await?;
    let token = state.jwt.issue(&identity);
    Ok(Json(Envelope::ok(TokenResponse { token, refresh_token, refresh_token_expiry_time: expiry }, vec![])))
}
