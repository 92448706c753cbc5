//! HS256 for the proxy's own keys with the HMAC key schedule done once. jsonwebtoken rebuilds the
//! keyed state (two SHA-256 compressions) on every sign and verify; here a keyed `Hmac<Sha256>` is
//! kept and cloned. Only the signature step is ours: the token's shape, header, claims and times
//! are still checked by `own.rs` exactly as for other algorithms, and the comparison is
//! `hmac`'s constant-time `verify_slice`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::tokens::own::AuthError;

/// A keyed HMAC-SHA256.
#[derive(Clone)]
pub(crate) struct Hs256(Hmac<Sha256>);

impl Hs256 {
    pub(crate) fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length.
        Self(Hmac::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key")))
    }

    fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The decoded payload of compact JWS `token` when its HS256 signature is this key's. The
    /// shape (three base64url segments) was checked by `split_compact`.
    pub(crate) fn verified_payload(&self, token: &str) -> Result<Vec<u8>, AuthError> {
        let (signed, sig) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        // An undecodable signature is a bad one (as jsonwebtoken reports it).
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AuthError::BadSignature)?;
        let mut mac = self.0.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
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
        let sig = self.sign(out.as_bytes());
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
        let key = Hs256::new(KEY);
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
    fn a_wrong_key_or_a_touched_token_is_refused() {
        let header = Header::new(Algorithm::HS256);
        let token = Hs256::new(KEY)
            .encode(&header_segment(&header), &serde_json::json!({"sub": "u1"}))
            .unwrap();
        assert_eq!(
            Hs256::new(b"another-key-of-at-least-32-bytes-long!!").verified_payload(&token),
            Err(AuthError::BadSignature)
        );
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut flipped = sig.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let touched = format!("{signed}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(
            Hs256::new(KEY).verified_payload(&touched),
            Err(AuthError::BadSignature)
        );
        let short = format!("{signed}.{}", &sig[..10]);
        assert_eq!(
            Hs256::new(KEY).verified_payload(&short),
            Err(AuthError::BadSignature)
        );
    }
}
