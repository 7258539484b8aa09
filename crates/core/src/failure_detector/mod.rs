//! `PhiDetector`: a phi-accrual failure detector (Hayashibara et al. 2004)
//! for one peer, fed by its gossip heartbeats.
//!
//! Instead of a yes/no timeout, the detector answers a suspicion level phi:
//! `-log10` of the chance, under a model fitted to the peer's recent
//! heartbeat intervals, that a heartbeat still arrives after the silence
//! seen so far. phi 1 means a one-in-ten silence, phi 8 one in 10^8.
//! Callers compare it with a threshold; the model adapts to how regularly
//! heartbeats actually arrive (gossip spreads them indirectly, with jitter).
//!
//! **The model, and why.** As in Akka (not Cassandra), intervals are
//! modelled as normal with the window's mean and standard deviation, the
//! deviation floored at `min_std_dev_ms` and `acceptable_pause_ms` added to
//! the mean. Cassandra's exponential model has one parameter, the mean, and
//! its tail is so heavy that phi 8 means 18.4 mean intervals of silence
//! (18.4 s at one heartbeat a second) however steady the peer was. The
//! normal model also learns how much intervals vary, so a steady peer is
//! judged quickly and a jittery one patiently, and the acceptable pause
//! says in milliseconds how much silence (a GC pause, a lost gossip round)
//! is never a failure. With the defaults (threshold 8, 100 ms floor, 3 s
//! pause) and heartbeats every 1000 ms, phi reaches 8 after **4523 ms** of
//! silence (`down_after_ms`; the test
//! `steady_heartbeats_give_the_stated_time_to_down` computes it); a fresh
//! detector, seeded with `estimate ± estimate / 4`, after 5307 ms.
//! The price of the normal model is its thin tail: a few deviations past
//! the mean is judged near impossible, so the acceptable pause is what
//! absorbs delays heavier-tailed than normal. A wrong `Down` is cheap here:
//! liveness only orders whom to ask, and a peer heard from again recovers.
//!
//! **Arrivals.** [`PhiDetector::heartbeat`] is a heartbeat: it adds the
//! interval since the previous heartbeat to the window (at most
//! `window_samples`, oldest dropped) and resets the silence.
//! [`PhiDetector::heard_from`] (a successful call) resets the silence but
//! adds no sample: calls come at the load's pace, not the heartbeat's, and
//! would teach the model a rate the heartbeats never keep.
//!
//! **Robustness.** `now_ms` is the caller's monotonic clock, and every
//! input is accepted without panicking, and phi is always finite, `>= 0`:
//! - An arrival stamped at or before the last one (time not advancing,
//!   duplicates in one ms, two recorders racing) refreshes nothing and adds
//!   no sample: a zero interval would claim an infinitely fast peer.
//!   Asked before the last arrival, phi is its value at zero silence.
//! - An interval that reached the threshold (the silence before it was
//!   judged down) is an outage, not a heartbeat rate, and is not recorded.
//!   Recording it would stretch the model for the next thousand heartbeats
//!   after an hour-long partition; even recording it clamped to the
//!   threshold's silence feeds back (each outage sample lengthens the next
//!   one), and once a few percent of intervals are outages the time to
//!   declare down grows without bound. Late intervals short of the
//!   threshold are recorded, so a peer that really slows down is learned.
//! - Sums are kept exactly in integers, so mean and deviation never drift.
//!
//! Pure: time is an argument; nothing here does IO.

mod config;
mod normal;
#[cfg(test)]
mod tests;

pub use config::*;

use std::collections::VecDeque;

/// Fix-up steps allowed when rounding the closed-form `down_after_ms`.
const ROUNDING_STEPS: usize = 4;

/// The phi-accrual detector of one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiDetector {
    /// A clamped copy of the config (see [`PhiConfig::clamped`]).
    config: PhiConfig,
    /// Recent heartbeat intervals, oldest first, each `<= MAX_INTERVAL_MS`.
    intervals: VecDeque<u64>,
    /// Sum of `intervals`, and of their squares.
    sum_ms: u128,
    sum_sq_ms: u128,
    /// When the last heartbeat arrived (intervals are measured from it).
    last_heartbeat_ms: u64,
    /// When the peer was last heard from, heartbeat or call (silence is
    /// measured from it); never before `last_heartbeat_ms`.
    last_arrival_ms: u64,
}

impl PhiDetector {
    /// A detector whose creation at `now_ms` counts as an arrival, with the
    /// window seeded from the first-heartbeat estimate.
    pub fn new(now_ms: u64, config: &PhiConfig) -> Self {
        let config = config.clamped();
        let estimate = config.first_heartbeat_estimate_ms;
        let mut detector = PhiDetector {
            config,
            intervals: VecDeque::with_capacity(config.window_samples.min(64)),
            sum_ms: 0,
            sum_sq_ms: 0,
            last_heartbeat_ms: now_ms,
            last_arrival_ms: now_ms,
        };
        detector.push(estimate - estimate / 4);
        detector.push(estimate + estimate / 4);
        detector
    }

    /// A heartbeat arrived at `now_ms`: record its interval (unless it was an
    /// outage), reset the silence.
    pub fn heartbeat(&mut self, now_ms: u64) {
        if now_ms <= self.last_heartbeat_ms {
            return;
        }
        let interval = now_ms - self.last_heartbeat_ms;
        if interval < self.down_after_ms().min(MAX_INTERVAL_MS) {
            self.push(interval);
        }
        self.last_heartbeat_ms = now_ms;
        self.heard_from(now_ms);
    }

    /// The peer was heard from at `now_ms` (a call succeeded): reset the
    /// silence without recording an interval.
    pub fn heard_from(&mut self, now_ms: u64) {
        self.last_arrival_ms = self.last_arrival_ms.max(now_ms);
    }

    /// The suspicion level at `now_ms`: finite, `>= 0`, and non-decreasing
    /// in `now_ms` until the next arrival.
    pub fn phi(&self, now_ms: u64) -> f64 {
        self.phi_after(now_ms.saturating_sub(self.last_arrival_ms))
    }

    /// Whether phi has reached the threshold at `now_ms`.
    pub fn is_down(&self, now_ms: u64) -> bool {
        self.phi(now_ms) >= self.config.threshold
    }

    /// The shortest silence (ms since the last arrival) at which phi reaches
    /// the threshold, under the current model.
    pub fn down_after_ms(&self) -> u64 {
        self.silence_for_phi(self.config.threshold)
    }

    /// The shortest silence at which phi reaches `level` (clamped to the
    /// accepted thresholds), under the current model.
    pub fn silence_for_phi(&self, level: f64) -> u64 {
        let level = clamp_phi(
            level,
            MIN_PHI_THRESHOLD,
            MAX_PHI_THRESHOLD,
            self.config.threshold,
        );
        let exact = normal::elapsed_for_phi(level, self.model_mean_ms(), self.std_dev_ms());
        // `as` saturates: negative and NaN give 0, huge gives u64::MAX.
        let mut silence = exact.ceil() as u64;
        for _ in 0..ROUNDING_STEPS {
            if silence > 0 && self.phi_after(silence - 1) >= level {
                silence -= 1;
            } else if self.phi_after(silence) < level {
                silence = silence.saturating_add(1);
            } else {
                break;
            }
        }
        silence
    }

    /// When the peer was last heard from.
    pub fn last_arrival_ms(&self) -> u64 {
        self.last_arrival_ms
    }

    /// How many intervals the window holds (the two seeds included).
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// The mean of the window's intervals.
    pub fn mean_interval_ms(&self) -> f64 {
        self.sum_ms as f64 / self.intervals.len().max(1) as f64
    }

    /// The window's standard deviation, floored at `min_std_dev_ms`.
    pub fn std_dev_ms(&self) -> f64 {
        let n = self.intervals.len().max(1) as u128;
        // n * sum_sq >= sum^2 (Cauchy-Schwarz), exactly, in integers.
        let spread = (n * self.sum_sq_ms).saturating_sub(self.sum_ms * self.sum_ms);
        let std_dev = (spread as f64).sqrt() / n as f64;
        std_dev.max(self.config.min_std_dev_ms as f64)
    }

    /// The config in force (clamped).
    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// The mean the model uses: the window's, plus the acceptable pause.
    fn model_mean_ms(&self) -> f64 {
        self.mean_interval_ms() + self.config.acceptable_pause_ms as f64
    }

    fn phi_after(&self, silence_ms: u64) -> f64 {
        normal::phi(silence_ms as f64, self.model_mean_ms(), self.std_dev_ms())
    }

    fn push(&mut self, interval_ms: u64) {
        if self.intervals.len() >= self.config.window_samples {
            if let Some(old) = self.intervals.pop_front() {
                self.sum_ms -= u128::from(old);
                self.sum_sq_ms -= u128::from(old) * u128::from(old);
            }
        }
        self.intervals.push_back(interval_ms);
        self.sum_ms += u128::from(interval_ms);
        self.sum_sq_ms += u128::from(interval_ms) * u128::from(interval_ms);
    }
}
