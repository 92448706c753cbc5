//! `MemoryAttemptStore`: login throttling state for a single proxy (the embedded default). Every step
//! runs under one lock, so `begin` and `finish` are as atomic as the Redis scripts. Stale entries are
//! swept every `SWEEP_EVERY` operations; locked accounts stay until an admin unlocks them.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    gcra, minute, AccountState, Attempt, AttemptStore, Begin, Finished, Outcome, ThrottlePolicy,
    ThrottleReason,
};
use crate::clock::UnixMillis;
use crate::store::StoreError;

/// Operations between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
struct State {
    accounts: HashMap<String, AccountState>,
    /// account → (attempt id, lease end)
    leases: HashMap<String, (String, i64)>,
    /// ip → (failures, window end)
    ip_failures: HashMap<String, (u32, i64)>,
    /// ip → ban end
    ip_bans: HashMap<String, i64>,
    /// ip → GCRA theoretical arrival time
    ip_tat: HashMap<String, i64>,
    /// minute → failures across all accounts
    global: HashMap<i64, u64>,
    ops: u64,
}

impl State {
    fn sweep(&mut self, policy: &ThrottlePolicy, now: i64) {
        self.accounts.retain(|_, s| {
            s.locked || now - s.last_fail_at_ms <= policy.failure_reset_ms + policy.max_wait_ms
        });
        self.leases.retain(|_, (_, until)| *until > now);
        self.ip_failures.retain(|_, (_, end)| *end > now);
        self.ip_bans.retain(|_, until| *until > now);
        self.ip_tat.retain(|_, tat| *tat > now);
        let m = minute(now);
        self.global.retain(|k, _| *k >= m - 1);
    }

    fn attack(&self, policy: &ThrottlePolicy, now: i64) -> bool {
        let m = minute(now);
        let count = |k| self.global.get(&k).copied().unwrap_or(0);
        policy.attack_mode(count(m), count(m - 1))
    }
}

pub struct MemoryAttemptStore {
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

impl MemoryAttemptStore {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self, now: i64) -> parking_lot::MutexGuard<'_, State> {
        let mut s = self.state.lock();
        s.ops += 1;
        if s.ops.is_multiple_of(SWEEP_EVERY) {
            s.sweep(&self.policy, now);
        }
        s
    }
}

#[async_trait]
impl AttemptStore for MemoryAttemptStore {
    async fn begin(&self, a: &Attempt<'_>, now: UnixMillis) -> Result<Begin, StoreError> {
        let (account, ip, attempt, now) = (a.account, a.ip, a.id, now.get());
        let p = &self.policy;
        let mut s = self.lock(now);
        if let Some(until) = s.ip_bans.get(ip).copied().filter(|u| *u > now) {
            return Ok(Begin::Throttled {
                reason: ThrottleReason::IpBanned,
                retry_after_ms: until - now,
            });
        }
        let (_, rate) = p.ip_limits(s.attack(p, now));
        let tat = s.ip_tat.get(ip).copied().unwrap_or(0);
        match gcra(tat, now, rate) {
            Ok(new_tat) => {
                s.ip_tat.insert(ip.to_owned(), new_tat);
            }
            Err(wait) => {
                return Ok(Begin::Throttled {
                    reason: ThrottleReason::IpRate,
                    retry_after_ms: wait,
                });
            }
        }
        let state = s.accounts.get(account).copied().unwrap_or_default();
        if let Some((reason, retry_after_ms)) = p.refusal(state, now) {
            return Ok(Begin::Throttled {
                reason,
                retry_after_ms,
            });
        }
        if let Some((holder, until)) = s.leases.get(account) {
            if *until > now && holder != attempt {
                return Ok(Begin::Throttled {
                    reason: ThrottleReason::InFlight,
                    retry_after_ms: until - now,
                });
            }
        }
        s.leases.insert(
            account.to_owned(),
            (attempt.to_owned(), now + p.inflight_lease_ms),
        );
        Ok(Begin::Allowed)
    }

    async fn finish(
        &self,
        a: &Attempt<'_>,
        outcome: Outcome,
        now: UnixMillis,
    ) -> Result<Finished, StoreError> {
        let (account, ip, attempt, now) = (a.account, a.ip, a.id, now.get());
        let p = &self.policy;
        let mut s = self.lock(now);
        if s.leases
            .get(account)
            .is_some_and(|(holder, _)| holder == attempt)
        {
            s.leases.remove(account);
        }
        match outcome {
            Outcome::Success => {
                s.accounts.remove(account);
                Ok(Finished::default())
            }
            Outcome::Abandoned => Ok(Finished {
                state: p.current(s.accounts.get(account).copied().unwrap_or_default(), now),
                ..Finished::default()
            }),
            Outcome::Failure => {
                let prev = p.current(s.accounts.get(account).copied().unwrap_or_default(), now);
                let next = p.after_failure(prev, now);
                s.accounts.insert(account.to_owned(), next);
                let (limit, _) = p.ip_limits(s.attack(p, now));
                let entry = s
                    .ip_failures
                    .entry(ip.to_owned())
                    .or_insert((0, now + p.ip_window_ms));
                if entry.1 <= now {
                    *entry = (0, now + p.ip_window_ms);
                }
                entry.0 += 1;
                let ip_banned_now = entry.0 >= limit;
                if ip_banned_now {
                    s.ip_failures.remove(ip);
                    s.ip_bans.insert(ip.to_owned(), now + p.ip_ban_ms);
                }
                *s.global.entry(minute(now)).or_insert(0) += 1;
                Ok(Finished {
                    state: next,
                    locked_now: next.locked && !prev.locked,
                    blocked_now: next.blocked_until_ms > now && prev.blocked_until_ms <= now,
                    ip_banned_now,
                })
            }
        }
    }

    async fn account(&self, account: &str, now: UnixMillis) -> Result<AccountState, StoreError> {
        let now = now.get();
        let s = self.lock(now);
        Ok(self
            .policy
            .current(s.accounts.get(account).copied().unwrap_or_default(), now))
    }

    async fn unlock(&self, account: &str) -> Result<(), StoreError> {
        let mut s = self.state.lock();
        s.accounts.remove(account);
        s.leases.remove(account);
        Ok(())
    }
}
