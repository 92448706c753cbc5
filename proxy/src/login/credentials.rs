//! Login at the edge: the strict login body (R-LOGIN-9) and the call to the upstream's credential check
//! (`POST /internal/credentials/verify`). Token minting and the session store are the gateway's.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// R-LOGIN-9 bounds.
pub(crate) const MAX_EMAIL_CHARS: usize = 256;
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

/// A login body: a JSON object with exactly the string members `email` and `password`. Duplicate,
/// missing, extra or mistyped members are refused (serde's derive reports duplicates).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl LoginRequest {
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let req: Self = serde_json::from_slice(body).ok()?;
        let email_len = req.email.chars().count();
        let ok = (1..=MAX_EMAIL_CHARS).contains(&email_len)
            && (1..=MAX_PASSWORD_BYTES).contains(&req.password.len());
        ok.then_some(req)
    }
}

/// The email of a login body that is not a valid login (R-LOGIN-9), so the attempt can still be
/// counted as one failure for that account: only when the body is a JSON object whose `email` is a
/// string of acceptable length.
pub(crate) fn email_of_malformed(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let email = v.as_object()?.get("email")?.as_str()?;
    (1..=MAX_EMAIL_CHARS)
        .contains(&email.chars().count())
        .then(|| email.to_owned())
}

/// The account key for throttling and logs: NFKC, trimmed, lower-case (R-LOGIN-6).
pub(crate) fn normalise_account(email: &str) -> String {
    email.nfkc().collect::<String>().trim().to_lowercase()
}

/// What the credential check answered.
#[derive(Debug, Deserialize)]
pub(crate) struct VerifiedUser {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("credentials refused")]
    Refused,
    #[error("credential check failed: {0}")]
    Upstream(String),
}

/// Calls the upstream's credential check.
pub(crate) struct CredentialClient {
    http: reqwest::Client,
    path: String,
}

impl CredentialClient {
    pub(crate) fn new(path: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            path: path.to_owned(),
        })
    }

    /// The path the credential check is served on (the service assertion is bound to it).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Asks `peer` whether `req`'s credentials are right; `assertion` is the proxy's service
    /// assertion for this call (`sub` [`crate::tokens::assertion::SERVICE_SUBJECT`]), without which the
    /// upstream answers 404.
    pub(crate) async fn verify(
        &self,
        peer: SocketAddr,
        req: &LoginRequest,
        request_id: &str,
        assertion: &str,
    ) -> Result<VerifiedUser, VerifyError> {
        let url = format!("http://{peer}{}", self.path);
        let resp = self
            .http
            .post(url)
            .header("x-request-id", request_id)
            .header("x-user-id", crate::tokens::assertion::SERVICE_SUBJECT)
            .header("x-identity-assertion", assertion)
            .json(req)
            .send()
            .await
            .map_err(|e| VerifyError::Upstream(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => resp
                .json::<VerifiedUser>()
                .await
                .map_err(|e| {
                    VerifyError::Upstream(format!(
                        "bad credential check answer: {}",
                        e.without_url()
                    ))
                })
                .and_then(|u| {
                    if u.user_id.is_empty() {
                        Err(VerifyError::Upstream("empty user_id".into()))
                    } else {
                        Ok(u)
                    }
                }),
            401 => Err(VerifyError::Refused),
            s => Err(VerifyError::Upstream(format!(
                "credential check answered {s}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_with_exactly_email_and_password_strings_is_a_login() {
        assert!(LoginRequest::parse(br#"{"email":"a@example.com","password":"pw"}"#).is_some());
        for body in [
            &br#"{"email":"a@example.com","password":"pw","extra":1}"#[..],
            br#"{"email":"a@example.com","email":"b@example.com","password":"pw"}"#,
            br#"{"email":["a@example.com"],"password":"pw"}"#,
            br#"{"email":"a@example.com","password":{"x":1}}"#,
            br#"{"email":"a@example.com","password":12345678}"#,
            br#"{"email":"a@example.com"}"#,
            br#"[{"email":"a@example.com","password":"pw"}]"#,
            br#"{"email":"","password":"pw"}"#,
            br#"{"email":"a@example.com","password":""}"#,
            b"not json",
            b"",
        ] {
            assert!(
                LoginRequest::parse(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(
            r#"{{"email":"a@example.com","password":"{}"}}"#,
            "x".repeat(1025)
        );
        assert!(LoginRequest::parse(long.as_bytes()).is_none());
    }

    #[test]
    fn a_malformed_login_still_names_its_account_when_it_can() {
        assert_eq!(
            email_of_malformed(br#"{"email":"a@example.com","password":5}"#).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            email_of_malformed(br#"{"email":"a@example.com","extra":true}"#).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(email_of_malformed(br#"{"email":["a@example.com"]}"#), None);
        assert_eq!(email_of_malformed(br#"["a@example.com"]"#), None);
        assert_eq!(email_of_malformed(b"garbage"), None);
    }

    #[test]
    fn account_keys_ignore_case_width_and_surrounding_space() {
        for raw in [
            "Alice@Example.com",
            " alice@example.com ",
            "ALICE@EXAMPLE.COM",
            "ａｌｉｃｅ@example.com",
        ] {
            assert_eq!(normalise_account(raw), "alice@example.com");
        }
    }

    #[test]
    fn the_password_never_appears_in_debug_output() {
        let r = LoginRequest::parse(br#"{"email":"a@example.com","password":"hunter2-secret"}"#)
            .unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
