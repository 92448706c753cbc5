//! The proxy's own endpoints for sessions: login (`flow`: strict body, throttle, credential check,
//! mint), logout and logout-all (`logout`), and the credential-check client (`credentials`). None of
//! it touches pingora: the gateway hands it a body and a client and writes what it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use settings::Problems;

use crate::raw::{RawSessions, RawUpstream};

pub(crate) mod credentials;
pub(crate) mod flow;
pub(crate) mod logout;

#[derive(Debug, Clone)]
pub struct SessionsConfig {
    pub login_path: String,
    pub logout_path: String,
    pub logout_all_path: String,
    pub upstream: String,
    pub verify_path: String,
    pub max_body_bytes: u64,
    pub verify_timeout: Duration,
}

impl SessionsConfig {
    /// Validates `[sessions]`; `upstreams` are the configured pools the credential check may use.
    pub fn from_raw(
        sess: &RawSessions,
        upstreams: &BTreeMap<String, RawUpstream>,
        p: &mut Problems,
    ) -> Self {
        for (key, path) in [
            ("sessions.login_path", &sess.login_path),
            ("sessions.logout_path", &sess.logout_path),
            ("sessions.logout_all_path", &sess.logout_all_path),
            ("sessions.verify_path", &sess.verify_path),
        ] {
            if !path.starts_with('/') {
                p.push(format!("{key}: must start with /"));
            }
        }
        if !upstreams.contains_key(&sess.upstream) {
            p.push(format!(
                "sessions.upstream: no upstream named `{}` (define [upstreams.{}])",
                sess.upstream, sess.upstream
            ));
        }
        if sess.max_body_bytes == 0 || sess.max_body_bytes > 65_536 {
            p.push("sessions.max_body_bytes: must be between 1 and 65536");
        }
        Self {
            login_path: sess.login_path.clone(),
            logout_path: sess.logout_path.clone(),
            logout_all_path: sess.logout_all_path.clone(),
            upstream: sess.upstream.clone(),
            verify_path: sess.verify_path.clone(),
            max_body_bytes: sess.max_body_bytes,
            verify_timeout: Duration::from_millis(sess.verify_timeout_ms),
        }
    }
}
