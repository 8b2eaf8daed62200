//! Sign-in (`POST /api/tokens`), refresh tokens, and the signing key.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::users::{self, UserRow};
use super::Identity;
use crate::db::Db;
use crate::security::hashing::PasswordPool;
use crate::with_db;

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
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The identity of a stored user, with a CSRF token when it is for a browser session.
pub async fn identity_of(db: &Db, user: &UserRow, csrf: Option<String>) -> Result<Identity, sqlx::Error> {
    Ok(Identity {
        user_id: user.id.clone(),
        user_name: user.user_name.clone(),
        email: user.email.clone(),
        tenant: user.tenant_id.clone(),
        roles: users::roles_of(db, &user.id).await?,
        csrf,
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

async fn tenant_is_usable(db: &Db, tenant: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(bool, String)> = with_db!(db, |p| {
        sqlx::query_as("SELECT is_active, status FROM tenants WHERE id = $1").bind(tenant).fetch_optional(p).await?
    });
    // A tenant whose update failed stays usable; one that never finished provisioning is not.
    Ok(matches!(row, Some((true, status)) if status == "Active" || status == "Updating" || status == "Failed")
        && provisioned(db, tenant).await?)
}

async fn provisioned(db: &Db, tenant: &str) -> Result<bool, sqlx::Error> {
    let at: Option<Option<DateTime<Utc>>> = with_db!(db, |p| {
        sqlx::query_scalar("SELECT provisioned_on FROM tenants WHERE id = $1").bind(tenant).fetch_optional(p).await?
    });
    Ok(matches!(at, Some(Some(_))))
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates and stores a refresh token for `user_id` (only its SHA-256 is stored).
pub async fn new_refresh_token(
    db: &Db,
    user_id: &str,
    csrf: Option<&str>,
    days: i64,
) -> Result<(String, DateTime<Utc>), sqlx::Error> {
    let token = random_token();
    let now = Utc::now();
    let expires = now + Duration::days(days);
    with_db!(db, |p| {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, csrf, created_on, expires_on) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&token))
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires)
        .execute(p)
        .await?;
    });
    Ok((token, expires))
}

/// user id, session CSRF token, expiry, revocation time.
type RefreshRow = (String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);

/// The user and session CSRF token behind a valid refresh token; `rotate` revokes it.
pub async fn use_refresh_token(db: &Db, token: &str, rotate: bool) -> Result<(UserRow, Option<String>), SignInError> {
    let hash = hash_token(token);
    let row: Option<RefreshRow> = with_db!(db, |p| {
        sqlx::query_as("SELECT user_id, csrf, expires_on, revoked_on FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(p)
            .await?
    });
    let Some((user_id, csrf, expires, revoked)) = row else {
        return Err(SignInError::BadRefreshToken);
    };
    if revoked.is_some() || expires <= Utc::now() {
        return Err(SignInError::BadRefreshToken);
    }
    if rotate {
        let n = with_db!(db, |p| {
            sqlx::query("UPDATE refresh_tokens SET revoked_on = $2 WHERE token_hash = $1 AND revoked_on IS NULL")
                .bind(&hash)
                .bind(Utc::now())
                .execute(p)
                .await?
                .rows_affected()
        });
        if n != 1 {
            return Err(SignInError::BadRefreshToken);
        }
    }
    let user = users::find_by_id(db, &user_id).await?.ok_or(SignInError::BadRefreshToken)?;
    if !user.is_active || !tenant_is_usable(db, &user.tenant_id).await? {
        return Err(SignInError::Inactive);
    }
    Ok((user, csrf))
}

/// Revokes a refresh token (sign-out).
pub async fn revoke_refresh_token(db: &Db, token: &str) -> Result<(), sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query("UPDATE refresh_tokens SET revoked_on = $2 WHERE token_hash = $1 AND revoked_on IS NULL")
            .bind(hash_token(token))
            .bind(Utc::now())
            .execute(p)
            .await?;
    });
    Ok(())
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWT signing key: `Jwt:Key` when configured, else a random key created once and kept in
/// the main database, so every process on that database signs and checks with the same key.
pub async fn signing_key(db: &Db, configured: Option<&str>) -> Result<Vec<u8>, sqlx::Error> {
    if let Some(k) = configured {
        return Ok(k.as_bytes().to_vec());
    }
    let candidate = random_token();
    with_db!(db, |p| {
        sqlx::query("INSERT INTO app_secrets (name, value) VALUES ('jwt_key', $1) ON CONFLICT (name) DO NOTHING")
            .bind(&candidate)
            .execute(p)
            .await?;
    });
    let key: String = with_db!(db, |p| {
        sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = 'jwt_key'").fetch_one(p).await?
    });
    Ok(key.into_bytes())
}
