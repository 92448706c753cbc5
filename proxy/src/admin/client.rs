//! The CLI side of the admin API: `edge-proxy admin …` and `edge-proxy healthcheck` call the running
//! proxy's admin listener (address and token from the same config file), so operators and container
//! health checks need neither curl nor the token on the command line.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::AdminConfig;

/// How long a CLI call waits for the admin listener.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Throttle state of an account.
    Status {
        email: String,
    },
    Unlock {
        email: String,
    },
    /// `issuer`: an external issuer's name; `None` for the proxy's own tokens.
    RevokeUser {
        user_id: String,
        issuer: Option<String>,
    },
    RevokeToken {
        jti: String,
        issuer: Option<String>,
    },
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Runs an admin command; `Ok` carries what to print.
pub async fn run(admin: &AdminConfig, cmd: &AdminCommand) -> Result<String, String> {
    let base = format!("http://{}", settings::reachable(admin.listen));
    let (method, path, done) = match cmd {
        AdminCommand::Status { email } => (
            reqwest::Method::GET,
            format!("/admin/accounts/{}", segment(email)),
            "",
        ),
        AdminCommand::Unlock { email } => (
            reqwest::Method::POST,
            format!("/admin/accounts/{}/unlock", segment(email)),
            "unlocked",
        ),
        AdminCommand::RevokeUser { user_id, issuer } => (
            reqwest::Method::POST,
            match issuer {
                None => format!("/admin/users/{}/revoke-all", segment(user_id)),
                Some(iss) => format!(
                    "/admin/issuers/{}/users/{}/revoke-all",
                    segment(iss),
                    segment(user_id)
                ),
            },
            "all sessions of the user revoked",
        ),
        AdminCommand::RevokeToken { jti, issuer } => (
            reqwest::Method::POST,
            match issuer {
                None => format!("/admin/tokens/{}/revoke", segment(jti)),
                Some(iss) => format!(
                    "/admin/issuers/{}/tokens/{}/revoke",
                    segment(iss),
                    segment(jti)
                ),
            },
            "token revoked",
        ),
    };
    let resp = client()?
        .request(method, format!("{base}{path}"))
        .bearer_auth(admin.token.expose_secret())
        .send()
        .await
        .map_err(|e| format!("admin listener {base} unreachable: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        200 => Ok(body),
        204 => Ok(done.to_owned()),
        401 => Err("the admin token was refused (check admin.token_file)".into()),
        s => Err(format!("admin API answered {s}: {body}")),
    }
}

/// `edge-proxy healthcheck`: 0 when `/readyz` (or `/healthz` with `live`) answers 200.
pub async fn healthcheck(admin: &AdminConfig, live: bool) -> Result<String, String> {
    settings::healthcheck(admin.listen, if live { "/healthz" } else { "/readyz" }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("alice+tag@example.com"), "alice%2Btag@example.com");
        assert_eq!(segment("../x"), "..%2Fx");
    }
}
