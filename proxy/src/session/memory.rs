//! `MemorySessionStore`: the in-process allowlist for a single proxy (the embedded default).
//! Expired entries are dropped lazily on access and swept in bulk every `SWEEP_EVERY` inserts, so memory
//! stays bounded by the number of live tokens without a background task.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{SessionStatus, SessionStore, StoreError, TokenRef};
use crate::clock::UnixSecs;

/// Inserts between two sweeps of expired entries; amortises the O(n) sweep to O(1) per insert.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
struct State {
    /// jti → (sub, exp)
    tokens: HashMap<String, (String, i64)>,
    /// sub → jtis
    by_user: HashMap<String, HashSet<String>>,
    /// sub → (not-before, expires)
    user_nbf: HashMap<String, (i64, i64)>,
    /// (issuer, jti) → denied until
    denied: HashMap<(String, String), i64>,
    /// (issuer, sub) → (not-before, expires)
    external_nbf: HashMap<(String, String), (i64, i64)>,
    inserts: u64,
}

impl State {
    fn sweep(&mut self, now: i64) {
        let expired: Vec<(String, String)> = self
            .tokens
            .iter()
            .filter(|(_, (_, exp))| *exp <= now)
            .map(|(j, (s, _))| (j.clone(), s.clone()))
            .collect();
        for (jti, sub) in expired {
            self.remove(&jti, &sub);
        }
        self.user_nbf.retain(|_, (_, until)| *until > now);
        self.denied.retain(|_, until| *until > now);
        self.external_nbf.retain(|_, (_, until)| *until > now);
    }

    fn remove(&mut self, jti: &str, sub: &str) {
        self.tokens.remove(jti);
        if let Some(set) = self.by_user.get_mut(sub) {
            set.remove(jti);
            if set.is_empty() {
                self.by_user.remove(sub);
            }
        }
    }
}

#[derive(Default)]
pub struct MemorySessionStore {
    state: Mutex<State>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Live entries (tests check that memory does not grow without bound).
    pub fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn insert(
        &self,
        token: &TokenRef<'_>,
        exp: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let (jti, sub, exp, now) = (token.jti, token.sub, exp.get(), now.get());
        let mut s = self.lock();
        s.inserts += 1;
        if s.inserts.is_multiple_of(SWEEP_EVERY) {
            s.sweep(now);
        }
        s.tokens.insert(jti.to_owned(), (sub.to_owned(), exp));
        s.by_user
            .entry(sub.to_owned())
            .or_default()
            .insert(jti.to_owned());
        Ok(())
    }

    async fn status(
        &self,
        token: &TokenRef<'_>,
        now: UnixSecs,
    ) -> Result<SessionStatus, StoreError> {
        let (jti, sub, iat, now) = (token.jti, token.sub, token.iat.get(), now.get());
        let s = self.lock();
        let live = s
            .tokens
            .get(jti)
            .is_some_and(|(owner, exp)| owner == sub && *exp > now);
        let before_revoke_all = s
            .user_nbf
            .get(sub)
            .is_some_and(|(nbf, until)| *until > now && iat < *nbf);
        Ok(if live && !before_revoke_all {
            SessionStatus::Active
        } else {
            SessionStatus::Revoked
        })
    }

    async fn revoke(&self, jti: &str, sub: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.tokens.get(jti).is_some_and(|(owner, _)| owner == sub) {
            s.remove(jti, sub);
        }
        Ok(())
    }

    async fn revoke_all(
        &self,
        sub: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        if let Some(jtis) = s.by_user.remove(sub) {
            for j in jtis {
                s.tokens.remove(&j);
            }
        }
        s.user_nbf.insert(sub.to_owned(), (now.get(), until.get()));
        Ok(())
    }

    async fn revoke_jti(&self, jti: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some((sub, _)) = s.tokens.get(jti).cloned() else {
            return Ok(false);
        };
        s.remove(jti, &sub);
        Ok(true)
    }

    async fn external_status(
        &self,
        issuer: &str,
        token: &TokenRef<'_>,
        now: UnixSecs,
    ) -> Result<SessionStatus, StoreError> {
        let (jti, sub, iat, now) = (token.jti, token.sub, token.iat.get(), now.get());
        let s = self.lock();
        let denied = s
            .denied
            .get(&(issuer.to_owned(), jti.to_owned()))
            .is_some_and(|until| *until > now);
        let before_revoke_all = s
            .external_nbf
            .get(&(issuer.to_owned(), sub.to_owned()))
            .is_some_and(|(nbf, until)| *until > now && iat <= *nbf);
        Ok(if denied || before_revoke_all {
            SessionStatus::Revoked
        } else {
            SessionStatus::Active
        })
    }

    async fn deny(
        &self,
        issuer: &str,
        jti: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let (until, now) = (until.get(), now.get());
        let mut s = self.lock();
        s.inserts += 1;
        if s.inserts.is_multiple_of(SWEEP_EVERY) {
            s.sweep(now);
        }
        let entry = s
            .denied
            .entry((issuer.to_owned(), jti.to_owned()))
            .or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    async fn deny_user(
        &self,
        issuer: &str,
        sub: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.external_nbf.insert(
            (issuer.to_owned(), sub.to_owned()),
            (now.get(), until.get()),
        );
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
