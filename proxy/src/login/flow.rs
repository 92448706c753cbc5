//! The login flow (`POST /auth/login`, R-LOGIN, DESIGN.md section 3): strict body → a bounded
//! credential-check slot → throttle check-and-reserve → credential check upstream (with the proxy's
//! service assertion) → record the outcome → mint and record the session. It gets the body and the
//! client and returns the minted token or the refusal; the gateway writes either.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::clock::{UnixMillis, UnixSecs};
use crate::error::ProxyError;
use crate::login::credentials::{
    email_of_malformed, normalise_account, CredentialClient, LoginRequest, VerifiedUser,
    VerifyError,
};
use crate::obs::metrics::Metrics;
use crate::session::{SessionStore, TokenRef};
use crate::throttle::{retry_after_secs, Attempt, AttemptStore, Begin, Outcome};
use crate::tokens::assertion::{Asserter, Subject, SERVICE_SUBJECT};
use crate::tokens::own::{Minted, TokenService};

/// Where credential checks go: the login pool's next healthy peer.
pub(crate) trait PeerSource: Send + Sync {
    fn select(&self) -> Option<SocketAddr>;
    /// The pool's name (the service assertion's audience).
    fn name(&self) -> &str;
}

/// Who is logging in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginClient<'a> {
    pub ip: Option<IpAddr>,
    pub request_id: &'a str,
}

/// Everything the flow uses, built once.
pub(crate) struct LoginFlow {
    pub own: Arc<TokenService>,
    pub sessions: Arc<dyn SessionStore>,
    pub attempts: Arc<dyn AttemptStore>,
    /// Bounds credential checks in flight from this proxy, so a distributed spray (a fresh account
    /// and IP per request) cannot queue unbounded password-hashing work at the upstream.
    pub check_permits: Semaphore,
    pub asserter: Arc<Asserter>,
    pub credentials: CredentialClient,
    pub peers: Arc<dyn PeerSource>,
    pub metrics: Arc<Metrics>,
}

/// One login attempt's throttle key, owned.
struct Key<'a> {
    account: String,
    ip: String,
    id: &'a str,
}

impl Key<'_> {
    fn attempt(&self) -> Attempt<'_> {
        Attempt {
            account: &self.account,
            ip: &self.ip,
            id: self.id,
        }
    }
}

impl LoginFlow {
    /// Runs one login. Every refusal is counted in `edge_proxy_login_attempts_total{result}`.
    pub(crate) async fn run(
        &self,
        body: &[u8],
        client: &LoginClient<'_>,
        now: UnixMillis,
    ) -> Result<Minted, ProxyError> {
        let parsed = LoginRequest::parse(body);
        let email = match &parsed {
            Some(req) => Some(req.email.clone()),
            None => email_of_malformed(body),
        };
        let Some(email) = email else {
            self.count("bad_request");
            return Err(ProxyError::InvalidRequest);
        };
        let key = Key {
            account: normalise_account(&email),
            ip: client
                .ip
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            id: client.request_id,
        };
        // Held until the check is recorded; refused before any state is touched.
        let Ok(_permit) = self.check_permits.try_acquire() else {
            self.count("throttled");
            tracing::warn!("login refused: credential checks at capacity");
            return Err(ProxyError::TooManyAttempts {
                retry_after_secs: 1,
            });
        };
        self.reserve(&key, now).await?;
        let Some(req) = parsed else {
            // R-LOGIN-9: a malformed body naming an account counts as one failure for it.
            self.finish(&key, Outcome::Failure, now).await?;
            self.count("bad_request");
            return Err(ProxyError::InvalidRequest);
        };
        let user = self.checked(&key, &req, now).await?;
        self.finish(&key, Outcome::Success, now).await?;
        let minted = self.mint_session(&user, now.secs()).await?;
        self.count("success");
        Ok(minted)
    }

    /// Check and reserve before any verification (R-LOGIN-7): blocked, locked, banned or already in
    /// flight → 429 without calling the upstream, whatever the password (R-LOGIN-2).
    async fn reserve(&self, key: &Key<'_>, now: UnixMillis) -> Result<(), ProxyError> {
        let begin = self
            .metrics
            .store_call("login_begin", self.attempts.begin(&key.attempt(), now))
            .await?;
        let Begin::Throttled {
            reason,
            retry_after_ms,
        } = begin
        else {
            return Ok(());
        };
        self.count(reason.result_label());
        tracing::info!(account = %account_hash(&key.account), ?reason, "login throttled");
        Err(ProxyError::TooManyAttempts {
            retry_after_secs: retry_after_secs(retry_after_ms),
        })
    }

    /// The credential check, with its outcome recorded unless it succeeded: a refusal is a failure
    /// for the account, anything else abandons the attempt.
    async fn checked(
        &self,
        key: &Key<'_>,
        req: &LoginRequest,
        now: UnixMillis,
    ) -> Result<VerifiedUser, ProxyError> {
        let checked = match self.peers.select() {
            None => Err(ProxyError::BadGateway),
            Some(peer) => self.check(peer, req, key.id, now).await,
        };
        match checked {
            Ok(user) => Ok(user),
            Err(e @ ProxyError::InvalidCredentials) => {
                self.finish(key, Outcome::Failure, now).await?;
                self.count("invalid");
                Err(e)
            }
            Err(e) => {
                let _ = self.finish(key, Outcome::Abandoned, now).await;
                Err(e)
            }
        }
    }

    /// Mints the access token and records its session.
    async fn mint_session(&self, user: &VerifiedUser, now: UnixSecs) -> Result<Minted, ProxyError> {
        let minted = self
            .own
            .mint(&user.user_id, &user.email, &user.roles, now)
            .map_err(|error| {
                tracing::error!(%error, "minting an access token failed");
                ProxyError::Internal
            })?;
        let session = TokenRef::from(&minted.claims);
        let exp = UnixSecs(minted.claims.exp);
        self.metrics
            .store_call("session_insert", self.sessions.insert(&session, exp, now))
            .await?;
        Ok(minted)
    }

    /// The JSON answer for a minted token (RFC 6749 section 5.1).
    pub(crate) fn answer(&self, minted: &Minted) -> String {
        serde_json::json!({
            "access_token": minted.token,
            "token_type": "Bearer",
            "expires_in": self.own.lifetime_secs(),
        })
        .to_string()
    }

    /// The credential check itself: the service assertion, then the call.
    async fn check(
        &self,
        peer: SocketAddr,
        req: &LoginRequest,
        request_id: &str,
        now: UnixMillis,
    ) -> Result<VerifiedUser, ProxyError> {
        let service = self.service_assertion(request_id, now)?;
        self.metrics.login_verifications.inc();
        match self
            .credentials
            .verify(peer, req, request_id, &service)
            .await
        {
            Ok(user) => Ok(user),
            Err(VerifyError::Refused) => Err(ProxyError::InvalidCredentials),
            Err(VerifyError::Upstream(error)) => {
                tracing::warn!(%error, "credential check failed");
                Err(ProxyError::BadGateway)
            }
        }
    }

    /// The proxy's own assertion for the credential check (the upstream serves it to nobody else).
    fn service_assertion(&self, request_id: &str, now: UnixMillis) -> Result<String, ProxyError> {
        self.asserter
            .mint(
                &Subject {
                    audience: self.peers.name(),
                    sub: SERVICE_SUBJECT,
                    email: "",
                    roles: &[],
                    jti: request_id,
                    method: "POST",
                    path: self.credentials.path(),
                },
                now.secs(),
            )
            .map_err(|error| {
                tracing::error!(%error, "minting the service assertion failed");
                ProxyError::Internal
            })
    }

    /// Records a login outcome and releases the in-flight lease; counts and logs lockouts and bans.
    async fn finish(
        &self,
        a: &Key<'_>,
        outcome: Outcome,
        now: UnixMillis,
    ) -> Result<(), ProxyError> {
        let done = self
            .metrics
            .store_call(
                "login_finish",
                self.attempts.finish(&a.attempt(), outcome, now),
            )
            .await?;
        let hash = account_hash(&a.account);
        if done.locked_now {
            self.metrics.lockouts.inc();
            tracing::warn!(account = %hash, failures = done.state.fail_count, "account locked after consecutive login failures");
        } else if done.blocked_now {
            tracing::info!(account = %hash, failures = done.state.fail_count, blocked_until_ms = done.state.blocked_until_ms, "account temporarily blocked");
        }
        if done.ip_banned_now {
            self.metrics.ip_bans.inc();
            tracing::warn!(client = %a.ip, "client IP banned for login failures");
        }
        Ok(())
    }

    fn count(&self, result: &str) {
        self.metrics
            .login_attempts
            .with_label_values(&[result])
            .inc();
    }
}

/// Stable, non-reversible account label for logs (never the raw email, R-LOGIN-11).
pub(crate) fn account_hash(account: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(account.as_bytes());
    hex::encode(&d[..8])
}
