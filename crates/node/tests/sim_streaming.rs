//! Simulation: partition streaming (P4) between real nodes on turmoil.
//!
//! Two nodes with N = 1 (so anti-entropy, which compares homes, moves
//! nothing); n1's disk is loaded with keys of every partition before the
//! simulation starts, and n2 streams one partition from it, slowly (a low
//! byte rate and small chunks), started through `ringkv_node::run_with`
//! on each of n2's lives:
//!
//! - afterwards n2 holds exactly the partition's keys as n1 holds them,
//!   nothing of any other partition, and every write it took meanwhile
//!   (a concurrent version, a superseding one, a new key) survives the
//!   stream's causal merges;
//! - a power loss of n2 mid-stream (its unsynced writes gone): the stored
//!   cursor survives only with the data before it, the restarted stream
//!   asks after that cursor instead of starting over, fetches well under
//!   twice the partition in all, and completes.
//!
//! Replay a seed with `RINGKV_SIM_SEED=<seed> cargo test -p ringkv-node --test sim_streaming <test>`.

#[allow(dead_code)]
mod sim_cluster;
mod sim_net;

use bytes::Bytes;
use ringkv_core::codec::{decode_object, encode_object};
use ringkv_core::key::ObjectKey;
use ringkv_core::layout::partition_of;
use ringkv_core::protocol::{Request, Response};
use ringkv_core::replication::Replication;
use ringkv_core::siblings::Siblings;
use ringkv_core::streaming::{
    cursor_key, CursorRecord, PullId, StreamLimits, StreamOutcome, StreamPlan, Transfer,
};
use ringkv_core::version_vector::VersionVector;
use ringkv_node::commit::FsyncPolicy;
use ringkv_node::node::NodeState;
use ringkv_node::streaming::{StreamError, StreamProgress};
use ringkv_node::NodeConfig;
use ringkv_storage::{Keyspace, MemStorage, Storage, WriteBatch};
use sim_cluster::{call, client_of, cluster_with, eventually, id, key, Steps};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NODES: [&str; 2] = ["n1", "n2"];
const Q: u32 = 16;
const PARTITION: u32 = 5;
const VERSION: u64 = 2;
/// Keys loaded on n1, over all partitions (about 100 in each).
const KEYS: u32 = 1600;

fn for_each_seed(name: &str, test: impl Fn(u64) -> turmoil::Result) {
    sim_cluster::for_each_seed("sim_streaming", name, test)
}

fn configure(config: &mut NodeConfig) {
    config.replication = Replication { n: 1, r: 1, w: 1 };
    config.partitions = Q;
    // Writes are acknowledged before they are synced, so a power loss
    // takes the last ones.
    config.fsync = FsyncPolicy::Periodic { interval_ms: 300 };
    config.streaming = StreamLimits {
        chunk_keys: 8,
        bytes_per_sec: 1_000,
        retry_initial_ms: 100,
        retry_cap_ms: 1_000,
        ..StreamLimits::default()
    };
}

/// n1's keys: `k0..k<KEYS>`, each written once by `w`.
fn source_objects() -> BTreeMap<Vec<u8>, (ObjectKey, Siblings)> {
    (0..KEYS)
        .map(|i| {
            let key = key(&format!("k{i}"));
            let mut object = Siblings::new();
            let value = Some(Bytes::from(format!("v{i}")));
            object.update(&VersionVector::new(), &id("w"), value, 1);
            (key.storage_key(), (key, object))
        })
        .collect()
}

fn in_partition(key: &ObjectKey) -> bool {
    partition_of(key.position(), Q) == PARTITION
}

/// Two disks, n1's loaded with [`source_objects`] and synced.
fn disks() -> Vec<MemStorage> {
    let source = MemStorage::new();
    let mut batch = WriteBatch::new();
    for (storage_key, (_, object)) in source_objects() {
        batch.put(Keyspace::Data, storage_key, encode_object(&object).unwrap());
    }
    source.write(batch).unwrap();
    source.sync().unwrap();
    vec![source, MemStorage::new()]
}

/// Every object on `disk`, by storage key.
fn stored(disk: &MemStorage) -> BTreeMap<Vec<u8>, Siblings> {
    let records = disk.scan(Keyspace::Data, &[], None, usize::MAX).unwrap();
    let decoded = records
        .into_iter()
        .map(|(k, raw)| (k, decode_object(&raw).unwrap()));
    decoded.collect()
}

fn pull() -> PullId {
    PullId {
        partition: PARTITION,
        source: id("n1"),
    }
}

/// n2's plan: partition [`PARTITION`] from n1.
fn plan() -> StreamPlan {
    StreamPlan {
        version: VERSION,
        partitions: Q,
        local: id("n2"),
        transfers: vec![Transfer {
            partition: PARTITION,
            sources: vec![id("n1")],
        }],
    }
}

/// One life of n2: its node, its stream's progress and the stream's stop.
#[derive(Clone)]
struct Life {
    state: Arc<NodeState>,
    progress: StreamProgress,
    stop: CancellationToken,
}

type Lives = Arc<Mutex<Vec<Life>>>;

/// The stream n2 runs on each life, and where each life goes.
fn streaming_on_n2(lives: Lives) -> sim_cluster::OnStartOf {
    Arc::new(move |name| {
        if name != "n2" {
            return None;
        }
        let lives = lives.clone();
        Some(Box::new(move |state: &Arc<NodeState>| {
            let (progress, stop) = state.start_streaming(plan());
            let state = state.clone();
            lives.lock().unwrap().push(Life {
                state,
                progress,
                stop,
            });
        }))
    })
}

/// The simulation of n1 and n2, n2's disk, and n2's lives.
fn cluster(seed: u64) -> (turmoil::Sim<'static>, MemStorage, Lives) {
    let disks = disks();
    let receiver = disks[1].clone();
    let lives: Lives = Arc::default();
    let on_start = streaming_on_n2(lives.clone());
    let sim = cluster_with(seed, &NODES, disks, configure, on_start);
    (sim, receiver, lives)
}

/// Waits until the latest life's stream fetched `chunks` chunks.
async fn under_way(lives: &Mutex<Vec<Life>>, chunks: u64) {
    eventually(10, "the stream is under way", || async {
        latest(lives).is_some_and(|p| p.snapshot().chunks >= chunks)
    })
    .await;
}

/// How many of n1's keys are in [`PARTITION`].
fn partition_len() -> usize {
    let objects = source_objects();
    objects.values().filter(|(k, _)| in_partition(k)).count()
}

/// The latest life's progress.
fn latest(lives: &Mutex<Vec<Life>>) -> Option<StreamProgress> {
    lives
        .lock()
        .unwrap()
        .last()
        .map(|life| life.progress.clone())
}

/// Waits until the latest life's stream ended; returns its outcome.
async fn finished(lives: &Mutex<Vec<Life>>) -> StreamOutcome {
    eventually(60, "the stream finished", || async {
        latest(lives).is_some_and(|p| p.outcome().is_some())
    })
    .await;
    let outcome = latest(lives).unwrap().outcome().unwrap();
    outcome.expect("the stream ended with an outcome")
}

/// A chunk request for a partition past Q, or with a cursor outside its
/// partition, is refused with a typed error.
async fn refuses_bad_chunk_requests() {
    use ringkv_core::protocol::ReplicaError::BadChunkRequest;
    use ringkv_core::streaming::{ChunkRequest, ChunkRequestError as E};
    let foreign = (0..)
        .map(|i| key(&format!("x{i}")))
        .find(|k| !in_partition(k));
    let outside = Some(Bytes::from(foreign.unwrap().storage_key()));
    let asks = [
        (
            Q,
            None,
            E::NoSuchPartition {
                asked: Q,
                partitions: Q,
            },
        ),
        (
            u32::MAX,
            None,
            E::NoSuchPartition {
                asked: u32::MAX,
                partitions: Q,
            },
        ),
        (
            PARTITION,
            outside,
            E::CursorOutsidePartition {
                partition: PARTITION,
            },
        ),
    ];
    for (partition, after, want) in asks {
        let ask = ChunkRequest {
            partition,
            after,
            max_keys: 10,
            max_bytes: 1000,
        };
        match call(&client_of("n1"), Request::StreamChunk(ask)).await {
            Response::StreamChunk(Err(BadChunkRequest(e))) => assert_eq!(e, want),
            other => panic!("a bad chunk request answered {other:?}"),
        }
    }
}

/// Merges `object` into n2's copy of `k`, as any replica write would.
async fn write_to_n2(k: &ObjectKey, object: Siblings) {
    let write = Request::ReplicaWrite {
        key: k.clone(),
        object,
        hint_for: None,
    };
    match call(&client_of("n2"), write).await {
        Response::ReplicaWrite(Ok(())) => {}
        other => panic!("replica write answered {other:?}"),
    }
}

#[test]
fn a_streamed_partition_holds_the_sources_keys_and_every_write_made_meanwhile() {
    for_each_seed(
        "a_streamed_partition_holds_the_sources_keys_and_every_write_made_meanwhile",
        |seed| {
            let (mut sim, receiver, lives) = cluster(seed);
            sim.client("client", async move {
                let source = source_objects();
                let ours: Vec<&(ObjectKey, Siblings)> =
                    source.values().filter(|(k, _)| in_partition(k)).collect();
                refuses_bad_chunk_requests().await;
                under_way(&lives, 2).await;
                let partial = latest(&lives).unwrap().snapshot().keys;
                assert!(partial < ours.len() as u64, "still streaming");
                // A concurrent version of the first key, a version of the
                // last key that supersedes n1's, and a key n1 lacks.
                let (first, _) = ours[0].clone();
                let (last, last_object) = ours[ours.len() - 1].clone();
                let mut concurrent = Siblings::new();
                let v = Some(Bytes::from("concurrent"));
                concurrent.update(&VersionVector::new(), &id("c"), v, 2);
                write_to_n2(&first, concurrent.clone()).await;
                let mut newer = last_object.clone();
                let v = Some(Bytes::from("newer"));
                newer.update(&last_object.clock().clone(), &id("c"), v, 2);
                write_to_n2(&last, newer.clone()).await;
                let fresh = (0..)
                    .map(|i| key(&format!("fresh{i}")))
                    .find(in_partition)
                    .unwrap();
                let mut fresh_object = Siblings::new();
                let v = Some(Bytes::from("fresh"));
                fresh_object.update(&VersionVector::new(), &id("c"), v, 2);
                write_to_n2(&fresh, fresh_object.clone()).await;

                assert_eq!(finished(&lives).await, StreamOutcome::Complete);
                let mut want: BTreeMap<Vec<u8>, Siblings> = ours
                    .iter()
                    .map(|(k, o)| (k.storage_key(), o.clone()))
                    .collect();
                want.get_mut(&first.storage_key())
                    .unwrap()
                    .merge(&concurrent);
                want.insert(last.storage_key(), newer);
                want.insert(fresh.storage_key(), fresh_object);
                let held = stored(&receiver);
                assert_eq!(
                    held.len(),
                    want.len(),
                    "the partition's keys and nothing else"
                );
                assert_eq!(held, want);
                let first_values: Vec<String> = held[&first.storage_key()]
                    .values()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                assert_eq!(
                    first_values.len(),
                    2,
                    "both concurrent versions: {first_values:?}"
                );
                let p = latest(&lives).unwrap().snapshot();
                assert_eq!((p.partitions_done, p.partitions_total), (1, 1));
                assert_eq!(
                    (p.keys, p.keys_fetched),
                    (ours.len() as u64, ours.len() as u64)
                );
                assert_eq!(p.pulls_resumed, 0);
                // Once synced, the version's cursors can go.
                let streamer = lives.lock().unwrap()[0].state.streamer();
                let meta =
                    |disk: &MemStorage| disk.get(Keyspace::Meta, &cursor_key(VERSION, &pull()));
                assert!(meta(&receiver).unwrap().is_some());
                assert_eq!(streamer.clear_cursors_before(VERSION).await, Ok(0));
                assert_eq!(streamer.clear_cursors_before(VERSION + 1).await, Ok(1));
                assert_eq!(meta(&receiver).unwrap(), None);
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn a_stream_cut_by_a_power_loss_resumes_after_its_cursor_and_completes() {
    for_each_seed(
        "a_stream_cut_by_a_power_loss_resumes_after_its_cursor_and_completes",
        |seed| {
            let (mut sim, receiver, lives) = cluster(seed);
            let steps = Steps::default();
            let client_steps = steps.clone();
            let client_lives = lives.clone();
            let source = source_objects();
            let ours: Vec<Vec<u8>> = source
                .iter()
                .filter(|(_, (k, _))| in_partition(k))
                .map(|(sk, _)| sk.clone())
                .collect();
            let partition_keys = ours.len() as u64;
            let n2_disk = receiver.clone();
            let surviving_cursor: Arc<Mutex<Option<CursorRecord>>> = Arc::default();
            let seen_cursor = surviving_cursor.clone();
            sim.client("client", async move {
                let lives = client_lives;
                eventually(20, "a third of the partition streamed", || async {
                    latest(&lives).is_some_and(|p| p.snapshot().keys * 3 >= partition_keys)
                })
                .await;
                // Two sync periods: some of it is durable, the tail may not be.
                tokio::time::sleep(Duration::from_millis(700)).await;
                let first_life = latest(&lives).unwrap();
                client_steps.ask(1).await; // n2 loses power
                client_steps.ask(2).await; // n2 restarts
                eventually(10, "n2 streams again", || async {
                    lives.lock().unwrap().len() == 2
                })
                .await;
                assert_eq!(finished(&lives).await, StreamOutcome::Complete);
                let second_life = latest(&lives).unwrap();
                let cursor = seen_cursor.lock().unwrap().clone();
                let cursor = cursor.expect("a cursor survived the power loss");
                let resumed_at = cursor.after.clone().expect("the cursor names a key");
                assert_eq!(
                    second_life.first_requests(),
                    vec![(pull(), Some(resumed_at.clone()))],
                    "the first request after the restart asks after the stored cursor"
                );
                let before = ours
                    .iter()
                    .filter(|k| k.as_slice() <= &resumed_at[..])
                    .count();
                assert!(
                    before >= 8,
                    "the cursor stands after at least a chunk: {before}"
                );
                let (one, two) = (first_life.snapshot(), second_life.snapshot());

                assert_eq!(
                    two.keys_fetched,
                    partition_keys - before as u64,
                    "no key twice"
                );
                let total = one.keys_fetched + two.keys_fetched;
                assert!(
                    total * 2 < partition_keys * 3,
                    "{total} of {partition_keys}: not twice"
                );
                let held = stored(&receiver);
                let want: Vec<&Vec<u8>> = ours.iter().collect();
                assert_eq!(
                    held.keys().collect::<Vec<_>>(),
                    want,
                    "complete, nothing else"
                );
                assert_eq!(
                    two.keys, partition_keys,
                    "merged keys count over both lives"
                );
                Ok(())
            });
            steps.run(&mut sim, |sim, step| match step {
                1 => {
                    sim.crash("n2");
                    n2_disk.crash();
                    // The invariant: whatever cursor survived, every key at
                    // or before it survived too.
                    let raw = n2_disk.get(Keyspace::Meta, &cursor_key(VERSION, &pull()));
                    let record = raw.unwrap().map(|r| CursorRecord::decode(&r).unwrap());
                    if let Some(after) = record.as_ref().and_then(|r| r.after.clone()) {
                        let held = stored(&n2_disk);
                        for k in source.keys().filter(|k| k.as_slice() <= &after[..]) {
                            let (key, _) = &source[k];
                            if in_partition(key) {
                                assert!(held.contains_key(k), "a cursor ahead of its data");
                            }
                        }
                    }
                    *surviving_cursor.lock().unwrap() = record;
                }
                _ => sim.bounce("n2"),
            })
        },
    );
}

#[test]
fn a_stopped_stream_ends_at_once_and_a_new_run_resumes_after_its_cursor() {
    for_each_seed(
        "a_stopped_stream_ends_at_once_and_a_new_run_resumes_after_its_cursor",
        |seed| {
            let (mut sim, receiver, lives) = cluster(seed);
            sim.client("client", async move {
                under_way(&lives, 3).await;
                let life = lives.lock().unwrap()[0].clone();
                life.stop.cancel();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let outcome = life.progress.outcome();
                assert_eq!(outcome, Some(Err(StreamError::Stopped)), "at once");
                let stopped_at = life.progress.snapshot();
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert_eq!(
                    life.progress.snapshot(),
                    stopped_at,
                    "nothing after the stop"
                );
                let (again, _) = life.state.start_streaming(plan());
                eventually(30, "the new run finished", || async {
                    again.outcome().is_some()
                })
                .await;
                assert_eq!(again.outcome(), Some(Ok(StreamOutcome::Complete)));
                let resumed = again.first_requests();
                assert!(matches!(&resumed[..], [(_, Some(_))]), "{resumed:?}");
                let partition: usize = partition_len();
                assert_eq!(stored(&receiver).len(), partition);
                let fetched = stopped_at.keys_fetched + again.snapshot().keys_fetched;
                assert!(
                    fetched < partition as u64 + 20,
                    "{fetched}: resumed, not restarted"
                );
                Ok(())
            });
            sim.run()
        },
    );
}

#[test]
fn a_source_down_for_a_while_is_retried_until_the_stream_completes() {
    for_each_seed(
        "a_source_down_for_a_while_is_retried_until_the_stream_completes",
        |seed| {
            let (mut sim, receiver, lives) = cluster(seed);
            let steps = Steps::default();
            let client_steps = steps.clone();
            sim.client("client", async move {
                under_way(&lives, 2).await;
                client_steps.ask(1).await; // n1 crashes
                tokio::time::sleep(Duration::from_secs(4)).await;
                let down = latest(&lives).unwrap().snapshot();
                assert!(down.failures >= 2, "retried while n1 was down: {down:?}");
                assert_eq!(latest(&lives).unwrap().outcome(), None, "not given up");
                client_steps.ask(2).await; // n1 restarts
                assert_eq!(finished(&lives).await, StreamOutcome::Complete);
                let partition = partition_len();
                assert_eq!(stored(&receiver).len(), partition);
                Ok(())
            });
            steps.crash_then_bounce(&mut sim, "n1")
        },
    );
}
