//! Tests of the phi-accrual detector: the stated times, the model's
//! adaptation, degenerate clocks, and the config's bounds.

use super::*;

/// A detector created at 0 that heard `beats` heartbeats `every_ms` apart.
fn steady(every_ms: u64, beats: u64) -> PhiDetector {
    let mut d = PhiDetector::new(0, &PhiConfig::default());
    for i in 1..=beats {
        d.heartbeat(i * every_ms);
    }
    d
}

/// A deterministic xorshift, for jitter (the core draws no randomness).
fn jitter(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

/// `down_after_ms` is exact: one ms less stays under the threshold.
fn assert_down_after_is_exact(d: &PhiDetector) {
    let last = d.last_arrival_ms();
    let down = d.down_after_ms();
    assert!(d.is_down(last + down), "down at {down}");
    assert!(!d.is_down(last + down - 1), "not down at {}", down - 1);
}

#[test]
fn steady_heartbeats_give_the_stated_time_to_down() {
    // Once the seeds have left the window: mean 1000 ms, deviation floored
    // at 100 ms, plus the 3 s acceptable pause.
    let d = steady(1000, 2000);
    assert_eq!(d.samples(), DEFAULT_WINDOW_SAMPLES);
    assert_eq!(d.mean_interval_ms(), 1000.0);
    assert_eq!(d.std_dev_ms(), 100.0);
    assert_eq!(d.down_after_ms(), 4523, "the number the module doc states");
    assert_down_after_is_exact(&d);
    assert_eq!(d.silence_for_phi(1.0), 4129, "suspect, as liveness states");
}

#[test]
fn a_fresh_detector_is_usable_at_once() {
    let d = PhiDetector::new(7, &PhiConfig::default());
    assert_eq!(d.samples(), 2, "seeded with estimate ± estimate / 4");
    assert_eq!(d.mean_interval_ms(), 1000.0);
    assert_eq!(d.std_dev_ms(), 250.0);
    assert_eq!(d.down_after_ms(), 5307, "the number the module doc states");
    assert_down_after_is_exact(&d);
    assert!(d.phi(7) < 0.01);
}

#[test]
fn phi_grows_with_silence_and_an_arrival_resets_it() {
    let mut d = steady(1000, 50);
    let last = d.last_arrival_ms();
    let mut previous = -1.0;
    for silence in (0..20_000).step_by(50) {
        let phi = d.phi(last + silence);
        assert!(phi >= previous, "phi fell at {silence} ms");
        previous = phi;
    }
    assert!(
        previous > 100.0,
        "20 s of silence after 1 s beats: {previous}"
    );
    d.heartbeat(last + 20_000);
    assert!(d.phi(last + 20_000) < 0.01);
}

#[test]
fn a_pause_shorter_than_the_acceptable_pause_is_not_down() {
    let d = steady(1000, 100);
    let last = d.last_arrival_ms();
    // The next beat is 1000 ms away, then a 2.9 s GC pause on top.
    assert!(!d.is_down(last + 1000 + 2900));
    assert!(d.phi(last + 3900) < 1.0, "{}", d.phi(last + 3900));
    assert!(d.is_down(last + 1000 + 3000 + 1000), "but a 4 s pause is");
}

#[test]
fn jittery_gossip_is_learned_not_suspected() {
    // Heartbeats relayed by gossip: anywhere from 200 to 2500 ms apart.
    let mut d = PhiDetector::new(0, &PhiConfig::default());
    let (mut now, mut seed) = (0, 0x5eed);
    let mut worst: f64 = 0.0;
    for _ in 0..3600 {
        now += 200 + jitter(&mut seed, 2300);
        worst = worst.max(d.phi(now));
        d.heartbeat(now);
    }
    assert!(
        worst < 1.0,
        "a heartbeat on a jittery schedule looked late: {worst}"
    );
    assert!(d.std_dev_ms() > 600.0, "the spread was learned");
    let down = d.down_after_ms();
    assert!(
        (7000..9000).contains(&down),
        "patient with a jittery peer: {down}"
    );
}

#[test]
fn an_outage_is_not_a_heartbeat_interval() {
    let mut d = steady(1000, 1000);
    let model = (d.samples(), d.mean_interval_ms(), d.down_after_ms());
    let last = d.last_arrival_ms();
    d.heartbeat(last + 24 * 3_600_000);
    assert_eq!(
        (d.samples(), d.mean_interval_ms(), d.down_after_ms()),
        model
    );
    // Repeated outages do not teach it to wait longer and longer.
    let mut now = d.last_arrival_ms();
    for _ in 0..200 {
        for _ in 0..3 {
            now += 1000;
            d.heartbeat(now);
        }
        now += model.2;
        d.heartbeat(now);
    }
    assert_eq!(d.down_after_ms(), model.2);
    // A late interval short of the threshold is learned.
    d.heartbeat(now + model.2 - 1);
    assert_eq!(d.intervals.back(), Some(&(model.2 - 1)));
    assert!(d.down_after_ms() > model.2);
}

#[test]
fn calls_reset_the_silence_but_teach_no_rate() {
    let mut d = steady(1000, 10);
    let samples = d.samples();
    let model = (d.mean_interval_ms(), d.std_dev_ms());
    for t in (10_001..30_000).step_by(10) {
        d.heard_from(t);
    }
    assert_eq!(d.samples(), samples);
    assert_eq!((d.mean_interval_ms(), d.std_dev_ms()), model);
    assert!(d.phi(30_000) < 0.01, "a call 10 ms ago is proof of life");
    d.heartbeat(30_500);
    assert_eq!(
        d.samples(),
        samples,
        "a heartbeat's interval (20.5 s, an outage) runs from the last \
         heartbeat, not from the last call (510 ms)"
    );
}

#[test]
fn degenerate_clocks_never_panic_and_never_give_nan() {
    type Step = (&'static str, u64);
    let cases: [(&str, &[Step]); 6] = [
        ("time stands still", &[("beat", 5), ("beat", 5), ("phi", 5)]),
        (
            "duplicates in one ms",
            &[("beat", 9), ("beat", 9), ("call", 9)],
        ),
        (
            "asked before the last arrival",
            &[("beat", 1000), ("phi", 3)],
        ),
        (
            "stamped before the last arrival",
            &[("beat", 1000), ("beat", 10), ("call", 2)],
        ),
        ("the end of time", &[("beat", u64::MAX), ("phi", u64::MAX)]),
        (
            "a gap of all of time",
            &[("phi", u64::MAX), ("beat", u64::MAX), ("beat", 0)],
        ),
    ];
    for (name, steps) in cases {
        let mut d = PhiDetector::new(0, &PhiConfig::default());
        for &(op, t) in steps {
            match op {
                "beat" => d.heartbeat(t),
                "call" => d.heard_from(t),
                _ => {}
            }
            let phi = d.phi(t);
            assert!(phi.is_finite() && phi >= 0.0, "{name}: phi {phi} at {t}");
            assert!(d.down_after_ms() > 0, "{name}");
        }
        assert!(d.samples() <= 3, "{name}: no zero or backward samples");
    }
}

#[test]
fn out_of_order_arrivals_neither_rewind_nor_add_samples() {
    let mut d = steady(1000, 3);
    d.heartbeat(2999);
    d.heard_from(2000);
    assert_eq!(d.last_arrival_ms(), 3000);
    assert_eq!(d.samples(), 5);
    d.heartbeat(3000);
    assert_eq!(d.samples(), 5, "a duplicate in the same ms is no interval");
}

#[test]
fn the_window_is_bounded() {
    let config = PhiConfig {
        window_samples: 10,
        ..PhiConfig::default()
    };
    let mut d = PhiDetector::new(0, &config);
    for i in 1..=100 {
        d.heartbeat(i * 500);
    }
    assert_eq!(d.samples(), 10);
    assert_eq!(d.mean_interval_ms(), 500.0, "the seeds were pushed out");
}

#[test]
fn phi_reads_as_the_normal_tail() {
    // At the mean, half the arrivals are still to come: phi = log10(2).
    assert!((normal::phi(4000.0, 4000.0, 100.0) - 2f64.log10()).abs() < 1e-9);
    // One deviation late, P(later) = 0.1587 (logistic approx. within 1.4e-4).
    let tail = 10f64.powf(-normal::phi(4100.0, 4000.0, 100.0));
    assert!((tail - 0.1587).abs() < 2e-4, "{tail}");
    for level in [0.1, 1.0, 3.0, 8.0, 16.0, 32.0] {
        let t = normal::elapsed_for_phi(level, 4000.0, 100.0);
        assert!(
            (normal::phi(t, 4000.0, 100.0) - level).abs() < 1e-6,
            "{level}"
        );
    }
}

#[test]
fn each_wrong_knob_is_refused_by_name() {
    let ok = PhiConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        (
            PhiConfig {
                threshold: 0.0,
                ..ok
            },
            "phi threshold 0",
        ),
        (
            PhiConfig {
                threshold: f64::NAN,
                ..ok
            },
            "phi threshold NaN",
        ),
        (
            PhiConfig {
                threshold: 33.0,
                ..ok
            },
            "phi threshold 33",
        ),
        (
            PhiConfig {
                window_samples: 1,
                ..ok
            },
            "window of 1 samples",
        ),
        (
            PhiConfig {
                window_samples: 10_001,
                ..ok
            },
            "window of 10001",
        ),
        (
            PhiConfig {
                min_std_dev_ms: 0,
                ..ok
            },
            "min_std_dev_ms of 0 ms",
        ),
        (
            PhiConfig {
                acceptable_pause_ms: 3_600_001,
                ..ok
            },
            "acceptable_pause_ms of 3600001",
        ),
        (
            PhiConfig {
                first_heartbeat_estimate_ms: 0,
                ..ok
            },
            "first_heartbeat_estimate_ms of 0",
        ),
    ];
    for (config, message) in cases {
        let error = config.validate().expect_err(message).to_string();
        assert!(error.starts_with(message), "{error}");
        let clamped = config.clamped();
        assert_eq!(
            clamped.validate(),
            Ok(()),
            "{message}: clamping makes it valid"
        );
        let d = PhiDetector::new(0, &config);
        assert!(
            d.phi(10_000).is_finite(),
            "{message}: the detector runs clamped"
        );
    }
    let edges = PhiConfig {
        threshold: MAX_PHI_THRESHOLD,
        window_samples: MIN_WINDOW_SAMPLES,
        min_std_dev_ms: 1,
        acceptable_pause_ms: 0,
        first_heartbeat_estimate_ms: MAX_INTERVAL_MS,
    };
    assert_eq!(edges.validate(), Ok(()));
    assert_eq!(edges.clamped(), edges, "a valid config is left alone");
    assert_eq!(ok.clamped(), ok);
}
