//! Password hashing (argon2id, on blocking threads) and the credential check the proxy calls.
//!
//! Unknown and disabled users are verified against a dummy hash with the same parameters, so the
//! answer's latency does not tell whether an account exists (zero2prod `validate_credentials`).
//! A semaphore bounds concurrent hashes: each takes `memory_kib` of RAM, and a flood of logins must not
//! turn into a flood of allocations.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;
use crate::domain::{Email, UserCredentials};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("argon2 parameters rejected: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("hashing pool closed")]
    Closed,
}

/// Hashes and verifies passwords with one argon2id configuration.
pub struct Passwords {
    argon: Argon2<'static>,
    dummy_hash: String,
    permits: Semaphore,
    /// Argon2 computations done (hashes and verifications, dummy ones included).
    computed: std::sync::atomic::AtomicU64,
}

impl Passwords {
    pub fn from_config(cfg: &PasswordConfig) -> Result<Arc<Self>, CredentialError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| CredentialError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon
            .hash_password(b"dummy password for unknown accounts", &salt)
            .map_err(|e| CredentialError::Hash(e.to_string()))?
            .to_string();
        Ok(Arc::new(Self {
            argon,
            dummy_hash,
            permits: Semaphore::new(cfg.max_concurrent_hashes),
            computed: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// How many argon2 computations ran; every credential check must add exactly one.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A PHC string for a new password.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, CredentialError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CredentialError::Closed)?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            this.computed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let salt = SaltString::generate(&mut OsRng);
            this.argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CredentialError::Hash(e.to_string()))
        })
        .await?
    }

    /// True when `password` matches `stored`; with `stored = None` the dummy hash does the same work.
    pub async fn verify(
        self: &Arc<Self>,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, CredentialError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CredentialError::Closed)?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let known = stored.is_some();
            let phc = stored.unwrap_or_else(|| this.dummy_hash.clone());
            // A corrupt stored hash still costs one verification (against the dummy), then refuses.
            let (parsed, usable) = match PasswordHash::new(&phc) {
                Ok(p) => (p, known),
                Err(_) => match PasswordHash::new(&this.dummy_hash) {
                    Ok(p) => (p, false),
                    Err(_) => return false,
                },
            };
            // Always run the verification, and only then look at `usable`: testing `usable` first
            // would skip the work for unknown accounts and let the answer's timing tell.
            this.computed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let matches = this
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            matches && usable
        })
        .await
        .map_err(CredentialError::from)
    }
}

/// The credential check: `Some(user)` only for an enabled user whose password matches.
pub async fn check(
    store: &dyn Store,
    passwords: &Arc<Passwords>,
    email: &Email,
    password: String,
) -> anyhow::Result<Option<UserCredentials>> {
    let user = store.user_credentials(email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = passwords.verify(stored, password).await?;
    Ok(user.filter(|u| ok && !u.disabled))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Arc<Passwords> {
        Passwords::from_config(&PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 2,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = cheap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p
            .verify(Some(h.clone()), "correct horse".into())
            .await
            .unwrap());
        assert!(!p.verify(Some(h), "wrong horse".into()).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_users_never_verify_even_with_the_dummy_password() {
        let p = cheap();
        assert!(!p
            .verify(None, "dummy password for unknown accounts".into())
            .await
            .unwrap());
        assert!(!p
            .verify(Some("not a phc string".into()), "x".into())
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn unknown_and_corrupt_accounts_cost_the_same_argon2_work_as_known_ones() {
        let p = cheap();
        let known = p.hash("correct horse".into()).await.unwrap();
        let before = p.computed();
        let _ = p.verify(Some(known), "wrong".into()).await.unwrap();
        let _ = p.verify(None, "wrong".into()).await.unwrap();
        let _ = p
            .verify(Some("corrupt".into()), "wrong".into())
            .await
            .unwrap();
        assert_eq!(
            p.computed() - before,
            3,
            "one verification each, whether the account exists or not"
        );
    }
}
