//! Compact JWS for the proxy's own keys with the key work done once. jsonwebtoken rebuilds the
//! key on every call: the keyed HMAC state for HS256 (two SHA-256 compressions), and for EdDSA a
//! PKCS#8 parse plus the public-key derivation (a scalar multiplication) per signature and a point
//! decompression per verification. Here the keyed `Hmac<Sha256>`, the ed25519-dalek `SigningKey`
//! and `VerifyingKey` are kept. Only the signature step is ours: the token's shape, header, claims
//! and times are still checked by `own.rs` as for any token; HS256 compares with `hmac`'s
//! constant-time `verify_slice`, EdDSA verifies with ed25519-dalek's `Verifier`, as jsonwebtoken does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::tokens::keys::{OwnKey, SigningAlg};
use crate::tokens::own::AuthError;

/// An own key, ready to sign and verify.
#[derive(Clone)]
pub(crate) enum JwsKey {
    Hmac(Hmac<Sha256>),
    Ed25519 {
        signing: Option<Box<ed25519_dalek::SigningKey>>,
        verifying: ed25519_dalek::VerifyingKey,
    },
}

impl JwsKey {
    /// An HS256 key (HMAC takes keys of any length).
    pub(crate) fn new(key: &[u8]) -> Self {
        Self::Hmac(
            Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key")),
        )
    }

    /// `key` for `alg`; `None` when an Ed25519 key cannot be loaded (jsonwebtoken then decides).
    pub(crate) fn for_key(alg: SigningAlg, key: &OwnKey) -> Option<Self> {
        let material = secrecy::ExposeSecret::expose_secret(&key.material);
        match alg {
            SigningAlg::Hs256 => Some(Self::new(material)),
            SigningAlg::EdDsa => {
                let verifying =
                    ed25519_dalek::VerifyingKey::from_bytes(key.public.as_ref()?).ok()?;
                let signing = ed25519_dalek::SigningKey::from_pkcs8_der(material)
                    .ok()
                    .map(Box::new);
                Some(Self::Ed25519 { signing, verifying })
            }
        }
    }

    /// Whether this key can sign (an Ed25519 key loaded from its public half only cannot).
    pub(crate) fn can_sign(&self) -> bool {
        match self {
            Self::Hmac(_) => true,
            Self::Ed25519 { signing, .. } => signing.is_some(),
        }
    }

    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Hmac(key) => {
                let mut mac = key.clone();
                mac.update(message);
                Some(mac.finalize().into_bytes().to_vec())
            }
            Self::Ed25519 { signing, .. } => {
                Some(signing.as_ref()?.sign(message).to_bytes().to_vec())
            }
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => {
                let mut mac = key.clone();
                mac.update(message);
                mac.verify_slice(sig).is_ok()
            }
            Self::Ed25519 { verifying, .. } => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| verifying.verify(message, &s).is_ok()),
        }
    }

    /// The decoded payload of compact JWS `token` when its signature is this key's. The shape
    /// (three base64url segments) was checked by `split_compact`.
    pub(crate) fn verified_payload(&self, token: &str) -> Result<Vec<u8>, AuthError> {
        let (signed, sig) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        // An undecodable signature is a bad one (as jsonwebtoken reports it).
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AuthError::BadSignature)?;
        if !self.verify(signed.as_bytes(), &sig) {
            return Err(AuthError::BadSignature);
        }
        let (_, payload) = signed.split_once('.').ok_or(AuthError::Malformed)?;
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::Malformed)
    }

    /// A compact JWS of `claims` under the already encoded header segment `header_b64`.
    pub(crate) fn encode(
        &self,
        header_b64: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, serde_json::Error> {
        let json = serde_json::to_vec(claims)?;
        let mut out = String::with_capacity(header_b64.len() + json.len() * 4 / 3 + 48);
        out.push_str(header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&json, &mut out);
        let sig = self
            .sign(out.as_bytes())
            .ok_or_else(|| serde::ser::Error::custom("no signing key"))?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

/// The encoded header segment of `header` (what jsonwebtoken writes first).
pub(crate) fn header_segment(header: &jsonwebtoken::Header) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    const KEY: &[u8] = b"an-hs256-key-of-at-least-32-bytes-for-tests"; // pragma: allowlist secret

    #[test]
    fn tokens_are_byte_for_byte_jsonwebtokens_and_verify_both_ways() {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("identity+jwt".into());
        let claims = serde_json::json!({"sub": "u1", "exp": 4_000_000_000_i64, "aud": "todo"});
        let key = JwsKey::new(KEY);
        let ours = key.encode(&header_segment(&header), &claims).unwrap();
        let theirs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(KEY)).unwrap();
        assert_eq!(ours, theirs);
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["todo"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &ours,
            &DecodingKey::from_secret(KEY),
            &v
        )
        .is_ok());
        let payload: serde_json::Value =
            serde_json::from_slice(&key.verified_payload(&theirs).unwrap()).unwrap();
        assert_eq!(payload, claims);
    }

    #[test]
    fn ed25519_tokens_are_byte_for_byte_jsonwebtokens_and_verify_both_ways() {
        let own = OwnKey::ed25519(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]), None);
        let key = JwsKey::for_key(SigningAlg::EdDsa, &own).unwrap();
        assert!(key.can_sign());
        let header = Header::new(Algorithm::EdDSA);
        let claims = serde_json::json!({"sub": "u1", "exp": 4_000_000_000_i64});
        let ours = key.encode(&header_segment(&header), &claims).unwrap();
        let theirs =
            jsonwebtoken::encode(&header, &claims, &own.encoding(SigningAlg::EdDsa)).unwrap();
        assert_eq!(ours, theirs, "Ed25519 signatures are deterministic");
        let payload: serde_json::Value =
            serde_json::from_slice(&key.verified_payload(&theirs).unwrap()).unwrap();
        assert_eq!(payload, claims);
        let other = OwnKey::ed25519(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]), None);
        let forged = JwsKey::for_key(SigningAlg::EdDsa, &other)
            .unwrap()
            .encode(&header_segment(&header), &claims)
            .unwrap();
        assert_eq!(key.verified_payload(&forged), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_wrong_key_or_a_touched_token_is_refused() {
        let header = Header::new(Algorithm::HS256);
        let token = JwsKey::new(KEY)
            .encode(&header_segment(&header), &serde_json::json!({"sub": "u1"}))
            .unwrap();
        assert_eq!(
            JwsKey::new(b"another-key-of-at-least-32-bytes-long!!").verified_payload(&token),
            Err(AuthError::BadSignature)
        );
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut flipped = sig.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let touched = format!("{signed}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(
            JwsKey::new(KEY).verified_payload(&touched),
            Err(AuthError::BadSignature)
        );
        let short = format!("{signed}.{}", &sig[..10]);
        assert_eq!(
            JwsKey::new(KEY).verified_payload(&short),
            Err(AuthError::BadSignature)
        );
    }
}
