//! Sign-in (`POST /api/tokens`), refresh tokens, and the signing key.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Identity;
use super::users::{self, UserRow};
use crate::db::{Db, Tx};
use crate::security::hashing::PasswordPool;

/// What a successful sign-in or refresh returns (Diquis's `TokenResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The access token (JWT).
    pub token: String,
    /// The refresh token (opaque).
    pub refresh_token: String,
    /// When the refresh token stops working.
    pub refresh_token_expiry_time: DateTime<Utc>,
}

/// Why a sign-in or refresh was refused. Deliberately vague towards the caller about which
/// part was wrong, so that accounts cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown tenant, unknown user or wrong password.
    #[error("Invalid email, password or tenant.")]
    BadCredentials,
    /// The tenant or the user is deactivated, or the tenant is not provisioned.
    #[error("The tenant or user is not active.")]
    Inactive,
    /// Too many password checks are waiting (the hashing pool is full).
    #[error("The server is busy; try again shortly.")]
    Busy,
    /// The refresh token is unknown, expired or revoked.
    #[error("The refresh token is invalid or expired.")]
    BadRefreshToken,
    /// The refresh token had been used before: its whole session is now revoked. Answered like
    /// [`SignInError::BadRefreshToken`].
    #[error("The refresh token is invalid or expired.")]
    RefreshTokenReused {
        /// Whose session.
        user_id: String,
        /// The revoked session.
        session_id: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The identity of a stored user in session `session_id`, with a CSRF token when it is for a
/// browser session.
pub async fn identity_of(db: &Db, user: &UserRow, session_id: &str, csrf: Option<String>) -> Result<Identity, sqlx::Error> {
    Ok(Identity {
        user_id: user.id.clone(),
        user_name: user.user_name.clone(),
        email: user.email.clone(),
        tenant: user.tenant_id.clone(),
        roles: users::roles_of(db, &user.id).await?,
        csrf,
        security_stamp: user.security_stamp.clone(),
        session_id: session_id.to_string(),
    })
}

/// Checks email, password and tenant on the bounded hashing pool; returns the user. An inactive
/// user or tenant is refused like a wrong password, so the answer never confirms a password.
pub async fn check_credentials(
    db: &Db,
    passwords: &PasswordPool,
    email: &str,
    password_text: &str,
    tenant: &str,
) -> Result<UserRow, SignInError> {
    let user = users::find_by_email(db, tenant, email).await?;
    let Some(user) = user else {
        // Spend the same time as a real check so response times do not reveal unknown users.
        passwords.verify(DUMMY_HASH.to_string(), password_text.to_string()).await.map_err(|_| SignInError::Busy)?;
        return Err(SignInError::BadCredentials);
    };
    if !passwords.verify(user.password_hash.clone(), password_text.to_string()).await.map_err(|_| SignInError::Busy)? {
        return Err(SignInError::BadCredentials);
    }
    if !user.is_active || !tenant_is_usable(db, tenant).await? {
        tracing::info!(%email, %tenant, "sign-in of an inactive user or tenant refused");
        return Err(SignInError::BadCredentials);
    }
    Ok(user)
}

const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2O4uxkh7p1ys2YxD0xm8WGq6x1wv4L6w2JIPr4U2h9M";

/// Whether users of `tenant` may sign in: active, provisioned, not failed in provisioning.
pub async fn tenant_is_usable(db: &Db, tenant: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(bool, String)> =
        db.query_as("SELECT is_active, status FROM tenants WHERE id = $1").bind(tenant).fetch_optional().await?;
    // A tenant whose update failed stays usable; one that never finished provisioning is not.
    Ok(matches!(row, Some((true, status)) if status == "Active" || status == "Updating" || status == "Failed")
        && provisioned(db, tenant).await?)
}

async fn provisioned(db: &Db, tenant: &str) -> Result<bool, sqlx::Error> {
    let at: Option<Option<DateTime<Utc>>> =
        db.query_scalar("SELECT provisioned_on FROM tenants WHERE id = $1").bind(tenant).fetch_optional().await?;
    Ok(matches!(at, Some(Some(_))))
}

pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How long after a refresh token was rotated the browser may still present it without this
/// counting as reuse: a page's parallel requests can carry the same expired access cookie and
/// the same refresh cookie, and only the first of them rotates. API clients get no such grace.
pub const BROWSER_REFRESH_GRACE_SECS: i64 = 10;

/// A new sign-in: a refresh-token family (the session id of its access tokens) and its first
/// refresh token (only its SHA-256 is stored). Returns (family id, token, expiry).
pub async fn new_session(db: &Db, user_id: &str, csrf: Option<&str>, days: i64) -> Result<(String, String, DateTime<Utc>), sqlx::Error> {
    let family = uuid::Uuid::new_v4().to_string();
    let mut tx = db.begin().await?;
    tx.query("INSERT INTO refresh_families (id, user_id, created_on) VALUES ($1, $2, $3)")
        .bind(&family)
        .bind(user_id)
        .bind(Utc::now())
        .execute()
        .await?;
    let (token, expires) = add_refresh_token(&mut tx, &family, user_id, csrf, days).await?;
    tx.commit().await?;
    Ok((family, token, expires))
}

async fn add_refresh_token(
    tx: &mut Tx,
    family: &str,
    user_id: &str,
    csrf: Option<&str>,
    days: i64,
) -> Result<(String, DateTime<Utc>), sqlx::Error> {
    let token = random_token();
    let now = Utc::now();
    let expires = now + Duration::days(days);
    tx.query(
        "INSERT INTO refresh_tokens (token_hash, user_id, csrf, created_on, expires_on, family_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash_token(&token))
    .bind(user_id)
    .bind(csrf)
    .bind(now)
    .bind(expires)
    .bind(family)
    .execute()
    .await?;
    Ok((token, expires))
}

/// Who presents a refresh token: an API client (`POST /api/tokens/refresh`) or the browser's
/// refresh cookie (which gets [`BROWSER_REFRESH_GRACE_SECS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshBy {
    /// An API client: any second use of a token is reuse.
    Api,
    /// The browser session.
    Browser,
}

/// A refresh token accepted.
#[derive(Debug)]
pub struct Refreshed {
    /// The user.
    pub user: UserRow,
    /// The session's CSRF token (browser sessions).
    pub csrf: Option<String>,
    /// The session (refresh-token family).
    pub session_id: String,
    /// The successor token and its expiry; `None` when a browser presented a token rotated
    /// within the grace time (its successor is already on the way to the browser).
    pub successor: Option<(String, DateTime<Utc>)>,
}

/// user id, session CSRF token, expiry, token revoked (rotated) on, family, family revoked on.
type RefreshRow = (String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>, String, Option<DateTime<Utc>>);

/// Uses a refresh token: it is rotated (revoked, a successor made in the same family). A token
/// used a second time revokes its whole family (RFC 6819 §5.2.2.3): the error then names the
/// user and session so that the caller can announce the revocation.
pub async fn use_refresh_token(db: &Db, token: &str, by: RefreshBy, days: i64) -> Result<Refreshed, SignInError> {
    let hash = hash_token(token);
    let row: Option<RefreshRow> = db
        .query_as(
            "SELECT t.user_id, t.csrf, t.expires_on, t.revoked_on, f.id, f.revoked_on FROM refresh_tokens t \
             JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional()
        .await?;
    let Some((user_id, csrf, expires, rotated_on, family, family_revoked)) = row else {
        return Err(SignInError::BadRefreshToken);
    };
    let now = Utc::now();
    if family_revoked.is_some() || expires <= now {
        return Err(SignInError::BadRefreshToken);
    }
    let user = users::find_by_id(db, &user_id).await?.ok_or(SignInError::BadRefreshToken)?;
    if !user.is_active || !tenant_is_usable(db, &user.tenant_id).await? {
        return Err(SignInError::Inactive);
    }
    let within_grace = |at: DateTime<Utc>| by == RefreshBy::Browser && now - at < Duration::seconds(BROWSER_REFRESH_GRACE_SECS);
    if let Some(at) = rotated_on {
        if within_grace(at) {
            return Ok(Refreshed { user, csrf, session_id: family, successor: None });
        }
        revoke_session(db, &family).await?;
        return Err(SignInError::RefreshTokenReused { user_id, session_id: family });
    }
    let mut tx = db.begin().await?;
    let rotated = tx
        .query("UPDATE refresh_tokens SET revoked_on = $2 WHERE token_hash = $1 AND revoked_on IS NULL")
        .bind(&hash)
        .bind(now)
        .execute()
        .await?
        .rows_affected()
        == 1;
    if !rotated {
        // Used concurrently: the other use rotated it a moment ago.
        tx.rollback().await?;
        if by == RefreshBy::Browser {
            return Ok(Refreshed { user, csrf, session_id: family, successor: None });
        }
        revoke_session(db, &family).await?;
        return Err(SignInError::RefreshTokenReused { user_id, session_id: family });
    }
    let successor = add_refresh_token(&mut tx, &family, &user_id, csrf.as_deref(), days).await?;
    tx.commit().await?;
    Ok(Refreshed { user, csrf, session_id: family, successor: Some(successor) })
}

/// Revokes a session (refresh-token family): every refresh token of it and every access token
/// naming it. Returns whether it was active until now.
pub async fn revoke_session(db: &Db, session_id: &str) -> Result<bool, sqlx::Error> {
    Ok(db
        .query("UPDATE refresh_families SET revoked_on = $2 WHERE id = $1 AND revoked_on IS NULL")
        .bind(session_id)
        .bind(Utc::now())
        .execute()
        .await?
        .rows_affected()
        == 1)
}

/// The session a refresh token belongs to, if the token is known.
pub async fn session_of_refresh_token(db: &Db, token: &str) -> Result<Option<String>, sqlx::Error> {
    db.query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1").bind(hash_token(token)).fetch_optional().await
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
