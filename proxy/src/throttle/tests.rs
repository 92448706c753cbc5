//! The throttle policy as pure functions of a state and an injected clock.

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_900_000_000_000;
const MIN: i64 = 60_000;

fn fail_n(p: &ThrottlePolicy, n: u32, mut now: i64) -> (AccountState, i64) {
    let mut s = AccountState::default();
    for _ in 0..n {
        // Each failure arrives when the previous block has ended (a patient attacker).
        now = now.max(s.blocked_until_ms);
        s = p.after_failure(s, now);
    }
    (s, now)
}

#[test]
fn the_first_two_failures_do_not_block() {
    let p = ThrottlePolicy::default();
    let (s, now) = fail_n(&p, 2, T0);
    assert_eq!(s.fail_count, 2);
    assert_eq!(p.refusal(s, now), None);
}

#[test]
fn backoff_starts_at_the_third_failure_and_doubles_up_to_the_cap() {
    let p = ThrottlePolicy {
        max_failures: 100,
        ..ThrottlePolicy::default()
    };
    let mut waits = Vec::new();
    for n in 3..=10 {
        let (s, now) = fail_n(&p, n, T0);
        waits.push((s.blocked_until_ms - now) / MIN);
    }
    assert_eq!(
        waits,
        vec![1, 2, 4, 8, 16, 32, 60, 60],
        "minutes: doubling, capped at max_wait"
    );
}

#[test]
fn the_tenth_failure_locks_until_an_admin_unlocks() {
    let p = ThrottlePolicy::default();
    let (s, now) = fail_n(&p, 10, T0);
    assert!(s.locked);
    let years_later = now + 10 * 365 * 24 * 3_600_000;
    assert_eq!(
        p.refusal(s, years_later),
        Some((ThrottleReason::Locked, p.max_wait_ms)),
        "locks never time out"
    );
    assert_eq!(
        p.current(s, years_later),
        s,
        "the reset window does not clear a lock"
    );
}

#[test]
fn the_lock_switch_turns_the_lock_into_a_long_block() {
    let p = ThrottlePolicy {
        permanent_lock: false,
        ..ThrottlePolicy::default()
    };
    let (s, now) = fail_n(&p, 10, T0);
    assert!(!s.locked);
    assert_eq!(
        p.refusal(s, now),
        Some((ThrottleReason::Backoff, p.max_wait_ms))
    );
    assert_eq!(p.refusal(s, now + p.max_wait_ms), None);
}

#[test]
fn failures_older_than_the_reset_window_are_forgotten() {
    let p = ThrottlePolicy::default();
    let (s, now) = fail_n(&p, 5, T0);
    let later = now + p.failure_reset_ms + 1;
    assert_eq!(p.current(s, later), AccountState::default());
    assert_eq!(
        p.after_failure(s, later).fail_count,
        1,
        "counting restarts at 1"
    );
    assert_eq!(
        p.current(s, now + p.failure_reset_ms).fail_count,
        5,
        "not before the window ends"
    );
}

#[test]
fn blocked_accounts_are_refused_with_the_remaining_wait() {
    let p = ThrottlePolicy::default();
    let (s, now) = fail_n(&p, 4, T0);
    assert_eq!(
        p.refusal(s, now + 30_000),
        Some((ThrottleReason::Backoff, 2 * MIN - 30_000))
    );
    assert_eq!(p.refusal(s, now + 2 * MIN), None);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(1), 1);
    assert_eq!(retry_after_secs(1000), 1);
    assert_eq!(retry_after_secs(1001), 2);
    assert_eq!(retry_after_secs(0), 1);
}

#[test]
fn gcra_allows_the_burst_then_one_per_emission_interval() {
    let mut tat = 0;
    for i in 0..30 {
        tat = gcra(tat, T0, 30).unwrap_or_else(|_| panic!("request {i} of the burst refused"));
    }
    let wait = gcra(tat, T0, 30).unwrap_err();
    assert_eq!(wait, 2_000, "30/min: the next slot is 2 s away");
    assert!(gcra(tat, T0 + 2_000, 30).is_ok());
}

#[test]
fn attack_mode_halves_the_per_ip_limits() {
    let p = ThrottlePolicy::default();
    assert_eq!(p.ip_limits(false), (20, 30));
    assert_eq!(p.ip_limits(true), (10, 15));
    assert!(!p.attack_mode(300, 0));
    assert!(p.attack_mode(301, 0));
    assert!(p.attack_mode(0, 301));
}

proptest! {
    /// Never more than `backoff_after` verifications in a burst: once `backoff_after` failures are in,
    /// every further attempt inside the block is refused, whatever the timing.
    #[test]
    fn no_attempt_passes_while_blocked(offsets in proptest::collection::vec(0i64..120_000, 1..40)) {
        let p = ThrottlePolicy::default();
        let mut s = AccountState::default();
        let mut now = T0;
        let mut verified = 0u32;
        for off in offsets {
            now += off;
            if p.refusal(s, now).is_none() {
                verified += 1;
                s = p.after_failure(s, now);
            }
        }
        // Without waiting out a block, at most backoff_after checks happen in the first minute.
        prop_assert!(s.fail_count == verified);
        prop_assert!(!s.locked || s.fail_count >= p.max_failures);
    }

    /// The block only grows with failures and never exceeds the cap.
    #[test]
    fn blocks_are_monotonic_and_capped(n in 1u32..30) {
        let p = ThrottlePolicy { max_failures: 1000, ..ThrottlePolicy::default() };
        let (a, ta) = fail_n(&p, n, T0);
        let (b, tb) = fail_n(&p, n + 1, T0);
        let wa = (a.blocked_until_ms - ta).max(0);
        let wb = (b.blocked_until_ms - tb).max(0);
        prop_assert!(wb >= wa);
        prop_assert!(wb <= p.max_wait_ms);
    }

    /// Success clears the account (the store removes the state), failure never decreases the count
    /// inside the reset window.
    #[test]
    fn failures_only_accumulate_within_the_window(gaps in proptest::collection::vec(0i64..3_600_000, 1..20)) {
        let p = ThrottlePolicy::default();
        let mut s = AccountState::default();
        let mut now = T0;
        for g in gaps {
            now += g;
            let before = p.current(s, now).fail_count;
            s = p.after_failure(s, now);
            prop_assert_eq!(s.fail_count, before + 1);
        }
    }
}
