//! The RPC layer against hostile or broken peers, on real loopback TCP.
//!
//! - A dead (refusing) or black-holed (accepts TCP, never answers the hello)
//!   peer costs one connection attempt per backoff interval: many concurrent
//!   calls make one attempt, the rest fail at once with `KnownDown`.
//! - A real node (`ringkv_node::run` with `TcpNetwork` and `MemStorage`)
//!   flooded with 4-byte headers claiming 100 MB and with 2,000 idle
//!   connections keeps serving, closes connections over its cap at once,
//!   drops unfinished handshakes after its handshake timeout, and does not
//!   reserve memory for the claimed sizes.
//!
//! These tests assert behaviour only; the time bounds are generous deadlines
//! so a stuck node fails instead of hanging.

use bytes::Bytes;
use ringkv_core::auth::ClusterKey;
use ringkv_core::codec::{decode_message, encode_message};
use ringkv_core::key::ObjectKey;
use ringkv_core::protocol::{
    ClientRequest, ClientResponse, HelloReply, Message, Request, Response,
};
use ringkv_core::replication::{Replication, RequestQuorum};
use ringkv_core::version_vector::VersionVector;
use ringkv_core::NodeId;
use ringkv_node::net::{BoxFuture, BoxStream, Listener, Network, TcpNetwork};
use ringkv_node::rpc::{Greeting, PeerClient, RpcError};
use ringkv_node::{Edges, NodeConfig};
use ringkv_storage::MemStorage;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// TCP that counts connection attempts.
#[derive(Default)]
struct Counting {
    attempts: AtomicUsize,
}

impl Network for Counting {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        TcpNetwork.bind(addr)
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        TcpNetwork.connect(addr)
    }
}

/// A client's greeting to the nodes here, which run without a secret.
fn hello() -> Greeting {
    Greeting::client("ringkv", ClusterKey::open())
}

fn peer(addr: String, network: Arc<dyn Network>, connect_timeout: Duration) -> Arc<PeerClient> {
    Arc::new(PeerClient::new(
        NodeId::new("n1").unwrap(),
        addr,
        hello(),
        network,
        connect_timeout,
    ))
}

/// Fires `n` pings at once and returns their results.
async fn burst(client: &Arc<PeerClient>, n: usize) -> Vec<Result<Response, RpcError>> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call(Request::Ping, Duration::from_secs(5)).await })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn a_refusing_peer_costs_one_connection_attempt_per_backoff_interval() {
    let net = Arc::new(Counting::default());
    let client = peer(free_addr(), net.clone(), Duration::from_secs(1));
    let results = burst(&client, 50).await;
    assert_eq!(
        net.attempts.load(Ordering::SeqCst),
        1,
        "50 concurrent calls, one attempt"
    );
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(RpcError::ConnectRefused { .. })))
        .count();
    let known_down = results
        .iter()
        .filter(|r| matches!(r, Err(RpcError::KnownDown { .. })))
        .count();
    assert_eq!((refused, known_down), (1, 49), "{results:?}");
    // Within the interval: no attempt at all.
    assert!(matches!(
        client.call(Request::Ping, Duration::from_secs(1)).await,
        Err(RpcError::KnownDown { retry_in_ms, .. }) if retry_in_ms <= 100
    ));
    assert_eq!(net.attempts.load(Ordering::SeqCst), 1);
    // After it: one more attempt, then the interval doubles.
    tokio::time::sleep(Duration::from_millis(120)).await;
    burst(&client, 20).await;
    assert_eq!(net.attempts.load(Ordering::SeqCst), 2);
    assert!(matches!(
        client.call(Request::Ping, Duration::from_secs(1)).await,
        Err(RpcError::KnownDown { retry_in_ms, .. }) if retry_in_ms > 100
    ));
}

#[tokio::test]
async fn a_black_holed_peer_costs_one_attempt_and_its_error_says_so() {
    // Accepts TCP connections and holds them, never answering the hello.
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let net = Arc::new(Counting::default());
    let client = peer(addr, net.clone(), Duration::from_millis(300));
    let results = burst(&client, 50).await;
    assert_eq!(
        net.attempts.load(Ordering::SeqCst),
        1,
        "50 concurrent calls, one attempt"
    );
    let timed_out = results
        .iter()
        .filter(|r| matches!(r, Err(RpcError::HandshakeTimedOut { .. })))
        .count();
    let known_down = results
        .iter()
        .filter(|r| matches!(r, Err(RpcError::KnownDown { .. })))
        .count();
    assert_eq!((timed_out, known_down), (1, 49), "{results:?}");
    held.abort();
}

// ---- a real node under a connection flood ----

const HANDSHAKE_TIMEOUT_MS: u64 = 3_000;
const CLAIM: u32 = 100 * 1024 * 1024;

/// `(VmRSS, VmSize)` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmSize:"))
}

async fn start_node(addr: &str) -> CancellationToken {
    let mut config = NodeConfig::new(
        NodeId::new("n1").unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        addr.to_string(),
        "/unused".into(),
    );
    config.replication = Replication { n: 1, r: 1, w: 1 };
    config.handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS;
    let edges = Edges {
        network: Arc::new(TcpNetwork),
        storage: Arc::new(MemStorage::new()),
        wall_clock: ringkv_node::system_clock(),
        serve_http: false,
        boot_id: None,
    };
    let (shutdown, ready) = (CancellationToken::new(), CancellationToken::new());
    let (stop, up) = (shutdown.clone(), ready.clone());
    tokio::spawn(async move { ringkv_node::run(config, edges, stop, Some(up)).await });
    ready.cancelled().await;
    shutdown
}

fn frame_of(message: &Message) -> Vec<u8> {
    let body = encode_message(message).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A connection that completed the handshake, then claimed a 100 MB frame.
async fn handshaken_claim(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = hello().hello;
    s.write_all(&frame_of(&Message::Hello(hello.clone())))
        .await
        .unwrap();
    let Message::HelloReply(HelloReply::Challenge { nonce, .. }) = read_message(&mut s).await
    else {
        panic!("expected a challenge");
    };
    let proof = ClusterKey::open().client_proof("ringkv", None, &nonce, &hello.nonce);
    s.write_all(&frame_of(&Message::HelloProof { proof }))
        .await
        .unwrap();
    assert!(matches!(
        read_message(&mut s).await,
        Message::HelloReply(HelloReply::Welcome { .. })
    ));
    s.write_all(&CLAIM.to_be_bytes()).await.unwrap();
    s
}

async fn read_message(s: &mut TcpStream) -> Message {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).await.unwrap();
    decode_message(&reply).unwrap()
}

/// Whether the node closes `s` within `wait`.
async fn closed_within(mut s: TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn put_then_get(client: &PeerClient, value: &str) {
    let key = ObjectKey::new("b", Bytes::from_static(b"k"), 64).unwrap();
    let put = ClientRequest::Put {
        key: key.clone(),
        context: VersionVector::new(),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        quorum: RequestQuorum::default(),
        ttl_secs: None,
    };
    let call = |request| Request::Coordinate {
        request,
        forwarded: false,
    };
    let answer = client.call(call(put), Duration::from_secs(5)).await;
    assert!(
        matches!(answer, Ok(Response::Coordinate(ClientResponse::Put(Ok(_))))),
        "{answer:?}"
    );
    let get = ClientRequest::Get {
        key,
        quorum: RequestQuorum::default(),
    };
    match client.call(call(get), Duration::from_secs(5)).await {
        Ok(Response::Coordinate(ClientResponse::Get(Ok(Some(object))))) => {
            assert!(object.values().any(|v| v.as_ref() == value.as_bytes()))
        }
        other => panic!("get answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_flooded_with_huge_claims_and_idle_connections_keeps_serving() {
    let addr = free_addr();
    let shutdown = start_node(&addr).await;
    let early = peer(addr.clone(), Arc::new(TcpNetwork), Duration::from_secs(1));
    assert_eq!(
        early.call(Request::Ping, Duration::from_secs(5)).await,
        Ok(Response::Pong)
    );
    let (rss_before, size_before) = memory_kib();

    // 200 peers pass the handshake and claim 100 MB each; 200 claim it first.
    let mut claims = Vec::new();
    for _ in 0..200 {
        claims.push(handshaken_claim(&addr).await);
    }
    let mut early_claims = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&CLAIM.to_be_bytes()).await.unwrap();
        early_claims.push(tokio::spawn(closed_within(s, Duration::from_secs(2))));
    }
    for c in early_claims {
        assert!(
            c.await.unwrap(),
            "a 100 MB claim before the handshake closes the connection"
        );
    }
    let (rss_after, size_after) = memory_kib();
    let claimed_kib = 400 * u64::from(CLAIM) / 1024;
    assert!(
        rss_after.saturating_sub(rss_before) < 256 * 1024,
        "RSS grew by {} KiB for {claimed_kib} KiB claimed",
        rss_after - rss_before
    );
    assert!(
        size_after.saturating_sub(size_before) < 4 * 1024 * 1024,
        "reserved {} KiB of address space for {claimed_kib} KiB claimed",
        size_after - size_before
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // let closed slots free

    // 2,000 idle connections: those over the cap (1,024, of which `early`
    // and the 200 claims hold 201) are closed at once.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let checks: Vec<_> = idle
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, Duration::from_millis(1_000))))
        .collect();
    // Meanwhile the node serves its established connection.
    assert_eq!(
        early.call(Request::Ping, Duration::from_secs(5)).await,
        Ok(Response::Pong)
    );
    put_then_get(&early, "while flooded").await;
    let mut closed_at_once = 0;
    for c in checks {
        closed_at_once += usize::from(c.await.unwrap());
    }
    assert_eq!(
        closed_at_once,
        2_000 - (1_024 - 201),
        "over the cap closes at once"
    );

    // Unfinished handshakes end after the handshake timeout, freeing the cap.
    tokio::time::sleep(Duration::from_millis(HANDSHAKE_TIMEOUT_MS + 500)).await;
    let late = peer(addr.clone(), Arc::new(TcpNetwork), Duration::from_secs(1));
    assert_eq!(
        late.call(Request::Ping, Duration::from_secs(5)).await,
        Ok(Response::Pong)
    );
    put_then_get(&late, "after the flood").await;
    drop(claims);
    shutdown.cancel();
}
