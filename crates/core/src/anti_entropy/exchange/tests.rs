//! Table tests of [`super::ExchangeMachine`]: driven against two small
//! in-test replicas (keys plus a tree each, answered with the same functions
//! the node uses), one behaviour per test — the keys found, the cost of equal
//! replicas, the re-check, the bounds and where to resume, failures, the
//! deadline, and that nothing follows `Finish`.

use super::super::compare::Difference;
use super::super::messages::KeySummary;
use super::super::tree::PartitionTree;
use super::*;
use std::collections::BTreeMap;

/// One replica of partition 0 of Q=1: its keys and its tree. Entries
/// are `(segment, name, version)`.
#[derive(Clone)]
struct Replica {
    keys: BTreeMap<Vec<u8>, u64>,
    tree: PartitionTree,
}

impl Replica {
    fn new(entries: &[(u16, &str, u64)]) -> Self {
        let mut replica = Replica {
            keys: BTreeMap::new(),
            tree: PartitionTree::new(0, 1),
        };
        for &(segment, name, version) in entries {
            replica.put(&key(segment, name), version);
        }
        replica
    }

    /// Stores version `version` of `key` (its hash, as the node would).
    fn put(&mut self, key: &[u8], version: u64) {
        let hash = super::super::key_hash(key, &version.to_le_bytes());
        let old = self.keys.insert(key.to_vec(), hash);
        self.tree.update(key, old, Some(hash));
    }

    fn answer(&self, request: &ExchangeRequest) -> ExchangeReply {
        match request {
            ExchangeRequest::Tree(q) => self.tree.answer(q).unwrap(),
            ExchangeRequest::Keys(q) => {
                let entries = self.keys.iter().map(|(k, &hash)| KeySummary {
                    storage_key: k.clone(),
                    hash,
                });
                ExchangeReply::KeySummaries(q.answer(1, entries).unwrap())
            }
        }
    }
}

/// A storage key of Q=1 in `segment`.
fn key(segment: u16, name: &str) -> Vec<u8> {
    let mut key = (u64::from(segment) << 52).to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn plan(limits: ExchangeLimits) -> ExchangePlan {
    ExchangePlan {
        partition: 0,
        partitions: 1,
        start_segment: 0,
        limits,
    }
}

fn no_recheck_wait() -> ExchangeLimits {
    ExchangeLimits {
        recheck_after_ms: 0,
        ..ExchangeLimits::default()
    }
}

/// What a driven exchange produced.
#[derive(Debug)]
struct Run {
    repair: Vec<(Vec<u8>, Difference)>,
    report: ExchangeReport,
    result: Result<(), ExchangeError>,
    rounds: Vec<ExchangeRequest>,
}

/// Drives `m` to the end, answering from the two replicas; `between`
/// runs each time the driver lets time pass.
fn drive(
    mut m: ExchangeMachine,
    local: &mut Replica,
    peer: &mut Replica,
    mut between: impl FnMut(&mut Replica, &mut Replica),
) -> Run {
    let (mut repair, mut rounds) = (Vec::new(), Vec::new());
    loop {
        while let Some(command) = m.poll_command() {
            match command {
                ExchangeCommand::ReadLocal(r) => {
                    m.on_reply(Side::Local, Ok(local.answer(&r)), 0);
                    rounds.push(r);
                }
                ExchangeCommand::SendToPeer(r) => m.on_reply(Side::Peer, Ok(peer.answer(&r)), 0),
                ExchangeCommand::Repair { keys } => {
                    assert!(repair.is_empty(), "two repairs");
                    repair = keys
                        .into_iter()
                        .map(|d| (d.storage_key, d.difference))
                        .collect();
                }
                ExchangeCommand::Finish { report, result } => {
                    assert_eq!(m.poll_command(), None, "a command after Finish");
                    assert_eq!(m.poll_timeout(), None);
                    return Run {
                        repair,
                        report,
                        result,
                        rounds,
                    };
                }
            }
        }
        between(local, peer);
        let at = m.poll_timeout().expect("not finished");
        m.on_timeout(at);
    }
}

#[test]
fn finds_exactly_the_differing_keys() {
    use Difference::*;
    type Entries = &'static [(u16, &'static str, u64)];
    type Diffs = &'static [(u16, &'static str, Difference)];
    // (local, peer, expected repair in key order)
    let cases: [(Entries, Entries, Diffs); 5] = [
        (&[(1, "a", 1)], &[(1, "a", 1)], &[]),
        (&[(1, "a", 1)], &[(1, "a", 2)], &[(1, "a", Differs)]),
        (
            &[],
            &[(7, "a", 1), (4000, "z", 3)],
            &[(7, "a", MissingLocally), (4000, "z", MissingLocally)],
        ),
        (
            &[(5, "a", 1), (5, "b", 2), (5, "c", 3), (70, "x", 9)],
            &[(5, "a", 1), (5, "c", 4), (5, "d", 5), (70, "x", 9)],
            &[
                (5, "b", MissingOnPeer),
                (5, "c", Differs),
                (5, "d", MissingLocally),
            ],
        ),
        // Equal keys in a differing segment are not reported.
        (
            &[(9, "a", 1), (9, "b", 2)],
            &[(9, "a", 1), (9, "b", 3)],
            &[(9, "b", Differs)],
        ),
    ];
    for (l, p, want) in cases {
        let (mut local, mut peer) = (Replica::new(l), Replica::new(p));
        let run = drive(
            ExchangeMachine::new(plan(no_recheck_wait()), 0),
            &mut local,
            &mut peer,
            |_, _| {},
        );
        let want: Vec<_> = want.iter().map(|&(s, n, d)| (key(s, n), d)).collect();
        assert_eq!(run.repair, want, "{l:?} / {p:?}");
        assert_eq!(run.result, Ok(()));
        assert_eq!(run.report.keys_differing, want.len());
        assert_eq!(run.report.roots_equal, want.is_empty());
        assert!(!run.report.truncated);
    }
}

#[test]
fn equal_replicas_cost_one_round() {
    let entries = [(3, "a", 1), (3000, "b", 2)];
    let (mut local, mut peer) = (Replica::new(&entries), Replica::new(&entries));
    let run = drive(
        ExchangeMachine::new(plan(no_recheck_wait()), 0),
        &mut local,
        &mut peer,
        |_, _| {},
    );
    assert_eq!(
        run.rounds,
        [ExchangeRequest::Tree(TreeQuery::Root { partition: 0 })]
    );
    assert_eq!(run.report.round_trips, 1);
    assert!(run.report.bytes_sent > 0 && run.report.bytes_received > 0);
    assert!(run.report.bytes_sent + run.report.bytes_received < 32);
}

#[test]
fn the_recheck_drops_a_segment_whose_write_landed_meanwhile() {
    // Segment 5 differs because a write reached only the peer so far;
    // segment 9 differs for good.
    let mut local = Replica::new(&[(9, "stale", 1)]);
    let mut peer = Replica::new(&[(5, "inflight", 7), (9, "stale", 2)]);
    let limits = ExchangeLimits {
        recheck_after_ms: 1_000,
        ..ExchangeLimits::default()
    };
    let m = ExchangeMachine::new(plan(limits), 0);
    let run = drive(m, &mut local, &mut peer, |local, _| {
        local.put(&key(5, "inflight"), 7)
    });
    assert_eq!(run.repair, [(key(9, "stale"), Difference::Differs)]);
    assert_eq!(run.report.segments_differing, 2);
    assert_eq!(run.report.segments_settled, 1);
    let ExchangeRequest::Keys(query) = run.rounds.last().unwrap() else {
        panic!("last round is not the keys round");
    };
    assert_eq!(query.segments, [9]);
}

#[test]
fn the_recheck_waits_and_finds_nothing_when_every_write_landed() {
    let mut local = Replica::new(&[]);
    let mut peer = Replica::new(&[(5, "inflight", 7)]);
    let mut m = ExchangeMachine::new(plan(ExchangeLimits::default()), 100);
    for _ in 0..3 {
        while let Some(command) = m.poll_command() {
            match command {
                ExchangeCommand::ReadLocal(r) => m.on_reply(Side::Local, Ok(local.answer(&r)), 100),
                ExchangeCommand::SendToPeer(r) => m.on_reply(Side::Peer, Ok(peer.answer(&r)), 100),
                other => panic!("{other:?}"),
            }
        }
    }
    // Waiting for the re-check: no command, woken at 100 + 5000.
    assert_eq!(m.poll_timeout(), Some(5_100));
    m.on_timeout(5_099);
    assert_eq!(m.poll_command(), None);
    local.put(&key(5, "inflight"), 7);
    let run = drive(m, &mut local, &mut peer, |_, _| {});
    assert_eq!(run.repair, []);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.report.segments_settled, 1);
    assert_eq!(run.report.keys_compared, 0);
}

#[test]
fn bounds_truncate_and_say_where_to_resume() {
    let peer_keys: Vec<(u16, &str, u64)> =
        vec![(1, "a", 1), (100, "b", 1), (200, "c", 1), (300, "d", 1)];
    // (max_segments, max_keys, start_segment, repaired segments, resume)
    type Case = (usize, usize, u16, &'static [u16], Option<u16>);
    let cases: [Case; 6] = [
        (10, 100, 0, &[1, 100, 200, 300], None),
        // 100 and 200 share branch 1 (64..128 is branch 1, 128..192 branch 2).
        (2, 100, 0, &[1, 100], Some(128)),
        (1, 100, 0, &[1], Some(64)),
        // The peer's answer stopped inside (or at the end of) segment
        // 100, so it may hold more there: resume at 100.
        (10, 2, 0, &[1, 100], Some(100)),
        // Rotated: start at 150 visits branches 3 (200) and 4 (300),
        // and the next exchange starts after branch 4.
        (2, 100, 150, &[200, 300], Some(320)),
        (3, 100, 150, &[200, 300, 1], Some(64)),
    ];
    for (max_segments, max_keys, start_segment, want, resume) in cases {
        let (mut local, mut peer) = (Replica::new(&[]), Replica::new(&peer_keys));
        let limits = ExchangeLimits {
            max_segments,
            max_keys,
            ..no_recheck_wait()
        };
        let plan = ExchangePlan {
            start_segment,
            ..plan(limits)
        };
        let run = drive(
            ExchangeMachine::new(plan, 0),
            &mut local,
            &mut peer,
            |_, _| {},
        );
        let segments: Vec<u16> = run
            .repair
            .iter()
            .map(|(k, _)| super::super::segment_of(k, 1))
            .collect();
        assert_eq!(segments, want, "{max_segments} {max_keys} {start_segment}");
        assert_eq!(
            run.report.resume_segment, resume,
            "{max_segments} {max_keys} {start_segment}"
        );
        assert_eq!(run.report.truncated, resume.is_some());
    }
}

#[test]
fn a_segment_too_big_for_one_answer_is_skipped_once_its_prefix_agrees() {
    let local = [(7, "a", 1), (7, "b", 1), (7, "c", 1), (8, "z", 1)];
    let peer = [(7, "a", 1), (7, "b", 1), (7, "c", 2), (8, "z", 2)];
    let (mut local, mut peer) = (Replica::new(&local), Replica::new(&peer));
    let limits = ExchangeLimits {
        max_keys: 2,
        ..no_recheck_wait()
    };
    let run = drive(
        ExchangeMachine::new(plan(limits), 0),
        &mut local,
        &mut peer,
        |_, _| {},
    );
    assert_eq!(run.repair, []);
    assert_eq!(run.report.keys_compared, 2);
    assert_eq!(run.report.resume_segment, Some(8));
    let plan = ExchangePlan {
        start_segment: 8,
        ..plan(limits)
    };
    let run = drive(
        ExchangeMachine::new(plan, 0),
        &mut local,
        &mut peer,
        |_, _| {},
    );
    assert_eq!(run.repair, [(key(8, "z"), Difference::Differs)]);
}

#[test]
fn a_key_whose_repair_keeps_failing_does_not_stall_the_walk() {
    // Only the peer holds segment 2's two keys and segment 4090's key. Two
    // keys per answer: the peer's answer for [2, 4090] stops at the end of
    // segment 2, so only that segment is compared. "stuck" is never
    // repaired (say the peer keeps refusing it); asking segment 2 again would
    // see the same prefix, so the walk must move past it to reach 4090.
    let mut local = Replica::new(&[(0, "a", 1), (1, "a", 1)]);
    let mut peer = Replica::new(&[
        (0, "a", 1),
        (1, "a", 1),
        (2, "stuck", 1),
        (2, "x", 1),
        (4090, "y", 1),
    ]);
    let limits = ExchangeLimits {
        max_segments: 2,
        max_keys: 2,
        ..no_recheck_wait()
    };
    let mut start_segment = 0;
    for _ in 0..10 {
        let plan = ExchangePlan {
            start_segment,
            ..plan(limits)
        };
        let run = drive(
            ExchangeMachine::new(plan, 0),
            &mut local,
            &mut peer,
            |_, _| {},
        );
        assert_eq!(run.result, Ok(()));
        for (k, difference) in run.repair {
            assert_eq!(difference, Difference::MissingLocally, "{k:?}");
            if k != key(2, "stuck") {
                local.put(&k, 1);
            }
        }
        if [key(2, "x"), key(4090, "y")]
            .iter()
            .all(|k| local.keys.contains_key(k))
        {
            return;
        }
        start_segment = run.report.resume_segment.unwrap_or(start_segment);
    }
    panic!("10 exchanges did not reach segment 4090");
}

/// Runs an exchange of differing replicas up to its `rounds`-th round,
/// answered by `local`, then returns the machine and that round's request.
fn started(rounds: usize) -> (ExchangeMachine, ExchangeRequest) {
    let (local, peer) = (Replica::new(&[(1, "a", 1)]), Replica::new(&[(1, "a", 2)]));
    let mut m = ExchangeMachine::new(plan(no_recheck_wait()), 0);
    for round in 0.. {
        let Some(ExchangeCommand::ReadLocal(request)) = m.poll_command() else {
            panic!("no round");
        };
        assert!(matches!(
            m.poll_command(),
            Some(ExchangeCommand::SendToPeer(_))
        ));
        if round == rounds {
            return (m, request);
        }
        m.on_reply(Side::Local, Ok(local.answer(&request)), 0);
        m.on_reply(Side::Peer, Ok(peer.answer(&request)), 0);
    }
    unreachable!()
}

/// Drains the machine, which must be finished with `want`.
fn assert_finished_with(m: &mut ExchangeMachine, want: ExchangeError) {
    let Some(ExchangeCommand::Finish { result, .. }) = m.poll_command() else {
        panic!("no Finish");
    };
    assert_eq!(result, Err(want));
    assert_eq!(m.poll_command(), None);
    assert_eq!(m.poll_timeout(), None);
    assert!(m.is_finished());
    // Anything later is ignored.
    m.on_reply(Side::Peer, Err(ReplicaFailure::ConnectionLost), 1);
    m.on_timeout(u64::MAX);
    assert_eq!(m.poll_command(), None);
}

#[test]
fn failures_end_the_exchange_with_an_error() {
    let wrong_partition = ExchangeReply::Root {
        partition: 3,
        hash: 1,
    };
    let wrong_kind = ExchangeReply::Levels(Vec::new());
    // (round, side, reply, error)
    let cases = [
        (
            0,
            Side::Peer,
            Err(ReplicaFailure::ConnectionLost),
            ExchangeError::Peer(ReplicaFailure::ConnectionLost),
        ),
        (
            2,
            Side::Local,
            Err(ReplicaFailure::Timeout { ms: 1 }),
            ExchangeError::Local(ReplicaFailure::Timeout { ms: 1 }),
        ),
        (
            0,
            Side::Peer,
            Ok(wrong_partition),
            ExchangeError::MalformedReply {
                side: Side::Peer,
                problem: ReplyProblem::WrongPartition,
            },
        ),
        (
            0,
            Side::Local,
            Ok(wrong_kind),
            ExchangeError::MalformedReply {
                side: Side::Local,
                problem: ReplyProblem::WrongKind,
            },
        ),
    ];
    for (round, side, reply, want) in cases {
        let (mut m, _) = started(round);
        m.on_reply(side, reply, 0);
        assert_finished_with(&mut m, want);
    }
}

#[test]
fn the_deadline_ends_the_exchange() {
    let (mut m, _) = started(1);
    assert_eq!(m.poll_timeout(), Some(60_000));
    m.on_timeout(59_999);
    assert_eq!(m.poll_command(), None);
    m.on_timeout(60_000);
    assert_finished_with(&mut m, ExchangeError::Timeout { ms: 60_000 });
}

#[test]
fn a_second_answer_from_the_same_side_is_ignored() {
    let (mut m, request) = started(0);
    let local = Replica::new(&[(1, "a", 1)]);
    m.on_reply(Side::Local, Ok(local.answer(&request)), 0);
    m.on_reply(Side::Local, Ok(ExchangeReply::Levels(Vec::new())), 0);
    assert_eq!(m.poll_command(), None);
    assert!(!m.is_finished());
}
