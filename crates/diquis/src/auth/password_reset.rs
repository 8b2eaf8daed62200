//! One-time password reset links: `diquis users reset-password EMAIL` makes a token
//! ([`create_token`]), the page `/reset-password?token=…` uses it once ([`consume`]). Only the
//! token's SHA-256 is stored; it expires after [`TOKEN_LIFETIME_MINUTES`].

use chrono::Utc;

use super::tokens::{hash_token, random_token};
use super::users;
use crate::db::Db;

/// How long a reset link works.
pub const TOKEN_LIFETIME_MINUTES: i64 = 60;

/// Why a reset link could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Unknown, used or expired token.
    #[error("This reset link is invalid, already used or expired; ask an operator for a new one.")]
    InvalidToken,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Makes a reset token for the user `email` of `tenant`: `Ok(None)` if there is no such user.
pub async fn create_token(db: &Db, tenant: &str, email: &str) -> Result<Option<String>, sqlx::Error> {
    let Some(user) = users::find_by_email(db, tenant, email).await? else { return Ok(None) };
    let token = random_token();
    let now = Utc::now().timestamp_millis();
    let expires = now + TOKEN_LIFETIME_MINUTES * 60_000;
    // Expired tokens of anyone are of no use: removed as new ones are made.
    db.query("DELETE FROM password_reset_tokens WHERE expires_at <= $1").bind(now).execute().await?;
    db.query("INSERT INTO password_reset_tokens (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hash_token(&token))
        .bind(&user.id)
        .bind(expires)
        .bind(now)
        .execute()
        .await?;
    Ok(Some(token))
}

/// The user a still valid `token` resets, without using it (the form's first display).
pub async fn user_of(db: &Db, token: &str) -> Result<Option<String>, sqlx::Error> {
    let now = Utc::now().timestamp_millis();
    db.query_scalar::<String>("SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND expires_at > $2")
        .bind(hash_token(token))
        .bind(now)
        .fetch_optional()
        .await
}

/// Uses `token` up (at most once, even when two requests race): the id of the user whose
/// password may now be set.
pub async fn consume(db: &Db, token: &str) -> Result<String, ResetError> {
    let now = Utc::now().timestamp_millis();
    let mut tx = db.begin().await?;
    let user: Option<String> = tx
        .query_scalar("DELETE FROM password_reset_tokens WHERE token_hash = $1 AND expires_at > $2 RETURNING user_id")
        .bind(hash_token(token))
        .bind(now)
        .fetch_optional()
        .await?;
    tx.commit().await?;
    user.ok_or(ResetError::InvalidToken)
}

/// Why `diquis users reset-password` could not print a link.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No user with this email in this tenant.
    #[error("no user '{email}' in tenant '{tenant}'")]
    UnknownUser {
        /// The email asked for.
        email: String,
        /// The tenant asked for.
        tenant: String,
    },
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Open(#[from] crate::db::DbError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The site's address for a link: `url` if given, else the first of `Urls` (a wildcard host
/// becomes `localhost`), else the web process's default.
pub fn base_url(settings: &crate::config::Settings, url: Option<&str>) -> String {
    if let Some(u) = url {
        return u.trim_end_matches('/').to_string();
    }
    let port = crate::state::ProcessRole::All.default_port();
    match settings.urls.as_ref().and_then(|u| u.first()) {
        Some(addr) if addr.ip().is_unspecified() => format!("http://localhost:{}", addr.port()),
        Some(addr) => format!("http://{addr}"),
        None => format!("http://127.0.0.1:{port}"),
    }
}

/// `diquis users reset-password`: opens the configured database (migrating it like the server
/// does), makes a token for the user and returns the link.
pub async fn reset_link(settings: &crate::config::Settings, email: &str, tenant: &str, url: Option<&str>) -> Result<String, CommandError> {
    let db = Db::open(&settings.database).await?;
    let token = create_token(&db, tenant, email).await;
    db.close().await;
    match token? {
        Some(token) => Ok(format!("{}/reset-password?token={token}", base_url(settings, url))),
        None => Err(CommandError::UnknownUser { email: email.to_string(), tenant: tenant.to_string() }),
    }
}
