//! Log lines an attacker cannot multiply (issue 18). pingora logs, at `error` and before any hook of
//! the proxy runs, every connection that fails while its request head is read: a head cut at the
//! deadline, a reset, a client gone mid-head. One line per connection lets whoever opens
//! connections decide how much the operator's log pipeline carries.
//!
//! This is the `log` bridge pingora's records go through on their way to tracing. A record that
//! pingora blames on the downstream (its error names the `Downstream` side) is the client's doing:
//! it is logged at `info`, at most `PER_SECOND` of them a second, and the first one let through
//! after a capped second says how many similar lines were suppressed. Everything else (upstream
//! failures, pingora's own trouble) passes unchanged. What happened is counted in metrics either
//! way (`edge_proxy_connections_refused_total`, `edge_proxy_framing_rejections_total`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Client-caused lines let through per second.
pub(crate) const PER_SECOND: u32 = 5;

/// The `log` implementation the proxy installs (`settings::init_tracing_with`).
pub struct Bridge {
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    passed: u32,
    suppressed: u64,
}

/// What the cap says of one client-caused line.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Log it, after saying how many were suppressed before it.
    Pass {
        suppressed: u64,
    },
    Drop,
}

impl Bridge {
    pub fn new() -> Self {
        Self {
            window: Mutex::new(Window {
                started: Instant::now(),
                passed: 0,
                suppressed: 0,
            }),
        }
    }

    fn admit(&self, now: Instant) -> Admit {
        let Ok(mut w) = self.window.lock() else {
            return Admit::Drop;
        };
        if now.duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.passed = 0;
        }
        if w.passed < PER_SECOND {
            w.passed += 1;
            Admit::Pass {
                suppressed: std::mem::take(&mut w.suppressed),
            }
        } else {
            w.suppressed += 1;
            Admit::Drop
        }
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Self::new()
    }
}

/// A pingora error or warning about the downstream side: the client's doing.
fn client_caused(record: &log::Record<'_>) -> bool {
    record.target().starts_with("pingora")
        && record.level() <= log::Level::Warn
        && record.args().to_string().contains("Downstream")
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if !client_caused(record) {
            tracing_log::format_trace(record).ok();
            return;
        }
        if let Admit::Pass { suppressed } = self.admit(Instant::now()) {
            if suppressed > 0 {
                tracing::info!(
                    target: "edge_proxy::log_cap",
                    suppressed,
                    "suppressed {suppressed} similar lines (connections the client broke)"
                );
            }
            let info = log::Record::builder()
                .level(log::Level::Info)
                .target(record.target())
                .args(*record.args())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            tracing_log::format_trace(&info).ok();
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lets_a_few_through_and_the_next_says_how_many_were_not() {
        let b = Bridge::new();
        let t0 = b.window.lock().unwrap().started;
        let passed = (0..1000).filter(|_| b.admit(t0) != Admit::Drop).count();
        assert_eq!(passed, PER_SECOND as usize);
        assert_eq!(
            b.admit(t0 + Duration::from_millis(999)),
            Admit::Drop,
            "still the same second"
        );
        assert_eq!(
            b.admit(t0 + Duration::from_secs(1)),
            Admit::Pass {
                suppressed: 1000 - u64::from(PER_SECOND) + 1
            }
        );
        assert_eq!(
            b.admit(t0 + Duration::from_secs(1)),
            Admit::Pass { suppressed: 0 }
        );
    }

    #[test]
    fn only_pingoras_complaints_about_the_downstream_are_the_clients() {
        let rec =
            |target: &str, level, msg: std::fmt::Arguments<'_>, f: &dyn Fn(&log::Record<'_>)| {
                f(&log::Record::builder()
                    .target(target)
                    .level(level)
                    .args(msg)
                    .build());
            };
        let check = |target: &str, level, expected: bool| {
            rec(
                target,
                level,
                format_args!(
                    "Fail to proxy: Downstream ReadError context: request head not complete"
                ),
                &|r| assert_eq!(client_caused(r), expected, "{target} {level}"),
            );
        };
        check("pingora_proxy", log::Level::Error, true);
        check("pingora_core::protocols", log::Level::Warn, true);
        check("pingora_proxy", log::Level::Debug, false);
        check("edge_proxy", log::Level::Error, false);
        rec(
            "pingora_proxy",
            log::Level::Error,
            format_args!("Fail to proxy: Upstream ConnectRefused"),
            &|r| assert!(!client_caused(r)),
        );
    }
}
