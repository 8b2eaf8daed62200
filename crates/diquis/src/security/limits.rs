//! Sign-in throttling: token-bucket rate limits per client address and per account (governor),
//! and Identity's lockout (an account refuses sign-ins for a while after repeated failures).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::settings::{LockoutSettings, RateLimit};

/// How often (in checks) idle keys are dropped from the limiters and the lockout table.
const SWEEP_EVERY: u64 = 1024;
/// Failure counts of accounts not tried for this long are forgotten (memory, not policy: the
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

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Identity's lockout, per account (tenant and normalised email, whether or not the account
/// exists, so that a lockout does not reveal which accounts exist). Kept in the process.
pub struct Lockout {
    settings: LockoutSettings,
    accounts: Mutex<HashMap<String, Failures>>,
    writes: AtomicU64,
}

impl Lockout {
    /// A lockout with `settings` (`max_failed_access_attempts` 0: never locks).
    pub fn new(settings: LockoutSettings) -> Self {
        Self { settings, accounts: Mutex::new(HashMap::new()), writes: AtomicU64::new(0) }
    }

    /// How long `account` stays locked, if it is.
    pub fn locked_for(&self, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let accounts = self.accounts.lock();
        accounts.get(account).and_then(|f| f.locked_until).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())
    }

    /// Counts a failed sign-in; returns the lockout's length when this failure locks the account.
    pub fn failed(&self, account: &str) -> Option<Duration> {
        if self.settings.max_failed_access_attempts == 0 {
            return None;
        }
        let now = Instant::now();
        let mut accounts = self.accounts.lock();
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            accounts.retain(|_, f| f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.last) < FORGET_AFTER);
        }
        let entry = accounts.entry(account.to_string()).or_insert(Failures { count: 0, locked_until: None, last: now });
        if entry.locked_until.is_some_and(|u| u <= now) {
            entry.locked_until = None;
        }
        entry.count += 1;
        entry.last = now;
        if entry.count >= self.settings.max_failed_access_attempts {
            // Like Identity: the count starts again once the account is locked.
            entry.count = 0;
            entry.locked_until = Some(now + self.settings.lockout_time_span);
            return Some(self.settings.lockout_time_span);
        }
        None
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.accounts.lock().remove(account);
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

    #[test]
    fn lockout_after_max_failures_and_success_resets() {
        let lockout = Lockout::new(LockoutSettings { max_failed_access_attempts: 3, lockout_time_span: Duration::from_secs(300) });
        let k = account_key("root", "A@x.test");
        assert_eq!(k, account_key(" ROOT", "a@X.test "));
        assert_eq!(lockout.failed(&k), None);
        assert_eq!(lockout.failed(&k), None);
        lockout.succeeded(&k);
        assert_eq!(lockout.failed(&k), None);
        assert_eq!(lockout.failed(&k), None);
        assert_eq!(lockout.failed(&k), Some(Duration::from_secs(300)));
        let left = lockout.locked_for(&k).unwrap();
        assert!(left > Duration::from_secs(290));
        assert!(lockout.locked_for(&account_key("root", "b@x.test")).is_none());
        let never = Lockout::new(LockoutSettings { max_failed_access_attempts: 0, lockout_time_span: Duration::from_secs(1) });
        for _ in 0..10 {
            assert_eq!(never.failed(&k), None);
        }
    }
}
