//! Everything that touches pingora: the connection wrapper (`conn`), the request context (`ctx`),
//! head checks (`framing`), header work (`headers`), body metering (`body`), the writer of synthetic
//! answers (`respond`), the pingora-error mapping (`pingora_error`), upstream pools (`upstream`) and
//! the edge cache's storage (`cache_storage`).

pub(crate) mod body;
pub(crate) mod cache_storage;
pub(crate) mod conn;
pub(crate) mod ctx;
pub(crate) mod framing;
pub(crate) mod headers;
pub(crate) mod pingora_error;
pub(crate) mod respond;
pub(crate) mod upstream;
