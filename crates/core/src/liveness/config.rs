//! `LivenessConfig`: the detector's knobs plus the two that damp flapping,
//! with named defaults and bounds.
//!
//! As for [`PhiConfig`], [`LivenessConfig::validate`] refuses a wrong config
//! with a typed [`LivenessConfigError`] (for the node at startup) and
//! [`LivenessConfig::clamped`] forces any config into the same bounds (what
//! [`super::Liveness`] runs on), so no config can make it panic.

use crate::failure_detector::{
    clamp_phi, PhiConfig, PhiConfigError, MAX_INTERVAL_MS, MIN_PHI_THRESHOLD,
};
use serde::{Deserialize, Serialize};

/// Phi at or above which a peer is `Suspect`; an arrival that comes that
/// late breaks a recovery run. phi 1: a silence the model expects only one
/// heartbeat in ten to outlast (4129 ms after steady 1 s heartbeats, with
/// the default detector).
pub const DEFAULT_SUSPECT_PHI: f64 = 1.0;
/// How long a peer judged down must be heard from steadily before it is
/// `Up` again (5 s: five gossip rounds).
pub const DEFAULT_RECOVER_AFTER_MS: u64 = 5000;

/// How one node judges its peers' liveness.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessConfig {
    /// The phi-accrual detector fed by heartbeats (its `threshold` is the
    /// phi at which a peer is `Down`).
    pub phi: PhiConfig,
    /// The lower threshold: `Suspect` from here, and the most an arrival's
    /// phi may be for it to count towards recovery.
    pub suspect_phi: f64,
    /// The steady run (arrivals, none late, no failure) that brings a peer
    /// judged down back `Up`. 0 turns hysteresis off.
    pub recover_after_ms: u64,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            phi: PhiConfig::default(),
            suspect_phi: DEFAULT_SUSPECT_PHI,
            recover_after_ms: DEFAULT_RECOVER_AFTER_MS,
        }
    }
}

/// Why a [`LivenessConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LivenessConfigError {
    #[error(transparent)]
    Phi(#[from] PhiConfigError),
    #[error("suspect phi {suspect_phi} is outside {MIN_PHI_THRESHOLD}..={threshold} (the down threshold)")]
    SuspectPhi { suspect_phi: f64, threshold: f64 },
    #[error("recover_after_ms of {0} ms is over {MAX_INTERVAL_MS} ms")]
    RecoverAfter(u64),
}

impl LivenessConfig {
    /// Checks every knob against its bounds.
    pub fn validate(&self) -> Result<(), LivenessConfigError> {
        self.phi.validate()?;
        let threshold = self.phi.threshold;
        if !(MIN_PHI_THRESHOLD..=threshold).contains(&self.suspect_phi) {
            return Err(LivenessConfigError::SuspectPhi {
                suspect_phi: self.suspect_phi,
                threshold,
            });
        }
        if self.recover_after_ms > MAX_INTERVAL_MS {
            return Err(LivenessConfigError::RecoverAfter(self.recover_after_ms));
        }
        Ok(())
    }

    /// This config with every knob forced into its bounds (a valid config
    /// comes back unchanged).
    pub fn clamped(&self) -> LivenessConfig {
        let phi = self.phi.clamped();
        LivenessConfig {
            phi,
            suspect_phi: clamp_phi(
                self.suspect_phi,
                MIN_PHI_THRESHOLD,
                phi.threshold,
                DEFAULT_SUSPECT_PHI,
            ),
            recover_after_ms: self.recover_after_ms.min(MAX_INTERVAL_MS),
        }
    }
}
