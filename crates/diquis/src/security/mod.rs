//! Defences of the public endpoints: the bounded password-hashing pool ([`hashing`]), sign-in
//! rate limits and lockout ([`limits`]), the client behind trusted proxies ([`forwarded`]),
//! local-only redirects ([`redirect`]) and their settings ([`settings`]).

pub mod forwarded;
pub mod hashing;
pub mod limits;
pub mod redirect;
pub mod settings;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use forwarded::ClientInfo;
pub use settings::SecuritySettings;

use crate::auth::tokens::{self, SignInError};
use crate::auth::users::UserRow;
use crate::state::AppState;
use crate::web::envelope::ApiError;
use hashing::PasswordPool;
use limits::{KeyedLimit, Lockout, SignInLimits, account_key};

/// The defences of one process; built once at start.
pub struct Security {
    /// Password verifications.
    pub passwords: PasswordPool,
    /// Which proxies are trusted.
    pub forwarded: settings::ForwardedSettings,
    /// Rate limits and lockout.
    pub limits: SignInLimits,
}

impl Security {
    /// Starts the hashing threads and creates empty limiters.
    pub fn new(settings: &SecuritySettings) -> Self {
        Self {
            passwords: PasswordPool::new(settings.hash_concurrency, settings.hash_queue),
            forwarded: settings.forwarded.clone(),
            limits: SignInLimits {
                by_address: KeyedLimit::new(settings.per_address),
                by_account: KeyedLimit::new(settings.per_account),
                lockout: Lockout::new(settings.lockout),
            },
        }
    }
}

/// Why a sign-in was refused, as the caller may learn it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Unknown tenant or user, wrong password, or an inactive user or tenant (deliberately the
    /// same answer, so the password cannot be confirmed for a disabled account).
    #[error("Invalid email, password or tenant.")]
    BadCredentials,
    /// Too many attempts from this address or for this account.
    #[error("Too many sign-in attempts; try again in {} seconds.", retry_secs(*.0))]
    TooManyAttempts(Duration),
    /// The account is locked after repeated failures.
    #[error("Too many failed sign-ins for this account; try again in {} seconds.", retry_secs(*.0))]
    LockedOut(Duration),
    /// The password-hashing pool is full.
    #[error("The server is busy; try again shortly.")]
    Busy,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Refusal {
    /// The status: 401, 429 or 503 (500 for the database).
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadCredentials => StatusCode::UNAUTHORIZED,
            Refusal::TooManyAttempts(_) | Refusal::LockedOut(_) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` value in seconds, for 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::TooManyAttempts(d) | Refusal::LockedOut(d) => Some(retry_secs(*d).max(1)),
            Refusal::Busy => Some(1),
            _ => None,
        }
    }

    /// Adds `Retry-After` to `response` when this refusal has one.
    pub fn add_retry_after(&self, response: &mut Response) {
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
    }
}

/// As an API answer: the envelope with the message, and `Retry-After` when it applies.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = match &self {
            Refusal::Database(e) => ApiError::internal("database error", e).into_response(),
            other => ApiError::new(other.status(), other.to_string()).into_response(),
        };
        self.add_retry_after(&mut response);
        response
    }
}

/// Signs a user in with every defence: the account's rate limit, its lockout, the bounded
/// password check; counts the failure or clears the failures.
pub async fn check_sign_in(state: &AppState, email: &str, password: &str, tenant: &str) -> Result<UserRow, Refusal> {
    let limits = &state.security.limits;
    let account = account_key(tenant, email);
    limits.by_account.check(&account).map_err(Refusal::TooManyAttempts)?;
    if let Some(left) = limits.lockout.locked_for(&state.db, &account).await? {
        return Err(Refusal::LockedOut(left));
    }
    match tokens::check_credentials(&state.db, &state.security.passwords, email, password, tenant).await {
        Ok(user) => {
            limits.lockout.succeeded(&state.db, &account).await?;
            Ok(user)
        }
        Err(SignInError::Busy) => Err(Refusal::Busy),
        Err(SignInError::Database(e)) => Err(Refusal::Database(e)),
        Err(_) => {
            if let Some(length) = limits.lockout.failed(&state.db, &account).await? {
                metrics::counter!("diquis_sign_in_lockouts_total").increment(1);
                tracing::warn!(%email, %tenant, seconds = length.as_secs(), "account locked after repeated failed sign-ins");
                return Err(Refusal::LockedOut(length));
            }
            Err(Refusal::BadCredentials)
        }
    }
}

/// Middleware for the sign-in and refresh routes: a POST over the client address's rate limit
/// is answered 429 with `Retry-After` before anything else is done.
pub async fn limit_by_address(State(state): State<AppState>, client: ClientInfo, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    match state.security.limits.by_address.check(&client.address) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!("diquis_sign_in_rate_limited_total").increment(1);
            tracing::info!(address = %client.address, path = request.uri().path(), "sign-in rate limit reached");
            let refusal = Refusal::TooManyAttempts(wait);
            if request.uri().path().starts_with("/api/") {
                refusal.into_response()
            } else {
                let mut response = (refusal.status(), refusal.to_string()).into_response();
                refusal.add_retry_after(&mut response);
                response
            }
        }
    }
}
