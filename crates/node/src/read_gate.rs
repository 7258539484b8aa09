//! The read gate: whether one storage read may run inline on an async worker.
//!
//! Every engine write, commit and sync runs on a storage lane thread (see
//! [`crate::storage_lanes`]): fjall's write throttle and fsync can sleep for
//! a long time. Reads are different: an engine read takes no lock a writer
//! holds across its throttle or a sync, and waits only when it misses the
//! page cache. Sending every read to a lane thread costs a thread wake-up and
//! a context switch per read, which measured as about a sixth of get
//! throughput on a 2-core machine. So a read runs inline on the worker that
//! asked for it, under two rules that keep a slow disk from freezing the
//! node:
//!
//! - **One at a time.** At most one read runs inline at any moment; a read
//!   arriving while another is inline goes to the read lane. However long an
//!   inline read takes, it can hold at most one worker, so the others keep
//!   serving pings, timers and RPC.
//! - **Only while reads are fast.** An inline read that took longer than
//!   `slow_after` is taken as a sign the engine is waiting on the disk, and
//!   every read goes to the lane for `cool_down`, then inline reads resume.
//!
//! This module only decides and measures; it never calls the engine. Time
//! comes from tokio's clock, so tests with paused time control it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// An inline read slower than this sends reads to the lane. Well above the
/// few milliseconds a worker loses to preemption on a busy machine (at 2 ms,
/// preempted fast reads kept tripping it), far below a stall anyone notices.
pub const INLINE_READ_SLOW_MS: u64 = 20;
/// How long reads stay on the lane after a slow inline read.
pub const INLINE_READ_COOL_DOWN_MS: u64 = 1000;

/// Decides, read by read, whether a read may run inline.
pub struct ReadGate {
    busy: AtomicBool,
    /// Milliseconds after `origin` until which reads go to the lane.
    cool_until_ms: AtomicU64,
    origin: Instant,
    slow_after: Duration,
    cool_down: Duration,
}

/// Permission to run one read inline; measures it when dropped.
pub struct InlineRead<'a> {
    gate: &'a ReadGate,
    started: Instant,
}

impl Default for ReadGate {
    fn default() -> Self {
        ReadGate::new(
            Duration::from_millis(INLINE_READ_SLOW_MS),
            Duration::from_millis(INLINE_READ_COOL_DOWN_MS),
        )
    }
}

impl ReadGate {
    pub fn new(slow_after: Duration, cool_down: Duration) -> Self {
        ReadGate {
            busy: AtomicBool::new(false),
            cool_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
            slow_after,
            cool_down,
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// `Some` if this read may run inline now: no other read is inline and
    /// no recent inline read was slow.
    pub fn try_inline(&self) -> Option<InlineRead<'_>> {
        if self.now_ms() < self.cool_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(InlineRead {
            gate: self,
            started: Instant::now(),
        })
    }
}

impl Drop for InlineRead<'_> {
    fn drop(&mut self) {
        let gate = self.gate;
        if self.started.elapsed() > gate.slow_after {
            let until = gate.now_ms() + gate.cool_down.as_millis() as u64;
            gate.cool_until_ms.store(until, Ordering::Relaxed);
            tracing::debug!(
                cool_down_ms = gate.cool_down.as_millis() as u64,
                "a storage read was slow; reads go to the read lane for a while"
            );
        }
        gate.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_read_at_a_time_runs_inline() {
        let gate = ReadGate::default();
        let first = gate.try_inline().expect("a fresh gate lets a read in");
        assert!(
            gate.try_inline().is_none(),
            "a second concurrent read goes to the lane"
        );
        drop(first);
        assert!(gate.try_inline().is_some(), "the slot is free again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_read_sends_reads_to_the_lane_for_the_cool_down() {
        let gate = ReadGate::new(Duration::from_millis(2), Duration::from_millis(1000));
        let slow = gate.try_inline().unwrap();
        tokio::time::advance(Duration::from_millis(5)).await;
        drop(slow);
        assert!(
            gate.try_inline().is_none(),
            "cooling down after a slow read"
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(gate.try_inline().is_none(), "still cooling down");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(gate.try_inline().is_some(), "fast reads resume inline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_read_keeps_reads_inline() {
        let gate = ReadGate::default();
        let fast = gate.try_inline().unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
        drop(fast);
        assert!(gate.try_inline().is_some());
    }
}
