//! Unit tests of the stream machine against model sources and a model receiver.

use super::*;
use crate::codec::encode_object;
use crate::failure::ReplicaFailure;
use crate::key::ObjectKey;
use crate::layout::partition_of;
use crate::siblings::Siblings;
use crate::streaming::chunk::MAX_CHUNK_KEYS;
use crate::streaming::chunk::{fill_chunk, PageRecord};
use crate::streaming::plan::{Transfer, DEFAULT_RETRY_INITIAL_MS};
use crate::streaming::stage_apply;
use crate::version_vector::VersionVector;
use crate::NodeId;

const Q: u32 = 8;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn pull(partition: u32, source: &str) -> PullId {
    PullId {
        partition,
        source: id(source),
    }
}

fn written(writer: &str, value: &str) -> Siblings {
    let mut object = Siblings::new();
    let v = Some(Bytes::from(value.to_string()));
    object.update(&VersionVector::new(), &id(writer), v, 1);
    object
}

/// One source's data: storage key -> (key, object).
type Store = BTreeMap<Vec<u8>, (ObjectKey, Siblings)>;

/// Keys `k<from>..k<to>` written by `writer`, in every partition.
fn store(writer: &str, from: u32, to: u32) -> Store {
    (from..to)
        .map(|i| {
            let key = ObjectKey::new("b", Bytes::from(format!("k{i}")), 64).unwrap();
            (
                key.storage_key(),
                (key, written(writer, &format!("{writer}{i}"))),
            )
        })
        .collect()
}

/// What `source` answers to `request`, by the same code a node runs.
fn answer(store: &Store, request: &ChunkRequest) -> Chunk {
    let scan = request.validate(Q).unwrap();
    let read = |start: &[u8], limit: usize| -> Result<Vec<PageRecord>, ()> {
        let upper = scan.end.clone();
        Ok(store
            .range(start.to_vec()..)
            .take_while(|(k, _)| upper.as_ref().is_none_or(|e| *k < e))
            .take(limit)
            .map(|(k, (_, o))| (k.clone(), Some(encode_object(o).unwrap())))
            .collect())
    };
    fill_chunk(&scan, read).unwrap().chunk
}

/// The receiver: merged objects and stored cursors.
#[derive(Default)]
struct Receiver {
    data: BTreeMap<Vec<u8>, Siblings>,
    cursors: BTreeMap<PullId, CursorRecord>,
}

impl Receiver {
    fn apply(&mut self, pull: &PullId, entries: crate::streaming::Entries, cursor: CursorRecord) {
        for (stage, staged) in stage_apply(entries, &cursor, 3) {
            for (key, object) in stage {
                self.data
                    .entry(key.storage_key())
                    .or_default()
                    .merge(&object);
            }
            self.cursors.insert(pull.clone(), staged);
        }
    }
}

fn plan(transfers: &[(u32, &[&str])]) -> StreamPlan {
    StreamPlan {
        version: 2,
        partitions: Q,
        local: id("me"),
        transfers: transfers
            .iter()
            .map(|(partition, sources)| Transfer {
                partition: *partition,
                sources: sources.iter().map(|s| id(s)).collect(),
            })
            .collect(),
    }
}

fn limits(chunk_keys: u32) -> StreamLimits {
    StreamLimits {
        chunk_keys,
        bytes_per_sec: u64::MAX,
        ..StreamLimits::default()
    }
}

/// How a test source answers a fetch.
type Source<'a> = dyn FnMut(&PullId, &ChunkRequest) -> Result<Chunk, ReplicaFailure> + 'a;

/// Carries out every pending command at `now`: fetches answered by
/// `source`, applies stored in `receiver`. The outcome once finished.
fn run_pending(
    m: &mut StreamMachine,
    now: u64,
    receiver: &mut Receiver,
    source: &mut Source<'_>,
) -> Option<StreamOutcome> {
    while let Some(command) = m.poll_command() {
        match command {
            StreamCommand::Fetch { pull, request, .. } => {
                let answer = source(&pull, &request);
                m.on_fetched(&pull, answer, now);
            }
            StreamCommand::Apply {
                pull,
                entries,
                cursor,
            } => {
                receiver.apply(&pull, entries, cursor);
                m.on_applied(&pull, Ok(()), now);
            }
            StreamCommand::Finish(outcome) => {
                assert_eq!(m.poll_command(), None, "nothing after Finish");
                return Some(outcome);
            }
        }
    }
    None
}

/// Runs `m` to its end, moving time to each timeout it names; returns the
/// outcome and every wait.
fn run_to_end(
    m: &mut StreamMachine,
    receiver: &mut Receiver,
    source: &mut Source<'_>,
) -> (StreamOutcome, Vec<u64>) {
    let (mut now, mut waits) = (0, Vec::new());
    for _ in 0..100_000 {
        if let Some(outcome) = run_pending(m, now, receiver, source) {
            return (outcome, waits);
        }
        let at = m.poll_timeout().expect("a machine that waits names when");
        waits.push(at - now);
        now = at;
        m.on_timeout(now);
    }
    panic!("the machine never finished");
}

/// Runs `m` to its end against healthy `sources`.
fn drive(
    m: &mut StreamMachine,
    sources: &BTreeMap<NodeId, Store>,
    receiver: &mut Receiver,
) -> StreamOutcome {
    let mut healthy = |p: &PullId, r: &ChunkRequest| Ok(answer(&sources[&p.source], r));
    run_to_end(m, receiver, &mut healthy).0
}

/// The union of each store's keys of its partitions, merged.
fn union(parts: &[(&Store, &[u32])]) -> BTreeMap<Vec<u8>, Siblings> {
    let mut out: BTreeMap<Vec<u8>, Siblings> = BTreeMap::new();
    for (store, partitions) in parts {
        for (sk, (key, object)) in store.iter() {
            if partitions.contains(&partition_of(key.position(), Q)) {
                out.entry(sk.clone()).or_default().merge(object);
            }
        }
    }
    out
}

fn machine(plan: StreamPlan, limits: StreamLimits, resumed: &Receiver) -> StreamMachine {
    StreamMachine::new(plan, limits, &resumed.cursors, 0).unwrap()
}

#[test]
fn a_plan_ends_with_the_union_of_its_sources_and_nothing_else() {
    let sources: BTreeMap<NodeId, Store> = [
        (id("n1"), store("n1", 0, 300)),
        (id("n2"), store("n2", 200, 400)),
        (id("me"), store("me", 0, 1000)),
    ]
    .into();
    let mut receiver = Receiver::default();
    let plan = plan(&[(1, &["n1", "n2", "me"]), (6, &["n1"]), (3, &["me"])]);
    let mut m = machine(plan, limits(7), &receiver);
    assert_eq!(
        drive(&mut m, &sources, &mut receiver),
        StreamOutcome::Complete
    );
    let want = union(&[(&sources[&id("n1")], &[1, 6]), (&sources[&id("n2")], &[1])]);
    assert_eq!(
        receiver.data, want,
        "partition 3 comes from this node alone: nothing moves"
    );
    let p = m.progress();
    assert_eq!((p.partitions_total, p.partitions_done), (3, 3));
    assert_eq!((p.pulls_total, p.pulls_done, p.pulls_failed), (3, 3, 0));
    assert_eq!(p.keys, p.keys_fetched);
    assert!(receiver.cursors.values().all(|c| c.done));
}

#[test]
fn a_run_resumes_from_stored_cursors_and_skips_done_pulls() {
    let sources: BTreeMap<NodeId, Store> = [
        (id("n1"), store("n1", 0, 400)),
        (id("n2"), store("n2", 0, 400)),
    ]
    .into();
    let mut receiver = Receiver::default();
    let plan = plan(&[(2, &["n1", "n2"])]);
    let all = union(&[(&sources[&id("n1")], &[2])]).len() as u64;
    // The first run stops after three chunks of n1 and all of n2.
    let mut first = machine(plan.clone(), limits(5), &receiver);
    let mut n1_chunks = 0;
    while let Some(command) = first.poll_command() {
        match command {
            StreamCommand::Fetch { pull, request, .. } => {
                if pull.source == id("n1") && n1_chunks == 3 {
                    continue;
                }
                n1_chunks += u32::from(pull.source == id("n1"));
                let chunk = answer(&sources[&pull.source], &request);
                first.on_fetched(&pull, Ok(chunk), 0);
            }
            StreamCommand::Apply {
                pull,
                entries,
                cursor,
            } => {
                receiver.apply(&pull, entries, cursor);
                first.on_applied(&pull, Ok(()), 0);
            }
            StreamCommand::Finish(_) => panic!("n1 is not done"),
        }
    }
    let stored = receiver.cursors[&pull(2, "n1")].clone();
    assert_eq!(stored.keys, 15);
    assert!(receiver.cursors[&pull(2, "n2")].done);
    let mut second = machine(plan.clone(), limits(5), &receiver);
    assert_eq!(
        second.progress().pulls_done,
        1,
        "n2's pull is done from its cursor"
    );
    assert_eq!(second.progress().keys, 15 + all);
    match second.poll_command() {
        Some(StreamCommand::Fetch {
            pull: p,
            request,
            first: true,
        }) => {
            assert_eq!(p, pull(2, "n1"));
            assert_eq!(request.after, stored.after, "asks after the stored cursor");
        }
        other => panic!("expected n1's first fetch, got {other:?}"),
    }
    assert_eq!(second.poll_command(), None, "n2 is not asked again");
    let mut third = machine(plan, limits(5), &receiver);
    assert_eq!(
        drive(&mut third, &sources, &mut receiver),
        StreamOutcome::Complete
    );
    assert_eq!(
        third.progress().keys_fetched,
        all - 15,
        "nothing fetched twice"
    );
    assert_eq!(third.progress().pulls_resumed, 1);
    let both = union(&[(&sources[&id("n1")], &[2]), (&sources[&id("n2")], &[2])]);
    assert_eq!(receiver.data, both);
}

fn plan_of(transfers: &[(u32, Vec<&str>)]) -> StreamPlan {
    let borrowed: Vec<(u32, &[&str])> = transfers.iter().map(|(p, s)| (*p, s.as_slice())).collect();
    plan(&borrowed)
}

/// Every command now pending.
fn drain(m: &mut StreamMachine) -> Vec<StreamCommand> {
    std::iter::from_fn(|| m.poll_command()).collect()
}

fn fetch_after(command: &StreamCommand) -> Option<Bytes> {
    match command {
        StreamCommand::Fetch { request, .. } => request.after.clone(),
        other => panic!("expected a fetch, got {other:?}"),
    }
}

#[test]
fn one_chunk_is_fetched_ahead_and_chunks_of_a_pull_apply_in_order() {
    let source = store("n1", 0, 200);
    let mut m = machine(plan(&[(4, &["n1"])]), limits(4), &Receiver::default());
    let p = pull(4, "n1");
    let ask = |commands: &[StreamCommand]| match commands {
        [StreamCommand::Fetch { request, .. }] => request.clone(),
        other => panic!("expected one fetch, got {other:?}"),
    };
    let first = ask(&drain(&mut m));
    m.on_fetched(&p, Ok(answer(&source, &first)), 0);
    let commands = drain(&mut m);
    let [StreamCommand::Apply { cursor: c1, .. }, second @ StreamCommand::Fetch { .. }] =
        &commands[..]
    else {
        panic!("apply the first chunk while fetching the second: {commands:?}");
    };
    assert_eq!(fetch_after(second), c1.after);
    let second = ask(&commands[1..]);
    m.on_fetched(&p, Ok(answer(&source, &second)), 0);
    assert_eq!(
        drain(&mut m),
        vec![],
        "the second chunk waits for the first apply"
    );
    m.on_applied(&p, Ok(()), 0);
    let commands = drain(&mut m);
    match &commands[..] {
        [StreamCommand::Apply { cursor: c2, .. }, StreamCommand::Fetch { .. }] => {
            assert!(c2.after > c1.after && c2.keys == 8);
        }
        other => panic!("apply the second chunk and fetch the third: {other:?}"),
    }
}

#[test]
fn a_failed_apply_asks_again_from_the_last_stored_cursor_and_drops_the_fetch_in_flight() {
    let source = store("n1", 0, 200);
    let p = pull(4, "n1");
    let mut m = machine(plan(&[(4, &["n1"])]), limits(4), &Receiver::default());
    let commands = drain(&mut m);
    let StreamCommand::Fetch { request, .. } = &commands[0] else {
        panic!()
    };
    m.on_fetched(&p, Ok(answer(&source, request)), 0);
    let commands = drain(&mut m);
    let StreamCommand::Fetch { request, .. } = &commands[1] else {
        panic!()
    };
    m.on_applied(&p, Err(ReplicaError::Overloaded), 10);
    assert_eq!(
        drain(&mut m),
        vec![],
        "nothing until the fetch in flight returns"
    );
    m.on_fetched(&p, Ok(answer(&source, request)), 20);
    assert_eq!(
        drain(&mut m),
        vec![],
        "its chunk is dropped, and the retry waits"
    );
    assert_eq!(m.poll_timeout(), Some(10 + DEFAULT_RETRY_INITIAL_MS));
    m.on_timeout(10 + DEFAULT_RETRY_INITIAL_MS);
    let commands = drain(&mut m);
    assert_eq!(commands.len(), 1);
    assert_eq!(
        fetch_after(&commands[0]),
        None,
        "from the start: nothing was stored"
    );
    assert_eq!(m.progress().failures, 1);
}

#[test]
fn failures_back_off_doubling_to_the_cap_and_a_pull_is_given_up_after_the_limit() {
    let healthy = store("n2", 0, 100);
    let limits = StreamLimits {
        max_failures: 8,
        retry_initial_ms: 100,
        retry_cap_ms: 1000,
        ..limits(50)
    };
    let mut m = machine(
        plan(&[(0, &["n1"]), (5, &["n2"])]),
        limits,
        &Receiver::default(),
    );
    let mut n1_down = |p: &PullId, r: &ChunkRequest| match p.source.as_str() {
        "n1" => Err(ReplicaFailure::ConnectRefused),
        _ => Ok(answer(&healthy, r)),
    };
    let (outcome, waits) = run_to_end(&mut m, &mut Receiver::default(), &mut n1_down);
    assert_eq!(waits, [100, 200, 400, 800, 1000, 1000, 1000]);
    assert_eq!(
        outcome,
        StreamOutcome::Incomplete {
            failed: vec![(
                pull(0, "n1"),
                PullError::Source(ReplicaFailure::ConnectRefused)
            )]
        }
    );
    let p = m.progress();
    assert_eq!((p.pulls_done, p.pulls_failed, p.partitions_done), (1, 1, 1));
}

#[test]
fn a_chunk_that_does_not_fit_its_request_is_a_failure_and_never_applied() {
    let source = store("n1", 0, 100);
    let p = pull(4, "n1");
    let mut m = machine(plan(&[(4, &["n1"])]), limits(4), &Receiver::default());
    let commands = drain(&mut m);
    let StreamCommand::Fetch { request, .. } = &commands[0] else {
        panic!()
    };
    let mut chunk = answer(&source, request);
    chunk.entries.reverse();
    m.on_fetched(&p, Ok(chunk), 0);
    assert_eq!(drain(&mut m), vec![]);
    m.on_timeout(DEFAULT_RETRY_INITIAL_MS);
    let commands = drain(&mut m);
    assert_eq!(fetch_after(&commands[0]), None);
    let StreamCommand::Fetch { request, .. } = &commands[0] else {
        panic!()
    };
    let mut foreign = answer(&source, request);
    let outside = store("x", 0, 100)
        .into_values()
        .find(|(k, _)| partition_of(k.position(), Q) == 5);
    foreign.entries.push(outside.unwrap());
    foreign.entries.remove(0);
    m.on_fetched(&p, Ok(foreign), DEFAULT_RETRY_INITIAL_MS);
    assert_eq!(
        drain(&mut m),
        vec![],
        "a key of another partition is not applied"
    );
    assert_eq!(m.progress().failures, 2);
}

#[test]
fn fetches_wait_until_the_bucket_has_paid_for_the_bytes_fetched() {
    let one = store("n1", 0, 8000);
    let limits = StreamLimits {
        bytes_per_sec: 1000,
        ..limits(10)
    };
    let mut m = machine(plan(&[(4, &["n1"])]), limits, &Receiver::default());
    let mut now = 0;
    let mut fetched_bytes = 0;
    let mut source = |_: &PullId, r: &ChunkRequest| Ok(answer(&one, r));
    while now < 10_000 {
        let finished = run_pending(&mut m, now, &mut Receiver::default(), &mut source);
        assert_eq!(finished, None, "not within 10 s at 1000 bytes/s");
        fetched_bytes = m.progress().bytes_fetched;
        now = m.poll_timeout().unwrap();
        m.on_timeout(now);
    }
    // A full bucket (1 s), then 1000 bytes/s, plus what was fetched ahead.
    let chunk = fetched_bytes / m.progress().chunks;
    assert!(fetched_bytes <= 1000 * 11 + 2 * chunk, "{fetched_bytes}");
    assert!(fetched_bytes >= 1000 * 9, "{fetched_bytes}");
}

#[test]
fn at_most_the_configured_pulls_run_at_once() {
    let sources: BTreeMap<NodeId, Store> = [
        (id("n1"), store("n1", 0, 100)),
        (id("n2"), store("n2", 0, 100)),
    ]
    .into();
    let transfers: Vec<(u32, Vec<&str>)> = (0..Q).map(|p| (p, vec!["n1", "n2"])).collect();
    let limits = StreamLimits {
        concurrent_pulls: 3,
        ..limits(5)
    };
    let mut m = machine(plan_of(&transfers), limits, &Receiver::default());
    let fetches = drain(&mut m);
    assert_eq!(fetches.len(), 3);
    for fetch in fetches {
        let StreamCommand::Fetch { pull, request, .. } = fetch else {
            panic!("{fetch:?}")
        };
        m.on_fetched(&pull, Ok(answer(&sources[&pull.source], &request)), 0);
    }
    let next = drain(&mut m);
    let applies = next
        .iter()
        .filter(|c| matches!(c, StreamCommand::Apply { .. }));
    assert_eq!(
        (applies.count(), next.len()),
        (3, 6),
        "each applies and fetches ahead"
    );
    let mut receiver = Receiver::default();
    for command in next {
        match command {
            StreamCommand::Apply {
                pull,
                entries,
                cursor,
            } => {
                receiver.apply(&pull, entries, cursor);
                m.on_applied(&pull, Ok(()), 0);
            }
            StreamCommand::Fetch { pull, request, .. } => {
                m.on_fetched(&pull, Ok(answer(&sources[&pull.source], &request)), 0)
            }
            StreamCommand::Finish(_) => panic!("not yet"),
        }
    }
    assert_eq!(
        drive(&mut m, &sources, &mut receiver),
        StreamOutcome::Complete
    );
    assert_eq!(m.progress().pulls_done, 2 * Q);
}

#[test]
fn plans_are_checked_and_trivial_plans_finish_at_once() {
    let bad = StreamMachine::new(plan(&[(Q, &["n1"])]), limits(5), &BTreeMap::new(), 0);
    assert_eq!(
        bad.err(),
        Some(PlanError::NoSuchPartition {
            partition: Q,
            partitions: Q
        })
    );
    for trivial in [plan(&[]), plan(&[(1, &["me"]), (2, &[])])] {
        let mut m = machine(trivial, limits(5), &Receiver::default());
        assert_eq!(
            m.poll_command(),
            Some(StreamCommand::Finish(StreamOutcome::Complete))
        );
        assert_eq!(m.poll_command(), None);
        assert!(m.is_finished());
        assert_eq!(m.progress().partitions_done, m.progress().partitions_total);
    }
    assert!(StreamLimits::default().validate().is_ok());
    let zero = StreamLimits {
        concurrent_pulls: 0,
        ..StreamLimits::default()
    };
    assert!(zero.validate().unwrap_err().contains("concurrent_pulls"));
    let huge = StreamLimits {
        chunk_keys: MAX_CHUNK_KEYS + 1,
        ..StreamLimits::default()
    };
    assert!(huge.validate().unwrap_err().contains("chunk_keys"));
}

mod props;
