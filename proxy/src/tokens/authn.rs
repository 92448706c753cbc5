//! The authenticator: a request's credentials in, a typed caller or a typed failure out (R-JWT-1,
//! R-JWT-3, R-JWT-6, R-JWT-7, R-JWT-9). Own tokens are checked against the session allowlist,
//! external ones against their issuer's denylist. [`AuthOutcome`] is the one value behind the
//! `edge_proxy_auth_*` metric labels and the access log's `auth` field.

use std::sync::Arc;

use http::HeaderMap;

use crate::clock::UnixSecs;
use crate::error::ProxyError;
use crate::obs::metrics::Metrics;
use crate::session::{SessionStatus, SessionStore, TokenRef};
use crate::tokens::issuer::VerifyFailure;
use crate::tokens::own::{presented, AccessClaims, Presented};
use crate::tokens::{TokenOrigin, Verified, Verifier};

/// How authentication ended, for metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The route does not authenticate (or the request never got that far).
    NotChecked,
    Ok,
    /// An optional-auth route without a token.
    Anonymous,
    Missing,
    Invalid,
    Expired,
    Revoked,
    /// An external issuer's keys are not loaded, or the store is down (fail closed).
    Unavailable,
}

impl AuthOutcome {
    /// The label in the access log and in `edge_proxy_auth_decisions_total{result}`.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotChecked => "-",
            Self::Ok => "ok",
            Self::Anonymous => "anonymous",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether the decision is counted in the auth metrics (availability failures are counted as
    /// store errors instead, and anonymous passes are no decision).
    fn counted(self) -> bool {
        !matches!(self, Self::NotChecked | Self::Anonymous | Self::Unavailable)
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token (or another scheme: RFC 6750 3.1, no `error` attribute).
    Missing,
    /// Two credentials, or a header and a query token (R-JWT-7).
    Ambiguous,
    Invalid {
        expired: bool,
    },
    Revoked,
    /// Keys not loaded or the store down: 503, never a guess.
    Unavailable,
}

impl AuthFailure {
    pub fn outcome(&self) -> AuthOutcome {
        match self {
            Self::Missing => AuthOutcome::Missing,
            Self::Ambiguous => AuthOutcome::Invalid,
            Self::Invalid { expired: true } => AuthOutcome::Expired,
            Self::Invalid { expired: false } => AuthOutcome::Invalid,
            Self::Revoked => AuthOutcome::Revoked,
            Self::Unavailable => AuthOutcome::Unavailable,
        }
    }

    pub fn error(&self) -> ProxyError {
        match self {
            Self::Missing => ProxyError::MissingToken,
            Self::Ambiguous => ProxyError::AmbiguousCredentials,
            Self::Invalid { .. } | Self::Revoked => ProxyError::InvalidToken,
            Self::Unavailable => ProxyError::Unavailable,
        }
    }
}

/// The bearer credential of a request: its `Authorization` values and its raw query.
pub struct Credentials<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    fn token(&self) -> Result<&'a str, AuthFailure> {
        let mut values = self.headers.get_all(http::header::AUTHORIZATION).iter();
        let (first, second) = (values.next(), values.next());
        let list: &[&[u8]] = match (first, second) {
            (None, _) => &[],
            (Some(one), None) => &[one.as_bytes()],
            (Some(_), Some(_)) => return Err(AuthFailure::Ambiguous),
        };
        match presented(list, self.query) {
            Presented::Bearer(t) => Ok(t),
            Presented::None | Presented::OtherScheme => Err(AuthFailure::Missing),
            Presented::Ambiguous => Err(AuthFailure::Ambiguous),
        }
    }
}

/// Verifies tokens and checks their sessions.
pub struct Authenticator {
    pub tokens: Arc<Verifier>,
    sessions: Arc<dyn SessionStore>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(
        tokens: Arc<Verifier>,
        sessions: Arc<dyn SessionStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            tokens,
            sessions,
            metrics,
        }
    }

    /// Signature and claims only, no store lookup (logout of an already revoked token is a 204).
    pub async fn verify(
        &self,
        creds: &Credentials<'_>,
        now: UnixSecs,
    ) -> Result<Verified, AuthFailure> {
        let result = self.verify_inner(creds, now).await;
        if let Err(f) = &result {
            self.count(f.outcome());
        }
        result
    }

    /// A verified token whose session is live: the caller.
    pub async fn authenticate(
        &self,
        creds: &Credentials<'_>,
        now: UnixSecs,
    ) -> Result<Verified, AuthFailure> {
        let verified = self.verify(creds, now).await?;
        let token = TokenRef::from(&verified.claims);
        let status = match &verified.origin {
            TokenOrigin::Own => {
                self.metrics
                    .store_call("session_status", self.sessions.status(&token, now))
                    .await
            }
            TokenOrigin::External(issuer) => {
                self.metrics
                    .store_call(
                        "external_status",
                        self.sessions
                            .external_status(&issuer.config.name, &token, now),
                    )
                    .await
            }
        }
        .map_err(|_| AuthFailure::Unavailable)?;
        if status == SessionStatus::Revoked {
            self.count(AuthOutcome::Revoked);
            return Err(AuthFailure::Revoked);
        }
        self.count(AuthOutcome::Ok);
        Ok(verified)
    }

    async fn verify_inner(
        &self,
        creds: &Credentials<'_>,
        now: UnixSecs,
    ) -> Result<Verified, AuthFailure> {
        let token = creds.token()?;
        match self.tokens.verify(token, now).await {
            Ok(verified) => Ok(verified),
            Err(VerifyFailure::Invalid(e)) => Err(AuthFailure::Invalid {
                expired: e.reason() == "expired",
            }),
            Err(VerifyFailure::KeysUnavailable) => {
                tracing::warn!("an external issuer's keys are not loaded; failing closed");
                Err(AuthFailure::Unavailable)
            }
        }
    }

    fn count(&self, outcome: AuthOutcome) {
        if outcome.counted() {
            self.metrics.auth(outcome.label());
        }
    }
}

impl<'a> From<&'a AccessClaims> for TokenRef<'a> {
    fn from(c: &'a AccessClaims) -> Self {
        TokenRef {
            jti: &c.jti,
            sub: &c.sub,
            iat: UnixSecs(c.iat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MemorySessionStore;
    use crate::tokens::keys::SigningAlg;
    use crate::tokens::own::fixtures as own_tests;
    use crate::tokens::own::TokenService;

    const NOW: UnixSecs = UnixSecs(1_800_000_000);

    fn authn() -> (Authenticator, Arc<MemorySessionStore>, Arc<Metrics>) {
        let own = TokenService::from_config(&own_tests::config(
            SigningAlg::Hs256,
            own_tests::hs_key(own_tests::KEY, None),
            None,
        ));
        let sessions = Arc::new(MemorySessionStore::new());
        let metrics = Arc::new(Metrics::new().unwrap());
        let verifier = Arc::new(Verifier::new(
            Arc::new(own),
            Vec::new(),
            std::time::Duration::from_secs(30),
        ));
        (
            Authenticator::new(verifier, sessions.clone(), metrics.clone()),
            sessions,
            metrics,
        )
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn every_failure_has_its_outcome_error_and_metric() {
        let (a, sessions, metrics) = authn();
        let minted = a.tokens.own.mint("u1", "u1@example.com", &[], NOW).unwrap();
        let bearer = format!("Bearer {}", minted.token);
        let check = |h: HeaderMap, q: Option<&'static str>, now| {
            let a = &a;
            async move {
                a.authenticate(
                    &Credentials {
                        headers: &h,
                        query: q,
                    },
                    now,
                )
                .await
                .map(|v| v.claims.sub)
            }
        };
        assert_eq!(
            check(headers(&[]), None, NOW).await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            check(headers(&["Basic x"]), None, NOW).await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            check(headers(&[&bearer, &bearer]), None, NOW).await,
            Err(AuthFailure::Ambiguous)
        );
        assert_eq!(
            check(headers(&[&bearer]), Some("access_token=x"), NOW).await,
            Err(AuthFailure::Ambiguous)
        );
        assert_eq!(
            check(headers(&["Bearer nope"]), None, NOW).await,
            Err(AuthFailure::Invalid { expired: false })
        );
        assert_eq!(
            check(headers(&[&bearer]), None, NOW + 3600).await,
            Err(AuthFailure::Invalid { expired: true })
        );
        assert_eq!(
            check(headers(&[&bearer]), None, NOW).await,
            Err(AuthFailure::Revoked),
            "not in the allowlist"
        );
        sessions
            .insert(
                &TokenRef::from(&minted.claims),
                UnixSecs(minted.claims.exp),
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(
            check(headers(&[&bearer]), None, NOW).await,
            Ok("u1".to_owned())
        );

        let text = metrics.render();
        for (result, n) in [
            ("missing", 2),
            ("invalid", 3),
            ("expired", 1),
            ("revoked", 1),
            ("ok", 1),
        ] {
            let line = format!("edge_proxy_auth_decisions_total{{result=\"{result}\"}} {n}");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert_eq!(AuthFailure::Missing.error(), ProxyError::MissingToken);
        assert_eq!(
            AuthFailure::Ambiguous.error(),
            ProxyError::AmbiguousCredentials
        );
        assert_eq!(AuthFailure::Revoked.error(), ProxyError::InvalidToken);
        assert_eq!(AuthFailure::Unavailable.error(), ProxyError::Unavailable);
        assert_eq!(AuthFailure::Ambiguous.outcome().label(), "invalid");
    }
}
