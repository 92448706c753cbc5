//! Wall-clock time, injected: the gateway, the token verifiers, the login throttle and the admin API
//! read it from a [`Clock`], so tests move time instead of sleeping. [`UnixSecs`] (JWT `iat`/`exp`)
//! and [`UnixMillis`] (the throttle) are distinct types, so the two units cannot be swapped.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixSecs(pub i64);

/// Unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixSecs {
    pub fn get(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    pub fn after(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }
}

impl std::fmt::Display for UnixSecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Add<i64> for UnixSecs {
    type Output = Self;

    fn add(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }
}

impl std::ops::Sub<i64> for UnixSecs {
    type Output = Self;

    fn sub(self, secs: i64) -> Self {
        Self(self.0.saturating_sub(secs))
    }
}

impl std::ops::Add<i64> for UnixMillis {
    type Output = Self;

    fn add(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

impl UnixMillis {
    pub fn get(self) -> i64 {
        self.0
    }

    pub fn secs(self) -> UnixSecs {
        UnixSecs(self.0.div_euclid(1000))
    }

    /// `self + d`, saturating.
    pub fn after(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> UnixMillis;

    fn now(&self) -> UnixSecs {
        self.now_ms().secs()
    }
}

/// The clock a proxy shares between its parts.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        UnixMillis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock shifted by an offset that only grows (tests): time passes as usual, and a test
/// moves it forward with [`OffsetClock::advance`] instead of sleeping.
#[derive(Debug, Default)]
pub struct OffsetClock(AtomicI64);

impl OffsetClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> UnixMillis {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }
}

/// Parses an RFC 3339 time (a config value named `key`) into unix seconds.
pub(crate) fn parse_rfc3339(key: &str, text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{key}: `{text}` is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_jumps_when_told() {
        let c = OffsetClock::new();
        let t = c.now_ms();
        c.advance(Duration::from_secs(3600));
        let later = c.now_ms().get() - t.get();
        assert!((3_600_000..3_660_000).contains(&later), "{later}");
        assert_eq!(UnixMillis(1999).secs(), UnixSecs(1));
        assert_eq!(UnixMillis(-1).secs(), UnixSecs(-1));
        assert_eq!(UnixSecs(10).after(Duration::from_secs(5)), UnixSecs(15));
    }
}
