//! A stalled storage engine must not stall the node.
//!
//! fjall can sleep in its write throttle; when engine calls ran on the
//! runtime's two workers, two stalled writes froze every RPC reader and timer
//! of the node. This test runs one real node in-process (`ringkv_node::run`
//! over `TcpNetwork` on loopback, a two-worker runtime like the binary's) on
//! an engine whose writes sleep [`STALL`], stalls two client writes at once,
//! and checks that a ping and reads of another key (through the coordinator
//! and as a replica read) still answer within [`QUICK`]. It asserts behaviour
//! with a wide margin, never speed: 500 ms against a 3 s stall.

use bytes::Bytes;
use ringkv_core::auth::ClusterKey;
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{ClientRequest, ClientResponse, Request, Response};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::net::TcpNetwork;
use ringkv_node::rpc::Greeting;
use ringkv_node::rpc::PeerClient;
use ringkv_node::{Edges, NodeConfig};
use ringkv_storage::{Keyspace, MemStorage, Storage, StorageError, WriteBatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a stalled engine write sleeps.
const STALL: Duration = Duration::from_secs(3);
/// What "still answers" means here: far below the stall.
const QUICK: Duration = Duration::from_millis(500);
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// `MemStorage` whose next `stalls_left` writes each sleep [`STALL`] on the
/// calling thread, like fjall's write throttle. It claims to block, so the
/// node runs it on storage lanes.
#[derive(Default)]
struct StallingStorage {
    inner: MemStorage,
    stalls_left: AtomicUsize,
    stalling_now: AtomicUsize,
}

impl Storage for StallingStorage {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(ks, key)
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let stall = self
            .stalls_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if stall {
            self.stalling_now.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(STALL);
            self.stalling_now.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.write(batch)
    }
    fn sync(&self) -> Result<(), StorageError> {
        self.inner.sync()
    }
    fn sync_blocks(&self) -> bool {
        true
    }
    fn scan_skipping_corrupt(
        &self,
        ks: Keyspace,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<ringkv_storage::Scanned, StorageError> {
        self.inner.scan_skipping_corrupt(ks, start, end, limit)
    }
    fn approximate_len(&self, ks: Keyspace) -> Result<u64, StorageError> {
        self.inner.approximate_len(ks)
    }
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::new("stall", Bytes::copy_from_slice(k.as_bytes()), 1024).unwrap()
}

fn client(rpc: &str) -> PeerClient {
    // The node runs without a secret (open mode).
    let hello = Greeting::client("ringkv", ClusterKey::open());
    PeerClient::new(
        NodeId::new("n1").unwrap(),
        rpc.to_string(),
        hello,
        Arc::new(TcpNetwork),
        Duration::from_secs(5),
    )
}

fn put(k: &str, value: &str) -> Request {
    Request::Coordinate {
        request: ClientRequest::Put {
            key: key(k),
            context: VersionVector::default(),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            quorum: RequestQuorum::default(),
            ttl_secs: None,
        },
        forwarded: false,
    }
}

/// Sends `request` and returns its answer and how long it took.
async fn timed(client: &PeerClient, request: Request) -> (Response, Duration) {
    let started = Instant::now();
    let answer = client.call(request, CALL_TIMEOUT).await.unwrap();
    (answer, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_reads_answer_while_writes_are_stalled_in_the_engine() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rpc = format!("127.0.0.1:{port}");
    let mut config = NodeConfig::new(
        NodeId::new("n1").unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        rpc.clone(),
        "/unused".into(),
    );
    config.replication = Replication { n: 1, r: 1, w: 1 };
    config.request_timeout_ms = 20_000;
    let engine = Arc::new(StallingStorage::default());
    let edges = Edges {
        network: Arc::new(TcpNetwork),
        storage: engine.clone(),
        wall_clock: ringkv_node::system_clock(),
        serve_http: false,
        boot_id: None,
    };
    let (shutdown, ready) = (CancellationToken::new(), CancellationToken::new());
    let node = tokio::spawn(ringkv_node::run(
        config,
        edges,
        shutdown.clone(),
        Some(ready.clone()),
    ));
    ready.cancelled().await;
    let (writer, prober) = (Arc::new(client(&rpc)), client(&rpc));
    let (stored, _) = timed(&writer, put("other", "here")).await;
    assert!(
        matches!(stored, Response::Coordinate(ClientResponse::Put(Ok(_)))),
        "{stored:?}"
    );

    // Two writes stall at once: before storage lanes, each held one of the
    // two workers for the whole stall.
    engine.stalls_left.store(2, Ordering::SeqCst);
    let stalled: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move { timed(&writer, put(k, "slow")).await })
        })
        .collect();
    // Wait for the stall to begin; this task's own timer is a probe too
    // (with engine calls on the workers, it froze here).
    let waiting = Instant::now();
    while engine.stalling_now.load(Ordering::SeqCst) == 0 {
        assert!(
            waiting.elapsed() < STALL,
            "the write never reached the engine"
        );
        let tick = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let took = tick.elapsed();
        assert!(
            took < QUICK,
            "a 5 ms timer took {took:?}: the runtime froze"
        );
    }

    let (pong, took) = timed(&prober, Request::Ping).await;
    assert_eq!(pong, Response::Pong);
    assert!(took < QUICK, "ping took {took:?} during a stalled write");
    let (read, took) = timed(
        &prober,
        Request::ReplicaRead {
            key: key("other"),
            hint_for: None,
        },
    )
    .await;
    let Response::ReplicaRead(Ok(Some(found))) = read else {
        panic!("replica read answered {read:?}");
    };
    assert_eq!(found.values().collect::<Vec<_>>(), [&Bytes::from("here")]);
    assert!(
        took < QUICK,
        "replica read took {took:?} during a stalled write"
    );
    let get = Request::Coordinate {
        request: ClientRequest::Get {
            key: key("other"),
            quorum: RequestQuorum::default(),
        },
        forwarded: false,
    };
    let (got, took) = timed(&prober, get).await;
    assert!(
        matches!(got, Response::Coordinate(ClientResponse::Get(Ok(Some(_))))),
        "{got:?}"
    );
    assert!(took < QUICK, "get took {took:?} during a stalled write");
    assert!(
        engine.stalling_now.load(Ordering::SeqCst) > 0,
        "the write was still stalled while the probes answered"
    );

    // The stalled writes still complete, and the node stops cleanly.
    engine.stalls_left.store(0, Ordering::SeqCst);
    for write in stalled {
        let (answer, _) = write.await.unwrap();
        assert!(
            matches!(answer, Response::Coordinate(ClientResponse::Put(Ok(_)))),
            "{answer:?}"
        );
    }
    shutdown.cancel();
    node.await.unwrap().unwrap();
}
