//! The suspicion level phi of a normal distribution, and its inverse.
//!
//! phi(t) = -log10(P(the next arrival comes later than t)) for arrivals
//! distributed normally with mean `mean_ms` and standard deviation
//! `std_dev_ms`. Like Akka's `PhiAccrualFailureDetector`, the normal tail
//! is the logistic approximation of its cumulative distribution
//! (max error about 1.4e-4 over the whole line):
//!
//! ```text
//! y = (t - mean) / std_dev
//! s = y * (1.5976 + 0.070566 * y^2)
//! P(later) = e^-s / (1 + e^-s)      so      phi = log10(1 + e^s)
//! ```
//!
//! Akka evaluates `-log10(e / (1 + e))` with `e = exp(-s)`, which becomes
//! `-log10(0) = inf` once `exp` underflows (about eight standard deviations
//! late). Here `log10(1 + e^s)` is computed as a stable softplus, so phi is
//! finite for every finite input, grows without bound, and is never NaN;
//! callers pass a `std_dev_ms` of at least 1, so `y` is always finite.
//!
//! The inverse ([`elapsed_for_phi`]) solves the cubic `s(y) = ln(10^phi - 1)`
//! in closed form (Cardano: `s` is strictly increasing, so there is exactly
//! one real root); it is what turns a threshold into a time to declare a
//! peer down.
//!
//! Pure arithmetic: no state, no clock.

use std::f64::consts::LN_10;

/// Coefficients of the logistic approximation of the normal distribution.
const LINEAR: f64 = 1.5976;
const CUBIC: f64 = 0.070566;

/// `log10(1 + e^s)`, without overflow for large `s` or loss for small `s`.
fn log10_one_plus_exp(s: f64) -> f64 {
    let softplus = if s > 0.0 {
        s + (-s).exp().ln_1p()
    } else {
        s.exp().ln_1p()
    };
    softplus / LN_10
}

/// The suspicion level after `elapsed_ms` without news, for arrivals that
/// take `mean_ms` ± `std_dev_ms` (which must be positive).
pub(super) fn phi(elapsed_ms: f64, mean_ms: f64, std_dev_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_dev_ms;
    log10_one_plus_exp(y * (LINEAR + CUBIC * y * y))
}

/// The elapsed time (ms, possibly fractional or negative) at which [`phi`]
/// reaches `level` (which must be positive).
pub(super) fn elapsed_for_phi(level: f64, mean_ms: f64, std_dev_ms: f64) -> f64 {
    // softplus(s) = level * ln 10  <=>  s = ln(10^level - 1).
    let s = level * LN_10 + (-(10f64.powf(-level))).ln_1p();
    // CUBIC y^3 + LINEAR y - s = 0, i.e. y^3 + p y + q = 0:
    let p = LINEAR / CUBIC;
    let q = -s / CUBIC;
    let root = ((q / 2.0).powi(2) + (p / 3.0).powi(3)).sqrt();
    let y = (-q / 2.0 + root).cbrt() + (-q / 2.0 - root).cbrt();
    mean_ms + y * std_dev_ms
}
