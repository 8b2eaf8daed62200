//! The notification outbox: events are written in the same transaction as the job's result (and,
//! when the job storage is the same database, the job's final state), then published by
//! [`super::publisher`] and marked sent. A row's id is the `id` the clients see, so a repeat is
//! recognisable; a row's `outcome_key` makes a job's result notified once.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::Event;
use crate::db::{Db, Tx};

/// A stored notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Monotonic id (commit order).
    pub id: i64,
    /// Hub target.
    pub event: String,
    /// Payload JSON without `id`.
    pub payload: String,
    /// The tenant it is about.
    pub tenant_id: Option<String>,
    /// The user who asked.
    pub recipient_user: Option<String>,
    /// When written.
    pub created_on: DateTime<Utc>,
    /// When published, if yet.
    pub sent_on: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, event, payload, tenant_id, recipient_user, created_on, sent_on";

/// A notification as `GET /api/notifications` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MissedNotification {
    /// Id.
    pub id: i64,
    /// Hub target (`TenantCreated`, …).
    pub event: String,
    /// The payload exactly as sent on the hub (with `id`).
    pub data: serde_json::Value,
}

/// Writes `event` to the outbox inside `tx`; returns its id. With an `outcome_key` (the job
/// outcome it records) it is written once: `None` is returned when a notification with that key
/// exists already. On PostgreSQL the insert takes a transaction-scoped advisory lock first, so
/// ids become visible in increasing order and a client reading `after=<id>` never skips a row
/// that commits late.
pub async fn insert(tx: &mut Tx, event: &Event, outcome_key: Option<&str>) -> Result<Option<i64>, sqlx::Error> {
    if tx.is_postgres() {
        tx.query("SELECT pg_advisory_xact_lock(72620061)").execute().await?;
    }
    let now = Utc::now();
    let id: Option<i64> = tx
        .query_scalar(
            "INSERT INTO notifications (event, payload, tenant_id, recipient_user, created_on, outcome_key) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(event.target)
        .bind(&event.payload)
        .bind(&event.tenant_id)
        .bind(&event.user_id)
        .bind(now)
        .bind(outcome_key)
        .fetch_optional()
        .await?;
    Ok(id)
}

/// The id of the notification that recorded `outcome_key`, if one did.
pub async fn find_outcome(tx: &mut Tx, outcome_key: &str) -> Result<Option<i64>, sqlx::Error> {
    tx.query_scalar("SELECT id FROM notifications WHERE outcome_key = $1").bind(outcome_key).fetch_optional().await
}

/// Unsent rows, oldest first (at most `limit`).
pub async fn unsent(db: &Db, limit: i64) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM notifications WHERE sent_on IS NULL ORDER BY id LIMIT $1");
    db.query_as::<NotificationRow>(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all().await
}

/// How many rows wait to be published, counted on the partial index of unsent rows without
/// reading a payload (`/metrics` asks on every scrape).
pub async fn unsent_count(db: &Db) -> Result<i64, sqlx::Error> {
    db.query_scalar::<i64>("SELECT COUNT(*) FROM notifications WHERE sent_on IS NULL").fetch_one().await
}

/// Marks a row sent.
pub async fn mark_sent(db: &Db, id: i64) -> Result<(), sqlx::Error> {
    db.query("UPDATE notifications SET sent_on = $2 WHERE id = $1 AND sent_on IS NULL").bind(id).bind(Utc::now()).execute().await?;
    Ok(())
}

/// The notifications after `after` that `user_name` may see: all of them for root admins (or
/// when broadcasting to all), else those it asked for. Oldest first, at most 200.
pub async fn visible_after(db: &Db, after: i64, user_name: &str, sees_everything: bool) -> Result<Vec<MissedNotification>, sqlx::Error> {
    let rows: Vec<NotificationRow> = if sees_everything {
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id > $1 ORDER BY id LIMIT 200");
        db.query_as(sqlx::AssertSqlSafe(sql)).bind(after).fetch_all().await?
    } else {
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id > $1 AND recipient_user = $2 ORDER BY id LIMIT 200");
        db.query_as(sqlx::AssertSqlSafe(sql)).bind(after).bind(user_name).fetch_all().await?
    };
    Ok(rows.into_iter().map(|r| MissedNotification { id: r.id, data: super::event::with_id(&r.payload, r.id), event: r.event }).collect())
}

/// The highest notification id (0 when none); pages start listening from here.
pub async fn latest_id(db: &Db) -> Result<i64, sqlx::Error> {
    db.query_scalar::<Option<i64>>("SELECT MAX(id) FROM notifications").fetch_one().await.map(|v| v.unwrap_or(0))
}
