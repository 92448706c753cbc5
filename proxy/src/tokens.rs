//! Tokens: the proxy's own access tokens (`own`), external issuers verified against their JWKS
//! (`issuer`), signing keys (`keys`) and the identity assertion minted for the upstream
//! (`assertion`). [`Verifier`] is where every presented token goes.

use std::sync::Arc;

use serde::Deserialize;

pub mod assertion;
pub mod authn;
pub mod issuer;
pub(crate) mod jws;
pub mod keys;
pub mod own;

use self::issuer::{Issuer, VerifyFailure};
use self::own::{split_compact, AccessClaims, AuthError, TokenService};
use crate::clock::UnixSecs;

/// Who verified a token.
#[derive(Clone)]
pub enum TokenOrigin {
    Own,
    External(Arc<Issuer>),
}

impl std::fmt::Debug for TokenOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Own => f.write_str("Own"),
            Self::External(i) => write!(f, "External({})", i.config.name),
        }
    }
}

/// A verified token: its claims and who vouches for them.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: AccessClaims,
    pub origin: TokenOrigin,
}

impl Verified {
    /// Who the caller is upstream (`X-User-Id`): the `sub` of an own token, `<issuer>:<sub>` of an
    /// external one, so an external user can never stand for an own one.
    pub fn subject(&self) -> String {
        match &self.origin {
            TokenOrigin::Own => self.claims.sub.clone(),
            TokenOrigin::External(i) => format!("{}:{}", i.config.name, self.claims.sub),
        }
    }
}

/// Every token goes through here: own tokens to `TokenService`, external ones to their issuer.
pub struct Verifier {
    pub own: Arc<TokenService>,
    pub issuers: Vec<Arc<Issuer>>,
    leeway: i64,
}

impl Verifier {
    pub fn new(
        own: Arc<TokenService>,
        issuers: Vec<Arc<Issuer>>,
        leeway: std::time::Duration,
    ) -> Self {
        Self {
            own,
            issuers,
            leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The external issuer with this configured name.
    pub fn issuer(&self, name: &str) -> Option<&Arc<Issuer>> {
        self.issuers.iter().find(|i| i.config.name == name)
    }

    pub async fn verify(&self, token: &str, now: UnixSecs) -> Result<Verified, VerifyFailure> {
        let own = |claims| Verified {
            claims,
            origin: TokenOrigin::Own,
        };
        if self.issuers.is_empty() {
            return Ok(own(self.own.verify(token, now)?));
        }
        let header = split_compact(token)?;
        let iss = claimed_issuer(token)?;
        if iss == self.own.issuer() {
            return Ok(own(self.own.verify_split(token, &header, now)?));
        }
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.config.iss == iss)
            .ok_or(AuthError::BadSignature)?;
        let claims = issuer.verify(token, &header, now, self.leeway).await?;
        Ok(Verified {
            claims,
            origin: TokenOrigin::External(Arc::clone(issuer)),
        })
    }
}

/// The issuer named by a token's (not yet verified) payload; only used to pick the verifier, whose
/// own checks decide (jsonwebtoken's `insecure_decode` does no validation at all).
fn claimed_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct IssOnly {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<IssOnly>(token)
        .map(|t| t.claims.iss)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => AuthError::BadClaims,
            _ => AuthError::Malformed,
        })
}
