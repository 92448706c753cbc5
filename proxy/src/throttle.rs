//! Login throttling (SECURITY.md R-LOGIN): per account (normalised email) backoff and lockout, per
//! client IP failure bans and a request rate (GCRA), at most one credential check in flight per
//! account, and an "attack mode" that halves the per-IP limits when failures spike across all accounts.
//!
//! The decisions are pure functions of a state and an injected clock ([`ThrottlePolicy`]); the
//! [`AttemptStore`] implementations apply them atomically: `MemoryAttemptStore` under one lock,
//! `RedisAttemptStore` in one Lua script per step, so several proxy replicas sharing Redis agree.
//! Both run the same contract suite (`tests/proxy/throttle_contract.rs`).
//!
//! Protocol per login: [`AttemptStore::begin`] (IP ban, IP rate, account block/lock, in-flight lease,
//! all in one atomic step) → credential check only if allowed → [`AttemptStore::finish`] with the
//! outcome (updates the counters and releases the lease, atomically).

use async_trait::async_trait;

use crate::clock::UnixMillis;
use crate::raw::RawLogin;
use crate::store::StoreError;

mod memory;
mod redis;

pub use self::memory::MemoryAttemptStore;
pub use self::redis::RedisAttemptStore;

/// Throttle settings, all in milliseconds where they are durations (the test profile uses seconds as the
/// time unit, production minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// First block after this many consecutive failures.
    pub backoff_after: u32,
    /// First block length; doubles with each further failure.
    pub backoff_base_ms: i64,
    /// Longest block, and the `Retry-After` of a locked account.
    pub max_wait_ms: i64,
    /// Consecutive failures that lock the account.
    pub max_failures: u32,
    /// Lock until an admin unlocks (true), or block for `max_wait` (false; for deployments that fear
    /// lockout denial of service).
    pub permanent_lock: bool,
    /// Failures older than this are forgotten (temporary state only).
    pub failure_reset_ms: i64,
    /// How long one in-flight credential check holds the account's lease.
    pub inflight_lease_ms: i64,
    /// Failures from one IP within `ip_window` that ban it for `ip_ban`.
    pub ip_max_failures: u32,
    pub ip_window_ms: i64,
    pub ip_ban_ms: i64,
    /// Login requests per minute per IP (successes included), GCRA with a burst of the same size.
    pub ip_rate_per_minute: u32,
    /// Failures per minute across all accounts above which per-IP limits are halved.
    pub attack_threshold_per_minute: u32,
}

impl Default for ThrottlePolicy {
    /// The defaults of SECURITY.md R-LOGIN.
    fn default() -> Self {
        Self {
            backoff_after: 3,
            backoff_base_ms: 60_000,
            max_wait_ms: 3_600_000,
            max_failures: 10,
            permanent_lock: true,
            failure_reset_ms: 12 * 3_600_000,
            inflight_lease_ms: 5_000,
            ip_max_failures: 20,
            ip_window_ms: 600_000,
            ip_ban_ms: 900_000,
            ip_rate_per_minute: 30,
            attack_threshold_per_minute: 300,
        }
    }
}

/// What is stored per account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountState {
    pub fail_count: u32,
    pub last_fail_at_ms: i64,
    pub blocked_until_ms: i64,
    pub locked: bool,
}

/// Why an attempt was refused (for metrics and logs; the client always sees the same 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// Temporary block after repeated failures.
    Backoff,
    /// Locked until an admin unlocks.
    Locked,
    /// Another check for the account is in flight.
    InFlight,
    IpBanned,
    IpRate,
}

impl ThrottleReason {
    /// `edge_proxy_login_attempts_total{result}` for a refused attempt.
    pub fn result_label(self) -> &'static str {
        match self {
            Self::Locked => "locked",
            _ => "throttled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Go ahead and verify; the lease is held until `finish`.
    Allowed,
    Throttled {
        reason: ThrottleReason,
        retry_after_ms: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The check could not be made (upstream error): release the lease, count nothing.
    Abandoned,
}

/// What a finished attempt changed (for metrics and the security log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    pub state: AccountState,
    /// This failure locked the account.
    pub locked_now: bool,
    /// This failure started a block.
    pub blocked_now: bool,
    /// This failure banned the IP.
    pub ip_banned_now: bool,
}

impl ThrottlePolicy {
    /// The state as it stands at `now`: temporary failures older than the reset window are forgotten.
    pub fn current(&self, s: AccountState, now: i64) -> AccountState {
        if !s.locked && s.fail_count > 0 && now - s.last_fail_at_ms > self.failure_reset_ms {
            AccountState::default()
        } else {
            s
        }
    }

    /// Is an attempt on this account refused right now (R-LOGIN-2)?
    pub fn refusal(&self, s: AccountState, now: i64) -> Option<(ThrottleReason, i64)> {
        let s = self.current(s, now);
        if s.locked {
            // A lock answers like the longest backoff, so lock and block look the same (R-LOGIN-5).
            return Some((ThrottleReason::Locked, self.max_wait_ms));
        }
        (s.blocked_until_ms > now).then(|| (ThrottleReason::Backoff, s.blocked_until_ms - now))
    }

    /// The state after one more failure at `now` (R-LOGIN-1).
    pub fn after_failure(&self, s: AccountState, now: i64) -> AccountState {
        let s = self.current(s, now);
        let k = s.fail_count.saturating_add(1);
        let mut next = AccountState {
            fail_count: k,
            last_fail_at_ms: now,
            blocked_until_ms: 0,
            locked: false,
        };
        if k >= self.backoff_after {
            let doublings = (k - self.backoff_after).min(40);
            let wait = self
                .backoff_base_ms
                .saturating_mul(1_i64 << doublings)
                .min(self.max_wait_ms);
            next.blocked_until_ms = now + wait;
        }
        if k >= self.max_failures {
            if self.permanent_lock {
                next.locked = true;
            } else {
                next.blocked_until_ms = now + self.max_wait_ms;
            }
        }
        next
    }

    /// Per-IP limits in force: halved in attack mode.
    pub fn ip_limits(&self, attack: bool) -> (u32, u32) {
        if attack {
            (
                (self.ip_max_failures / 2).max(1),
                (self.ip_rate_per_minute / 2).max(1),
            )
        } else {
            (self.ip_max_failures, self.ip_rate_per_minute)
        }
    }

    /// Is the failure count of the current and the previous minute over the attack threshold?
    pub fn attack_mode(&self, failures_this_minute: u64, failures_last_minute: u64) -> bool {
        let t = u64::from(self.attack_threshold_per_minute);
        failures_this_minute > t || failures_last_minute > t
    }
}

/// GCRA: `rate` requests per minute with a burst of `rate`. `tat` is the stored theoretical arrival time
/// (0 = none). Returns the new TAT when allowed, or the wait in ms when not.
pub fn gcra(tat: i64, now: i64, rate_per_minute: u32) -> Result<i64, i64> {
    let emission = 60_000 / i64::from(rate_per_minute.max(1));
    let tolerance = emission * i64::from(rate_per_minute.max(1));
    let new_tat = tat.max(now) + emission;
    let allow_at = new_tat - tolerance;
    if now < allow_at {
        Err(allow_at - now)
    } else {
        Ok(new_tat)
    }
}

/// Milliseconds rounded up to whole seconds, at least 1, for `Retry-After`.
pub fn retry_after_secs(ms: i64) -> u64 {
    u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
}

/// The minute index of `now_ms`, for the global failure counters.
pub fn minute(now_ms: i64) -> i64 {
    now_ms.div_euclid(60_000)
}

/// Upper bound of `login.max_failures`: NIST SP 800-63B 5.2.2 and ASVS V2.2.1 allow at most 100.
pub const MAX_LOGIN_FAILURES: u32 = 100;

impl ThrottlePolicy {
    /// Validates `[login]` (problems joined into one message).
    pub fn from_raw(l: &RawLogin) -> Result<Self, String> {
        let mut problems = Vec::new();
        if l.max_concurrent_checks == 0 {
            problems.push("login.max_concurrent_checks: must be at least 1".to_owned());
        }
        if l.backoff_after == 0 {
            problems.push("login.backoff_after: must be at least 1".to_owned());
        }
        if l.max_failures == 0 || l.max_failures > MAX_LOGIN_FAILURES {
            problems.push(format!(
                "login.max_failures: must be between 1 and {MAX_LOGIN_FAILURES}"
            ));
        }
        if l.max_failures < l.backoff_after {
            problems.push("login.max_failures: must not be below login.backoff_after".to_owned());
        }
        for (key, v) in [
            ("login.backoff_base_seconds", l.backoff_base_seconds),
            ("login.max_wait_seconds", l.max_wait_seconds),
            ("login.failure_reset_seconds", l.failure_reset_seconds),
            ("login.inflight_lease_ms", l.inflight_lease_ms),
            ("login.ip.window_seconds", l.ip.window_seconds),
            ("login.ip.ban_seconds", l.ip.ban_seconds),
        ] {
            if v == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        if l.max_wait_seconds < l.backoff_base_seconds {
            problems.push(
                "login.max_wait_seconds: must not be below login.backoff_base_seconds".to_owned(),
            );
        }
        if l.ip.max_failures == 0
            || l.ip.rate_per_minute == 0
            || l.global.attack_threshold_per_minute == 0
        {
            problems.push("login.ip.max_failures, login.ip.rate_per_minute and login.global.attack_threshold_per_minute: must be at least 1".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(Self {
            backoff_after: l.backoff_after,
            backoff_base_ms: ms(l.backoff_base_seconds),
            max_wait_ms: ms(l.max_wait_seconds),
            max_failures: l.max_failures,
            permanent_lock: l.permanent_lock,
            failure_reset_ms: ms(l.failure_reset_seconds),
            inflight_lease_ms: i64::try_from(l.inflight_lease_ms).unwrap_or(i64::MAX),
            ip_max_failures: l.ip.max_failures,
            ip_window_ms: ms(l.ip.window_seconds),
            ip_ban_ms: ms(l.ip.ban_seconds),
            ip_rate_per_minute: l.ip.rate_per_minute,
            attack_threshold_per_minute: l.global.attack_threshold_per_minute,
        })
    }
}

/// One login attempt, as the throttle keys it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The normalised account (never logged raw).
    pub account: &'a str,
    pub ip: &'a str,
    /// The request id: the in-flight lease's holder.
    pub id: &'a str,
}

/// Store methods take the current time last, as [`UnixMillis`].
#[async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Atomically: IP ban, IP rate, account block/lock, and the account's in-flight lease for the
    /// attempt.
    async fn begin(&self, attempt: &Attempt<'_>, now: UnixMillis) -> Result<Begin, StoreError>;
    /// Atomically: record the outcome and release the lease held by the attempt.
    async fn finish(
        &self,
        attempt: &Attempt<'_>,
        outcome: Outcome,
        now: UnixMillis,
    ) -> Result<Finished, StoreError>;
    /// The account's state (admin).
    async fn account(&self, account: &str, now: UnixMillis) -> Result<AccountState, StoreError>;
    /// Clears every trace of the account (admin unlock, R-LOGIN-4).
    async fn unlock(&self, account: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests;
