//! `Liveness`: how this node judges one peer, from gossip heartbeats and
//! from the outcomes of its own calls, with hysteresis against flapping.
//!
//! Two sources of evidence meet here. A [`PhiDetector`] hears the peer's
//! gossip heartbeats ([`Liveness::on_heartbeat`]) and successful calls (proof
//! of life that teaches it no rate), and says how suspicious its silence is.
//! A [`PeerHealth`] keeps the typed call outcomes ([`Liveness::record`]).
//! [`Liveness::status`] combines them:
//!
//! - `Down` when phi reaches the threshold, or the calls say the peer is
//!   unreachable (a refused connection, `DOWN_AFTER_TIMEOUTS` timeouts in a
//!   row): [`PeerHealth`]'s fast Down is kept as it is, because sloppy
//!   quorum and hint delivery rely on learning it at the first refusal, not
//!   seconds later. Either one *latches* the peer down (below).
//! - `Suspect` when phi reaches `suspect_phi` (heartbeats are late) or the
//!   last call failed without proving the peer unreachable.
//! - `Up` otherwise. [`Liveness::new`] counts its creation as an arrival,
//!   so a peer never heard from is `Down` after the detector's time
//!   (5307 ms with the defaults), not never.
//!
//! **Hysteresis.** Once judged down, a peer stays `Down` until it has been
//! heard from steadily: a run of arrivals (heartbeats or successful calls)
//! spanning `recover_after_ms`, with no counted call failure in between and
//! none of them late (phi just before each arrival under `suspect_phi`).
//! A failure ends the run; a late arrival starts a new one. So a peer that
//! answers and fails every few hundred ms goes down once and stays down,
//! instead of flipping at every call, and a peer that really recovers is
//! `Up` at its first arrival `recover_after_ms` into the run: at most
//! `recover_after_ms` plus one heartbeat interval after it came back
//! (6 s with the defaults and 1 s heartbeats; both are tested).
//! `recover_after_ms = 0` turns hysteresis off.
//!
//! The state changes only on arrivals and failures; [`Liveness::status`]
//! reads it with `now_ms` and changes nothing. That is enough because phi
//! only grows between arrivals: the phi just before an arrival is the
//! highest of its silence, so a silence that crossed the threshold is
//! always latched when it ends.
//!
//! **Boundary.** Liveness never changes placement: the preference lists are
//! a pure function of the layout. It only orders whom to ask (peers judged
//! down last, stand-ins in their place), when to deliver hints, and what
//! operators see. Pure: time is an argument, and nothing here does IO.

mod config;
#[cfg(test)]
mod tests;

pub use config::*;

use crate::failure::ReplicaFailure;
use crate::failure_detector::PhiDetector;
use crate::health::{PeerHealth, PeerStatus};

/// This node's judgement of one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Liveness {
    detector: PhiDetector,
    health: PeerHealth,
    /// A clamped copy of the config.
    config: LivenessConfig,
    /// Judged down, and not yet heard from steadily enough to be up.
    latched_down: bool,
    /// When the current steady run of arrivals began; `None` after a
    /// counted failure, until the next arrival.
    steady_since_ms: Option<u64>,
}

impl Liveness {
    /// A peer first known at `now_ms`, which counts as an arrival.
    pub fn new(now_ms: u64, config: &LivenessConfig) -> Self {
        let config = config.clamped();
        Liveness {
            detector: PhiDetector::new(now_ms, &config.phi),
            health: PeerHealth::default(),
            config,
            latched_down: false,
            steady_since_ms: Some(now_ms),
        }
    }

    /// Gossip showed the peer's heartbeat counter advancing at `now_ms`.
    pub fn on_heartbeat(&mut self, now_ms: u64) {
        self.arrive(now_ms);
        self.detector.heartbeat(now_ms);
        self.maybe_recover(now_ms);
    }

    /// A call to the peer ended at `now_ms`: a success is an arrival; a
    /// failure that says something about the peer ends any steady run, and
    /// latches it down if the calls say it is unreachable.
    pub fn record(&mut self, now_ms: u64, outcome: Result<(), &ReplicaFailure>) {
        let counted_before = self.health.failures;
        self.health.record(now_ms, outcome);
        if outcome.is_ok() {
            self.arrive(now_ms);
            self.detector.heard_from(now_ms);
            self.maybe_recover(now_ms);
        } else if self.health.failures != counted_before {
            self.steady_since_ms = None;
            if self.health.status() == PeerStatus::Down {
                self.latched_down = true;
            }
        }
    }

    /// How this node judges the peer at `now_ms` (see the module doc).
    pub fn status(&self, now_ms: u64) -> PeerStatus {
        let calls = self.health.status();
        let phi = self.detector.phi(now_ms);
        if self.latched_down || calls == PeerStatus::Down || phi >= self.config.phi.threshold {
            PeerStatus::Down
        } else if calls == PeerStatus::Suspect || phi >= self.config.suspect_phi {
            PeerStatus::Suspect
        } else {
            PeerStatus::Up
        }
    }

    /// The detector's suspicion level at `now_ms`.
    pub fn phi(&self, now_ms: u64) -> f64 {
        self.detector.phi(now_ms)
    }

    /// The call-outcome record.
    pub fn health(&self) -> &PeerHealth {
        &self.health
    }

    /// The heartbeat detector (its model, `down_after_ms`, ...).
    pub fn detector(&self) -> &PhiDetector {
        &self.detector
    }

    /// When the current steady run began, if one is running.
    pub fn steady_since_ms(&self) -> Option<u64> {
        self.steady_since_ms
    }

    /// The config in force (clamped).
    pub fn config(&self) -> &LivenessConfig {
        &self.config
    }

    /// Judges an arrival at `now_ms` by the silence it ends, before the
    /// detector hears it: a silence past the threshold latches the peer
    /// down, and a late arrival starts a new steady run.
    fn arrive(&mut self, now_ms: u64) {
        let phi = self.detector.phi(now_ms);
        if phi >= self.config.phi.threshold {
            self.latched_down = true;
        }
        if phi >= self.config.suspect_phi || self.steady_since_ms.is_none() {
            self.steady_since_ms = Some(now_ms);
        }
    }

    /// Lifts the latch once the steady run spans `recover_after_ms` and the
    /// calls no longer say the peer is unreachable.
    fn maybe_recover(&mut self, now_ms: u64) {
        let steady_ms = self
            .steady_since_ms
            .map_or(0, |since| now_ms.saturating_sub(since));
        let calls_down = self.health.status() == PeerStatus::Down;
        if self.latched_down && !calls_down && steady_ms >= self.config.recover_after_ms {
            self.latched_down = false;
        }
    }
}
