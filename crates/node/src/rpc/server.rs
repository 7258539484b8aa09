//! The answering side: accept connections, check the handshake, serve requests.
//!
//! Each connection's requests run concurrently, at most
//! [`MAX_IN_FLIGHT_PER_CONNECTION`] at a time (reading pauses when the limit
//! is reached, which pushes back on the sender). A handshake that names
//! another protocol version or cluster is refused with a reason.

use super::frame::{self, FrameReader};
use crate::net::Listener;
use bytes::Bytes;
use ringkv_core::protocol::{Hello, HelloReply, Message, Request, Response, PROTOCOL_VERSION};
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
/// How long a new connection may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Who this server is, for handshakes.
#[derive(Clone)]
pub struct Identity {
    pub node: NodeId,
    pub cluster: String,
}

/// Accepts connections until `shutdown` is cancelled. Connection tasks and
/// request handlers run on `tracker`, so shutdown can wait for them to finish
/// before the final storage sync.
pub async fn serve<H: RpcHandler>(
    listener: Box<dyn Listener>,
    handler: Arc<H>,
    identity: Identity,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let (handler, identity, shutdown, tasks) = (
                    handler.clone(),
                    identity.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                );
                tracker.spawn(async move {
                    if let Err(e) =
                        serve_connection(stream, handler, identity, shutdown, tasks).await
                    {
                        tracing::debug!(peer = %addr, error = %e, "rpc connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn check_hello(hello: &Hello, identity: &Identity) -> Result<(), String> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION})",
            hello.protocol_version
        ));
    }
    if hello.cluster != identity.cluster {
        return Err(format!(
            "cluster {:?} is not this node's cluster {:?}",
            hello.cluster, identity.cluster
        ));
    }
    Ok(())
}

async fn serve_connection<H: RpcHandler>(
    stream: crate::net::BoxStream,
    handler: Arc<H>,
    identity: Identity,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Result<(), frame::RpcError> {
    let (mut reader, mut writer) = frame::split(stream);
    frame::limit_to_handshake(&mut reader);
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, frame::recv(&mut reader)).await {
        Ok(Ok(Some(Message::Hello(hello)))) => hello,
        Ok(Ok(other)) => {
            return Err(frame::RpcError::Handshake(format!(
                "expected hello, got {other:?}"
            )))
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(frame::RpcError::Handshake("no hello in time".into())),
    };
    if let Err(reason) = check_hello(&hello, &identity) {
        frame::send(
            &mut writer,
            &Message::HelloReply(HelloReply::Refused {
                reason: reason.clone(),
            }),
        )
        .await?;
        return Err(frame::RpcError::Handshake(reason));
    }
    frame::send(
        &mut writer,
        &Message::HelloReply(HelloReply::Welcome {
            node: identity.node.clone(),
        }),
    )
    .await?;
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
                let frame = frame::encode(&Message::Response { id, body })?;
                queue
                    .send(frame)
                    .await
                    .map_err(|_| frame::RpcError::Closed)?;
                continue;
            }
            Err(request) => request,
        };
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| frame::RpcError::Closed)?;
        let (handler, from, queue) = (handler.clone(), from.clone(), queue.clone());
        tracker.spawn(async move {
            let body = handler.handle(from, request).await;
            match frame::encode(&Message::Response { id, body }) {
                Ok(bytes) => {
                    let _ = queue.send(bytes).await;
                }
                Err(e) => tracing::error!(error = %e, "could not encode a response"),
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_checks_version_and_cluster() {
        let id = Identity {
            node: NodeId::new("n1").unwrap(),
            cluster: "c".into(),
        };
        let hello = |v, c: &str| Hello {
            protocol_version: v,
            cluster: c.into(),
            from: None,
        };
        assert!(check_hello(&hello(PROTOCOL_VERSION, "c"), &id).is_ok());
        assert!(check_hello(&hello(PROTOCOL_VERSION + 1, "c"), &id)
            .unwrap_err()
            .contains("protocol version"));
        assert!(check_hello(&hello(PROTOCOL_VERSION, "other"), &id)
            .unwrap_err()
            .contains("cluster"));
    }
}
