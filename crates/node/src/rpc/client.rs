//! The calling side: one persistent, multiplexed connection per peer.
//!
//! A [`PeerClient`] opens its connection on first use (handshake included)
//! and reopens it after it breaks. Each call gets a fresh request id and a
//! oneshot channel; a reader task routes responses to their callers, a writer
//! task batches outgoing frames. A call never waits past its deadline, and a
//! refused connection fails at once. A call that times out on a connection
//! that has said nothing since the call went out drops the connection, so a
//! half-open TCP connection (left by a partition or a vanished host) is
//! replaced on the next call instead of timing calls out forever.
//!
//! A peer that cannot be reached costs one connection attempt per backoff
//! interval ([`super::backoff`]): after a failed attempt, calls fail at once
//! with [`RpcError::KnownDown`] until the interval passes, then one call tries
//! again. Locks: `std` mutexes guard only map, slot and backoff updates;
//! opening a connection is serialised by a tokio mutex, and every caller
//! rechecks the backoff after taking it, so a burst of calls to a down peer
//! makes one attempt, not hundreds. Connection failures are typed (refused,
//! timed out, handshake refused with the peer's reason, ...), never strings
//! to parse. A refused handshake (another cluster name, other settings or
//! layout) is logged at WARN here as well as on the refusing node, once per
//! change of reason, not once per attempt.

use super::backoff::Backoff;
use super::frame::{self, FrameReader, RpcError};
use super::handshake::{self, Greeting};
use crate::net::Network;
use bytes::Bytes;
use ringkv_core::codec::{encode_request, request_frame, EncodedRequest};
use ringkv_core::limits::MAX_FRAME_BYTES;
use ringkv_core::protocol::{HandshakeRefusal, Message, Request, Response};
use ringkv_core::NodeId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

/// Frames queued for one connection before callers wait (backpressure).
const SEND_QUEUE: usize = 4096;

/// Calls awaiting their answer, by request id; ordered, so a lost connection
/// fails them in the order they were sent (and a simulation replays exactly).
type Pending = Mutex<BTreeMap<u64, oneshot::Sender<Response>>>;

/// One open connection.
struct Connection {
    queue: mpsc::Sender<Bytes>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    closed: CancellationToken,
    /// When the connection opened; `last_heard_ms` counts from here.
    opened: Instant,
    /// Milliseconds after `opened` of the last frame received.
    last_heard_ms: Arc<AtomicU64>,
}

/// A client for one peer node.
pub struct PeerClient {
    peer: NodeId,
    /// Whether the node answering at `addr` must be `peer` (false for a
    /// seed address, whose node id is not known yet).
    check_peer: bool,
    addr: String,
    greeting: Greeting,
    network: Arc<dyn Network>,
    connect_timeout: Duration,
    live: Mutex<Option<Arc<Connection>>>,
    connecting: tokio::sync::Mutex<()>,
    backoff: Mutex<Backoff>,
    /// The last handshake refusal logged; cleared by a successful connect.
    refused: Mutex<Option<HandshakeRefusal>>,
}

impl PeerClient {
    /// A client for `peer` at `addr`; `greeting` is what this node says
    /// first and the key it proves the cluster secret with.
    pub fn new(
        peer: NodeId,
        addr: String,
        greeting: Greeting,
        network: Arc<dyn Network>,
        connect_timeout: Duration,
    ) -> Self {
        PeerClient {
            peer,
            check_peer: true,
            addr,
            greeting,
            network,
            connect_timeout,
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            backoff: Mutex::new(Backoff::default()),
            refused: Mutex::new(None),
        }
    }

    /// A client for whatever node answers at `addr` (a seed): the welcome
    /// is not checked against an id, and logs name it `seed`.
    pub fn contact(
        addr: String,
        greeting: Greeting,
        network: Arc<dyn Network>,
        connect_timeout: Duration,
    ) -> Self {
        let seed = NodeId::new("seed").expect("a valid node id");
        PeerClient {
            check_peer: false,
            ..PeerClient::new(seed, addr, greeting, network, connect_timeout)
        }
    }

    /// Replaces the reconnection backoff (tests, tuning).
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        *self.backoff.lock().unwrap_or_else(|p| p.into_inner()) = backoff;
        self
    }

    pub fn peer(&self) -> &NodeId {
        &self.peer
    }

    /// The connection's state, for operators: whether a connection is open,
    /// and how long until the next connection attempt while in backoff.
    pub fn connection_state(&self) -> (bool, Option<Duration>) {
        let connected = self.current().is_some();
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        (connected, backoff.admit(Instant::now()).err())
    }

    /// Sends `request` and waits for its response until `timeout` elapses.
    pub async fn call(&self, request: Request, timeout: Duration) -> Result<Response, RpcError> {
        let body = encode_request(&request).map_err(|e| RpcError::Codec(e.to_string()))?;
        self.call_encoded(&body, timeout).await
    }

    /// Like [`PeerClient::call`] with a body encoded once for several peers.
    pub async fn call_encoded(
        &self,
        body: &EncodedRequest,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let deadline = Instant::now() + timeout;
        let ms = timeout.as_millis() as u64;
        let conn = self.connection(deadline, ms).await?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let forget = || {
            conn.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        };
        if conn.closed.is_cancelled() {
            forget();
            return Err(RpcError::ConnectionLost);
        }
        let frame = Bytes::from(request_frame(id, body));
        if frame.len() > MAX_FRAME_BYTES {
            forget();
            return Err(RpcError::FrameTooLarge {
                len: frame.len(),
                limit: MAX_FRAME_BYTES,
            });
        }
        match timeout_at(deadline, conn.queue.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                forget();
                return Err(RpcError::ConnectionLost);
            }
            Err(_) => {
                forget();
                return Err(RpcError::Timeout { ms });
            }
        }
        let sent_ms = conn.opened.elapsed().as_millis() as u64;
        match timeout_at(deadline, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(RpcError::ConnectionLost),
            Err(_) => {
                forget();
                // Nothing at all came back since this call went out: the
                // connection is likely dead (a partition or a vanished host
                // leaves TCP half-open). Drop it so the next call reconnects.
                if conn.last_heard_ms.load(Ordering::Relaxed) <= sent_ms {
                    conn.closed.cancel();
                }
                Err(RpcError::Timeout { ms })
            }
        }
    }

    fn current(&self) -> Option<Arc<Connection>> {
        let slot = self.live.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|c| !c.closed.is_cancelled()).cloned()
    }

    /// `Err(KnownDown)` while the backoff says the peer is down.
    fn admit(&self, now: Instant) -> Result<(), RpcError> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.admit(now).map_err(|wait| RpcError::KnownDown {
            addr: self.addr.clone(),
            retry_in_ms: wait.as_millis().max(1) as u64,
        })
    }

    async fn connection(&self, deadline: Instant, ms: u64) -> Result<Arc<Connection>, RpcError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        self.admit(Instant::now())?;
        let _one_at_a_time = timeout_at(deadline, self.connecting.lock())
            .await
            .map_err(|_| RpcError::Timeout { ms })?;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        // An attempt that ended while this call waited for the lock decides.
        self.admit(Instant::now())?;
        let started = Instant::now();
        let connect_deadline = deadline.min(started + self.connect_timeout);
        let result = self.open(started, connect_deadline).await;
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(conn) => {
                backoff.succeeded();
                self.note_refusal(None);
                *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let wait = backoff.failed(Instant::now());
                tracing::debug!(peer = %self.peer, error = %e, retry_in_ms = wait.as_millis() as u64, "connection attempt failed");
                if let RpcError::HandshakeRefused { reason, .. } = &e {
                    self.note_refusal(Some(reason));
                }
                Err(e)
            }
        }
    }

    /// Records the outcome of a handshake (`None`: accepted), logging a
    /// refusal at WARN when it differs from the last one logged.
    fn note_refusal(&self, refusal: Option<&HandshakeRefusal>) {
        let mut last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref() == refusal {
            return;
        }
        *last = refusal.cloned();
        if let Some(reason) = refusal {
            tracing::warn!(
                peer = %self.peer,
                rpc = %self.addr,
                %reason,
                "the peer refused this node's handshake: every node must be started with the same cluster name, secret, peers, capacities, zones and settings"
            );
        }
    }

    /// Opens the TCP connection and does the handshake, both by `deadline`.
    async fn open(&self, started: Instant, deadline: Instant) -> Result<Arc<Connection>, RpcError> {
        let budget_ms = || deadline.saturating_duration_since(started).as_millis() as u64;
        let addr = || self.addr.clone();
        let stream = match timeout_at(deadline, self.network.connect(&self.addr)).await {
            Err(_) => {
                return Err(RpcError::ConnectTimedOut {
                    addr: addr(),
                    ms: budget_ms(),
                })
            }
            Ok(Err(e)) => return Err(connect_error(addr(), e)),
            Ok(Ok(stream)) => stream,
        };
        match timeout_at(deadline, self.handshake(stream)).await {
            Err(_) => Err(RpcError::HandshakeTimedOut {
                addr: addr(),
                ms: budget_ms(),
            }),
            Ok(result) => result,
        }
    }

    async fn handshake(&self, stream: crate::net::BoxStream) -> Result<Arc<Connection>, RpcError> {
        let (mut reader, mut writer) = frame::split(stream);
        frame::limit_to_handshake(&mut reader);
        let expected = self.check_peer.then_some(&self.peer);
        handshake::greet(
            &mut reader,
            &mut writer,
            &self.greeting,
            expected,
            &self.addr,
        )
        .await?;
        frame::allow_full_frames(&mut reader);
        let (queue, rx) = mpsc::channel(SEND_QUEUE);
        let conn = Arc::new(Connection {
            queue,
            pending: Arc::new(Mutex::new(BTreeMap::new())),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            opened: Instant::now(),
            last_heard_ms: Arc::new(AtomicU64::new(0)),
        });
        tokio::spawn(frame::write_loop(writer, rx, conn.closed.clone()));
        let heard = Heard {
            opened: conn.opened,
            last_ms: conn.last_heard_ms.clone(),
        };
        tokio::spawn(read_loop(
            reader,
            conn.pending.clone(),
            conn.closed.clone(),
            heard,
        ));
        Ok(conn)
    }
}

/// Where the reader records when it last heard from the peer.
struct Heard {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

/// Classifies a failed TCP connect.
fn connect_error(addr: String, e: std::io::Error) -> RpcError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => RpcError::ConnectRefused { addr },
        _ => RpcError::ConnectFailed {
            addr,
            reason: e.to_string(),
        },
    }
}

/// Routes responses to their callers until the connection ends, then fails
/// every call still waiting (by dropping its sender).
async fn read_loop(
    mut reader: FrameReader,
    pending: Arc<Pending>,
    closed: CancellationToken,
    heard: Heard,
) {
    loop {
        let next = tokio::select! {
            biased;
            next = frame::recv(&mut reader) => next,
            _ = closed.cancelled() => break,
        };
        heard.last_ms.store(
            heard.opened.elapsed().as_millis() as u64 + 1,
            Ordering::Relaxed,
        );
        match next {
            Ok(Some(Message::Response { id, body })) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(body);
                }
            }
            Ok(Some(other)) => {
                tracing::warn!(message = ?other, "peer sent a non-response; closing connection");
                break;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "peer connection failed");
                break;
            }
        }
    }
    closed.cancel();
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}
