//! Benchmark: streaming every partition of a 1,000,000-key node into an
//! empty one (P4).
//!
//! How: 1,000,000 objects (one version each, 100-byte values unless
//! `--value-bytes` says otherwise) are written straight into n1's fjall
//! database before any node starts. Then two real nodes run in this
//! process (`ringkv_node::run_with`, loopback TCP, fjall in a temp dir,
//! the default `fsync = always`), with N = 1, so anti-entropy, which
//! compares the homes of a partition, moves nothing. Once both are ready,
//! n2 streams all Q partitions from n1 (`NodeState::start_streaming`),
//! with the node's default chunk size and concurrent pulls and the rate
//! limit effectively off (`bytes_per_sec` = 2^62), so the time measured is
//! the mechanism's, not the cap's.
//!
//! Measured: the time from starting the stream until its outcome, keys and
//! wire bytes per second (the entries' encoded size, as the receiver's
//! progress counts them), and the chunk count. At the end n2's `data`
//! keyspace is scanned and must hold every key.
//!
//! Run: `cargo bench -p ringkv-node --bench streaming` (1,000,000 keys),
//! or `... -- --keys 20000` for a smoke run; `--help` lists the flags.
//! Nodes log to stderr at `RUST_LOG` (default `warn`). Without `--bench`
//! (test runs, nextest's listing) it does nothing. Plain
//! `std::time::Instant`: this is a bench, not node source.

use bytes::Bytes;
use ringkv_core::codec::encode_object;
use ringkv_core::key::ObjectKey;
use ringkv_core::replication::Replication;
use ringkv_core::siblings::Siblings;
use ringkv_core::streaming::{StreamLimits, StreamPlan, Transfer, TransferProgress};
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::net::TcpNetwork;
use ringkv_node::node::NodeState;
use ringkv_node::{Edges, NodeConfig, OnStart, PeerConfig, StartError};
use ringkv_storage::{FjallStorage, Keyspace, Storage, WriteBatch};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "../common/mod.rs"]
mod common;

const HELP: &str = "\
streaming: time for a node to stream every partition of another
  --keys N            keys on the source (default 1000000)
  --value-bytes B     bytes per value (default 100)
  --partitions Q      partitions (default 256)
  --chunk-keys K      keys per chunk (default: the node's, 1024)
  --pulls P           pulls at once (default: the node's, 2)
  --timeout-s S       give up after S seconds (default 3600)
  --dir PATH          where the two databases go (default: a temp dir)";

/// Keys written per batch while loading.
const LOAD_BATCH: u64 = 10_000;
/// The stream's layout version (any).
const VERSION: u64 = 2;

struct Args {
    keys: u64,
    value_bytes: usize,
    partitions: u32,
    limits: StreamLimits,
    timeout: Duration,
    dir: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        keys: 1_000_000,
        value_bytes: 100,
        partitions: ringkv_core::layout::DEFAULT_PARTITIONS,
        limits: StreamLimits {
            bytes_per_sec: 1 << 62,
            ..StreamLimits::default()
        },
        timeout: Duration::from_secs(3600),
        dir: None,
    };
    common::parse_flags(HELP, |flag, value| {
        let number = || common::number(flag, value);
        match flag {
            "--keys" => args.keys = number()?.max(1),
            "--value-bytes" => args.value_bytes = number()? as usize,
            "--partitions" => args.partitions = number()? as u32,
            "--chunk-keys" => args.limits.chunk_keys = number()? as u32,
            "--pulls" => args.limits.concurrent_pulls = number()? as usize,
            "--timeout-s" => args.timeout = Duration::from_secs(number()?),
            "--dir" => args.dir = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}\n{HELP}")),
        }
        Ok(())
    })?;
    args.limits.validate()?;
    Ok(args)
}

fn main() -> ExitCode {
    common::main_with("streaming", parse_args, run)
}

fn id(i: usize) -> NodeId {
    NodeId::new(&format!("n{}", i + 1)).expect("valid id")
}

/// Key `i`'s object: one version by `w`, `len` bytes of a xorshift stream.
fn object_of(i: u64, len: usize) -> Siblings {
    let mut x = i.wrapping_add(1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let value: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut object = Siblings::new();
    let writer = NodeId::new("w").expect("valid id");
    let value = Some(Bytes::from(value));
    object.update(&VersionVector::new(), &writer, value, 1_700_000_000_000);
    object
}

fn key_of(i: u64) -> ObjectKey {
    ObjectKey::new("bench", Bytes::from(format!("key-{i:09}")), 1024).expect("valid key")
}

/// Writes `keys` objects into `store` and syncs; returns the bytes written.
fn load(store: &FjallStorage, keys: u64, value_bytes: usize) -> Result<u64, String> {
    let mut bytes = 0;
    for first in (0..keys).step_by(LOAD_BATCH as usize) {
        let mut batch = WriteBatch::new();
        for i in first..(first + LOAD_BATCH).min(keys) {
            let encoded = encode_object(&object_of(i, value_bytes)).map_err(|e| e.to_string())?;
            let key = key_of(i).storage_key();
            bytes += (key.len() + encoded.len()) as u64;
            batch.put(Keyspace::Data, key, encoded);
        }
        store.write(batch).map_err(|e| e.to_string())?;
    }
    store.sync().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// How many keys `store` holds in `data` (a full scan).
fn count(store: &FjallStorage) -> Result<u64, String> {
    let (mut start, mut keys) = (Vec::new(), 0);
    loop {
        let page = store
            .scan_skipping_corrupt(Keyspace::Data, &start, None, 65_536)
            .map_err(|e| e.to_string())?;
        let Some(next) = page.resume_after() else {
            return Ok(keys);
        };
        keys += page.records.len() as u64;
        start = next;
    }
}

/// The configs of n1 and n2: N = 1, data under `dir`.
fn configs(args: &Args, dir: &std::path::Path) -> [NodeConfig; 2] {
    let ports = common::free_ports(4);
    let rpc = |i: usize| format!("127.0.0.1:{}", ports[2 * i + 1]);
    std::array::from_fn(|i| {
        let http = format!("127.0.0.1:{}", ports[2 * i]).parse().expect("addr");
        let mut config = NodeConfig::new(id(i), http, rpc(i), dir.join(format!("n{}", i + 1)));
        let other = 1 - i;
        config.peers = vec![PeerConfig {
            id: id(other),
            rpc: rpc(other),
            capacity: 1,
            zone: None,
        }];
        config.replication = Replication { n: 1, r: 1, w: 1 };
        config.partitions = args.partitions;
        config.streaming = args.limits;
        config
    })
}

type Node = JoinHandle<Result<(), StartError>>;

/// Starts a node on `store`; `on_start` runs once it serves.
async fn start(
    config: NodeConfig,
    store: Arc<FjallStorage>,
    shutdown: &CancellationToken,
    on_start: Option<OnStart>,
) -> Node {
    let edges = Edges {
        network: Arc::new(TcpNetwork),
        storage: store,
        wall_clock: ringkv_node::system_clock(),
        serve_http: false,
        boot_id: None,
    };
    let ready = CancellationToken::new();
    let run = ringkv_node::run_with(
        config,
        edges,
        shutdown.clone(),
        Some(ready.clone()),
        on_start,
    );
    let node = tokio::spawn(run);
    ready.cancelled().await;
    node
}

async fn run(args: Args) -> Result<(), String> {
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().into());
    let configs = configs(&args, &dir);
    let open = |config: &NodeConfig| -> Result<Arc<FjallStorage>, String> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
        let store = FjallStorage::open(&config.data_dir).map_err(|e| e.to_string())?;
        Ok(Arc::new(store))
    };
    let (source, receiver) = (open(&configs[0])?, open(&configs[1])?);
    eprintln!(
        "streaming bench: {} keys of {} bytes, Q = {}, chunks of {} keys / {} bytes, {} pulls at once, rate limit off, fsync = always",
        args.keys, args.value_bytes, args.partitions, args.limits.chunk_keys, args.limits.chunk_bytes, args.limits.concurrent_pulls
    );
    let loading = Instant::now();
    let stored_bytes = load(&source, args.keys, args.value_bytes)?;
    eprintln!(
        "loaded n1 in {:.1?} ({stored_bytes} bytes of keys and records)",
        loading.elapsed()
    );

    let shutdown = CancellationToken::new();
    let state: Arc<Mutex<Option<Arc<NodeState>>>> = Arc::default();
    let keep = state.clone();
    let on_start: OnStart = Box::new(move |s| *keep.lock().expect("lock") = Some(s.clone()));
    let n1 = start(configs[0].clone(), source, &shutdown, None).await;
    let n2 = start(
        configs[1].clone(),
        receiver.clone(),
        &shutdown,
        Some(on_start),
    )
    .await;
    let n2_state = state
        .lock()
        .expect("lock")
        .take()
        .ok_or("n2 did not start")?;
    let plan = StreamPlan {
        version: VERSION,
        partitions: args.partitions,
        local: id(1),
        transfers: (0..args.partitions)
            .map(|partition| Transfer {
                partition,
                sources: vec![id(0)],
            })
            .collect(),
    };
    let started = Instant::now();
    let (progress, _stop) = n2_state.start_streaming(plan);
    let mut reported = Instant::now();
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(outcome) = progress.outcome() {
            break outcome;
        }
        if started.elapsed() > args.timeout {
            break Err(ringkv_node::streaming::StreamError::Stopped);
        }
        if reported.elapsed() > Duration::from_secs(10) {
            reported = Instant::now();
            let p = progress.snapshot();
            eprintln!(
                "{:.0?}: {} of {} partitions, {} keys",
                started.elapsed(),
                p.partitions_done,
                p.partitions_total,
                p.keys
            );
        }
    };
    let elapsed = started.elapsed();
    let shown = progress.snapshot();
    drop(n2_state);
    shutdown.cancel();
    for node in [n1, n2] {
        node.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let held = count(&receiver)?;
    report(&args, &outcome, elapsed, &shown, held);
    match outcome {
        Ok(ringkv_core::streaming::StreamOutcome::Complete) if held == args.keys => Ok(()),
        other => Err(format!(
            "outcome {other:?}, n2 holds {held} of {} keys",
            args.keys
        )),
    }
}

fn report(
    args: &Args,
    outcome: &Result<ringkv_core::streaming::StreamOutcome, ringkv_node::streaming::StreamError>,
    elapsed: Duration,
    p: &TransferProgress,
    held: u64,
) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| outcome | {outcome:?} |");
    println!(
        "| keys streamed | {} (n2 holds {held} of {}) |",
        p.keys, args.keys
    );
    println!("| elapsed | {secs:.2} s |");
    println!("| keys/s | {:.0} |", p.keys as f64 / secs);
    println!(
        "| wire MB/s (entries, 10^6 B) | {:.1} |",
        p.bytes_fetched as f64 / secs / 1e6
    );
    println!("| wire bytes | {} |", p.bytes_fetched);
    println!(
        "| chunks | {} ({:.0} keys each) |",
        p.chunks,
        p.keys_fetched as f64 / p.chunks.max(1) as f64
    );
    println!(
        "| partitions | {} of {} |",
        p.partitions_done, p.partitions_total
    );
    println!("| failed fetches/applies | {} |", p.failures);
}
