//! Publishes unsent outbox rows through the hub's lifetime manager (the in-process one, or
//! Redis so that every web node delivers them) and marks them sent. A row is marked sent only
//! once Redis has acknowledged its PUBLISH (or, in-process, once it was written to the local
//! connections). A row whose send fails or is not acknowledged in time stays unsent and is
//! published again, so an event survives a Redis outage, a hung Redis, or a crash of this
//! process at any point; a repeat carries the same `id`, which receivers use to drop it.

use std::sync::Arc;
use std::time::Duration;

use signalr::{HubLifetimeManager, SerializedMessage};
use signalr_protocol::Value;
use signalr_protocol::message::{HubMessage, InvocationMessage};
use signalr_redis::Recipients;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::event::with_id;
use super::outbox::{self, NotificationRow};
use crate::auth::{ROOT_ROLE, ROOT_TENANT};
use crate::db::{Db, Tx};
use crate::ops::health::Backplane;
use crate::outbox_loop::{Attempt, drain_until_shutdown};

/// The hub group every root administrator's connections join.
pub const ROOT_GROUP: &str = "role:root";

/// Where tenant events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Root administrators and the requesting user (the default).
    RootAndRequester,
    /// Every connection (`Notifications:BroadcastToAll=true`, like .NET Diquis).
    Everyone,
}

/// The outbox publisher.
#[derive(Clone)]
pub struct Publisher {
    db: Db,
    lifetime: Arc<dyn HubLifetimeManager>,
    audience: Audience,
    wake: Arc<Notify>,
    backplane: Backplane,
}

/// How often the outbox is polled for rows written by other processes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

impl Publisher {
    /// A publisher sending through `lifetime`; `wake` is notified when a row was written here.
    /// While `backplane` is unhealthy nothing is sent: rows stay in the outbox (not in a memory
    /// queue that a crash would lose) until Redis is back.
    pub fn new(db: Db, lifetime: Arc<dyn HubLifetimeManager>, audience: Audience, wake: Arc<Notify>, backplane: Backplane) -> Self {
        Self { db, lifetime, audience, wake, backplane }
    }

    /// Runs until `shutdown`: publishes at once when woken (a job committed a notification here,
    /// or the backplane became healthy), else every second; backs off while sending fails.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Backplane::Redis(manager) = &self.backplane {
            let mut status = manager.watch_status();
            let wake = self.wake.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        changed = status.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if status.borrow().is_healthy() {
                                wake.notify_one();
                            }
                        }
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        drain_until_shutdown("notification publishing", &self.wake, &shutdown, POLL_INTERVAL, || async {
            match self.publish_pending().await {
                Ok(_) => Attempt::Drained,
                Err(PublishError::BackplaneDown(reason)) => {
                    // The backplane logs its own outage; rows wait in the outbox until it is back.
                    tracing::debug!(%reason, "backplane down; notifications wait in the outbox");
                    Attempt::Drained
                }
                Err(error) => {
                    metrics::counter!("diquis_notifications_publish_failures_total").increment(1);
                    Attempt::Failed(error)
                }
            }
        })
        .await
    }

    /// Publishes every unsent row, oldest first; returns how many were sent. Stops at the first
    /// failure (the rest keep their order for the next attempt).
    pub async fn publish_pending(&self) -> Result<usize, PublishError> {
        if let Err(reason) = self.backplane.check() {
            return Err(PublishError::BackplaneDown(reason));
        }
        let mut sent = 0;
        loop {
            let n = if self.db.is_postgres() { self.publish_batch_locked().await? } else { self.publish_batch().await? };
            sent += n;
            if n < BATCH as usize {
                return Ok(sent);
            }
        }
    }

    async fn publish_batch(&self) -> Result<usize, PublishError> {
        let rows = outbox::unsent(&self.db, BATCH).await?;
        let mut n = 0;
        for row in &rows {
            self.deliver(row).await?;
            outbox::mark_sent(&self.db, row.id).await?;
            n += 1;
        }
        Ok(n)
    }

    /// PostgreSQL: claims rows with `FOR UPDATE SKIP LOCKED`, so several jobs processes never
    /// publish the same row at the same time.
    async fn publish_batch_locked(&self) -> Result<usize, PublishError> {
        let mut tx = self.db.begin().await?;
        let rows: Vec<NotificationRow> = tx
            .query_as(
                "SELECT id, event, payload, tenant_id, recipient_user, created_on, sent_on FROM notifications \
                 WHERE sent_on IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(BATCH)
            .fetch_all()
            .await?;
        let mut n = 0;
        let mut failure = None;
        for row in &rows {
            if let Err(e) = self.deliver(row).await {
                failure = Some(e);
                break;
            }
            mark_sent_in(&mut tx, row.id).await?;
            n += 1;
        }
        tx.commit().await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Sends one row to its audience.
    pub async fn deliver(&self, row: &NotificationRow) -> Result<(), PublishError> {
        let payload = with_id(&row.payload, row.id);
        let message = Arc::new(SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            headers: Default::default(),
            invocation_id: None,
            target: row.event.clone(),
            arguments: vec![Value::Json(payload)],
            stream_ids: Vec::new(),
        })));
        match self.audience {
            Audience::Everyone => self.send(Recipients::All, &message).await?,
            Audience::RootAndRequester => {
                self.send(Recipients::Group(ROOT_GROUP), &message).await?;
                if let Some(user) = &row.recipient_user
                    && !self.is_root_admin(user).await?
                {
                    self.send(Recipients::User(user), &message).await?;
                }
            }
        }
        metrics::counter!("diquis_notifications_published_total", "event" => row.event.clone()).increment(1);
        tracing::info!(id = row.id, event = %row.event, tenant = row.tenant_id.as_deref().unwrap_or(""), "notification published");
        Ok(())
    }

    /// Sends through Redis and waits for its acknowledgement, or delivers in-process.
    async fn send(&self, recipients: Recipients<'_>, message: &Arc<SerializedMessage>) -> Result<(), PublishError> {
        match &self.backplane {
            Backplane::Redis(manager) => {
                manager.send_acknowledged(recipients, message, manager.command_timeout()).await?;
            }
            Backplane::InProcess => match recipients {
                Recipients::All => self.lifetime.send_all(message.clone()).await?,
                Recipients::Group(group) => self.lifetime.send_group(group, message.clone()).await?,
                Recipients::User(user) => self.lifetime.send_user(user, message.clone()).await?,
            },
        }
        Ok(())
    }

    async fn is_root_admin(&self, user_name: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i32> = self
            .db
            .query_scalar(
                "SELECT 1 FROM users u JOIN user_roles r ON r.user_id = u.id \
                 WHERE u.user_name = $1 AND u.tenant_id = $2 AND r.role = $3",
            )
            .bind(user_name)
            .bind(ROOT_TENANT)
            .bind(ROOT_ROLE)
            .fetch_optional()
            .await?;
        Ok(found.is_some())
    }
}

const BATCH: i64 = 100;

async fn mark_sent_in(tx: &mut Tx, id: i64) -> Result<(), sqlx::Error> {
    tx.query("UPDATE notifications SET sent_on = $2 WHERE id = $1").bind(id).bind(chrono::Utc::now()).execute().await?;
    Ok(())
}

/// Why a publish attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading or marking the outbox failed.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The lifetime manager (e.g. the Redis backplane) could not send.
    #[error("send failed: {0}")]
    Send(#[from] signalr::LifetimeError),
    /// The backplane is down; rows wait in the outbox.
    #[error("backplane unavailable: {0}")]
    BackplaneDown(String),
}
