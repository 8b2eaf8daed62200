//! Tenant rows in the main database.

use chrono::Utc;

use super::model::{TENANT_COLUMNS, TenantRow, TenantStatus};
use crate::db::{Db, Tx};

/// A tenant to insert (status Pending).
#[derive(Debug, Clone)]
pub struct NewTenant<'a> {
    /// Slug id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// First admin's email.
    pub admin_email: &'a str,
    /// Isolated database name or file, if isolated.
    pub connection_string: Option<&'a str>,
    /// Creator's user name.
    pub created_by: Option<&'a str>,
}

/// One page of the tenants, newest first: `limit` rows after skipping `offset`.
pub async fn list_page(db: &Db, offset: i64, limit: i64) -> Result<Vec<TenantRow>, sqlx::Error> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_on DESC, id LIMIT $1 OFFSET $2");
    db.query_as::<TenantRow>(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all().await
}

/// How many tenants exist.
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    db.query_scalar::<i64>("SELECT COUNT(*) FROM tenants").fetch_one().await
}

/// One tenant.
pub async fn get(db: &Db, id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
    db.query_as::<TenantRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional().await
}

/// One tenant, inside a transaction (locked for update on PostgreSQL).
pub async fn get_for_update(tx: &mut Tx, id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
    // SQLite has no row locks: its write transaction (`BEGIN IMMEDIATE`) already excludes others.
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1{lock}");
    tx.query_as::<TenantRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional().await
}

/// Inserts a Pending tenant; returns false when the id is taken.
pub async fn insert(tx: &mut Tx, t: &NewTenant<'_>) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let n = tx
        .query(
            "INSERT INTO tenants (id, name, is_active, status, connection_string, has_isolated_database, admin_email, \
             created_by, created_on, updated_on) VALUES ($1, $2, TRUE, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(t.id)
        .bind(t.name)
        .bind(TenantStatus::Pending.as_str())
        .bind(t.connection_string)
        .bind(t.connection_string.is_some())
        .bind(t.admin_email)
        .bind(t.created_by)
        .bind(now)
        .execute()
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Records the job whose failure made tenant `id` Failed.
pub async fn set_failed_job(tx: &mut Tx, id: &str, job_id: i64) -> Result<(), sqlx::Error> {
    tx.query("UPDATE tenants SET failed_job_id = $2 WHERE id = $1").bind(id).bind(job_id).execute().await?;
    Ok(())
}

/// Sets the status (and clears or keeps the error); `attempt` also stamps the provisioning attempt.
pub async fn set_status(tx: &mut Tx, id: &str, status: TenantStatus, error: Option<&str>, attempt: bool) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    tx.query(
        "UPDATE tenants SET status = $2, provisioning_error = $3, updated_on = $4, \
         last_provisioning_attempt = CASE WHEN $5 THEN $4 ELSE last_provisioning_attempt END WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .bind(attempt)
    .execute()
    .await?;
    Ok(())
}

/// Marks a tenant provisioned: Active, no error, `provisioned_on` kept from the first success.
pub async fn mark_provisioned(tx: &mut Tx, id: &str) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    tx.query(
        "UPDATE tenants SET status = 'Active', provisioning_error = NULL, updated_on = $2, \
         provisioned_on = COALESCE(provisioned_on, $2) WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

/// Applies an update: name, active flag, status Active, error cleared.
pub async fn apply_update(tx: &mut Tx, id: &str, name: &str, is_active: bool) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    tx.query(
        "UPDATE tenants SET name = $2, is_active = $3, status = 'Active', provisioning_error = NULL, updated_on = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(is_active)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

/// Creates the `root` tenant if missing (Active, provisioned).
pub async fn ensure_root(db: &Db) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    db.query(
        "INSERT INTO tenants (id, name, is_active, status, has_isolated_database, admin_email, created_on, updated_on, \
         provisioned_on) VALUES ('root', 'Root', TRUE, 'Active', FALSE, '', $1, $1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(now)
    .execute()
    .await?;
    Ok(())
}
