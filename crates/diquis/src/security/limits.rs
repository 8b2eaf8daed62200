//! Sign-in throttling: token-bucket rate limits per client address and per account (governor),
//! and Identity's lockout (an account refuses sign-ins for a while after repeated failures).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::db::Db;

use super::settings::{LockoutSettings, RateLimit};

/// How often (in checks or failures) idle keys are dropped from the limiters and the lockout table.
const SWEEP_EVERY: u64 = 1024;
/// Failure counts of accounts not tried for this long are forgotten (storage, not policy: the
/// rate limits bound how fast an attacker fails anyway).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A keyed token bucket: `permit_limit` requests per `window`, refilling evenly.
pub struct KeyedLimit<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedLimit<K> {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        let permits = NonZeroU32::new(limit.permit_limit).unwrap_or(NonZeroU32::MIN);
        let period = (limit.window / permits.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(permits)).allow_burst(permits);
        Self { limiter: RateLimiter::keyed(quota), checks: AtomicU64::new(0) }
    }

    /// Takes one permit for `key`, or says how long until one is free.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Identity's lockout, per account (tenant and normalised email, whether or not the account
/// exists, so that a lockout does not reveal which accounts exist). Kept in the database
/// (`sign_in_failures`, the key hashed), so that every process of a deployment counts the same
/// failures and a restart forgets nothing.
pub struct Lockout {
    settings: LockoutSettings,
    writes: AtomicU64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The stored form of an account key: its SHA-256 (the table holds no email addresses).
fn stored_key(account: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(account.as_bytes()))
}

impl Lockout {
    /// A lockout with `settings` (`max_failed_access_attempts` 0: never locks).
    pub fn new(settings: LockoutSettings) -> Self {
        Self { settings, writes: AtomicU64::new(0) }
    }

    /// How long `account` stays locked, if it is.
    pub async fn locked_for(&self, db: &Db, account: &str) -> Result<Option<Duration>, sqlx::Error> {
        if self.settings.max_failed_access_attempts == 0 {
            return Ok(None);
        }
        let key = stored_key(account);
        let until: Option<Option<i64>> =
            db.query_scalar("SELECT locked_until FROM sign_in_failures WHERE account = $1").bind(&key).fetch_optional().await?;
        let left = until.flatten().map(|until| until - now_ms()).filter(|ms| *ms > 0);
        Ok(left.map(|ms| Duration::from_millis(ms as u64)))
    }

    /// Counts a failed sign-in; returns the lockout's length when this failure locks the account.
    pub async fn failed(&self, db: &Db, account: &str) -> Result<Option<Duration>, sqlx::Error> {
        if self.settings.max_failed_access_attempts == 0 {
            return Ok(None);
        }
        let key = stored_key(account);
        let now = now_ms();
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let forget_before = now - FORGET_AFTER.as_millis() as i64;
            db.query("DELETE FROM sign_in_failures WHERE last_failure < $1 AND (locked_until IS NULL OR locked_until < $2)")
                .bind(forget_before)
                .bind(now)
                .execute()
                .await
                .map(drop)?;
        }
        // Failures reach here only while the account is not locked: a lock still recorded has
        // ended, and the count starts again (as Identity's does once it locks).
        let failures: i64 = db
            .query_scalar(
                "INSERT INTO sign_in_failures (account, failures, locked_until, last_failure) VALUES ($1, 1, NULL, $2) \
                 ON CONFLICT (account) DO UPDATE SET \
                 failures = CASE WHEN sign_in_failures.locked_until IS NULL THEN sign_in_failures.failures + 1 ELSE 1 END, \
                 locked_until = NULL, last_failure = excluded.last_failure \
                 RETURNING failures",
            )
            .bind(&key)
            .bind(now)
            .fetch_one()
            .await?;
        if failures < i64::from(self.settings.max_failed_access_attempts) {
            return Ok(None);
        }
        let length = self.settings.lockout_time_span;
        let until = now + length.as_millis() as i64;
        db.query("UPDATE sign_in_failures SET failures = 0, locked_until = $2 WHERE account = $1")
            .bind(&key)
            .bind(until)
            .execute()
            .await
            .map(drop)?;
        Ok(Some(length))
    }

    /// A successful sign-in clears the account's failures.
    pub async fn succeeded(&self, db: &Db, account: &str) -> Result<(), sqlx::Error> {
        let key = stored_key(account);
        db.query("DELETE FROM sign_in_failures WHERE account = $1").bind(&key).execute().await.map(drop)?;
        Ok(())
    }
}

/// The key of an account in the limits: tenant and email, case-insensitive.
pub fn account_key(tenant: &str, email: &str) -> String {
    format!("{}\u{0}{}", tenant.trim().to_lowercase(), email.trim().to_lowercase())
}

/// The per-address and per-account limits and the lockout of a process.
pub struct SignInLimits {
    /// Per client address, on every sign-in and refresh endpoint.
    pub by_address: KeyedLimit<IpAddr>,
    /// Per account, on the sign-in endpoints.
    pub by_account: KeyedLimit<String>,
    /// Failed sign-ins in a row.
    pub lockout: Lockout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_limit_and_says_how_long() {
        let limit = KeyedLimit::new(RateLimit { permit_limit: 3, window: Duration::from_secs(60) });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(&a).is_ok());
        }
        let wait = limit.check(&a).unwrap_err();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limit.check(&b).is_ok(), "another address has its own bucket");
    }

    #[tokio::test]
    async fn lockout_after_max_failures_and_success_resets() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&crate::config::DatabaseTarget::Sqlite { path: dir.path().join("lockout.db") }).await.unwrap();
        let lockout = Lockout::new(LockoutSettings { max_failed_access_attempts: 3, lockout_time_span: Duration::from_secs(300) });
        let k = account_key("root", "A@x.test");
        assert_eq!(k, account_key(" ROOT", "a@X.test "));
        assert_eq!(lockout.failed(&db, &k).await.unwrap(), None);
        assert_eq!(lockout.failed(&db, &k).await.unwrap(), None);
        lockout.succeeded(&db, &k).await.unwrap();
        assert_eq!(lockout.failed(&db, &k).await.unwrap(), None);
        assert_eq!(lockout.failed(&db, &k).await.unwrap(), None);
        assert_eq!(lockout.locked_for(&db, &k).await.unwrap(), None);
        assert_eq!(lockout.failed(&db, &k).await.unwrap(), Some(Duration::from_secs(300)));
        // Another process (another Lockout on the same database) sees the lock.
        let other = Lockout::new(LockoutSettings { max_failed_access_attempts: 3, lockout_time_span: Duration::from_secs(300) });
        let left = other.locked_for(&db, &k).await.unwrap().unwrap();
        assert!(left > Duration::from_secs(290), "{left:?}");
        assert!(other.locked_for(&db, &account_key("root", "b@x.test")).await.unwrap().is_none());
        let stored: Vec<String> = db.query_scalar("SELECT account FROM sign_in_failures").fetch_all().await.unwrap();
        assert!(stored.iter().all(|a| !a.contains('@') && a.len() == 64), "hashed keys: {stored:?}");
        let never = Lockout::new(LockoutSettings { max_failed_access_attempts: 0, lockout_time_span: Duration::from_secs(1) });
        for _ in 0..10 {
            assert_eq!(never.failed(&db, &k).await.unwrap(), None);
        }
    }
}
