//! Access tokens the proxy mints and verifies (SECURITY.md R-JWT).
//!
//! Verification follows R-JWT-1 in order: length cap → three unpadded base64url segments → a strict
//! header (exactly `alg`, `typ`, optional `kid`; duplicates, `crit`, `jku`, `x5u`, `jwk`, `x5c` refused)
//! → signature (jsonwebtoken, pinned algorithm, `iss`/`aud`) → typed claims with an injected clock
//! (`nbf`, `exp`, `iat`, and `exp - iat` within the configured lifetime). Revocation is checked
//! separately against the session store (`session.rs`).

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use std::path::Path;

use settings::{Problems, SecretSource};

use crate::clock::{parse_rfc3339, UnixSecs};
use crate::raw::{RawJwt, RawPreviousKey};
use crate::tokens::jws::JwsKey;
use crate::tokens::keys::{OwnKey, SigningAlg};

/// R-JWT table: tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// `typ` of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token too long")]
    TooLong,
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header refused")]
    BadHeader,
    #[error("signature, issuer or audience invalid")]
    BadSignature,
    #[error("claims invalid")]
    BadClaims,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token lifetime exceeds the configured maximum")]
    LifetimeTooLong,
}

impl AuthError {
    /// Bounded label for `edge_proxy_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            _ => "invalid",
        }
    }
}

/// Claims of an access token. Deserialized into this typed struct, so a duplicate or mistyped claim
/// is an error rather than a silent last-one-wins (R-JWT-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: String,
    pub roles: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// The only header members an own token may have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    typ: String,
    #[serde(default)]
    kid: Option<String>,
}

/// A key that verifies own tokens: the current one, or the previous one until its grace period ends.
struct VerifyKey {
    kid: Option<String>,
    decoding: DecodingKey,
    /// The key ready for use (no key schedule or parse per token); `None` only if it cannot load.
    jws: Option<JwsKey>,
    /// Unix time after which this key no longer verifies (the previous key only).
    until: Option<i64>,
    jwk: Option<serde_json::Value>,
}

/// Mints and verifies the proxy's own access tokens.
pub struct TokenService {
    alg: SigningAlg,
    encoding: EncodingKey,
    header: Header,
    /// The current key first, then the previous one during its grace period.
    keys: Vec<VerifyKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime: i64,
    leeway: i64,
}

#[derive(Debug)]
pub struct JwtConfig {
    pub algorithm: SigningAlg,
    /// Signs new tokens and verifies.
    pub key: OwnKey,
    /// Verifies only, until its grace period ends (key rotation).
    pub previous: Option<PreviousKey>,
    pub issuer: String,
    pub audience: String,
    /// Seconds, 1 to [`MAX_TOKEN_LIFETIME_SECS`].
    pub lifetime_secs: i64,
    /// Seconds, at most 300.
    pub leeway_secs: i64,
    pub realm: String,
}

#[derive(Debug)]
pub struct PreviousKey {
    pub key: OwnKey,
    /// Unix time after which the previous key no longer verifies.
    pub verify_until: UnixSecs,
}

/// R-JWT: lifetimes above this are refused; a leaked key must not mint long-lived tokens.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;

impl JwtConfig {
    /// Validates `[jwt]`, pushing every problem; `None` when a required part is unusable.
    pub fn from_raw(j: &RawJwt, base_dir: &Path, p: &mut Problems) -> Option<Self> {
        let algorithm = p.take(SigningAlg::parse(&j.algorithm));
        let jwt_key = p
            .take(
                SecretSource {
                    name: "jwt.key",
                    inline: j.key.as_deref(),
                    file: j.key_file.as_deref(),
                }
                .require(base_dir),
            )
            // With an unknown algorithm the key is still checked (as HS256), so every problem shows.
            .and_then(|k| {
                let alg = algorithm.unwrap_or(SigningAlg::Hs256);
                p.take(OwnKey::parse(alg, "jwt.key", &k, j.key_id.clone()))
            });
        let previous_key = j.previous.as_ref().and_then(|prev| {
            PreviousKey::from_raw(prev, j.key_id.as_deref(), algorithm, base_dir, p)
        });
        let leeway_secs = i64::try_from(j.leeway_seconds).ok().filter(|l| *l <= 300);
        if leeway_secs.is_none() {
            p.push("jwt.leeway_seconds: must be at most 300");
        }
        for (key, v) in [("jwt.issuer", &j.issuer), ("jwt.audience", &j.audience)] {
            if v.is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if j.realm.is_empty() || j.realm.contains(['"', '\\']) || !j.realm.is_ascii() {
            p.push("jwt.realm: must be non-empty printable ASCII without quotes or backslashes");
        }

        let lifetime_secs = i64::try_from(j.lifetime_seconds)
            .ok()
            .filter(|l| (1..=MAX_TOKEN_LIFETIME_SECS).contains(l));
        if lifetime_secs.is_none() {
            p.push(format!(
                "jwt.lifetime_seconds: must be between 1 and {MAX_TOKEN_LIFETIME_SECS}"
            ));
        }
        Some(Self {
            algorithm: algorithm?,
            key: jwt_key?,
            previous: previous_key,
            issuer: j.issuer.clone(),
            audience: j.audience.clone(),
            lifetime_secs: lifetime_secs?,
            leeway_secs: leeway_secs?,
            realm: j.realm.clone(),
        })
    }
}

impl PreviousKey {
    /// Validates `[jwt.previous]`: a key of the same algorithm under a distinct id, and when it stops
    /// verifying.
    fn from_raw(
        prev: &RawPreviousKey,
        current_kid: Option<&str>,
        algorithm: Option<SigningAlg>,
        base_dir: &Path,
        p: &mut Problems,
    ) -> Option<Self> {
        let until = p.take(parse_rfc3339(
            "jwt.previous.verify_until",
            &prev.verify_until,
        ));
        if prev.key_id.is_none() || current_kid.is_none() || prev.key_id.as_deref() == current_kid {
            p.push("jwt.previous.key_id: rotation needs distinct key ids on jwt.key_id and jwt.previous.key_id");
        }
        let key = p
            .take(
                SecretSource {
                    name: "jwt.previous.key",
                    inline: prev.key.as_deref(),
                    file: prev.key_file.as_deref(),
                }
                .require(base_dir),
            )
            .zip(algorithm)
            .and_then(|(k, alg)| {
                p.take(OwnKey::parse(
                    alg,
                    "jwt.previous.key",
                    &k,
                    prev.key_id.clone(),
                ))
            })?;
        Some(Self {
            key,
            verify_until: UnixSecs(until?),
        })
    }
}

/// A freshly minted token.
pub struct Minted {
    pub token: String,
    pub claims: AccessClaims,
}

impl TokenService {
    pub fn from_config(cfg: &JwtConfig) -> Self {
        let alg = cfg.algorithm;
        let mut header = Header::new(alg.jwt());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid.clone_from(&cfg.key.kid);
        let mut validation = Validation::new(alg.jwt());
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time-based checks run in `verify` against an injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let verify_key = |key: &OwnKey, until| VerifyKey {
            kid: key.kid.clone(),
            decoding: key.decoding(alg),
            jws: JwsKey::for_key(alg, key),
            until,
            jwk: key.jwk(),
        };
        let mut keys = vec![verify_key(&cfg.key, None)];
        if let Some(previous) = &cfg.previous {
            keys.push(verify_key(&previous.key, Some(previous.verify_until.get())));
        }
        Self {
            alg,
            encoding: cfg.key.encoding(alg),
            header,
            keys,
            validation,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            lifetime: cfg.lifetime_secs,
            leeway: cfg.leeway_secs,
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether own tokens are verifiable with published keys (EdDSA), so the JWKS is served.
    pub fn publishes_keys(&self) -> bool {
        self.alg == SigningAlg::EdDsa
    }

    /// The JWKS (RFC 7517) of the keys that verify at `now`; `None` for HS256, whose key is secret.
    pub fn jwks(&self, now: UnixSecs) -> Option<String> {
        let now = now.get();
        if self.alg != SigningAlg::EdDsa {
            return None;
        }
        let keys: Vec<&serde_json::Value> = self
            .keys
            .iter()
            .filter(|k| k.until.is_none_or(|until| now < until))
            .filter_map(|k| k.jwk.as_ref())
            .collect();
        Some(serde_json::json!({ "keys": keys }).to_string())
    }

    /// Mints a token for a verified user at time `now`, with a fresh 128-bit `jti`.
    pub fn mint(
        &self,
        sub: &str,
        email: &str,
        roles: &[String],
        now: UnixSecs,
    ) -> Result<Minted, jsonwebtoken::errors::Error> {
        let now = now.get();
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_owned(),
            email: email.to_owned(),
            roles: roles.to_vec(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)?;
        Ok(Minted { token, claims })
    }

    /// Verifies an own access token at time `now` (R-JWT-1 order). Revocation is not checked here.
    pub fn verify(&self, token: &str, now: UnixSecs) -> Result<AccessClaims, AuthError> {
        self.verify_split(token, &split_compact(token)?, now)
    }

    /// `verify` for a token whose shape was checked and header decoded already (`split_compact`).
    pub(crate) fn verify_split(
        &self,
        token: &str,
        head: &[u8],
        now: UnixSecs,
    ) -> Result<AccessClaims, AuthError> {
        let now = now.get();
        let header: StrictHeader =
            serde_json::from_slice(head).map_err(|_| AuthError::BadHeader)?;
        if header.alg != self.alg.name() || header.typ != ACCESS_TOKEN_TYP {
            return Err(AuthError::BadHeader);
        }
        // `kid` is only ever compared with configured ids; a retired key no longer verifies.
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == header.kid && k.until.is_none_or(|until| now < until))
            .ok_or(AuthError::BadHeader)?;
        let c: AccessClaims = match &key.jws {
            Some(ready) => self.jws_claims(token, ready)?,
            None => decode_claims(token, &key.decoding, &self.validation)?,
        };
        check_times(c.iat, c.nbf, c.exp, now, self.leeway, self.lifetime)?;
        if c.jti.is_empty() || c.sub.is_empty() {
            return Err(AuthError::BadClaims);
        }
        Ok(c)
    }
}

impl TokenService {
    /// An own token's claims: the signature (with the ready key), then the typed claims once, then
    /// `iss` and `aud` exactly, as jsonwebtoken's validation checks them (a mismatch counts as a
    /// bad signature there too).
    fn jws_claims(&self, token: &str, key: &JwsKey) -> Result<AccessClaims, AuthError> {
        let payload = key.verified_payload(token)?;
        let c: AccessClaims = serde_json::from_slice(&payload).map_err(|_| AuthError::BadClaims)?;
        if c.iss != self.issuer || c.aud != self.audience {
            return Err(AuthError::BadSignature);
        }
        Ok(c)
    }
}

/// R-JWT-1 up to the header: length cap, exactly three unpadded base64url segments; returns the
/// decoded header JSON.
pub(crate) fn split_compact(token: &str) -> Result<Vec<u8>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [head, payload, sig] = segments.as_slice() else {
        return Err(AuthError::Malformed);
    };
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(b64url(head) && b64url(payload) && b64url(sig)) {
        return Err(AuthError::Malformed);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| AuthError::Malformed)
}

/// Signature, `iss`, `aud` and the claims' types (jsonwebtoken), into typed claims `T`.
pub(crate) fn decode_claims<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<T, AuthError> {
    jsonwebtoken::decode::<T>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims,
            _ => AuthError::BadSignature,
        })
}

/// Time claims at `now` with `leeway`: not before `nbf`/`iat`, not after `exp`, and a lifetime
/// (`exp - iat`) no longer than `max_lifetime`.
pub(crate) fn check_times(
    iat: i64,
    nbf: i64,
    exp: i64,
    now: i64,
    leeway: i64,
    max_lifetime: i64,
) -> Result<(), AuthError> {
    if nbf > now + leeway || iat > now + leeway {
        return Err(AuthError::NotYetValid);
    }
    if exp <= now - leeway {
        return Err(AuthError::Expired);
    }
    if exp - iat > max_lifetime + leeway {
        return Err(AuthError::LifetimeTooLong);
    }
    Ok(())
}

/// How the client presented credentials (RFC 6750 section 2).
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    Bearer(&'a str),
    /// Two `Authorization` headers, a non-Bearer scheme with a query token, or header + query token.
    Ambiguous,
    /// An `Authorization` header that is not a Bearer token.
    OtherScheme,
}

/// Reads the bearer token from the `Authorization` header values and the raw query string. A token in
/// the query is never accepted; together with a header it is a malformed request (R-JWT-7).
pub fn presented<'a>(authorization: &[&'a [u8]], query: Option<&str>) -> Presented<'a> {
    let query_token = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next().is_some_and(|k| k == "access_token"))
    });
    match authorization {
        [] => Presented::None,
        [_, _, ..] => Presented::Ambiguous,
        [one] => {
            if query_token {
                return Presented::Ambiguous;
            }
            let Ok(text) = std::str::from_utf8(one) else {
                return Presented::OtherScheme;
            };
            let text = text.trim();
            match text.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    let token = token.trim_start();
                    if token.is_empty() {
                        Presented::None
                    } else {
                        Presented::Bearer(token)
                    }
                }
                None if text.eq_ignore_ascii_case("bearer") => Presented::None,
                _ => Presented::OtherScheme,
            }
        }
    }
}

/// Own-token fixtures the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use secrecy::SecretBox;

    pub(crate) const KEY: &[u8] = b"an-hs256-key-of-at-least-32-bytes-for-tests";

    pub(crate) fn config(
        algorithm: SigningAlg,
        key: OwnKey,
        previous: Option<PreviousKey>,
    ) -> JwtConfig {
        JwtConfig {
            algorithm,
            key,
            previous,
            issuer: "edge-proxy".into(),
            audience: "edge-proxy".into(),
            lifetime_secs: 900,
            leeway_secs: 30,
            realm: "edge-proxy".into(),
        }
    }

    pub(crate) fn hs_key(bytes: &[u8], kid: Option<&str>) -> OwnKey {
        OwnKey {
            kid: kid.map(str::to_owned),
            material: SecretBox::new(Box::new(bytes.to_vec())),
            public: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{config, hs_key, KEY};
    use super::*;

    const NOW: UnixSecs = UnixSecs(1_800_000_000);

    fn ed_key(seed: u8, kid: &str) -> OwnKey {
        OwnKey::ed25519(
            &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            Some(kid.into()),
        )
    }

    fn service() -> TokenService {
        TokenService::from_config(&config(SigningAlg::Hs256, hs_key(KEY, None), None))
    }

    #[test]
    fn eddsa_tokens_verify_and_the_jwks_publishes_only_public_keys() {
        let s = TokenService::from_config(&config(SigningAlg::EdDsa, ed_key(7, "k2"), None));
        let m = s.mint("u1", "a@example.com", &[], NOW).unwrap();
        assert_eq!(s.verify(&m.token, NOW).unwrap(), m.claims);
        let head: serde_json::Value =
            serde_json::from_slice(&split_compact(&m.token).unwrap()).unwrap();
        assert_eq!(head["alg"], "EdDSA");
        assert_eq!(head["kid"], "k2");
        let jwks: serde_json::Value = serde_json::from_str(&s.jwks(NOW).unwrap()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], "k2");
        assert!(keys[0].get("d").is_none(), "no private part in the JWKS");
        // HS256 keys are secret: no JWKS.
        assert!(service().jwks(NOW).is_none());
        // A token signed with another Ed25519 key (same kid) fails.
        let other = TokenService::from_config(&config(SigningAlg::EdDsa, ed_key(8, "k2"), None));
        let forged = other.mint("u1", "a@example.com", &[], NOW).unwrap();
        assert_eq!(s.verify(&forged.token, NOW), Err(AuthError::BadSignature));
        // alg confusion: an HS256 token whose secret is the public key is refused by the pinned alg.
        let public = s.keys[0].jwk.as_ref().unwrap()["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let confused = forge(
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k2"}"#,
            &claims(""),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(public)
                .unwrap(),
        );
        assert_eq!(s.verify(&confused, NOW), Err(AuthError::BadHeader));
    }

    #[test]
    fn the_previous_key_verifies_until_its_grace_period_ends() {
        let old = TokenService::from_config(&config(SigningAlg::EdDsa, ed_key(1, "old"), None));
        let before_rotation = old.mint("u1", "a@example.com", &[], NOW).unwrap();
        let rotated = TokenService::from_config(&config(
            SigningAlg::EdDsa,
            ed_key(2, "new"),
            Some(PreviousKey {
                key: ed_key(1, "old"),
                verify_until: NOW + 600,
            }),
        ));
        assert!(rotated.verify(&before_rotation.token, NOW + 599).is_ok());
        assert_eq!(
            rotated.verify(&before_rotation.token, NOW + 600),
            Err(AuthError::BadHeader),
            "the retired key no longer verifies"
        );
        let fresh = rotated.mint("u1", "a@example.com", &[], NOW).unwrap();
        let head: serde_json::Value =
            serde_json::from_slice(&split_compact(&fresh.token).unwrap()).unwrap();
        assert_eq!(head["kid"], "new");
        assert!(rotated.verify(&fresh.token, NOW).is_ok());
        assert!(
            old.verify(&fresh.token, NOW).is_err(),
            "new tokens are signed with the new key"
        );
        let kids = |now| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(&rotated.jwks(now).unwrap()).unwrap();
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(NOW), ["new", "old"]);
        assert_eq!(kids(NOW + 600), ["new"]);
        // HS256 rotation: same rule, keys told apart by kid only.
        let hs_old =
            TokenService::from_config(&config(SigningAlg::Hs256, hs_key(KEY, Some("a")), None));
        let t = hs_old.mint("u1", "a@example.com", &[], NOW).unwrap();
        let hs_new = TokenService::from_config(&config(
            SigningAlg::Hs256,
            hs_key(b"a-second-hs256-key-of-32-bytes-or-more!!", Some("b")),
            Some(PreviousKey {
                key: hs_key(KEY, Some("a")),
                verify_until: NOW + 10,
            }),
        ));
        assert!(hs_new.verify(&t.token, NOW).is_ok());
        assert!(hs_new.verify(&t.token, NOW + 10).is_err());
    }

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    /// Signs arbitrary header and payload JSON with the service key (HS256).
    fn forge(header: &str, payload: &str, key: &[u8]) -> String {
        use hmac_sha256::sign;
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        format!(
            "{signing_input}.{}",
            b64(&sign(key, signing_input.as_bytes()))
        )
    }

    mod hmac_sha256 {
        use hmac::{Hmac, Mac as _};
        pub(super) fn sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn claims(extra: &str) -> String {
        format!(
            r#"{{"iss":"edge-proxy","aud":"edge-proxy","sub":"u1","email":"a@example.com","roles":["user"],"iat":{NOW},"nbf":{NOW},"exp":{},"jti":"j1"{extra}}}"#,
            NOW + 900
        )
    }

    const GOOD_HEADER: &str = r#"{"alg":"HS256","typ":"at+jwt"}"#;

    #[test]
    fn a_minted_token_verifies_and_round_trips_its_claims() {
        let s = service();
        let m = s
            .mint("u1", "a@example.com", &["user".into()], NOW)
            .unwrap();
        let c = s.verify(&m.token, NOW + 10).unwrap();
        assert_eq!(c, m.claims);
        assert_eq!(c.jti.len(), 22, "128-bit jti, base64url");
        // The hand-rolled signer matches the library, so the forged cases below test what they say.
        assert!(s.verify(&forge(GOOD_HEADER, &claims(""), KEY), NOW).is_ok());
    }

    #[test]
    fn expiry_honours_the_30_second_leeway_only() {
        let s = service();
        let m = s.mint("u1", "a@example.com", &[], NOW).unwrap();
        assert!(s.verify(&m.token, NOW + 900 + 29).is_ok());
        assert_eq!(s.verify(&m.token, NOW + 900 + 30), Err(AuthError::Expired));
        assert_eq!(s.verify(&m.token, NOW - 31), Err(AuthError::NotYetValid));
    }

    #[test]
    fn crafted_tokens_are_refused() {
        let s = service();
        let cases: Vec<(&str, String)> = vec![
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                    b64(claims("").as_bytes())
                ),
            ),
            (
                "alg None signed",
                forge(r#"{"alg":"None","typ":"at+jwt"}"#, &claims(""), KEY),
            ),
            (
                "wrong typ",
                forge(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(""), KEY),
            ),
            (
                "crit",
                forge(
                    r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
                    &claims(""),
                    KEY,
                ),
            ),
            (
                "jku",
                forge(
                    r#"{"alg":"HS256","typ":"at+jwt","jku":"http://127.0.0.1:1/jwks"}"#,
                    &claims(""),
                    KEY,
                ),
            ),
            (
                "embedded jwk",
                forge(
                    r#"{"alg":"HS256","typ":"at+jwt","jwk":{"kty":"oct","k":"AA"}}"#,
                    &claims(""),
                    KEY,
                ),
            ),
            (
                "kid path",
                forge(
                    r#"{"alg":"HS256","typ":"at+jwt","kid":"../../etc/passwd"}"#,
                    &claims(""),
                    KEY,
                ),
            ),
            (
                "duplicate header member",
                forge(
                    r#"{"alg":"HS256","typ":"at+jwt","alg":"none"}"#,
                    &claims(""),
                    KEY,
                ),
            ),
            (
                "duplicate claim",
                forge(GOOD_HEADER, &claims(r#","sub":"admin""#), KEY),
            ),
            (
                "string exp",
                forge(
                    GOOD_HEADER,
                    &claims("").replace(
                        &format!("\"exp\":{}", NOW + 900),
                        &format!("\"exp\":\"{}\"", NOW + 900),
                    ),
                    KEY,
                ),
            ),
            (
                "wrong key",
                forge(
                    GOOD_HEADER,
                    &claims(""),
                    b"another-key-another-key-another-key-!!",
                ),
            ),
            (
                "wrong audience",
                forge(
                    GOOD_HEADER,
                    &claims("").replace("\"aud\":\"edge-proxy\"", "\"aud\":\"other\""),
                    KEY,
                ),
            ),
            (
                "wrong issuer",
                forge(
                    GOOD_HEADER,
                    &claims("").replace("\"iss\":\"edge-proxy\"", "\"iss\":\"evil\""),
                    KEY,
                ),
            ),
            (
                "future nbf",
                forge(
                    GOOD_HEADER,
                    &claims("")
                        .replace(&format!("\"nbf\":{NOW}"), &format!("\"nbf\":{}", NOW + 600)),
                    KEY,
                ),
            ),
            (
                "lifetime too long",
                forge(
                    GOOD_HEADER,
                    &claims("").replace(
                        &format!("\"exp\":{}", NOW + 900),
                        &format!("\"exp\":{}", NOW + 90_000),
                    ),
                    KEY,
                ),
            ),
            (
                "missing aud",
                forge(
                    GOOD_HEADER,
                    &claims("").replace("\"aud\":\"edge-proxy\",", ""),
                    KEY,
                ),
            ),
            (
                "padded segment",
                format!("{}=", forge(GOOD_HEADER, &claims(""), KEY)),
            ),
            (
                "two segments",
                b64(GOOD_HEADER.as_bytes()) + "." + &b64(claims("").as_bytes()),
            ),
            ("oversized", "a".repeat(MAX_TOKEN_BYTES + 1)),
        ];
        for (name, token) in cases {
            assert!(s.verify(&token, NOW).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn bearer_credentials_follow_rfc_6750() {
        assert_eq!(presented(&[], None), Presented::None);
        assert_eq!(presented(&[b"Bearer abc"], None), Presented::Bearer("abc"));
        assert_eq!(presented(&[b"bearer abc"], None), Presented::Bearer("abc"));
        assert_eq!(presented(&[b"Bearer "], None), Presented::None);
        assert_eq!(
            presented(&[b"Basic dXNlcjpw"], None),
            Presented::OtherScheme
        );
        assert_eq!(
            presented(&[b"Bearer a", b"Bearer b"], None),
            Presented::Ambiguous
        );
        assert_eq!(
            presented(&[b"Bearer a"], Some("x=1&access_token=b")),
            Presented::Ambiguous
        );
        assert_eq!(
            presented(&[], Some("access_token=b")),
            Presented::None,
            "query tokens are ignored"
        );
    }
}
