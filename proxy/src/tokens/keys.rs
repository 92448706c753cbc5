//! Signing keys of the proxy's own tokens (R-JWT table: HS256 with ≥ 32 random bytes, or EdDSA), and
//! the JWKS document that publishes the EdDSA public keys (`GET /.well-known/jwks.json`).
//!
//! An HS256 key is base64 text (checked by `settings::symmetric_key`); an EdDSA key is a PKCS#8 PEM
//! Ed25519 private key, as `openssl genpkey -algorithm ed25519` writes it.

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};

/// The one algorithm own tokens are signed and verified with (pinned, RFC 8725 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Hs256,
    EdDsa,
}

impl SigningAlg {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "HS256" => Ok(Self::Hs256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!(
                "jwt.algorithm: `{other}` is not supported; use HS256 or EdDSA"
            )),
        }
    }

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Hs256 => jsonwebtoken::Algorithm::HS256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// One own signing key: the secret (HS256) or the PKCS#8 DER private key (EdDSA), and its `kid`.
#[derive(Debug)]
pub struct OwnKey {
    pub kid: Option<String>,
    pub material: SecretBox<Vec<u8>>,
    /// Ed25519 public key (32 bytes); `None` for HS256.
    pub public: Option<[u8; 32]>,
}

impl OwnKey {
    /// Parses the configured key text for `alg`. `name` is the config key, for the error message.
    pub fn parse(
        alg: SigningAlg,
        name: &str,
        text: &SecretString,
        kid: Option<String>,
    ) -> Result<Self, String> {
        match alg {
            SigningAlg::Hs256 => Ok(Self {
                kid,
                material: settings::symmetric_key(name, text)?,
                public: None,
            }),
            SigningAlg::EdDsa => {
                let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(text.expose_secret().trim())
                    .map_err(|_| {
                        format!("{name}: not a PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`)")
                    })?;
                Ok(Self::ed25519(&signing, kid))
            }
        }
    }

    /// An EdDSA key from a dalek signing key.
    pub fn ed25519(signing: &ed25519_dalek::SigningKey, kid: Option<String>) -> Self {
        let der = signing
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            kid,
            material: SecretBox::new(Box::new(der)),
            public: Some(signing.verifying_key().to_bytes()),
        }
    }

    pub fn encoding(&self, alg: SigningAlg) -> jsonwebtoken::EncodingKey {
        match alg {
            SigningAlg::Hs256 => {
                jsonwebtoken::EncodingKey::from_secret(self.material.expose_secret())
            }
            SigningAlg::EdDsa => {
                jsonwebtoken::EncodingKey::from_ed_der(self.material.expose_secret())
            }
        }
    }

    pub fn decoding(&self, alg: SigningAlg) -> jsonwebtoken::DecodingKey {
        match (alg, &self.public) {
            (SigningAlg::EdDsa, Some(public)) => jsonwebtoken::DecodingKey::from_ed_der(public),
            _ => jsonwebtoken::DecodingKey::from_secret(self.material.expose_secret()),
        }
    }

    /// The key as a JWK (RFC 8037), for EdDSA keys.
    pub fn jwk(&self) -> Option<serde_json::Value> {
        let public = self.public?;
        let mut jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
            "alg": "EdDSA",
            "use": "sig",
        });
        if let Some(kid) = &self.kid {
            jwk["kid"] = serde_json::Value::String(kid.clone());
        }
        Some(jwk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1 TEST 1's published secret key, PKCS#8-wrapped: a test vector, not a secret.
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"; // pragma: allowlist secret

    #[test]
    fn an_openssl_ed25519_pem_key_parses_and_publishes_its_public_half() {
        // RFC 8032 test vector 1's secret key in PKCS#8 (as `openssl pkey` prints it).
        let key = OwnKey::parse(
            SigningAlg::EdDsa,
            "jwt.key",
            &SecretString::from(PEM),
            Some("k1".into()),
        )
        .unwrap();
        let jwk = key.jwk().unwrap();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["kid"], "k1");
        // RFC 8032 section 7.1, TEST 1: the public key of that secret.
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a") // pragma: allowlist secret (RFC 8032 public key)
        );
    }

    #[test]
    fn wrong_key_material_is_refused_by_name() {
        let err = OwnKey::parse(
            SigningAlg::EdDsa,
            "jwt.key",
            &SecretString::from("bzY5rOYUNEXYxpdnWPGmsnaEoygAgxash5EknaSJJ1Q="),
            None,
        )
        .unwrap_err();
        assert!(
            err.starts_with("jwt.key: not a PKCS#8 PEM Ed25519"),
            "{err}"
        );
        assert!(SigningAlg::parse("RS256").is_err());
        assert!(SigningAlg::parse("none").is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }
}
