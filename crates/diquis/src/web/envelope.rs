//! Diquis's response envelope `{ succeeded, messages, data }` and API errors in it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every API answer (.NET Diquis's `Response<T>`).
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<T: Serialize> {
    /// Whether the request did what was asked.
    pub succeeded: bool,
    /// Messages for people: what happened, or every problem found.
    pub messages: Vec<String>,
    /// The result.
    pub data: Option<T>,
}

impl<T: Serialize> Envelope<T> {
    /// A success with data and messages.
    pub fn ok(data: T, messages: Vec<String>) -> Self {
        Self { succeeded: true, messages, data: Some(data) }
    }
}

/// An API failure: a status and the messages naming every problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub messages: Vec<String>,
}

impl ApiError {
    /// An error with one message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, messages: vec![message.into()] }
    }
    /// 400 with every validation problem.
    pub fn validation(messages: Vec<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, messages }
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 503: the password-hashing pool is full (answered with `Retry-After: 1`).
    pub fn busy() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "The server is busy; try again shortly.")
    }
    /// 500; the details go to the log, not to the caller.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{context}; see the server log"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            // Not the request's fault and not a bug: the caller may retry once the database is
            // back (nothing of this request was committed).
            tracing::warn!(error = %e, "database unavailable");
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable; try again shortly.");
        }
        ApiError::internal("database error", e)
    }
}

/// Whether `error` means the database cannot be reached now (down, restarting, refusing
/// connections) rather than that a statement was wrong.
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, starting up),
        // 53300 (too many connections).
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300"))
        }
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()> { succeeded: false, messages: self.messages, data: None };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary (a full hashing pool, the database away): say when to retry.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON body that failed to parse becomes a 400 in the envelope, naming the problem.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(ApiError::validation(vec![format!("The request body is not valid: {}", rejection.body_text())])),
        }
    }
}
