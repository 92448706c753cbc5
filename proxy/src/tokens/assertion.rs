//! The identity assertion (SECURITY.md R-ID-4, R-ID-5): a short-lived JWT the proxy signs for every
//! authenticated request, so the upstream can verify who the caller is without trusting headers.
//!
//! The contract (claims, `typ`, lifetime) is in ARCHITECTURE.md and pinned by
//! `docs/contracts/identity-assertion.json`, which the backend's tests decode too.

use std::path::Path;

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use settings::{Problems, SecretSource};

use crate::clock::UnixSecs;
use crate::raw::RawIdentity;
use crate::tokens::jws::{header_segment, JwsKey};
use crate::tokens::keys::{OwnKey, SigningAlg};
use crate::tokens::{TokenOrigin, Verified};

/// `typ` of the identity assertion; distinct from access tokens (`at+jwt`).
pub const ASSERTION_TYP: &str = "identity+jwt";

/// `[identity]`: how assertions are signed.
#[derive(Debug)]
pub struct IdentityConfig {
    pub algorithm: SigningAlg,
    pub key: OwnKey,
    pub issuer: String,
    /// Seconds, 1 to 60 (R-ID-5).
    pub lifetime_secs: i64,
}

impl IdentityConfig {
    /// Validates `[identity]`, pushing every problem; `None` when the key is unusable.
    pub fn from_raw(raw: &RawIdentity, base_dir: &Path, p: &mut Problems) -> Option<Self> {
        let identity_alg =
            p.take(SigningAlg::parse(&raw.algorithm).map_err(|e| e.replace("jwt.", "identity.")));
        let identity_secret = p
            .take(
                SecretSource {
                    name: "identity.secret",
                    inline: raw.secret.as_deref(),
                    file: raw.secret_file.as_deref(),
                }
                .require(base_dir),
            )
            .and_then(|k| {
                let alg = identity_alg.unwrap_or(SigningAlg::Hs256);
                p.take(OwnKey::parse(alg, "identity.secret", &k, None))
            });
        let lifetime_secs = i64::try_from(raw.lifetime_seconds)
            .ok()
            .filter(|l| (1..=60).contains(l));
        if lifetime_secs.is_none() {
            p.push("identity.lifetime_seconds: must be between 1 and 60 (R-ID-5)");
        }
        Some(Self {
            algorithm: identity_alg.unwrap_or(SigningAlg::Hs256),
            key: identity_secret?,
            issuer: raw.issuer.clone(),
            lifetime_secs: lifetime_secs?,
        })
    }
}

/// Claims of the identity assertion (the wire contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: String,
    pub roles: Vec<String>,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    pub exp: i64,
}

/// The subject of the proxy's own service assertion, sent with the credential check: the upstream
/// serves that route only to this caller. No user id can take this value (own users are the
/// upstream's ids, external users `<issuer>:<sub>`).
pub const SERVICE_SUBJECT: &str = "edge-proxy";

/// Who and what one assertion is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The upstream's name (the pool the request goes to).
    pub audience: &'a str,
    pub sub: &'a str,
    pub email: &'a str,
    pub roles: &'a [String],
    /// The access token's `jti` (the request id for the service assertion).
    pub jti: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

/// Mints identity assertions with the identity secret (HS256) or the Ed25519 key (EdDSA).
pub struct Asserter {
    key: EncodingKey,
    header: Header,
    /// The key ready to sign and the encoded header, so an assertion costs one signature.
    ready: Option<(JwsKey, String)>,
    issuer: String,
    lifetime: i64,
}

impl Asserter {
    pub fn from_config(cfg: &IdentityConfig) -> Self {
        let mut header = Header::new(cfg.algorithm.jwt());
        header.typ = Some(ASSERTION_TYP.into());
        let ready = JwsKey::for_key(cfg.algorithm, &cfg.key)
            .filter(JwsKey::can_sign)
            .map(|key| (key, header_segment(&header)));
        Self {
            key: cfg.key.encoding(cfg.algorithm),
            header,
            ready,
            issuer: cfg.issuer.clone(),
            lifetime: cfg.lifetime_secs,
        }
    }

    /// An assertion for one request of `subject`.
    pub fn mint(
        &self,
        subject: &Subject<'_>,
        now: UnixSecs,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = AssertionClaims {
            iss: self.issuer.clone(),
            aud: subject.audience.to_owned(),
            sub: subject.sub.to_owned(),
            email: subject.email.to_owned(),
            roles: subject.roles.to_vec(),
            jti: subject.jti.to_owned(),
            htm: subject.method.to_owned(),
            htu: subject.path.to_owned(),
            iat: now.get(),
            exp: now.get() + self.lifetime,
        };
        match &self.ready {
            Some((key, header)) => key.encode(header, &claims).map_err(Into::into),
            None => jsonwebtoken::encode(&self.header, &claims, &self.key),
        }
    }
}

/// The identity headers of one authenticated request (R-ID-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user_id: String,
    /// The external issuer's name; absent for own tokens.
    pub issuer: Option<String>,
    pub email: String,
    pub roles: String,
    pub assertion: String,
}

impl Asserter {
    /// The headers and the signed assertion for `caller`'s request `method path` to `audience`.
    /// External users are namespaced by issuer (`<issuer>:<sub>`), so `alice` of an identity provider
    /// can never act as the proxy's own user `alice` upstream.
    pub fn identity(
        &self,
        caller: &Verified,
        audience: &str,
        method: &str,
        path: &str,
        now: UnixSecs,
    ) -> Result<IdentityHeaders, jsonwebtoken::errors::Error> {
        let c = &caller.claims;
        let user_id = caller.subject();
        let issuer = match &caller.origin {
            TokenOrigin::Own => None,
            TokenOrigin::External(i) => Some(i.config.name.clone()),
        };
        let assertion = self.mint(
            &Subject {
                audience,
                sub: &user_id,
                email: &c.email,
                roles: &c.roles,
                jti: &c.jti,
                method,
                path,
            },
            now,
        )?;
        Ok(IdentityHeaders {
            roles: c.roles.join(","),
            email: c.email.clone(),
            user_id,
            issuer,
            assertion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_fixture_decodes_into_the_claims_the_proxy_mints() {
        let text = include_str!("../../../docs/contracts/identity-assertion.json");
        let c: AssertionClaims = serde_json::from_str(text).unwrap();
        assert_eq!(c.exp - c.iat, 60);
        let round = serde_json::to_value(&c).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            round, fixture,
            "the minted claim set differs from the contract"
        );
    }
}
