//! The answering side: accept connections, check the handshake, serve requests.
//!
//! Input from peers is untrusted, like input from clients:
//! - at most [`ServerLimits::max_inbound_connections`] connections are open
//!   at once; one over the cap is closed as soon as it is accepted (and
//!   counted through [`RpcHandler::connection_refused`]);
//! - a connection must finish its hello within
//!   [`ServerLimits::handshake_timeout`], and frames before the handshake are
//!   limited to `MAX_HANDSHAKE_FRAME_BYTES`;
//! - frame headers are checked before anything is allocated (`frame.rs`).
//!
//! Each connection's requests run concurrently, at most
//! [`MAX_IN_FLIGHT_PER_CONNECTION`] at a time (reading pauses when the limit
//! is reached, which pushes back on the sender). The handshake itself
//! (checks, secret proofs, refusals) is [`super::handshake`]. An answer
//! that cannot be encoded (larger than a frame) fails that one call with a
//! typed error answer of the same kind ([`failure_for`]); it never closes the
//! connection, which carries other callers' requests.

use super::frame::{self, FrameReader};
use super::handshake::{self, RefusalLog};
use crate::net::Listener;
use bytes::Bytes;
use ringkv_core::auth::ClusterKey;
use ringkv_core::layout::Member;
use ringkv_core::limits::MAX_FRAME_BYTES;
use ringkv_core::protocol::{
    ClientResponse, HandshakeRefusal, JoinRefusal, Message, OpError, ReplicaError, Request,
    Response,
};
use ringkv_core::settings::ClusterSettings;
use ringkv_core::NodeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most requests one connection may have in flight at once.
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 1024;
/// Default for [`ServerLimits::max_inbound_connections`].
pub const DEFAULT_MAX_INBOUND_CONNECTIONS: usize = 1024;
/// Default for [`ServerLimits::handshake_timeout`], in milliseconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// Bounds on what connecting peers may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most inbound connections open at once (handshaken or not); one more
    /// is closed at once.
    pub max_inbound_connections: usize,
    /// How long a new connection may take to say hello before it is closed.
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_inbound_connections: DEFAULT_MAX_INBOUND_CONNECTIONS,
            handshake_timeout: Duration::from_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS),
        }
    }
}

/// What serves requests arriving over RPC.
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one request from `from` (None for a client connection).
    fn handle(
        self: Arc<Self>,
        from: Option<NodeId>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Response> + Send>>;

    /// Answers at once, on the connection's own task, a request that never
    /// waits (a local read, a ping); gives back any other request.
    #[allow(
        clippy::result_large_err,
        reason = "the request is handed back by value, never boxed, on the hot read path"
    )]
    fn answer_now(&self, request: Request) -> Result<Response, Request> {
        Err(request)
    }

    /// Answers from another thread, without a task: `reply` is completed
    /// exactly once, e.g. by a storage lane thread once its read is done.
    /// Gives back any request it does not take.
    #[allow(
        clippy::result_large_err,
        reason = "the request is handed back by value, never boxed, on the hot read path"
    )]
    fn answer_detached(&self, request: Request, reply: Reply) -> Result<(), (Request, Reply)> {
        Err((request, reply))
    }

    /// Called when a connection is closed at once because
    /// [`ServerLimits::max_inbound_connections`] are already open.
    fn connection_refused(&self) {}

    /// Called when this node refuses a handshake, with the reason.
    fn handshake_refused(&self, _reason: &HandshakeRefusal) {}
}

/// Where the answer to one request goes: its id and its connection's send
/// queue. Completing it from any thread (a storage lane) costs no task: the
/// frame is queued at once, or, if the queue is full, by a small task that
/// waits for room.
pub struct Reply {
    id: u64,
    queue: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
}

impl Reply {
    /// Sends `body` as the answer.
    pub fn send(self, body: Response) {
        let Some(frame) = encode_answer(self.id, body, MAX_FRAME_BYTES) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(frame)) = self.queue.try_send(frame) {
            let queue = self.queue;
            self.runtime.spawn(async move {
                let _ = queue.send(frame).await;
            });
        }
    }
}

/// Who this server is, for handshakes: a connecting node must name the same
/// cluster, prove the same secret, run with the same settings, come from
/// the same founding layout (when both know it) and not have been removed.
#[derive(Clone)]
pub struct Identity {
    pub node: NodeId,
    pub cluster: String,
    /// The digest of the cluster's first layout (its *genesis*; 0 while a
    /// joining node does not know it yet).
    pub layout_digest: u64,
    pub settings: ClusterSettings,
    /// The founding members, to say what differs when genesis digests do.
    pub members: Vec<Member>,
    /// Whether a node id was removed from the cluster (it may not come back).
    pub removed: Arc<dyn Fn(&NodeId) -> bool + Send + Sync>,
    /// The key that proves the cluster secret ([`ringkv_core::auth`]).
    pub key: Arc<ClusterKey>,
    /// The refusals already logged ([`handshake`]).
    pub refusals: Arc<RefusalLog>,
}

/// Accepts connections until `shutdown` is cancelled. Connection tasks and
/// request handlers run on `tracker`, so shutdown can wait for them to finish
/// before the final storage sync.
pub async fn serve<H: RpcHandler>(
    listener: Box<dyn Listener>,
    handler: Arc<H>,
    identity: Identity,
    limits: ServerLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let open = Arc::new(Semaphore::new(limits.max_inbound_connections));
    loop {
        let accepted = tokio::select! {
            biased;
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Ok(slot) = open.clone().try_acquire_owned() else {
                    drop(stream);
                    handler.connection_refused();
                    tracing::debug!(peer = %addr, limit = limits.max_inbound_connections, "too many inbound connections; closed a new one");
                    continue;
                };
                let (handler, identity, shutdown, tasks) = (
                    handler.clone(),
                    identity.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                );
                let timeout = limits.handshake_timeout;
                tracker.spawn(async move {
                    let served =
                        serve_connection(stream, handler, identity, timeout, shutdown, tasks).await;
                    if let Err(e) = served {
                        tracing::debug!(peer = %addr, error = %e, "rpc connection ended");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection<H: RpcHandler>(
    stream: crate::net::BoxStream,
    handler: Arc<H>,
    identity: Identity,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Result<(), frame::RpcError> {
    let (mut reader, mut writer) = frame::split(stream);
    frame::limit_to_handshake(&mut reader);
    let on_refused = |reason: &HandshakeRefusal| handler.handshake_refused(reason);
    let exchange = async {
        let hello = match frame::recv(&mut reader).await? {
            Some(Message::Hello(hello)) => hello,
            other => {
                return Err(frame::RpcError::HandshakeFailed {
                    addr: "inbound".into(),
                    reason: format!("expected hello, got {other:?}"),
                })
            }
        };
        handshake::answer(&hello, &mut reader, &mut writer, &identity, &on_refused).await?;
        Ok(hello)
    };
    let hello = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(()),
        done = tokio::time::timeout(handshake_timeout, exchange) => match done {
            Ok(hello) => hello?,
            Err(_) => {
                return Err(frame::RpcError::HandshakeTimedOut {
                    addr: "inbound".into(),
                    ms: handshake_timeout.as_millis() as u64,
                })
            }
        },
    };
    frame::allow_full_frames(&mut reader);
    let closed = shutdown.child_token();
    let (queue, rx) = mpsc::channel::<Bytes>(MAX_IN_FLIGHT_PER_CONNECTION);
    tokio::spawn(frame::write_loop(writer, rx, closed.clone()));
    let result = dispatch(&mut reader, handler, hello.from, queue, &closed, &tracker).await;
    closed.cancel();
    result
}

async fn dispatch<H: RpcHandler>(
    reader: &mut FrameReader,
    handler: Arc<H>,
    from: Option<NodeId>,
    queue: mpsc::Sender<Bytes>,
    closed: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), frame::RpcError> {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_CONNECTION));
    loop {
        let next = tokio::select! {
            biased;
            next = frame::recv(reader) => next?,
            _ = closed.cancelled() => return Ok(()),
        };
        let (id, request) = match next {
            None => return Ok(()),
            Some(Message::Request { id, body }) => (id, body),
            Some(other) => {
                return Err(frame::RpcError::Codec(format!(
                    "expected a request, got {other:?}"
                )))
            }
        };
        let request = match handler.answer_now(request) {
            Ok(body) => {
                if let Some(frame) = encode_answer(id, body, MAX_FRAME_BYTES) {
                    queue
                        .send(frame)
                        .await
                        .map_err(|_| frame::RpcError::ConnectionLost)?;
                }
                continue;
            }
            Err(request) => request,
        };
        let reply = Reply {
            id,
            queue: queue.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let request = match handler.answer_detached(request, reply) {
            Ok(()) => continue,
            Err((request, _)) => request,
        };
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| frame::RpcError::ConnectionLost)?;
        let (handler, from, queue) = (handler.clone(), from.clone(), queue.clone());
        tracker.spawn(async move {
            let body = handler.handle(from, request).await;
            if let Some(bytes) = encode_answer(id, body, MAX_FRAME_BYTES) {
                let _ = queue.send(bytes).await;
            }
            drop(permit);
        });
    }
}

/// The frame answering call `id` with `body`; if `body` cannot be encoded
/// within `limit` bytes, the frame of [`failure_for`] instead. `None` (the
/// call is dropped and its caller times out) only if even that fails, which
/// a short error answer never does.
fn encode_answer(id: u64, body: Response, limit: usize) -> Option<Bytes> {
    let error = match frame::encode_within(
        &Message::Response {
            id,
            body: body.clone(),
        },
        limit,
    ) {
        Ok(bytes) => return Some(bytes),
        Err(e) => e,
    };
    tracing::error!(error = %error, "could not encode an answer; answering with an error");
    let failure = failure_for(&body, &error)?;
    frame::encode_within(&Message::Response { id, body: failure }, limit).ok()
}

/// A failure answer of the same kind as `response`, so the caller gets a
/// typed error at once instead of a timeout. `None` for `Pong`, which has no
/// error form (and is too small to fail), and for `ChangeLayout`'s answer.
///
pub fn failure_for(response: &Response, error: &frame::RpcError) -> Option<Response> {
    let replica = match error {
        frame::RpcError::FrameTooLarge { len, limit } => ReplicaError::ObjectTooLarge {
            bytes: *len,
            limit: *limit,
        },
        _ => ReplicaError::StorageFailed,
    };
    let message = format!("the answer could not be sent: {error}");
    Some(match response {
        Response::Pong => return None,
        Response::ReplicaRead(_) => Response::ReplicaRead(Err(replica)),
        Response::ReplicaWrite(_) => Response::ReplicaWrite(Err(replica)),
        Response::AntiEntropy(_) => Response::AntiEntropy(Err(replica)),
        Response::Reap(_) => Response::Reap(Err(replica)),
        Response::Gossip(_) => Response::Gossip(Err(replica)),
        Response::GossipClose(_) => Response::GossipClose(Err(replica)),
        Response::Join(_) => Response::Join(Err(JoinRefusal::Layout(message))),
        // A stamp or a typed refusal: too small to fail.
        Response::ChangeLayout(_) => return None,
        Response::StreamChunk(_) => Response::StreamChunk(Err(replica)),
        Response::Coordinate(ClientResponse::Get(_)) => {
            Response::Coordinate(ClientResponse::Get(Err(OpError::Internal(message))))
        }
        Response::Coordinate(ClientResponse::Put(_)) => {
            Response::Coordinate(ClientResponse::Put(Err(OpError::Internal(message))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::codec::decode_message;

    #[test]
    fn an_answer_too_large_to_send_becomes_an_error_answer_of_the_same_kind() {
        use ringkv_core::siblings::Siblings;
        use ringkv_core::version_vector::VersionVector;
        let mut object = Siblings::new();
        object.update(
            &VersionVector::new(),
            &NodeId::new("n1").unwrap(),
            Some(bytes::Bytes::from(vec![7u8; 4096])),
            0,
        );
        let big = Response::ReplicaRead(Ok(Some(object.clone())));
        let frame = encode_answer(9, big, 1024).expect("an error answer fits");
        match decode_message(&frame).unwrap() {
            Message::Response {
                id: 9,
                body: Response::ReplicaRead(Err(e)),
            } => assert!(
                matches!(e, ReplicaError::ObjectTooLarge { limit: 1024, .. }),
                "{e:?}"
            ),
            other => panic!("expected a ReplicaRead error, got {other:?}"),
        }
        let coordinated = Response::Coordinate(ClientResponse::Get(Ok(Some(object))));
        let frame = encode_answer(10, coordinated, 1024).expect("an error answer fits");
        assert!(matches!(
            decode_message(&frame).unwrap(),
            Message::Response {
                id: 10,
                body: Response::Coordinate(ClientResponse::Get(Err(OpError::Internal(_))))
            }
        ));
        let small = encode_answer(11, Response::Pong, 1024).unwrap();
        assert_eq!(
            decode_message(&small).unwrap(),
            Message::Response {
                id: 11,
                body: Response::Pong
            }
        );
        assert_eq!(
            encode_answer(12, Response::Pong, 1),
            None,
            "nothing fits: the call is dropped"
        );
    }
}
