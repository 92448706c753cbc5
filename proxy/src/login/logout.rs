//! `POST /auth/logout` (this token) and `POST /auth/logout-all` (every token of the caller), for own
//! and external tokens alike (R-JWT-5, R-JWT-9).

use std::sync::Arc;

use crate::clock::UnixSecs;
use crate::error::ProxyError;
use crate::obs::metrics::Metrics;
use crate::session::SessionStore;
use crate::tokens::{TokenOrigin, Verified};

/// Ends sessions of a token the gateway verified (`Authenticator::verify` for logout,
/// `Authenticator::authenticate` for logout-all: only a live session may end every session).
pub(crate) struct Logout {
    /// The lifetime of own tokens, in seconds.
    pub own_lifetime_secs: i64,
    pub sessions: Arc<dyn SessionStore>,
    pub metrics: Arc<Metrics>,
}

/// Seconds past a token's lifetime a revocation is kept (the verifiers' leeway bound).
const REVOCATION_MARGIN_SECS: i64 = 60;

impl Logout {
    /// Ends the presented token's session. A correctly signed token that is already revoked still
    /// gets 204 (RFC 7009 section 2.2).
    pub(crate) async fn one(&self, v: &Verified, now: UnixSecs) -> Result<(), ProxyError> {
        let c = &v.claims;
        match &v.origin {
            TokenOrigin::Own => {
                self.metrics
                    .store_call("session_revoke", self.sessions.revoke(&c.jti, &c.sub))
                    .await
            }
            // Kept past `exp` by the leeway, so the token cannot come back within it.
            TokenOrigin::External(issuer) => {
                self.metrics
                    .store_call(
                        "external_revoke",
                        self.sessions.deny(
                            &issuer.config.name,
                            &c.jti,
                            UnixSecs(c.exp) + REVOCATION_MARGIN_SECS,
                            now,
                        ),
                    )
                    .await
            }
        }
    }

    /// Ends every session of the caller.
    pub(crate) async fn all(&self, v: &Verified, now: UnixSecs) -> Result<(), ProxyError> {
        let sub = &v.claims.sub;
        match &v.origin {
            TokenOrigin::Own => {
                let until = now + self.own_lifetime_secs + REVOCATION_MARGIN_SECS;
                self.metrics
                    .store_call(
                        "session_revoke_all",
                        self.sessions.revoke_all(sub, until, now),
                    )
                    .await?;
            }
            TokenOrigin::External(issuer) => {
                let until = now + issuer.config.max_lifetime + REVOCATION_MARGIN_SECS;
                self.metrics
                    .store_call(
                        "external_revoke_all",
                        self.sessions
                            .deny_user(&issuer.config.name, sub, until, now),
                    )
                    .await?;
            }
        }
        tracing::info!(user = %sub, "logout-all: every session of the user revoked");
        Ok(())
    }
}
