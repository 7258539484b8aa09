//! Tests of liveness: the stated times to `Down` and back, anti-flapping,
//! the fast Down kept from call outcomes, degenerate clocks, the config.

use super::*;
use crate::failure_detector::PhiConfig;
use PeerStatus::{Down, Suspect, Up};

/// One thing that can happen to a peer in a tick.
#[derive(Clone)]
enum Event {
    Beat,
    Answered,
    Failed(ReplicaFailure),
}

/// Steps through `from_ms..to_ms` in 10 ms ticks, applying `events(t)` at
/// each tick, and returns the status after each.
fn run(
    l: &mut Liveness,
    from_ms: u64,
    to_ms: u64,
    events: impl Fn(u64) -> Vec<Event>,
) -> Vec<(u64, PeerStatus)> {
    (from_ms..to_ms)
        .step_by(10)
        .map(|t| {
            for event in events(t) {
                match event {
                    Event::Beat => l.on_heartbeat(t),
                    Event::Answered => l.record(t, Ok(())),
                    Event::Failed(f) => l.record(t, Err(&f)),
                }
            }
            (t, l.status(t))
        })
        .collect()
}

/// How often the status crossed between `Down` and not `Down`.
fn down_crossings(statuses: &[(u64, PeerStatus)]) -> usize {
    statuses
        .windows(2)
        .filter(|w| (w[0].1 == Down) != (w[1].1 == Down))
        .count()
}

/// A heartbeat on every whole second.
fn every_second(t: u64) -> Vec<Event> {
    if t.is_multiple_of(1000) {
        vec![Event::Beat]
    } else {
        vec![]
    }
}

fn steady_peer() -> Liveness {
    let mut l = Liveness::new(0, &LivenessConfig::default());
    run(&mut l, 0, 60_010, every_second);
    l
}

#[test]
fn steady_heartbeats_stay_up_for_an_hour() {
    let mut l = Liveness::new(0, &LivenessConfig::default());
    // Relayed by gossip: each beat 0 to 590 ms after its second.
    let statuses = run(&mut l, 0, 3_600_000, |t| {
        let late = (t / 1000).wrapping_mul(0x9e37_79b9) % 60 * 10;
        if t % 1000 == late {
            vec![Event::Beat]
        } else {
            vec![]
        }
    });
    assert!(statuses.iter().all(|&(_, s)| s == Up), "{:?}", l);
}

#[test]
fn a_silent_peer_is_suspect_then_down_at_the_stated_times() {
    let l = steady_peer();
    let last = 60_000;
    assert_eq!(l.status(last + 4128), Up);
    assert_eq!(l.status(last + 4129), Suspect, "phi 1");
    assert_eq!(l.status(last + 4522), Suspect);
    assert_eq!(
        l.status(last + 4523),
        Down,
        "phi 8: the failure detector's bound"
    );
}

#[test]
fn a_peer_never_heard_from_goes_down_after_the_detectors_time() {
    let l = Liveness::new(100, &LivenessConfig::default());
    assert_eq!(l.status(100), Up);
    assert_ne!(l.status(100 + 5306), Down);
    assert_eq!(l.status(100 + 5307), Down);
}

#[test]
fn a_pause_shorter_than_the_acceptable_pause_is_not_down() {
    let mut l = steady_peer();
    // A 2.9 s GC pause: the next beat comes 3.9 s after the last.
    let statuses = run(&mut l, 60_010, 63_900, |_| vec![]);
    assert!(statuses.iter().all(|&(_, s)| s == Up), "never even suspect");
    l.on_heartbeat(63_900);
    assert_eq!(l.status(63_900), Up, "and nothing was latched");
}

#[test]
fn calls_that_cannot_connect_are_down_at_once() {
    let cases = [
        (vec![ReplicaFailure::ConnectRefused], Down),
        (vec![ReplicaFailure::KnownDown], Down),
        (vec![ReplicaFailure::Timeout { ms: 100 }], Suspect),
        (vec![ReplicaFailure::Timeout { ms: 100 }; 3], Down),
        (vec![ReplicaFailure::QuorumUnreachable], Up),
    ];
    for (failures, want) in cases {
        let mut l = steady_peer();
        for f in &failures {
            l.record(60_001, Err(f));
        }
        assert_eq!(l.status(60_001), want, "{failures:?}");
    }
}

#[test]
fn a_peer_flapping_every_few_hundred_ms_does_not_flap_the_status() {
    // It keeps gossiping, but its calls alternate: answered, refused, ...
    // every 300 ms, for a simulated minute.
    let flapping = |t: u64| {
        let mut events = every_second(t);
        if t.is_multiple_of(300) {
            events.push(match t / 300 % 2 {
                0 => Event::Answered,
                _ => Event::Failed(ReplicaFailure::ConnectRefused),
            });
        }
        events
    };
    let mut l = steady_peer();
    let statuses = run(&mut l, 60_010, 120_010, flapping);
    assert_eq!(down_crossings(&statuses), 1, "down once, and it stays down");

    // The call record alone would flip at every call.
    let mut health = PeerHealth::default();
    let mut last = health.status();
    let mut flips = 0;
    for t in (60_300..120_010).step_by(300) {
        match t / 300 % 2 {
            0 => health.record(t, Ok(())),
            _ => health.record(t, Err(&ReplicaFailure::ConnectRefused)),
        }
        flips += usize::from((health.status() == Down) != (last == Down));
        last = health.status();
    }
    assert!(
        flips > 150,
        "the scenario flaps without hysteresis: {flips}"
    );
}

#[test]
fn a_peer_whose_heartbeats_come_in_bursts_does_not_flap() {
    // Three beats a second apart, then 6 s of silence, over and over.
    let bursty = |t: u64| match t % 9000 {
        0 | 1000 | 2000 => vec![Event::Beat],
        _ => vec![],
    };
    let mut l = steady_peer();
    let statuses = run(&mut l, 60_010, 120_010, bursty);
    assert_eq!(down_crossings(&statuses), 1, "down once, and it stays down");

    let no_hysteresis = LivenessConfig {
        recover_after_ms: 0,
        ..LivenessConfig::default()
    };
    let mut l = Liveness::new(0, &no_hysteresis);
    run(&mut l, 0, 60_010, every_second);
    let statuses = run(&mut l, 60_010, 120_010, bursty);
    assert!(
        down_crossings(&statuses) >= 10,
        "it would flap without (12)"
    );
}

#[test]
fn a_peer_that_really_recovers_is_up_within_the_stated_bound() {
    let mut l = steady_peer();
    l.record(60_500, Err(&ReplicaFailure::ConnectRefused));
    let outage = run(&mut l, 60_510, 90_000, |_| vec![]);
    assert!(outage.iter().all(|&(_, s)| s == Down));
    // Back at 90 s: gossip every second, and the probe's ping answered.
    let back = |t: u64| {
        let mut events = every_second(t);
        if t % 1000 == 500 {
            events.push(Event::Answered);
        }
        events
    };
    let statuses = run(&mut l, 90_000, 100_000, back);
    let up_at = statuses.iter().find(|&&(_, s)| s == Up).map(|&(t, _)| t);
    assert_eq!(up_at, Some(95_000), "recover_after_ms into the run");
    let bound = 90_000 + DEFAULT_RECOVER_AFTER_MS + 1000;
    assert!(up_at.unwrap() <= bound);
    assert!(statuses.iter().all(|&(t, s)| (s == Up) == (t >= 95_000)));
}

#[test]
fn a_failure_or_a_late_arrival_restarts_the_recovery_run() {
    let mut l = steady_peer();
    l.record(60_500, Err(&ReplicaFailure::ConnectRefused));
    run(&mut l, 60_510, 70_000, |_| vec![]);
    run(&mut l, 70_000, 73_010, every_second);
    assert_eq!(l.steady_since_ms(), Some(70_000));
    l.record(73_100, Err(&ReplicaFailure::Timeout { ms: 100 }));
    assert_eq!(l.steady_since_ms(), None, "a counted failure ends the run");
    l.record(73_200, Err(&ReplicaFailure::QuorumUnreachable));
    run(&mut l, 74_000, 76_010, every_second);
    assert_eq!(l.steady_since_ms(), Some(74_000));
    // Late (phi over 1, suspect), but not down (under 8).
    let late = 76_000 + l.detector().silence_for_phi(DEFAULT_SUSPECT_PHI);
    assert!(late < 76_000 + l.detector().down_after_ms());
    l.on_heartbeat(late);
    assert_eq!(
        l.steady_since_ms(),
        Some(late),
        "a late arrival starts anew"
    );
    assert_eq!(l.status(late), Down, "still latched");
}

#[test]
fn a_silence_past_the_threshold_is_latched_when_it_ends() {
    let mut l = steady_peer();
    l.on_heartbeat(70_000);
    assert_eq!(l.status(70_000), Down, "the 10 s silence made it down");
    run(&mut l, 70_010, 75_000, every_second);
    assert_eq!(l.status(74_990), Down);
    l.on_heartbeat(75_000);
    assert_eq!(l.status(75_000), Up);
}

#[test]
fn huge_and_zero_gaps_do_not_panic() {
    let stamps = [0, 0, 0, 5, 5, u64::MAX / 2, u64::MAX, u64::MAX, 3, 0];
    let mut l = Liveness::new(0, &LivenessConfig::default());
    for (i, &t) in stamps.iter().enumerate() {
        match i % 3 {
            0 => l.on_heartbeat(t),
            1 => l.record(t, Ok(())),
            _ => l.record(t, Err(&ReplicaFailure::Timeout { ms: 1 })),
        }
        assert!(l.phi(t).is_finite());
        let _ = l.status(t);
    }
    assert_eq!(l.status(u64::MAX), Down, "a gap of all of time");
}

#[test]
fn each_wrong_knob_is_refused_and_clamping_fixes_it() {
    let ok = LivenessConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        (
            LivenessConfig {
                suspect_phi: 9.0,
                ..ok
            },
            "suspect phi 9 is outside 0.1..=8",
        ),
        (
            LivenessConfig {
                suspect_phi: 0.0,
                ..ok
            },
            "suspect phi 0 is outside",
        ),
        (
            LivenessConfig {
                suspect_phi: f64::NAN,
                ..ok
            },
            "suspect phi NaN",
        ),
        (
            LivenessConfig {
                recover_after_ms: 3_600_001,
                ..ok
            },
            "recover_after_ms of 3600001",
        ),
        (
            LivenessConfig {
                phi: PhiConfig {
                    window_samples: 0,
                    ..ok.phi
                },
                ..ok
            },
            "window of 0 samples",
        ),
    ];
    for (config, message) in cases {
        let error = config.validate().expect_err(message).to_string();
        assert!(error.starts_with(message), "{error}");
        assert_eq!(config.clamped().validate(), Ok(()), "{message}");
        let l = Liveness::new(0, &config);
        assert_eq!(l.config(), &config.clamped());
    }
    assert_eq!(ok.clamped(), ok);
}
