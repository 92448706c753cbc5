//! The backend's side of the identity contract (ARCHITECTURE.md "Identity assertion").
//!
//! The backend never sees an access token. It trusts a request's identity only when the proxy's
//! `X-Identity-Assertion` (a JWT signed with the shared identity secret, HS256, or with the proxy's
//! Ed25519 key, EdDSA, verified here with its public half) verifies, its `sub`
//! equals `X-User-Id`, and its `htm`/`htu` equal this request's method and path. A request that
//! bypasses the proxy, or replays an assertion against another route, cannot act as anyone.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{IdentityConfig, IdentityKey};
use crate::error::ApiError;
use crate::AppState;

/// `typ` header of an identity assertion; distinct from access tokens (`at+jwt`) so one can never be
/// used as the other.
pub const ASSERTION_TYP: &str = "identity+jwt";
/// Longest lifetime an assertion may claim (`exp - iat`), as the proxy mints them.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 60;
/// Header carrying the assertion.
pub const ASSERTION_HEADER: &str = "x-identity-assertion";
pub const USER_ID_HEADER: &str = "x-user-id";
/// The `sub` (and `X-User-Id`) of a service assertion: the proxy calling on its own behalf, for the
/// credential check. No user id can take this value (users are UUIDs; external users are
/// `<issuer>:<sub>`), and the user extractor refuses it.
pub const SERVICE_SUBJECT: &str = "edge-proxy";

/// The claims of an identity assertion (the wire contract; pinned by
/// `docs/contracts/identity-assertion.json`).
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

/// The caller, as asserted by the proxy and verified here.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: Uuid,
    pub email: String,
    pub roles: Vec<String>,
}

pub struct AssertionVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: i64,
}

impl AssertionVerifier {
    pub fn new(cfg: &IdentityConfig) -> Self {
        let (alg, key) = match &cfg.key {
            IdentityKey::Hs256(secret) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose_secret()),
            ),
            IdentityKey::EdDsa(public) => (Algorithm::EdDSA, DecodingKey::from_ed_der(public)),
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is checked in `verify` against an injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            key,
            validation,
            leeway: i64::try_from(cfg.leeway.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Verifies `token` for a request `method path` whose `X-User-Id` is `user_id`, at time `now`.
    pub fn verify(
        &self,
        token: &str,
        user_id: &str,
        method: &str,
        path: &str,
        now: i64,
    ) -> Result<Identity, ApiError> {
        let c = self
            .verify_claims(token, user_id, method, path, now)
            .ok_or(ApiError::Unauthenticated)?;
        let user_id = Uuid::parse_str(&c.sub).map_err(|_| ApiError::Unauthenticated)?;
        Ok(Identity {
            user_id,
            email: c.email,
            roles: c.roles,
        })
    }

    /// The claims of `token` if it is a valid assertion for exactly this request (`sub` equal to
    /// `X-User-Id`, method and path bound, fresh), whoever its subject is.
    fn verify_claims(
        &self,
        token: &str,
        user_id: &str,
        method: &str,
        path: &str,
        now: i64,
    ) -> Option<AssertionClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ASSERTION_TYP) || header.crit.is_some() {
            return None;
        }
        let c = jsonwebtoken::decode::<AssertionClaims>(token, &self.key, &self.validation)
            .ok()?
            .claims;
        let fresh = c.iat <= now + self.leeway
            && now < c.exp + self.leeway
            && c.exp - c.iat <= MAX_ASSERTION_LIFETIME_SECS;
        (fresh && c.sub == user_id && c.htm == method && c.htu == path).then_some(c)
    }
}

/// The single value of header `name`, if it has exactly one and it is text.
fn single_header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    let mut values = parts.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// The assertion and the `X-User-Id` it must match, each present exactly once.
fn asserted(parts: &Parts) -> Option<(&str, &str)> {
    Some((
        single_header(parts, ASSERTION_HEADER)?,
        single_header(parts, USER_ID_HEADER)?,
    ))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The proxy itself, calling an internal route (the credential check) with a service assertion:
/// `sub` and `X-User-Id` are [`SERVICE_SUBJECT`], signed like any assertion and bound to this
/// method and path. Anyone else gets 404, as if the route did not exist, so the credential check is
/// no password oracle for a peer that reaches the API listener without the proxy.
#[derive(Debug)]
pub struct ProxyCall;

impl FromRequestParts<AppState> for ProxyCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some((token, SERVICE_SUBJECT)) = asserted(parts) else {
            return Err(ApiError::NotFound);
        };
        let (method, path) = (parts.method.as_str(), parts.uri.path());
        state
            .verifier
            .verify_claims(token, SERVICE_SUBJECT, method, path, now())
            .map(|_| ProxyCall)
            .ok_or(ApiError::NotFound)
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some((token, user_id)) = asserted(parts) else {
            return Err(ApiError::Unauthenticated);
        };
        let (method, path) = (parts.method.as_str(), parts.uri.path());
        state.verifier.verify(token, user_id, method, path, now())
    }
}

/// Shared handle for the app state.
pub type SharedVerifier = Arc<AssertionVerifier>;

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use secrecy::SecretBox;

    const SECRET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCD";
    const NOW: i64 = 1_800_000_000;

    fn verifier() -> AssertionVerifier {
        AssertionVerifier::new(&IdentityConfig {
            key: IdentityKey::Hs256(SecretBox::new(Box::new(SECRET.to_vec()))),
            issuer: "edge-proxy".into(),
            audience: "todo".into(),
            leeway: std::time::Duration::from_secs(5),
        })
    }

    fn fixture() -> AssertionClaims {
        let text = include_str!("../../docs/contracts/identity-assertion.json");
        serde_json::from_str(text).expect("the contract fixture decodes into AssertionClaims")
    }

    fn sign(claims: &AssertionClaims, typ: &str, key: &[u8]) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(typ.into());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn at_now(mut c: AssertionClaims) -> AssertionClaims {
        c.iat = NOW;
        c.exp = NOW + 60;
        c
    }

    #[test]
    fn the_contract_fixture_verifies_for_its_own_request() {
        let c = at_now(fixture());
        let t = sign(&c, ASSERTION_TYP, SECRET);
        let id = verifier().verify(&t, &c.sub, &c.htm, &c.htu, NOW).unwrap();
        assert_eq!(id.user_id.to_string(), c.sub);
        assert_eq!(id.email, c.email);
    }

    #[test]
    fn assertions_for_another_user_method_or_path_are_rejected() {
        let c = at_now(fixture());
        let t = sign(&c, ASSERTION_TYP, SECRET);
        let v = verifier();
        let other = Uuid::new_v4().to_string();
        assert!(v.verify(&t, &other, &c.htm, &c.htu, NOW).is_err());
        assert!(v.verify(&t, &c.sub, "DELETE", &c.htu, NOW).is_err());
        assert!(v.verify(&t, &c.sub, &c.htm, "/todos/other", NOW).is_err());
    }

    #[test]
    fn expired_forged_or_mistyped_assertions_are_rejected() {
        let c = at_now(fixture());
        let v = verifier();
        let good = sign(&c, ASSERTION_TYP, SECRET);
        assert!(
            v.verify(&good, &c.sub, &c.htm, &c.htu, NOW + 70).is_err(),
            "expired"
        );
        let forged = sign(
            &c,
            ASSERTION_TYP,
            b"another-secret-another-secret-another-secret",
        );
        assert!(
            v.verify(&forged, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "wrong key"
        );
        let access = sign(&c, "at+jwt", SECRET);
        assert!(
            v.verify(&access, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "wrong typ"
        );
        let mut long = c.clone();
        long.exp = NOW + 3600;
        let long = sign(&long, ASSERTION_TYP, SECRET);
        assert!(
            v.verify(&long, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "lifetime over 60 s"
        );
        let mut wrong_aud = c.clone();
        wrong_aud.aud = "billing".into();
        let wrong_aud = sign(&wrong_aud, ASSERTION_TYP, SECRET);
        assert!(
            v.verify(&wrong_aud, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "audience"
        );
    }

    #[test]
    fn eddsa_assertions_verify_with_the_public_key_only() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let proxy_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = proxy_key.verifying_key().to_bytes();
        let v = AssertionVerifier::new(&IdentityConfig {
            key: IdentityKey::EdDsa(public),
            issuer: "edge-proxy".into(),
            audience: "todo".into(),
            leeway: std::time::Duration::from_secs(5),
        });
        let c = at_now(fixture());
        let ed_sign = |key: &ed25519_dalek::SigningKey| {
            let mut h = Header::new(Algorithm::EdDSA);
            h.typ = Some(ASSERTION_TYP.into());
            let der = key.to_pkcs8_der().unwrap();
            jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
        };
        let good = ed_sign(&proxy_key);
        assert!(v.verify(&good, &c.sub, &c.htm, &c.htu, NOW).is_ok());
        let other = ed_sign(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
        assert!(
            v.verify(&other, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "another key"
        );
        // Algorithm confusion: HS256 keyed with the (public) verification key.
        let confused = sign(&c, ASSERTION_TYP, &public);
        assert!(
            v.verify(&confused, &c.sub, &c.htm, &c.htu, NOW).is_err(),
            "HS256 with the public key as secret"
        );
    }
}
