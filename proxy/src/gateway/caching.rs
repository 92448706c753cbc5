//! The edge cache on pingora-cache (DESIGN.md 7.2), applying `policy::caching`: in the request
//! filter (after authentication) a read gets its key, with the scope's generation, and a write
//! gives its scopes new generations; pingora's cache phases then look the key up (one upstream
//! request per key at a time, behind the cache lock), store what may be stored, serve stale while
//! revalidating and revalidate with the stored `ETag`; the response filter answers `Cache-Status`,
//! counts the outcome and, for a write answered 2xx, gives its scopes new generations once more.
//!
//! Freshness runs on the system clock, as pingora-cache's does (its `CacheMeta` is checked against
//! `SystemTime::now()`); invalidation does not depend on time at all.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};
use pingora::cache::lock::CacheKeyLockImpl;
use pingora::cache::{
    CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable, VarianceBuilder,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::Gateway;
use crate::config::CacheSettings;
use crate::error::ProxyError;
use crate::generations::GenerationStore;
use crate::http::cache_storage::{memory::MemoryStorage, redis::RedisStorage};
use crate::http::ctx::{CacheCtx, Handler, RequestCtx};
use crate::http::upstream::Target;
use crate::obs::metrics::Metrics;
use crate::policy::caching::{
    bypass_reason, scope, unstorable, CacheOutcome, KeyParts, RouteCache,
};
use crate::policy::routing::Route;
use crate::store::RedisConnector;

/// The edge cache's shared parts, built once when any route has `[routes.cache]`.
pub(crate) struct EdgeCache {
    pub storage: &'static (dyn pingora::cache::Storage + Sync),
    pub lock: &'static CacheKeyLockImpl,
    pub generations: Arc<dyn GenerationStore>,
    pub max_object: usize,
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Gateway {
    /// The request filter's cache step, after authentication: a read's key (or a bypass), or a
    /// write's first round of new generations. A write whose generations cannot be renewed is
    /// refused (503): forwarding it could leave entries that no longer match the data.
    pub(super) async fn cache_admission(
        &self,
        route: &Route<Target>,
        cache: &RouteCache,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), ProxyError> {
        let Some(edge) = &self.cache else {
            return Ok(());
        };
        let subject = ctx.caller.as_ref().map(crate::tokens::Verified::subject);
        if !is_safe(&req.method) {
            ctx.cache = CacheCtx::Write {
                scopes: self.invalidate(edge, cache, subject.as_deref()).await?,
            };
            return Ok(());
        }
        if !cache.stores() || req.method == Method::OPTIONS {
            return Ok(());
        }
        if bypass_reason(&req.method, &req.headers, cache.mode, subject.is_some()).is_some() {
            ctx.cache = CacheCtx::Bypass;
            return Ok(());
        }
        let who = match cache.mode {
            crate::policy::caching::CacheMode::PerUser => subject.unwrap_or_default(),
            crate::policy::caching::CacheMode::Shared => String::new(),
        };
        let s = scope(&route.name, cache.mode, &who);
        // Without its generation a read cannot be keyed safely: it goes to the upstream uncached.
        let Ok(generation) = self
            .metrics
            .store_call("cache_generation", edge.generations.current(&s))
            .await
        else {
            ctx.cache = CacheCtx::Bypass;
            return Ok(());
        };
        let primary = KeyParts {
            route: &route.name,
            generation,
            subject: &who,
            path: req.uri.path(),
            query: req.uri.query(),
            api_version: ctx.version().map(|v| v.version.as_str()),
        }
        .primary();
        ctx.cache = CacheCtx::Read {
            primary,
            storable: None,
        };
        Ok(())
    }

    /// A write's first round of new generations: the scopes its route invalidates (the caller's
    /// own, in `per_user` mode), renewed before it is forwarded.
    async fn invalidate(
        &self,
        edge: &EdgeCache,
        cache: &RouteCache,
        subject: Option<&str>,
    ) -> Result<Vec<String>, ProxyError> {
        let scopes: Vec<String> = cache
            .invalidates
            .iter()
            .filter_map(|(name, mode)| match (mode, subject) {
                (crate::policy::caching::CacheMode::PerUser, None) => None,
                (mode, s) => Some(scope(name, *mode, s.unwrap_or_default())),
            })
            .collect();
        if !scopes.is_empty() {
            self.metrics
                .store_call("cache_invalidate", edge.generations.bump(&scopes))
                .await?;
        }
        Ok(scopes)
    }

    /// pingora's `request_cache_filter`: turns the cache on for a keyed read.
    pub(super) fn enable_cache(&self, session: &mut Session, ctx: &RequestCtx) {
        if let (Some(edge), CacheCtx::Read { .. }) = (&self.cache, &ctx.cache) {
            session
                .cache
                .enable(edge.storage, None, None, Some(edge.lock), None);
            session.cache.set_max_file_size_bytes(edge.max_object);
        }
    }

    /// pingora's `cache_key_callback`.
    pub(super) fn cache_key(ctx: &RequestCtx) -> pingora::Result<CacheKey> {
        match &ctx.cache {
            CacheCtx::Read { primary, .. } => Ok(CacheKey::new(primary.clone(), "")),
            _ => pingora::Error::e_explain(
                pingora::ErrorType::InternalError,
                "cache key asked for an unkeyed request",
            ),
        }
    }

    /// pingora's `response_cache_filter`: what may be stored, for how long. The route's TTL is the
    /// edge's contract (invalidation is exact), so the upstream's `no-cache` does not shorten it;
    /// `no-store`, `Set-Cookie`, a status other than 200 and (in shared mode) `private` do.
    pub(super) fn cacheable(resp: &ResponseHeader, ctx: &mut RequestCtx) -> RespCacheable {
        let Some(cache) = route_cache(ctx) else {
            return RespCacheable::Uncacheable(NoCacheReason::Custom("no cache"));
        };
        let (mode, ttl, swr) = (cache.mode, cache.ttl, cache.stale_while_revalidate);
        let verdict = unstorable(resp.status.as_u16(), &resp.headers, mode);
        if let CacheCtx::Read { storable, .. } = &mut ctx.cache {
            *storable = Some(verdict.is_none());
        }
        match (verdict, ttl) {
            (None, Some(ttl)) => {
                let now = SystemTime::now();
                let swr = u32::try_from(swr.as_secs()).unwrap_or(u32::MAX);
                RespCacheable::Cacheable(CacheMeta::new(now + ttl, now, swr, 0, resp.clone()))
            }
            (Some(reason), _) => RespCacheable::Uncacheable(NoCacheReason::Custom(reason)),
            (None, None) => RespCacheable::Uncacheable(NoCacheReason::Custom("no ttl")),
        }
    }

    /// pingora's `cache_vary_filter`: the request headers the stored answer's `Vary` names.
    pub(super) fn vary(meta: &CacheMeta, req: &RequestHeader) -> Option<[u8; 16]> {
        let names: Vec<String> = meta
            .headers()
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        let values: Vec<(String, Vec<u8>)> = names
            .into_iter()
            .map(|n| {
                let v = joined(&req.headers, &n);
                (n, v)
            })
            .collect();
        let mut key = VarianceBuilder::new();
        for (name, value) in &values {
            key.add_value(name, value.as_slice());
        }
        key.finalize()
    }

    /// The response filter's cache step: `Cache-Status` and the outcome metric on a route that
    /// stores; a write answered 2xx renews its scopes' generations before the client hears of it.
    pub(super) async fn cache_response(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let CacheCtx::Write { scopes } = &ctx.cache {
            if resp.status.is_success() && !scopes.is_empty() {
                if let Some(edge) = &self.cache {
                    // The write happened; a failure here is logged (the first round already made
                    // every entry read before the write unreachable).
                    let _ = self
                        .metrics
                        .store_call("cache_invalidate", edge.generations.bump(scopes))
                        .await;
                }
            }
            return Ok(());
        }
        let (Handler::Route(route), Some(cache)) = (&ctx.handler, route_cache(ctx)) else {
            return Ok(());
        };
        if !cache.stores() {
            return Ok(());
        }
        let outcome = match (&ctx.cache, session.cache.phase()) {
            (CacheCtx::Read { .. }, CachePhase::Hit) => CacheOutcome::Hit,
            (CacheCtx::Read { .. }, CachePhase::Stale | CachePhase::StaleUpdating) => {
                CacheOutcome::StaleServed
            }
            (
                CacheCtx::Read { .. },
                CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_),
            ) => CacheOutcome::Revalidated,
            (
                CacheCtx::Read {
                    storable: Some(true),
                    ..
                },
                _,
            ) => CacheOutcome::Stored,
            (CacheCtx::Read { .. }, _) => CacheOutcome::Uncacheable,
            _ => CacheOutcome::Bypass,
        };
        if self.request_metrics {
            if let Some(i) = CacheOutcome::ALL.iter().position(|o| *o == outcome) {
                if let Some(c) = route.target.cache_results.get(i) {
                    c.inc();
                }
            }
        }
        resp.insert_header("cache-status", outcome.header())?;
        Ok(())
    }
}

/// The cache section of the request's route.
fn route_cache(ctx: &RequestCtx) -> Option<&RouteCache> {
    match &ctx.handler {
        Handler::Route(r) => r.cache.as_ref(),
        _ => None,
    }
}

/// Every value of header `name`, joined (a `Vary` input).
fn joined(headers: &HeaderMap, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// How long concurrent misses wait for the one request that fetches the key.
pub(crate) fn lock(timeout: Duration) -> &'static CacheKeyLockImpl {
    Box::leak(pingora::cache::lock::CacheLock::new_boxed(timeout))
}

/// The proxy's one storage for its lifetime (pingora-cache wants `'static`): in Redis beside the
/// other stores when they are there, so every replica serves what any of them stored; in process
/// otherwise.
pub(crate) fn storage(
    settings: &CacheSettings,
    redis: Option<&(Arc<RedisConnector>, String)>,
    metrics: &Metrics,
) -> &'static (dyn pingora::cache::Storage + Sync) {
    let (bytes, object) = (settings.max_memory_bytes, settings.max_object_bytes);
    match redis {
        Some((redis, prefix)) => Box::leak(Box::new(RedisStorage::new(
            Arc::clone(redis),
            prefix,
            bytes,
            object,
            crate::http::cache_storage::redis::Instruments {
                read: metrics.store_op("cache_entry_read"),
                write: metrics.store_op("cache_entry_write"),
                errors: metrics.store_errors.clone(),
            },
        ))),
        None => Box::leak(Box::new(MemoryStorage::new(bytes, object))),
    }
}
