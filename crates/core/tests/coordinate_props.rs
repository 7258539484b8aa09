//! Property tests of the coordination machines over arbitrary interleavings
//! of replies (successes, every failure kind, duplicates, strangers) and
//! timer events. Each run drives a machine the way the node's driver does
//! (drain commands after every event, call `on_timeout` at `poll_timeout`)
//! and checks, from the outside:
//!
//! - the client is answered exactly once, and no command follows the answer
//!   (so for writes every send precedes it), and no node is sent to twice;
//! - a read answers `Ok` with exactly the causal merge of the R replies it
//!   counted; a write answers `Ok` only after W distinct acknowledgements;
//! - a failed quorum names every replica that did not count, with the reason
//!   it reported, or why it was not waited for;
//! - a read asks just enough replicas until the speculation point;
//! - a forwarded write is never retried after a failure that may have
//!   applied it, and a forward answers with the response it was given.

#[allow(dead_code)]
mod common;

use common::{failure_kinds, id, is_unanswered_reason, node, object};
use proptest::prelude::*;
use ringkv_core::coordinate::*;
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::protocol::{ClientResponse, OpError};
use ringkv_core::quorum::QuorumError;
use ringkv_core::siblings::Siblings;
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use std::collections::BTreeSet;

/// What a replica answers in a generated event.
#[derive(Debug, Clone)]
enum Outcome {
    Missing,
    Found(usize),
    Fail(ReplicaFailure),
}

#[derive(Debug, Clone)]
enum Event {
    /// A reply. `outstanding`: from a node that was sent to and has not
    /// replied (if any); else from node `pick` (`pick == n`: a stranger).
    Reply {
        pick: usize,
        outstanding: bool,
        outcome: Outcome,
    },
    /// Time passes.
    Advance { ms: u64 },
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Missing),
        (0..4usize).prop_map(Outcome::Found),
        prop::sample::select(failure_kinds()).prop_map(Outcome::Fail),
    ]
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = prop_oneof![
        3 => (0..6usize, prop::bool::weighted(0.8), outcome()).prop_map(
            |(pick, outstanding, outcome)| Event::Reply { pick, outstanding, outcome }
        ),
        1 => (0..150u64).prop_map(|ms| Event::Advance { ms }),
    ];
    prop::collection::vec(event, 0..24)
}

/// The node a reply event comes from, given who was sent to and who replied.
fn sender(pick: usize, outstanding: bool, n: usize, sent: &[NodeId], replied: &[NodeId]) -> NodeId {
    let waiting: Vec<&NodeId> = sent.iter().filter(|s| !replied.contains(s)).collect();
    if outstanding && !waiting.is_empty() {
        return waiting[pick % waiting.len()].clone();
    }
    if pick >= n {
        id("zz")
    } else {
        node(pick)
    }
}

/// Checks a failed quorum: it names every replica that did not acknowledge
/// exactly once, with the failure it reported if it reported one before the
/// answer, and otherwise a "did not answer" reason (`NotAsked` exactly for
/// the ones never sent to).
fn check_quorum_error(
    e: &QuorumError,
    replicas: &[NodeId],
    acked: &[NodeId],
    failed: &[(NodeId, ReplicaFailure)],
    sent: &[NodeId],
) {
    assert_eq!(e.asked, replicas.len());
    assert_eq!(e.acks, acked.len());
    let named: BTreeSet<&NodeId> = e.failures.iter().map(|(n, _)| n).collect();
    assert_eq!(named.len(), e.failures.len(), "a replica named twice: {e}");
    for r in replicas {
        assert_ne!(acked.contains(r), named.contains(r), "{r} in {e}");
    }
    for (node, why) in &e.failures {
        match failed.iter().find(|(n, _)| n == node) {
            Some((_, reported)) => assert_eq!(why, reported),
            None => {
                assert!(is_unanswered_reason(why), "{node}: {why}");
                let not_asked = *why == ReplicaFailure::NotAsked;
                assert_eq!(not_asked, !sent.contains(node), "{node}: {why}");
            }
        }
    }
}

/// A read or write harness's common bookkeeping: who was sent to, the
/// replies the machine accepted before its answer, and the answer's time.
#[derive(Default)]
struct Book {
    now: u64,
    sent: Vec<NodeId>,
    replied: Vec<NodeId>,
    acked: Vec<NodeId>,
    failed: Vec<(NodeId, ReplicaFailure)>,
    answered_at: Option<u64>,
}

impl Book {
    fn send(&mut self, to: NodeId) {
        assert!(self.answered_at.is_none(), "sent to {to} after the answer");
        assert!(!self.sent.contains(&to), "sent to {to} twice");
        self.sent.push(to);
    }

    fn answer(&mut self) {
        assert!(self.answered_at.is_none(), "answered twice");
        self.answered_at = Some(self.now);
    }

    /// Checks an unanswered machine should indeed still be waiting: the
    /// quorum is neither met nor unreachable, and the deadline has not come.
    fn still_reachable(&self, n: usize, needed: usize, deadline: u64) {
        assert!(self.acked.len() < needed, "met but not answered");
        assert!(
            n - self.failed.len() >= needed,
            "unreachable but not answered"
        );
        assert!(self.now < deadline, "the deadline passed unanswered");
    }

    /// Records a reply as the machine should see it; true if it counts.
    fn reply(&mut self, from: &NodeId, failure: Option<&ReplicaFailure>) -> bool {
        let counts = self.sent.contains(from) && !self.replied.contains(from);
        if counts {
            self.replied.push(from.clone());
        }
        let counts = counts && self.answered_at.is_none();
        match failure {
            _ if !counts => {}
            None => self.acked.push(from.clone()),
            Some(why) => self.failed.push((from.clone(), why.clone())),
        }
        counts
    }
}

/// Advances `book.now` by `ms`, waking the machine at every `poll_timeout`
/// on the way (exactly on time) and draining it after each wake-up.
macro_rules! advance {
    ($m:expr, $book:expr, $ms:expr, $drain:expr) => {{
        let until = $book.now + $ms;
        let mut wakes = 0;
        while let Some(at) = $m.poll_timeout().filter(|at| *at <= until) {
            assert!(at >= $book.now, "asked to be woken in the past");
            $book.now = at;
            $m.on_timeout(at);
            $drain(&mut $m, &mut $book);
            wakes += 1;
            assert!(wakes < 8, "the machine keeps asking to be woken at {at}");
        }
        $book.now = until;
    }};
}

fn run_read(plan: ReadPlan, events: &[Event]) {
    let n = plan.replicas.len();
    let r = plan.r.max(1);
    let mut m = ReadMachine::new(plan.clone(), 0);
    let mut book = Book::default();
    let mut answer = None;
    let mut counted: Vec<Option<Siblings>> = Vec::new();
    let mut drain = |m: &mut ReadMachine, book: &mut Book| {
        while let Some(c) = m.poll_command() {
            match c {
                ReadCommand::ReadLocal => book.send(plan.local.clone().expect("no local")),
                ReadCommand::Repair { to, .. } => {
                    assert!(
                        book.replied.contains(&to),
                        "only a replica that replied is repaired"
                    );
                    assert!(book.answered_at.is_some(), "repairs follow the answer");
                }
                ReadCommand::Send { to, hint_for } => {
                    assert_eq!(hint_for, None, "no stand-ins in these plans");
                    assert_ne!(
                        Some(&to),
                        plan.local.as_ref(),
                        "the local copy is read locally"
                    );
                    assert!(plan.replicas.contains(&to));
                    book.send(to);
                }
                ReadCommand::Answer(a) => {
                    book.answer();
                    answer = Some(a);
                }
            }
        }
        if book.answered_at.is_none() {
            book.still_reachable(n, r, plan.timeout_ms);
            // Enough replicas are asked for R, or all of them are.
            let outstanding = book.sent.len() - book.replied.len();
            assert!(book.acked.len() + outstanding >= r || book.sent.len() == n);
            if book.now < plan.speculate_after_ms {
                assert_eq!(book.sent.len(), n.min(r + book.failed.len()), "just enough");
            }
        }
    };
    drain(&mut m, &mut book);
    let deadline = plan.timeout_ms;
    for event in events.iter().chain([&Event::Advance { ms: deadline + 1 }]) {
        match event {
            Event::Reply {
                pick,
                outstanding,
                outcome,
            } => {
                let from = sender(*pick, *outstanding, n, &book.sent, &book.replied);
                let reply = match outcome {
                    Outcome::Missing => Ok(None),
                    Outcome::Found(i) => Ok(Some(object(*i))),
                    Outcome::Fail(why) => Err(why.clone()),
                };
                if book.reply(&from, reply.as_ref().err()) {
                    if let Ok(found) = &reply {
                        counted.push(found.clone());
                    }
                }
                m.on_reply(&from, reply, book.now);
            }
            Event::Advance { ms } => advance!(m, book, *ms, drain),
        }
        drain(&mut m, &mut book);
    }
    match answer.expect("the client was never answered") {
        Ok(merged) => {
            assert_eq!(book.acked.len(), r, "answered after {:?}", book.acked);
            let expected = counted.into_iter().flatten().reduce(|a, b| a.merged(&b));
            assert_eq!(
                merged, expected,
                "the answer is the merge of what was counted"
            );
        }
        Err(e) => {
            assert_eq!(e.needed, r);
            assert!(book.acked.len() < r);
            check_quorum_error(&e, &plan.replicas, &book.acked, &book.failed, &book.sent);
            let timed_out = book.answered_at.unwrap() >= deadline;
            assert!(timed_out || n - book.failed.len() < r, "gave up early: {e}");
        }
    }
    let flags: Vec<bool> = m.replies().iter().map(|x| x.counted).collect();
    assert_eq!(flags.iter().filter(|c| **c).count(), book.acked.len());
}

fn run_write(plan: WritePlan, events: &[Event]) {
    let n = plan.replicas.len();
    let w = plan.w.max(1);
    let mut m = WriteMachine::new(plan.clone(), 0);
    let mut book = Book::default();
    let mut answer = None;
    let mut drain = |m: &mut WriteMachine, book: &mut Book| {
        while let Some(c) = m.poll_command() {
            match c {
                WriteCommand::AwaitLocal => book.send(plan.local.clone().expect("no local")),
                WriteCommand::Send { to, hint_for } => {
                    assert_eq!(hint_for, None, "no stand-ins in these plans");
                    assert_ne!(Some(&to), plan.local.as_ref());
                    book.send(to);
                }
                WriteCommand::Answer(a) => {
                    assert_eq!(book.sent.len(), n, "every send precedes the answer");
                    book.answer();
                    answer = Some(a);
                }
            }
        }
        if book.answered_at.is_none() {
            book.still_reachable(n, w, plan.timeout_ms);
        }
    };
    drain(&mut m, &mut book);
    assert_eq!(book.sent.len(), n, "a write goes to every replica at once");
    let deadline = plan.timeout_ms;
    for event in events.iter().chain([&Event::Advance { ms: deadline + 1 }]) {
        match event {
            Event::Reply {
                pick,
                outstanding,
                outcome,
            } => {
                let from = sender(*pick, *outstanding, n, &book.sent, &book.replied);
                let reply = match outcome {
                    Outcome::Fail(why) => Err(why.clone()),
                    _ => Ok(()),
                };
                book.reply(&from, reply.as_ref().err());
                m.on_reply(&from, reply, book.now);
            }
            Event::Advance { ms } => advance!(m, book, *ms, drain),
        }
        drain(&mut m, &mut book);
    }
    match answer.expect("the client was never answered") {
        Ok(()) => {
            assert_eq!(book.acked.len(), w);
            assert_eq!(m.acked(), &book.acked[..]);
        }
        Err(e) => {
            assert_eq!(e.needed, w);
            assert!(book.acked.len() < w);
            check_quorum_error(&e, &plan.replicas, &book.acked, &book.failed, &book.sent);
            let timed_out = book.answered_at.unwrap() >= deadline;
            assert!(timed_out || n - book.failed.len() < w, "gave up early: {e}");
        }
    }
}

fn replicas(n: usize) -> Vec<NodeId> {
    (0..n).map(node).collect()
}

fn read_plan() -> impl Strategy<Value = ReadPlan> {
    (1..=5usize, 0..=6usize, any::<bool>(), 0..200u64, 1..400u64).prop_map(
        |(n, r, local, speculate_after_ms, timeout_ms)| ReadPlan {
            replicas: replicas(n),
            local: local.then(|| node(0)),
            stand_ins: vec![],
            r: r.min(n + 1),
            monotonic: false,
            speculate_after_ms,
            timeout_ms,
        },
    )
}

fn write_plan() -> impl Strategy<Value = WritePlan> {
    (1..=5usize, 0..=6usize, any::<bool>(), 1..400u64).prop_map(|(n, w, local, timeout_ms)| {
        WritePlan {
            replicas: replicas(n),
            local: local.then(|| node(n - 1)),
            stand_ins: vec![],
            spares: vec![],
            w: w.min(n + 1),
            pw: 0,
            stand_in_after_ms: 0,
            newer_homes: Vec::new(),
            timeout_ms,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reads_answer_once_with_the_merge_of_r_replies_or_a_full_account(
        plan in read_plan(), events in events()
    ) {
        run_read(plan, &events);
    }

    #[test]
    fn writes_answer_once_after_w_acks_or_with_a_full_account(
        plan in write_plan(), events in events()
    ) {
        run_write(plan, &events);
    }

    #[test]
    fn forwards_never_retry_a_write_that_may_have_landed(
        n in 1..=4usize, write in any::<bool>(), events in forward_events()
    ) {
        run_forward(n, write, &events);
    }
}

/// What a forwarding target answers in a generated event.
#[derive(Debug, Clone)]
enum TargetAnswer {
    Fail(ReplicaFailure),
    /// A response: `put` says its kind; `refusal`: 0 success, 1 not a
    /// coordinator, 2 overloaded, 3 a quorum error.
    Response {
        put: bool,
        refusal: u8,
    },
}

fn forward_events() -> impl Strategy<Value = Vec<(usize, bool, Option<TargetAnswer>)>> {
    let answer = prop_oneof![
        2 => prop::sample::select(failure_kinds()).prop_map(TargetAnswer::Fail),
        1 => (any::<bool>(), 0..4u8).prop_map(|(put, refusal)| TargetAnswer::Response { put, refusal }),
    ];
    // (pick, from the node in flight, answer or `None`: time passes)
    prop::collection::vec(
        (
            0..5usize,
            prop::bool::weighted(0.8),
            prop::option::weighted(0.9, answer),
        ),
        0..12,
    )
}

fn response(put: bool, refusal: u8) -> ClientResponse {
    let error = match refusal {
        1 => Some(OpError::NotCoordinator { node: id("n9") }),
        2 => Some(OpError::Overloaded { limit: 1 }),
        3 => Some(OpError::Quorum(QuorumError {
            needed: 2,
            asked: 3,
            acks: 0,
            failures: vec![],
        })),
        _ => None,
    };
    match (put, error) {
        (true, Some(e)) => ClientResponse::Put(Err(e)),
        (true, None) => ClientResponse::Put(Ok(VersionVector::new())),
        (false, Some(e)) => ClientResponse::Get(Err(e)),
        (false, None) => ClientResponse::Get(Ok(None)),
    }
}

/// The forward harness's view: who was sent to, who is in flight, the reply
/// accepted last, and whether a write may have been applied.
#[derive(Default)]
struct ForwardBook {
    sent: Vec<NodeId>,
    in_flight: Option<NodeId>,
    last: Option<Result<ClientResponse, ReplicaFailure>>,
    unknown: bool,
    answer: Option<Result<ClientResponse, OpError>>,
}

impl ForwardBook {
    fn drain(&mut self, m: &mut ForwardMachine) {
        while let Some(c) = m.poll_command() {
            assert!(self.answer.is_none(), "a command after the answer: {c:?}");
            match c {
                ForwardCommand::Send { to } => {
                    assert!(self.in_flight.is_none(), "two targets in flight");
                    assert!(
                        !self.unknown,
                        "a write retried after it may have been applied"
                    );
                    assert!(!self.sent.contains(&to), "sent to {to} twice");
                    self.sent.push(to.clone());
                    self.in_flight = Some(to);
                }
                ForwardCommand::Answer(a) => self.answer = Some(a),
            }
        }
    }
}

fn run_forward(n: usize, write: bool, events: &[(usize, bool, Option<TargetAnswer>)]) {
    let timeout_ms = 1000;
    let plan = ForwardPlan {
        targets: replicas(n),
        write,
        timeout_ms,
    };
    let mut m = ForwardMachine::new(plan, 0);
    let mut now = 0u64;
    let mut book = ForwardBook::default();
    book.drain(&mut m);
    let end = (0, false, None);
    for (step, (pick, to_in_flight, reply)) in events.iter().chain([&end]).enumerate() {
        match reply {
            Some(reply) if step < events.len() => {
                let from = match &book.in_flight {
                    Some(node) if *to_in_flight => node.clone(),
                    _ => node(*pick),
                };
                let reply = match reply {
                    TargetAnswer::Fail(why) => Err(why.clone()),
                    TargetAnswer::Response { put, refusal } => Ok(response(*put, *refusal)),
                };
                if book.in_flight.as_ref() == Some(&from) && book.answer.is_none() {
                    book.in_flight = None;
                    book.unknown = write
                        && match &reply {
                            Err(why) => !why.proves_not_applied(),
                            Ok(r) => !matches!(r, ClientResponse::Put(_)),
                        };
                    book.last = Some(reply.clone());
                }
                m.on_reply(&from, reply, now);
            }
            _ => {
                now += if step < events.len() { 300 } else { timeout_ms };
                if m.poll_timeout().is_some_and(|at| at <= now) {
                    book.unknown |= write && book.in_flight.is_some();
                    m.on_timeout(now);
                }
            }
        }
        book.drain(&mut m);
    }
    match book.answer.expect("the client was never answered") {
        Ok(response) => {
            assert_eq!(
                Some(Ok(response.clone())),
                book.last,
                "passed through as given"
            );
            assert_eq!(matches!(response, ClientResponse::Put(_)), write);
        }
        Err(OpError::ForwardFailed {
            attempts,
            outcome_unknown,
        }) => {
            assert_eq!(outcome_unknown, book.unknown);
            let tried: Vec<NodeId> = attempts.iter().map(|(n, _)| n.clone()).collect();
            assert_eq!(tried, book.sent, "every attempt is accounted for, in order");
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}
