//! The one mapping from a pingora error to the answer the client gets ([`ProxyError::from_pingora`]).
//! Refusals the gateway decided itself never come through here: they travel as `ProxyError`.

use pingora::{Error, ErrorSource, ErrorType};

use crate::error::ProxyError;

impl ProxyError {
    /// What a failed proxy attempt answers: connect failures → 502, upstream timeouts → 504, a client
    /// that stalled → 408, anything else the client caused → 400, the rest → 502/500.
    pub fn from_pingora(e: &Error) -> Self {
        match (e.etype(), e.esource()) {
            (ErrorType::ReadTimedout, ErrorSource::Downstream) => Self::RequestTimeout,
            (
                ErrorType::ConnectTimedout
                | ErrorType::ConnectRefused
                | ErrorType::ConnectNoRoute
                | ErrorType::ConnectError
                | ErrorType::TLSHandshakeFailure,
                _,
            ) => Self::BadGateway,
            (ErrorType::ReadTimedout | ErrorType::WriteTimedout, ErrorSource::Upstream) => {
                Self::GatewayTimeout
            }
            (_, ErrorSource::Upstream) => Self::BadGateway,
            (_, ErrorSource::Downstream) => Self::InvalidRequest,
            _ => Self::Internal,
        }
    }
}

/// The client went away (nothing to answer, nothing worth a log line).
pub(crate) fn downstream_gone(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pingora_failure_maps_to_one_answer() {
        use ErrorSource::{Downstream, Internal, Upstream};
        let table = [
            (
                ErrorType::ReadTimedout,
                Downstream,
                ProxyError::RequestTimeout,
            ),
            (
                ErrorType::ReadTimedout,
                Upstream,
                ProxyError::GatewayTimeout,
            ),
            (
                ErrorType::WriteTimedout,
                Upstream,
                ProxyError::GatewayTimeout,
            ),
            (ErrorType::ConnectTimedout, Upstream, ProxyError::BadGateway),
            (ErrorType::ConnectRefused, Upstream, ProxyError::BadGateway),
            (ErrorType::ConnectNoRoute, Internal, ProxyError::BadGateway),
            (ErrorType::ConnectError, Upstream, ProxyError::BadGateway),
            (
                ErrorType::TLSHandshakeFailure,
                Upstream,
                ProxyError::BadGateway,
            ),
            (
                ErrorType::ConnectionClosed,
                Upstream,
                ProxyError::BadGateway,
            ),
            (
                ErrorType::InvalidHTTPHeader,
                Upstream,
                ProxyError::BadGateway,
            ),
            (
                ErrorType::InvalidHTTPHeader,
                Downstream,
                ProxyError::InvalidRequest,
            ),
            (ErrorType::ReadError, Downstream, ProxyError::InvalidRequest),
            (
                ErrorType::WriteTimedout,
                Downstream,
                ProxyError::InvalidRequest,
            ),
            (ErrorType::InternalError, Internal, ProxyError::Internal),
            (ErrorType::HTTPStatus(413), Internal, ProxyError::Internal),
        ];
        for (etype, source, want) in table {
            let e = match source {
                Upstream => Error::new_up(etype.clone()),
                Downstream => Error::new_down(etype.clone()),
                _ => Error::new_in(etype.clone()),
            };
            assert_eq!(
                ProxyError::from_pingora(&e),
                want,
                "{etype:?} from {source:?}"
            );
        }
        assert!(downstream_gone(&Error::new_down(
            ErrorType::ConnectionClosed
        )));
        assert!(!downstream_gone(&Error::new_up(
            ErrorType::ConnectionClosed
        )));
    }
}
