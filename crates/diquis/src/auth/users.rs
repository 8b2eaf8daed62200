//! Users and their roles in the main database.

use chrono::{DateTime, Utc};

use crate::db::{Db, Tx};

/// A stored user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// UUID.
    pub id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Email as entered (compared case-insensitively).
    pub email: String,
    /// `email.tenant`, lower-case: the user identifier in tokens and on the hub.
    pub user_name: String,
    /// Argon2 PHC hash.
    pub password_hash: String,
    /// Whether the user may sign in.
    pub is_active: bool,
    /// When created.
    pub created_on: DateTime<Utc>,
    /// Changes whenever the user's existing sessions must end (disabled, password changed, …);
    /// every access token carries the value it was issued with.
    pub security_stamp: String,
}

/// The tenant-qualified user name Diquis uses as the user identifier (`admin@email.com.root`).
pub fn user_name(email: &str, tenant: &str) -> String {
    format!("{}.{}", email.trim().to_ascii_lowercase(), tenant)
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Email.
    pub email: &'a str,
    /// Argon2 hash.
    pub password_hash: &'a str,
    /// Roles to grant.
    pub roles: &'a [&'a str],
}

/// A fresh random security stamp.
pub fn new_security_stamp() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Finds a user by tenant and email.
pub async fn find_by_email(db: &Db, tenant: &str, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let name = user_name(email, tenant);
    db.query_as::<UserRow>(
        "SELECT id, tenant_id, email, user_name, password_hash, is_active, created_on, security_stamp FROM users WHERE user_name = $1",
    )
    .bind(&name)
    .fetch_optional()
    .await
}

/// Finds a user by id.
pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    db.query_as::<UserRow>(
        "SELECT id, tenant_id, email, user_name, password_hash, is_active, created_on, security_stamp FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional()
    .await
}

/// The roles of a user, sorted.
pub async fn roles_of(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    db.query_scalar::<String>("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role").bind(user_id).fetch_all().await
}

/// Creates the user unless one with the same user name exists, and grants `roles` either way.
/// Returns whether the user was created now. Safe to repeat (a retried job never fails with
/// "user already exists").
pub async fn ensure_user(tx: &mut Tx, user: &NewUser<'_>) -> Result<(String, bool), sqlx::Error> {
    let name = user_name(user.email, user.tenant_id);
    let new_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let created = tx
        .query(
            "INSERT INTO users (id, tenant_id, email, user_name, password_hash, first_name, last_name, is_active, created_on, \
             security_stamp) VALUES ($1, $2, $3, $4, $5, 'Default', 'Admin', TRUE, $6, $7) ON CONFLICT (user_name) DO NOTHING",
        )
        .bind(&new_id)
        .bind(user.tenant_id)
        .bind(user.email.trim())
        .bind(&name)
        .bind(user.password_hash)
        .bind(now)
        .bind(new_security_stamp())
        .execute()
        .await?
        .rows_affected()
        == 1;
    let id: String = tx.query_scalar("SELECT id FROM users WHERE user_name = $1").bind(&name).fetch_one().await?;
    for role in user.roles {
        tx.query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(&id).bind(*role).execute().await?;
    }
    Ok((id, created))
}

/// How many users a tenant has (for tests and the UI).
pub async fn count_in_tenant(db: &Db, tenant: &str) -> Result<i64, sqlx::Error> {
    db.query_scalar::<i64>("SELECT COUNT(*) FROM users WHERE tenant_id = $1").bind(tenant).fetch_one().await
}

/// One page of the users of `tenant` (every tenant's with `None`), by user name (unique, so
/// pages neither overlap nor skip a user).
pub async fn list_page(db: &Db, tenant: Option<&str>, offset: i64, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    const COLUMNS: &str = "id, tenant_id, email, user_name, password_hash, is_active, created_on, security_stamp";
    match tenant {
        Some(t) => {
            let sql = format!("SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY user_name, id LIMIT $2 OFFSET $3");
            db.query_as::<UserRow>(sqlx::AssertSqlSafe(sql)).bind(t).bind(limit).bind(offset).fetch_all().await
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM users ORDER BY user_name, id LIMIT $1 OFFSET $2");
            db.query_as::<UserRow>(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all().await
        }
    }
}

/// How many users `tenant` has (every tenant with `None`).
pub async fn count(db: &Db, tenant: Option<&str>) -> Result<i64, sqlx::Error> {
    match tenant {
        Some(t) => count_in_tenant(db, t).await,
        None => db.query_scalar::<i64>("SELECT COUNT(*) FROM users").fetch_one().await,
    }
}
