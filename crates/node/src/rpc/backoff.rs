//! When a [`super::PeerClient`] may try to reconnect to a peer that failed.
//!
//! A dead or black-holed peer must cost one connection attempt per backoff
//! interval, not one per call. [`Backoff`] is the decision alone: after a
//! failed attempt the peer is *known down* until `now + interval`, and the
//! interval doubles with each consecutive failure from
//! [`RECONNECT_BACKOFF_INITIAL`] up to [`RECONNECT_BACKOFF_CAP`]; a successful
//! connection resets it. It takes `now` as an argument and keeps no clock,
//! timer or lock of its own, so it is tested as a table; the client holds it
//! under its mutex and serialises attempts, so one caller per interval tries.

use std::time::Duration;
use tokio::time::Instant;

/// Wait after the first failed connection attempt.
pub const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts to a peer that stays down.
pub const RECONNECT_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Reconnection backoff of one peer.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    /// Consecutive failed attempts since the last success.
    failures: u32,
    /// No attempt before this instant (set after a failure).
    retry_at: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_CAP)
    }
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Backoff {
            initial,
            cap: cap.max(initial),
            failures: 0,
            retry_at: None,
        }
    }

    /// `Ok` if a connection attempt may start at `now`; otherwise how long
    /// the peer stays known down.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        match self.retry_at {
            Some(at) if now < at => Err(at - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt at `now`; returns the wait before the next one.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let doublings = self.failures.min(31);
        let interval = self
            .initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + interval);
        interval
    }

    /// Records a successful connection: the next failure starts over at `initial`.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn intervals_double_to_the_cap_and_reset_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.admit(t0), Ok(()), "a peer never tried is not down");
        let table = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
        let mut now = t0;
        for want in table {
            assert_eq!(b.failed(now), MS(want));
            now += MS(want);
        }
        b.succeeded();
        assert_eq!(b.admit(now), Ok(()));
        assert_eq!(b.failed(now), MS(100), "success resets the interval");
    }

    #[test]
    fn a_peer_is_known_down_until_the_interval_passes() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        b.failed(t0);
        let table = [
            (0, Err(MS(100))),
            (1, Err(MS(99))),
            (99, Err(MS(1))),
            (100, Ok(())),
            (5_000, Ok(())),
        ];
        for (after_ms, want) in table {
            assert_eq!(b.admit(t0 + MS(after_ms)), want, "at +{after_ms} ms");
        }
    }

    #[test]
    fn many_failures_never_overflow() {
        let t0 = Instant::now();
        let mut b = Backoff::new(MS(100), MS(5_000));
        for _ in 0..100 {
            assert!(b.failed(t0) <= MS(5_000));
        }
        assert_eq!(b.admit(t0 + MS(5_000)), Ok(()));
    }
}
