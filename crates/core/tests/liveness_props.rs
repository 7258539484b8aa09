//! Property tests of the phi-accrual detector and liveness: for any config
//! and any arrival schedule (time standing still, running backwards, or
//! jumping to the end of `u64`), phi is finite, non-negative and grows with
//! silence, `down_after_ms` is exact; every `Down` spell lasts at least
//! `recover_after_ms`, and whatever happened before, a peer that comes back
//! steadily is `Up` within the stated bound.

use proptest::prelude::*;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::failure_detector::{PhiConfig, PhiDetector};
use ringkv_core::health::PeerStatus;
use ringkv_core::liveness::{Liveness, LivenessConfig, DEFAULT_RECOVER_AFTER_MS};

#[derive(Debug, Clone)]
enum Event {
    Beat,
    Answered,
    Failed(ReplicaFailure),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => Just(Event::Beat),
        2 => Just(Event::Answered),
        1 => prop_oneof![
            Just(ReplicaFailure::ConnectRefused),
            Just(ReplicaFailure::Timeout { ms: 100 }),
            Just(ReplicaFailure::QuorumUnreachable),
        ]
        .prop_map(Event::Failed),
    ]
}

/// Any instant: mostly near the last one, sometimes anywhere at all.
fn instant() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..20_000, any::<u64>(), Just(u64::MAX)]
}

fn config() -> impl Strategy<Value = PhiConfig> {
    (
        prop_oneof![Just(f64::NAN), -1.0f64..40.0],
        0usize..20,
        0u64..5000,
        0u64..10_000,
        0u64..5000,
    )
        .prop_map(|(threshold, window, std_dev, pause, estimate)| PhiConfig {
            threshold,
            window_samples: window,
            min_std_dev_ms: std_dev,
            acceptable_pause_ms: pause,
            first_heartbeat_estimate_ms: estimate,
        })
}

fn apply(l: &mut Liveness, t: u64, e: &Event) {
    match e {
        Event::Beat => l.on_heartbeat(t),
        Event::Answered => l.record(t, Ok(())),
        Event::Failed(f) => l.record(t, Err(f)),
    }
}

proptest! {
    #[test]
    fn phi_is_finite_grows_with_silence_and_down_after_is_exact(
        config in config(),
        arrivals in proptest::collection::vec((any::<bool>(), instant()), 0..60),
        probes in proptest::collection::vec(0u64..100_000, 1..10),
    ) {
        let mut d = PhiDetector::new(0, &config);
        for (beat, t) in arrivals {
            if beat { d.heartbeat(t) } else { d.heard_from(t) }
            let phi = d.phi(t);
            prop_assert!(phi.is_finite() && phi >= 0.0, "phi {} at {}", phi, t);
            prop_assert!(d.samples() <= d.config().window_samples);
        }
        let last = d.last_arrival_ms();
        let mut silences = probes;
        silences.sort_unstable();
        let phis: Vec<f64> = silences.iter().map(|s| d.phi(last.saturating_add(*s))).collect();
        prop_assert!(phis.windows(2).all(|w| w[0] <= w[1]), "{:?}", phis);
        let down = d.down_after_ms();
        if let Some(at) = last.checked_add(down) {
            prop_assert!(d.is_down(at));
            prop_assert!(down == 0 || !d.is_down(at - 1));
        }
    }

    #[test]
    fn every_down_spell_lasts_at_least_recover_after_ms(
        steps in proptest::collection::vec((0u64..3000, event()), 1..300),
    ) {
        let mut l = Liveness::new(0, &LivenessConfig::default());
        let mut now = 0;
        let mut down_since = None;
        for (delta, e) in steps {
            now += delta;
            apply(&mut l, now, &e);
            match (l.status(now), down_since) {
                (PeerStatus::Down, None) => down_since = Some(now),
                (PeerStatus::Down, Some(_)) => {}
                (_, Some(since)) => {
                    prop_assert!(
                        now - since >= DEFAULT_RECOVER_AFTER_MS,
                        "down at {} but back at {}", since, now
                    );
                    down_since = None;
                }
                (_, None) => {}
            }
        }
    }

    #[test]
    fn whatever_happened_a_peer_back_for_good_is_up_within_the_bound(
        steps in proptest::collection::vec((0u64..20_000, event()), 0..100),
    ) {
        let mut l = Liveness::new(0, &LivenessConfig::default());
        let mut now = 0;
        for (delta, e) in steps {
            now += delta;
            apply(&mut l, now, &e);
        }
        // Back: a heartbeat and an answered call every second.
        for i in 1..=6 {
            l.on_heartbeat(now + i * 1000);
            l.record(now + i * 1000, Ok(()));
        }
        let bound = now + 1000 + DEFAULT_RECOVER_AFTER_MS;
        prop_assert_eq!(l.status(bound), PeerStatus::Up, "{:?}", l);
    }
}
