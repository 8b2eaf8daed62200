//! Revocation that takes effect: every access token (Bearer or session cookie) carries the
//! user's security stamp (`sst`) and its session (`sid`, the refresh-token family), and each
//! request and hub connection checks them against the database, as ASP.NET Identity's
//! `SecurityStampValidator` does. The verdicts are cached for [`CHECK_CACHE_TTL`].
//!
//! A revocation ([`Revocation`]: a user, a session, or a whole tenant) is applied at once on
//! this node (its cached verdicts dropped, its open hub connections closed) and announced to the
//! other nodes on an application channel of the Redis server, `{SignalR:ChannelPrefix}Diquis:revocations`,
//! outside the hub's channels (a .NET node sharing the Redis never reads it), through the
//! backplane's own connections ([`signalr_redis::AppChannel`]), so it follows a Sentinel or
//! Redis Cluster failover as the hub's channels do (classic Pub/Sub). Nodes that miss
//! the announcement (Redis away) still refuse the revoked tokens once their cached verdicts
//! expire; only their already open hub connections then stay until the client reconnects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use signalr::HubCallerContext;
use signalr_connections::User;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Identity;
use super::jwt::TokenError;
use super::session::AUTH_COOKIE;
use super::tokens::tenant_is_usable;
use super::users::new_security_stamp;
use crate::db::{Db, Tx};
use crate::state::AppState;

/// How long a verdict on a (user, session, stamp) is reused on a node that was not told of a
/// revocation: the longest a revoked token keeps working there when Redis is away (or without
/// a backplane, on another process).
pub const CHECK_CACHE_TTL: Duration = Duration::from_secs(5);
/// Above this many cached verdicts, expired ones are dropped before adding another.
const CACHE_SWEEP_AT: usize = 50_000;
/// The application channel's name after the channel prefix.
pub const CHANNEL_SUFFIX: &str = "Diquis:revocations";

/// What is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Revocation {
    /// Every session of a user (disabled, deleted, password changed).
    #[serde(rename_all = "camelCase")]
    User {
        /// The user's id.
        user_id: String,
    },
    /// One session (signed out, or a refresh token reused).
    #[serde(rename_all = "camelCase")]
    Session {
        /// The user's id.
        user_id: String,
        /// The refresh-token family.
        session_id: String,
    },
    /// Every session of every user of a tenant (deactivated).
    #[serde(rename_all = "camelCase")]
    Tenant {
        /// The tenant's id.
        tenant_id: String,
    },
}

impl Revocation {
    fn covers(&self, subject: &Subject) -> bool {
        match self {
            Revocation::User { user_id } => *user_id == subject.user_id,
            Revocation::Session { user_id, session_id } => *user_id == subject.user_id && *session_id == subject.session_id,
            Revocation::Tenant { tenant_id } => *tenant_id == subject.tenant,
        }
    }
}

/// What a token claims about its holder, as checked against the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// `uid`.
    pub user_id: String,
    /// `sub`.
    pub user_name: String,
    /// `tenant`.
    pub tenant: String,
    /// `sst`.
    pub security_stamp: String,
    /// `sid`.
    pub session_id: String,
}

impl Subject {
    /// The subject of an identity read from a token.
    pub fn of(identity: &Identity) -> Self {
        Self {
            user_id: identity.user_id.clone(),
            user_name: identity.user_name.clone(),
            tenant: identity.tenant.clone(),
            security_stamp: identity.security_stamp.clone(),
            session_id: identity.session_id.clone(),
        }
    }

    /// The subject of a hub user (claims made by [`super::hub::hub_user`]).
    pub fn of_hub_user(user: &User) -> Option<Self> {
        let claim = |t: &str| user.claims.iter().find(|(ct, _)| ct == t).map(|(_, v)| v.clone());
        Some(Self {
            user_id: claim("uid")?,
            user_name: claim("sub")?,
            tenant: claim("tenant")?,
            security_stamp: claim("sst")?,
            session_id: claim("sid")?,
        })
    }
}

struct Verdict {
    valid: bool,
    at: Instant,
}

struct Inner {
    db: Db,
    verdicts: Mutex<HashMap<Subject, Verdict>>,
    /// The hub connections open on this node, by connection id.
    live: Mutex<HashMap<String, (Subject, HubCallerContext)>>,
    /// Announcements to other nodes (None: no Redis, this node is alone).
    outgoing: Option<mpsc::UnboundedSender<Revocation>>,
    /// Whether the channel's subscription is confirmed (always true without Redis).
    subscribed: watch::Receiver<bool>,
}

/// The revocation checks and announcements of one process; cheap to clone.
#[derive(Clone)]
pub struct Revocations(Arc<Inner>);

impl Revocations {
    /// Checks against `db`; with `redis` (a StackExchange.Redis connection string and the
    /// channel prefix) announcements reach the other nodes. The Redis tasks stop with `shutdown`.
    pub fn new(db: Db, redis: Option<(&str, &str)>, shutdown: CancellationToken) -> Self {
        let (ready_tx, subscribed) = watch::channel(redis.is_none());
        let mut outgoing = None;
        let mut bus = None;
        if let Some((connection_string, prefix)) = redis {
            match channel_for(connection_string, format!("{prefix}{CHANNEL_SUFFIX}")) {
                Ok(channel) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    outgoing = Some(tx);
                    bus = Some((Arc::new(channel), rx));
                }
                Err(e) => tracing::error!(error = %e, "revocations: cannot use the Redis connection string"),
            }
        }
        let this =
            Self(Arc::new(Inner { db, verdicts: Mutex::new(HashMap::new()), live: Mutex::new(HashMap::new()), outgoing, subscribed }));
        if let Some((channel, rx)) = bus {
            tokio::spawn(publish_loop(channel.clone(), rx, shutdown.clone()));
            tokio::spawn(subscribe_loop(channel, Arc::downgrade(&this.0), ready_tx, shutdown));
        }
        this
    }

    /// Waits until announcements from other nodes are received (at once without Redis);
    /// false if `timeout` passed first.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.0.subscribed.clone();
        tokio::time::timeout(timeout, rx.wait_for(|ready| *ready)).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether `identity`'s user and tenant exist and are active, its session is not revoked
    /// and its security stamp is the user's (cached for [`CHECK_CACHE_TTL`]).
    pub async fn check(&self, identity: &Identity) -> Result<(), TokenError> {
        self.check_subject(&Subject::of(identity)).await
    }

    /// [`Revocations::check`] for a subject.
    pub async fn check_subject(&self, subject: &Subject) -> Result<(), TokenError> {
        let cached = self.0.verdicts.lock().get(subject).filter(|v| v.at.elapsed() < CHECK_CACHE_TTL).map(|v| v.valid);
        let valid = match cached {
            Some(valid) => valid,
            None => {
                let valid = match self.query(subject).await {
                    Ok(valid) => valid,
                    Err(e) => {
                        // Neither let a possibly revoked token through nor tell its holder it
                        // is revoked; nothing is cached.
                        tracing::warn!(error = %e, "revocation check failed");
                        return Err(TokenError::Unavailable);
                    }
                };
                let mut verdicts = self.0.verdicts.lock();
                if verdicts.len() >= CACHE_SWEEP_AT {
                    verdicts.retain(|_, v| v.at.elapsed() < CHECK_CACHE_TTL);
                }
                verdicts.insert(subject.clone(), Verdict { valid, at: Instant::now() });
                valid
            }
        };
        if valid { Ok(()) } else { Err(TokenError::Revoked) }
    }

    async fn query(&self, s: &Subject) -> Result<bool, sqlx::Error> {
        type Row = (String, bool, String, String, Option<String>, Option<DateTime<Utc>>);
        let row: Option<Row> = self
            .0
            .db
            .query_as(
                "SELECT u.security_stamp, u.is_active, u.tenant_id, u.user_name, f.user_id, f.revoked_on FROM users u \
                 LEFT JOIN refresh_families f ON f.id = $2 WHERE u.id = $1",
            )
            .bind(&s.user_id)
            .bind(&s.session_id)
            .fetch_optional()
            .await?;
        let Some((stamp, active, tenant, user_name, family_user, family_revoked)) = row else { return Ok(false) };
        let matches = stamp == s.security_stamp
            && active
            && tenant == s.tenant
            && user_name == s.user_name
            && family_user.as_deref() == Some(s.user_id.as_str())
            && family_revoked.is_none();
        Ok(matches && tenant_is_usable(&self.0.db, &tenant).await?)
    }

    /// Applies `revocation` on this node now and announces it to the others.
    pub fn announce(&self, revocation: Revocation) {
        let kind = match &revocation {
            Revocation::User { .. } => "user",
            Revocation::Session { .. } => "session",
            Revocation::Tenant { .. } => "tenant",
        };
        metrics::counter!("diquis_revocations_total", "kind" => kind).increment(1);
        self.0.apply(&revocation);
        if let Some(out) = &self.0.outgoing {
            let _ = out.send(revocation);
        }
    }

    /// Records an open hub connection (closed when a revocation covers it); returns false, and
    /// closes it, when its token was revoked meanwhile.
    pub async fn register(&self, context: HubCallerContext) -> bool {
        let Some(subject) = context.user().and_then(Subject::of_hub_user) else {
            context.abort();
            return false;
        };
        self.0.live.lock().insert(context.connection_id().to_string(), (subject.clone(), context.clone()));
        // A revocation applied between the connect check and the line above found nothing to
        // close; checking again after registering closes that gap.
        if self.check_subject(&subject).await.is_err() {
            self.unregister(context.connection_id());
            context.abort();
            return false;
        }
        true
    }

    /// Forgets a closed hub connection.
    pub fn unregister(&self, connection_id: &str) {
        self.0.live.lock().remove(connection_id);
    }

    /// Ends every session of a user: a new security stamp, every refresh-token family revoked,
    /// announced.
    pub async fn revoke_user(&self, user_id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.0.db.begin().await?;
        revoke_user_in(&mut tx, user_id).await?;
        tx.commit().await?;
        self.announce(Revocation::User { user_id: user_id.to_string() });
        Ok(())
    }

    /// Ends one session and announces it.
    pub async fn revoke_session(&self, user_id: &str, session_id: &str) -> Result<(), sqlx::Error> {
        super::tokens::revoke_session(&self.0.db, session_id).await?;
        self.announce(Revocation::Session { user_id: user_id.to_string(), session_id: session_id.to_string() });
        Ok(())
    }
}

impl Inner {
    fn apply(&self, revocation: &Revocation) {
        self.verdicts.lock().retain(|subject, _| !revocation.covers(subject));
        let doomed: Vec<HubCallerContext> = {
            let mut live = self.live.lock();
            let ids: Vec<String> = live.iter().filter(|(_, (s, _))| revocation.covers(s)).map(|(id, _)| id.clone()).collect();
            ids.iter().filter_map(|id| live.remove(id)).map(|(_, c)| c).collect()
        };
        for context in &doomed {
            context.abort();
        }
        if !doomed.is_empty() {
            metrics::counter!("diquis_revoked_hub_connections_total").increment(doomed.len() as u64);
            tracing::info!(?revocation, closed = doomed.len(), "revocation closed hub connections");
        }
    }
}

/// In `tx`: a new security stamp for the user and every session of it revoked.
pub async fn revoke_user_in(tx: &mut Tx, user_id: &str) -> Result<(), sqlx::Error> {
    tx.query("UPDATE users SET security_stamp = $2 WHERE id = $1").bind(user_id).bind(new_security_stamp()).execute().await?;
    tx.query("UPDATE refresh_families SET revoked_on = $2 WHERE user_id = $1 AND revoked_on IS NULL")
        .bind(user_id)
        .bind(Utc::now())
        .execute()
        .await?;
    Ok(())
}

/// In `tx`: [`revoke_user_in`] for every user of a tenant (its deactivation).
pub async fn revoke_tenant_in(tx: &mut Tx, tenant_id: &str) -> Result<(), sqlx::Error> {
    tx.query("UPDATE users SET security_stamp = $2 WHERE tenant_id = $1").bind(tenant_id).bind(new_security_stamp()).execute().await?;
    tx.query(
        "UPDATE refresh_families SET revoked_on = $2 WHERE revoked_on IS NULL \
         AND user_id IN (SELECT id FROM users WHERE tenant_id = $1)",
    )
    .bind(tenant_id)
    .bind(Utc::now())
    .execute()
    .await?;
    Ok(())
}

/// Middleware of the hub endpoint: no token a hub request carries (Bearer header, `access_token`
/// query, session cookie) may be revoked. The hub's authenticator checks signature and lifetime;
/// this adds the database check, which it cannot make (it is synchronous). Every candidate is
/// read as the connection layer reads it (the scheme and the query key in any letter case, the
/// query key percent-decoded, a cookie value in quotes or with spaces around `=`), so no spelling
/// of a revoked token reaches the layer unchecked.
pub async fn hub_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    for token in hub_tokens(&request) {
        let Ok(identity) = state.jwt.validate(&token) else { continue };
        match state.revocations.check(&identity).await {
            Ok(()) => {}
            Err(TokenError::Unavailable) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "The token cannot be checked now.").into_response();
            }
            Err(_) => return (StatusCode::UNAUTHORIZED, "The token has been revoked.").into_response(),
        }
    }
    next.run(request).await
}

/// Every token a hub request carries, wherever the connection layer could take it from.
fn hub_tokens(request: &Request) -> Vec<String> {
    let headers = request.headers();
    let mut tokens = Vec::new();
    for value in headers.get_all(axum::http::header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()) {
        if let Some((scheme, token)) = value.trim().split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.trim().is_empty()
        {
            tokens.push(token.trim().to_string());
        }
    }
    if let Some(query) = request.uri().query() {
        for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if percent_decode(key).eq_ignore_ascii_case("access_token") {
                tokens.push(percent_decode(value));
            }
        }
    }
    for pair in headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')) {
        if let Some((name, value)) = pair.trim().split_once('=')
            && name.trim() == AUTH_COOKIE
        {
            let value = value.trim();
            tokens.push(value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_string());
        }
    }
    tokens
}

/// A query value as a browser encodes it (`+` is a space).
fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// The revocations channel on the backplane's Redis, through the backplane's own connection
/// machinery: one server, a Sentinel group (the primary followed across failovers) or a Redis
/// Cluster (the channel on its slot's primary, followed across a shard's failover), as the
/// connection string says.
fn channel_for(connection_string: &str, channel: String) -> Result<signalr_redis::AppChannel, ChannelError> {
    let config = signalr_redis::RedisConfig::parse(connection_string)?;
    Ok(signalr_redis::AppChannel::start(signalr_redis::LinkOptions::new(config), channel)?)
}

/// Why the revocations channel could not be set up on Redis.
#[derive(Debug, thiserror::Error)]
enum ChannelError {
    /// The Redis connection string is wrong.
    #[error("{0}")]
    InvalidConnectionString(#[from] signalr_redis::ConfigError),
    /// The Redis client could not be configured (e.g. an unreadable TLS root certificate).
    #[error("Redis client configuration: {0}")]
    Client(#[from] redis::RedisError),
}

async fn publish_loop(bus: Arc<signalr_redis::AppChannel>, mut rx: mpsc::UnboundedReceiver<Revocation>, shutdown: CancellationToken) {
    loop {
        let revocation = tokio::select! {
            _ = shutdown.cancelled() => return bus.shutdown(),
            next = rx.recv() => match next { Some(r) => r, None => return },
        };
        // Queued by the link, held while Redis is away, so the other nodes still hear of it
        // once it is back.
        if let Ok(payload) = serde_json::to_vec(&revocation) {
            bus.publish(payload);
        }
    }
}

async fn subscribe_loop(
    bus: Arc<signalr_redis::AppChannel>,
    inner: std::sync::Weak<Inner>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    bus.first_subscription().await;
    // Ready while the subscriber connection is up (it re-subscribes after every reconnect).
    let mut status = bus.watch_status();
    let watch_ready = async move {
        loop {
            let up = status.borrow_and_update().subscriber_connected;
            if *ready.borrow() != up {
                if !up {
                    tracing::warn!("revocations: Redis subscription lost; reconnecting");
                }
                let _ = ready.send(up);
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    };
    let receive = async {
        while let Some(payload) = bus.recv().await {
            let Some(inner) = inner.upgrade() else { return };
            match serde_json::from_slice::<Revocation>(&payload) {
                Ok(revocation) => inner.apply(&revocation),
                Err(e) => tracing::warn!(error = %e, "revocations: unreadable announcement ignored"),
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = watch_ready => {}
        _ = receive => {}
    }
    bus.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(user: &str, tenant: &str, session: &str) -> Subject {
        Subject {
            user_id: user.into(),
            user_name: format!("{user}.{tenant}"),
            tenant: tenant.into(),
            security_stamp: "s".into(),
            session_id: session.into(),
        }
    }

    #[test]
    fn what_each_revocation_covers() {
        let a = subject("u1", "t1", "f1");
        let b = subject("u1", "t1", "f2");
        let c = subject("u2", "t1", "f3");
        let session = Revocation::Session { user_id: "u1".into(), session_id: "f1".into() };
        assert!(session.covers(&a) && !session.covers(&b) && !session.covers(&c));
        let user = Revocation::User { user_id: "u1".into() };
        assert!(user.covers(&a) && user.covers(&b) && !user.covers(&c));
        let tenant = Revocation::Tenant { tenant_id: "t1".into() };
        assert!(tenant.covers(&a) && tenant.covers(&c) && !tenant.covers(&subject("u3", "t2", "f4")));
    }

    #[test]
    fn announcements_are_json_with_a_kind() {
        let r = Revocation::Session { user_id: "u".into(), session_id: "s".into() };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"kind":"session","userId":"u","sessionId":"s"}"#);
        assert_eq!(serde_json::from_str::<Revocation>(&text).unwrap(), r);
        assert!(serde_json::from_str::<Revocation>(r#"{"kind":"other"}"#).is_err());
    }

    #[test]
    fn hub_tokens_are_read_as_the_connection_layer_reads_them() {
        let request = Request::builder()
            .uri("/hubs/notifications?id=x&ACCESS%5FTOKEN=q1&access_token=q%2E2")
            .header("authorization", "BEARER  h1 ")
            .header("cookie", "a=1; diquis_auth =\"c1\"; diquis_auth=c2")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(hub_tokens(&request), ["h1", "q1", "q.2", "c1", "c2"]);
        let none =
            Request::builder().uri("/hubs/notifications").header("authorization", "Basic x").body(axum::body::Body::empty()).unwrap();
        assert!(hub_tokens(&none).is_empty());
    }

    #[test]
    fn a_wrong_connection_string_keeps_the_parse_error_as_its_cause() {
        use std::error::Error as _;
        let Err(error) = channel_for("localhost,bogus=1", "c".into()) else { panic!("an unknown option is refused") };
        assert!(matches!(error, ChannelError::InvalidConnectionString(_)), "{error:?}");
        let cause = error.source().and_then(|cause| cause.downcast_ref::<signalr_redis::ConfigError>());
        assert!(matches!(cause, Some(signalr_redis::ConfigError::UnknownOption(option)) if option == "bogus"), "{cause:?}");
        assert!(error.to_string().contains("unknown option 'bogus'"), "the log line names the cause: {error}");
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Eb%2e_c-d"), "a.b._c-d");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }
}
