//! `ProxyError`: every answer the proxy generates itself, and the single mapping from an error to its
//! status, headers and JSON body (SECURITY.md conventions: `application/json`, `Cache-Control:
//! no-store`, `{"error":"<code>"}`). `Gateway::reject` writes what [`ProxyError::response`] describes.

use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(test, derive(strum::EnumIter))]
pub enum ProxyError {
    #[error("no route")]
    NotFound,
    /// The client sent its body too slowly (R-HTTP: idle timeout or minimum rate).
    #[error("request timeout")]
    RequestTimeout,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("path refused")]
    InvalidPath,
    #[error("malformed request")]
    InvalidRequest,
    /// Request line over 8 KiB (R-HTTP table).
    #[error("request line too long")]
    UriTooLong,
    /// One header line over 8 KiB, all headers over 32 KiB, or more than 100 (R-HTTP table).
    #[error("headers too large")]
    HeadersTooLarge,
    /// RFC 6750 `invalid_request`: two credentials, or header and query token together.
    #[error("ambiguous credentials")]
    AmbiguousCredentials,
    #[error("payload too large")]
    PayloadTooLarge { max_bytes: u64 },
    #[error("missing credentials")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Login throttled (backoff, lock, in flight, per-IP); one shape for every reason (R-LOGIN-5).
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    /// An unsafe method from an origin the route's CORS policy does not allow (R-CORS-6).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// A preflight the policy refuses (R-CORS-3): 403 without any `Access-Control-*` header.
    #[error("preflight refused")]
    PreflightRefused,
    /// The client IP has too many connections open (`limits.max_connections_per_ip`).
    #[error("too many connections")]
    TooManyConnections,
    /// The version header, its repetitions and the `Accept` parameter name different versions.
    #[error("conflicting API versions")]
    ConflictingApiVersion,
    /// A version the route's scheme neither supports nor has retired (or not a version at all).
    #[error("unsupported API version")]
    UnsupportedApiVersion { supported: Vec<String> },
    /// A retired version, or a deprecated one during a brownout (with its migration link).
    #[error("API version retired")]
    ApiVersionRetired { link: Option<String> },
    #[error("store unavailable")]
    Unavailable,
    #[error("no healthy upstream")]
    BadGateway,
    #[error("upstream timed out")]
    GatewayTimeout,
    #[error("internal error")]
    Internal,
}

/// Methods the proxy can ever forward; what a 405 for `TRACE` or `CONNECT` names in `Allow`.
pub(crate) const FORWARDABLE_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Retry-After for 503s while the store is down (R-JWT-6).
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// What to send: status, extra headers (beyond content type and cache control) and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidPath
            | Self::InvalidRequest
            | Self::AmbiguousCredentials
            | Self::ConflictingApiVersion
            | Self::UnsupportedApiVersion { .. } => StatusCode::BAD_REQUEST,
            Self::ApiVersionRetired { .. } => StatusCode::GONE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MissingToken | Self::InvalidToken | Self::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::TooManyAttempts { .. } | Self::TooManyConnections => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::OriginNotAllowed | Self::PreflightRefused => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error` code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::InvalidPath => "invalid_path",
            Self::InvalidRequest | Self::AmbiguousCredentials => "invalid_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::TooManyConnections => "too_many_connections",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::PreflightRefused => "cors_preflight_refused",
            Self::ConflictingApiVersion => "conflicting_api_version",
            Self::UnsupportedApiVersion { .. } => "unsupported_api_version",
            Self::ApiVersionRetired { .. } => "api_version_retired",
            Self::Unavailable => "unavailable",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Internal => "internal",
        }
    }

    /// Framing refusals end the connection: what follows on it cannot be trusted (R-HTTP-1).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::InvalidRequest
                | Self::InvalidPath
                | Self::UriTooLong
                | Self::HeadersTooLarge
                | Self::RequestTimeout
                | Self::TooManyConnections
        )
    }

    /// The error behind an answer pingora's HTTP/1 parser wrote with `status` before any filter ran
    /// (it only ever writes 400 for a malformed head and 405 for `CONNECT`; the rest is defensive).
    pub fn for_parser_status(status: u16) -> Self {
        match status {
            405 => Self::MethodNotAllowed {
                allow: FORWARDABLE_METHODS.to_owned(),
            },
            408 => Self::RequestTimeout,
            414 => Self::UriTooLong,
            431 => Self::HeadersTooLarge,
            429 => Self::TooManyConnections,
            502 => Self::BadGateway,
            503 => Self::Unavailable,
            504 => Self::GatewayTimeout,
            500..=599 => Self::Internal,
            _ => Self::InvalidRequest,
        }
    }

    /// Status, headers and body for this error; `realm` is the `WWW-Authenticate` realm.
    pub fn response(&self, realm: &str) -> ErrorResponse {
        let mut headers = Vec::new();
        let mut body = serde_json::json!({ "error": self.code() });
        match self {
            Self::MethodNotAllowed { allow } => headers.push(("allow", allow.clone())),
            Self::PayloadTooLarge { max_bytes } => {
                body["max_bytes"] = (*max_bytes).into();
            }
            Self::UnsupportedApiVersion { supported } => {
                body["supported"] = supported.clone().into();
            }
            Self::ApiVersionRetired { link: Some(link) } => {
                body["link"] = link.clone().into();
                headers.push(("link", format!("<{link}>; rel=\"deprecation\"")));
            }
            Self::MissingToken => {
                headers.push(("www-authenticate", format!("Bearer realm=\"{realm}\"")));
            }
            Self::InvalidToken => headers.push((
                "www-authenticate",
                format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
            )),
            Self::AmbiguousCredentials => headers.push((
                "www-authenticate",
                format!("Bearer realm=\"{realm}\", error=\"invalid_request\""),
            )),
            Self::Unavailable => {
                headers.push(("retry-after", UNAVAILABLE_RETRY_AFTER_SECS.to_string()));
            }
            Self::TooManyAttempts { retry_after_secs } => {
                headers.push(("retry-after", retry_after_secs.to_string()));
            }
            Self::TooManyConnections => headers.push(("retry-after", "1".to_owned())),
            _ => {}
        }
        ErrorResponse {
            status: self.status(),
            headers,
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator as _;

    /// What each variant must answer: status, code, one header, and whether it closes the connection.
    /// The `match` has no wildcard, so a new variant does not compile until it is listed here.
    fn expected(err: &ProxyError) -> (u16, &'static str, Option<(&'static str, String)>, bool) {
        let bearer = |error: &str| {
            let attr = if error.is_empty() {
                String::new()
            } else {
                format!(", error=\"{error}\"")
            };
            Some(("www-authenticate", format!("Bearer realm=\"r\"{attr}")))
        };
        match err {
            ProxyError::NotFound => (404, "not_found", None, false),
            ProxyError::RequestTimeout => (408, "request_timeout", None, true),
            ProxyError::MethodNotAllowed { allow } => (
                405,
                "method_not_allowed",
                Some(("allow", allow.clone())),
                false,
            ),
            ProxyError::InvalidPath => (400, "invalid_path", None, true),
            ProxyError::InvalidRequest => (400, "invalid_request", None, true),
            ProxyError::UriTooLong => (414, "uri_too_long", None, true),
            ProxyError::HeadersTooLarge => (431, "headers_too_large", None, true),
            ProxyError::AmbiguousCredentials => {
                (400, "invalid_request", bearer("invalid_request"), false)
            }
            ProxyError::PayloadTooLarge { .. } => (413, "payload_too_large", None, false),
            ProxyError::MissingToken => (401, "missing_token", bearer(""), false),
            ProxyError::InvalidToken => (401, "invalid_token", bearer("invalid_token"), false),
            ProxyError::InvalidCredentials => (401, "invalid_credentials", None, false),
            ProxyError::TooManyAttempts { retry_after_secs } => (
                429,
                "too_many_attempts",
                Some(("retry-after", retry_after_secs.to_string())),
                false,
            ),
            ProxyError::OriginNotAllowed => (403, "origin_not_allowed", None, false),
            ProxyError::PreflightRefused => (403, "cors_preflight_refused", None, false),
            ProxyError::ConflictingApiVersion => (400, "conflicting_api_version", None, false),
            ProxyError::UnsupportedApiVersion { .. } => {
                (400, "unsupported_api_version", None, false)
            }
            ProxyError::ApiVersionRetired { link } => (
                410,
                "api_version_retired",
                link.as_ref()
                    .map(|l| ("link", format!("<{l}>; rel=\"deprecation\""))),
                false,
            ),
            ProxyError::TooManyConnections => (
                429,
                "too_many_connections",
                Some(("retry-after", "1".to_owned())),
                true,
            ),
            ProxyError::Unavailable => (
                503,
                "unavailable",
                Some(("retry-after", "5".to_owned())),
                false,
            ),
            ProxyError::BadGateway => (502, "bad_gateway", None, false),
            ProxyError::GatewayTimeout => (504, "gateway_timeout", None, false),
            ProxyError::Internal => (500, "internal", None, false),
        }
    }

    #[test]
    fn every_variant_maps_to_its_status_code_and_headers() {
        for err in ProxyError::iter() {
            // Fields get values a default would not have, so the header check means something.
            let err = match err {
                ProxyError::MethodNotAllowed { .. } => ProxyError::MethodNotAllowed {
                    allow: "GET, POST".into(),
                },
                ProxyError::PayloadTooLarge { .. } => {
                    ProxyError::PayloadTooLarge { max_bytes: 4096 }
                }
                ProxyError::TooManyAttempts { .. } => ProxyError::TooManyAttempts {
                    retry_after_secs: 7,
                },
                ProxyError::ApiVersionRetired { .. } => ProxyError::ApiVersionRetired {
                    link: Some("https://docs.example/v".into()),
                },
                other => other,
            };
            let (status, code, header, closes) = expected(&err);
            let r = err.response("r");
            assert_eq!(r.status.as_u16(), status, "{err:?}");
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["error"], code, "{err:?}");
            assert_eq!(err.closes_connection(), closes, "{err:?}");
            if let Some((name, value)) = header {
                assert!(
                    r.headers.iter().any(|(n, v)| *n == name && *v == value),
                    "{err:?}: {:?}",
                    r.headers
                );
            } else {
                assert!(r.headers.is_empty(), "{err:?}: {:?}", r.headers);
            }
        }
    }

    #[test]
    fn payload_too_large_names_the_limit() {
        let r = ProxyError::PayloadTooLarge { max_bytes: 10 }.response("r");
        assert_eq!(r.body, r#"{"error":"payload_too_large","max_bytes":10}"#);
    }

    #[test]
    fn version_refusals_name_what_the_client_can_do() {
        let r = ProxyError::UnsupportedApiVersion {
            supported: vec!["2025-01-24".into(), "2026-12-01".into()],
        }
        .response("r");
        assert_eq!(
            r.body,
            r#"{"error":"unsupported_api_version","supported":["2025-01-24","2026-12-01"]}"#
        );
        let r = ProxyError::ApiVersionRetired {
            link: Some("https://docs.example/v".into()),
        }
        .response("r");
        assert_eq!(
            r.body,
            r#"{"error":"api_version_retired","link":"https://docs.example/v"}"#
        );
        let r = ProxyError::ApiVersionRetired { link: None }.response("r");
        assert_eq!(r.body, r#"{"error":"api_version_retired"}"#);
        assert!(r.headers.is_empty());
    }

    #[test]
    fn parser_statuses_keep_their_status() {
        for status in [400, 405, 408, 414, 429, 431, 500, 502] {
            assert_eq!(
                ProxyError::for_parser_status(status).status().as_u16(),
                status
            );
        }
    }
}
