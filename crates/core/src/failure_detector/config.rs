//! `PhiConfig`: the knobs of the phi-accrual detector, their defaults
//! (Akka's cluster failure detector's) and their bounds.
//!
//! Every knob has a named default and a bound. [`PhiConfig::validate`] is
//! for the node at startup: a wrong config is refused with a typed
//! [`PhiConfigError`] naming the knob. [`PhiConfig::clamped`] forces any
//! config, checked or not, into the same bounds (a NaN threshold becomes the
//! default); the detector only ever runs on a clamped copy, so no config can
//! make it panic or answer NaN. Both read the same constants, so "valid"
//! and "unchanged by clamping" are the same thing (tested).

use serde::{Deserialize, Serialize};

/// Phi at which a silent peer is judged down (Akka's and Cassandra's 8: the
/// model gives the silence a one-in-10^8 chance).
pub const DEFAULT_PHI_THRESHOLD: f64 = 8.0;
/// Lowest threshold accepted (phi 0.1: a silence the model expects one
/// arrival in 1.26 to outlast; anything lower would declare peers down on
/// time).
pub const MIN_PHI_THRESHOLD: f64 = 0.1;
/// Highest threshold accepted (a one-in-10^32 silence; past this the
/// threshold only adds standard deviations of waiting).
pub const MAX_PHI_THRESHOLD: f64 = 32.0;
/// Inter-arrival samples kept by default (Akka's `max-sample-size`).
pub const DEFAULT_WINDOW_SAMPLES: usize = 1000;
/// Fewest samples a window may keep (a standard deviation needs two).
pub const MIN_WINDOW_SAMPLES: usize = 2;
/// Most samples a window may keep: 80 KB per peer at most.
pub const MAX_WINDOW_SAMPLES: usize = 10_000;
/// Smallest standard deviation assumed (Akka's 100 ms): steady heartbeats
/// would otherwise make the tiniest delay look like a failure.
pub const DEFAULT_MIN_STD_DEV_MS: u64 = 100;
/// Extra silence tolerated on top of the mean interval (Akka's cluster
/// default, 3 s): a GC pause or a slow gossip round shorter than this never
/// marks a peer down.
pub const DEFAULT_ACCEPTABLE_PAUSE_MS: u64 = 3000;
/// The interval assumed before any heartbeat was measured (the gossip
/// interval, 1 s); it seeds the window as `estimate ± estimate / 4`.
pub const DEFAULT_FIRST_HEARTBEAT_ESTIMATE_MS: u64 = 1000;
/// The longest duration the detector handles, in its config or as one
/// sample (1 hour). A longer silence is an outage, not a heartbeat interval.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// How the detector models heartbeat arrivals and when it gives up on a peer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhiConfig {
    /// Phi at or above which the peer is down.
    pub threshold: f64,
    /// How many recent heartbeat intervals the model is fitted to.
    pub window_samples: usize,
    /// Floor of the fitted standard deviation.
    pub min_std_dev_ms: u64,
    /// Silence tolerated on top of the mean interval.
    pub acceptable_pause_ms: u64,
    /// The interval assumed until heartbeats are measured.
    pub first_heartbeat_estimate_ms: u64,
}

impl Default for PhiConfig {
    fn default() -> Self {
        PhiConfig {
            threshold: DEFAULT_PHI_THRESHOLD,
            window_samples: DEFAULT_WINDOW_SAMPLES,
            min_std_dev_ms: DEFAULT_MIN_STD_DEV_MS,
            acceptable_pause_ms: DEFAULT_ACCEPTABLE_PAUSE_MS,
            first_heartbeat_estimate_ms: DEFAULT_FIRST_HEARTBEAT_ESTIMATE_MS,
        }
    }
}

/// Why a [`PhiConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PhiConfigError {
    #[error("phi threshold {0} is outside {MIN_PHI_THRESHOLD}..={MAX_PHI_THRESHOLD}")]
    Threshold(f64),
    #[error("window of {0} samples is outside {MIN_WINDOW_SAMPLES}..={MAX_WINDOW_SAMPLES}")]
    WindowSamples(usize),
    #[error("{knob} of {ms} ms is outside {min}..={MAX_INTERVAL_MS} ms")]
    Duration {
        knob: &'static str,
        ms: u64,
        min: u64,
    },
}

/// The duration knobs, each with its smallest accepted value.
fn durations(config: &PhiConfig) -> [(&'static str, u64, u64); 3] {
    [
        ("min_std_dev_ms", config.min_std_dev_ms, 1),
        ("acceptable_pause_ms", config.acceptable_pause_ms, 0),
        (
            "first_heartbeat_estimate_ms",
            config.first_heartbeat_estimate_ms,
            1,
        ),
    ]
}

/// `threshold` forced into the accepted range; NaN becomes the default.
pub(crate) fn clamp_phi(level: f64, min: f64, max: f64, default: f64) -> f64 {
    if level.is_nan() {
        default.clamp(min, max)
    } else {
        level.clamp(min, max)
    }
}

impl PhiConfig {
    /// Checks every knob against its bounds.
    pub fn validate(&self) -> Result<(), PhiConfigError> {
        if !(MIN_PHI_THRESHOLD..=MAX_PHI_THRESHOLD).contains(&self.threshold) {
            return Err(PhiConfigError::Threshold(self.threshold));
        }
        if !(MIN_WINDOW_SAMPLES..=MAX_WINDOW_SAMPLES).contains(&self.window_samples) {
            return Err(PhiConfigError::WindowSamples(self.window_samples));
        }
        for (knob, ms, min) in durations(self) {
            if !(min..=MAX_INTERVAL_MS).contains(&ms) {
                return Err(PhiConfigError::Duration { knob, ms, min });
            }
        }
        Ok(())
    }

    /// This config with every knob forced into its bounds (a valid config
    /// comes back unchanged).
    pub fn clamped(&self) -> PhiConfig {
        let [std_dev, pause, estimate] =
            durations(self).map(|(_, ms, min)| ms.clamp(min, MAX_INTERVAL_MS));
        PhiConfig {
            threshold: clamp_phi(
                self.threshold,
                MIN_PHI_THRESHOLD,
                MAX_PHI_THRESHOLD,
                DEFAULT_PHI_THRESHOLD,
            ),
            window_samples: self
                .window_samples
                .clamp(MIN_WINDOW_SAMPLES, MAX_WINDOW_SAMPLES),
            min_std_dev_ms: std_dev,
            acceptable_pause_ms: pause,
            first_heartbeat_estimate_ms: estimate,
        }
    }
}
