//! Frames on the wire: a 4-byte big-endian length, then one encoded message.
//!
//! Reading uses [`FrameDecoder`]: a header claiming more than the current
//! limit is refused at once (an error that ends the connection), and a
//! header within the limit reserves at most [`READ_RESERVE_BYTES`] at a time,
//! so memory follows the bytes that actually arrive, never the length a peer
//! claims. (`tokio_util`'s `LengthDelimitedCodec` reserves the whole claimed
//! length as soon as it reads the header, which let any peer that passed
//! the handshake make us reserve up to `MAX_FRAME_BYTES` per connection.)
//! Writing refuses a message over [`MAX_FRAME_BYTES`] in [`encode`], so the
//! one call fails and the writer loop never meets an oversized frame. The
//! writer loop drains every queued frame before flushing, so a busy
//! connection sends many messages per syscall. This module must never
//! allocate on a peer's word.

use crate::net::BoxStream;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use ringkv_core::codec::{decode_message, encode_message};
use ringkv_core::failure::ReplicaFailure;
use ringkv_core::limits::MAX_FRAME_BYTES;
use ringkv_core::protocol::{HandshakeRefusal, Message};
use ringkv_core::NodeId;
use std::io;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

pub type FrameReader = FramedRead<ReadHalf<BoxStream>, FrameDecoder>;
pub type FrameWriter = FramedWrite<WriteHalf<BoxStream>, LengthDelimitedCodec>;

/// Bytes of the length header in front of every frame.
pub const HEADER_BYTES: usize = 4;

/// Most buffer space reserved ahead of the bytes received, per read, while a
/// frame is incomplete.
pub const READ_RESERVE_BYTES: usize = 64 * 1024;

/// Why an RPC call or connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The peer's host answered that nothing listens on the port.
    #[error("connection to {addr} refused")]
    ConnectRefused { addr: String },
    /// The TCP connection did not open within the connect timeout.
    #[error("connecting to {addr} took longer than the {ms} ms connect timeout")]
    ConnectTimedOut { addr: String, ms: u64 },
    /// Any other failure to open the TCP connection.
    #[error("cannot connect to {addr}: {reason}")]
    ConnectFailed { addr: String, reason: String },
    /// The connection opened but the peer did not answer the hello in time
    /// (a hung or black-holed node).
    #[error("{addr} did not answer the handshake within the {ms} ms connect timeout")]
    HandshakeTimedOut { addr: String, ms: u64 },
    /// The peer answered the hello with a refusal; `reason` is its own words.
    #[error("{addr} refused the handshake: {reason}")]
    HandshakeRefused {
        addr: String,
        reason: HandshakeRefusal,
    },
    /// The handshake broke the protocol (wrong node, unexpected message,
    /// connection closed before the answer).
    #[error("handshake with {addr} failed: {reason}")]
    HandshakeFailed { addr: String, reason: String },
    /// The last connection attempt failed and the backoff interval has not
    /// passed: the call fails without touching the network.
    #[error("{addr} is known to be down; next connection attempt in {retry_in_ms} ms")]
    KnownDown { addr: String, retry_in_ms: u64 },
    /// No address is configured for the node.
    #[error("no address known for {node}")]
    UnknownPeer { node: NodeId },
    #[error("no answer within {ms} ms")]
    Timeout { ms: u64 },
    /// The connection broke while the call waited.
    #[error("connection lost")]
    ConnectionLost,
    /// A frame's length is over the limit in force.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge { len: usize, limit: usize },
    #[error("bad frame: {0}")]
    Codec(String),
    #[error("io error: {0}")]
    Io(String),
}

impl From<io::Error> for RpcError {
    fn from(e: io::Error) -> Self {
        RpcError::Io(e.to_string())
    }
}

/// Reads length-delimited frames without trusting the length (see the module doc).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// Changes the largest frame accepted from now on.
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }
}

impl Decoder for FrameDecoder {
    type Item = BytesMut;
    type Error = RpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, RpcError> {
        let Some(head) = src.get(..HEADER_BYTES) else {
            return Ok(None);
        };
        let mut len = [0u8; HEADER_BYTES];
        len.copy_from_slice(head);
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max_frame_bytes {
            return Err(RpcError::FrameTooLarge {
                len,
                limit: self.max_frame_bytes,
            });
        }
        let total = HEADER_BYTES + len;
        if src.len() < total {
            src.reserve((total - src.len()).min(READ_RESERVE_BYTES));
            return Ok(None);
        }
        src.advance(HEADER_BYTES);
        Ok(Some(src.split_to(len)))
    }
}

fn write_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(HEADER_BYTES)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Largest frame accepted before the handshake is done: a hello is tiny, and
/// an unauthenticated peer must not make us reserve a large buffer.
pub const MAX_HANDSHAKE_FRAME_BYTES: usize = 64 * 1024;

/// Limits incoming frames to [`MAX_HANDSHAKE_FRAME_BYTES`] (until the handshake is done).
pub fn limit_to_handshake(reader: &mut FrameReader) {
    reader
        .decoder_mut()
        .set_max_frame_bytes(MAX_HANDSHAKE_FRAME_BYTES);
}

/// Lifts the handshake limit back to [`MAX_FRAME_BYTES`].
pub fn allow_full_frames(reader: &mut FrameReader) {
    reader.decoder_mut().set_max_frame_bytes(MAX_FRAME_BYTES);
}

/// Splits a stream into a frame reader and writer.
pub fn split(stream: BoxStream) -> (FrameReader, FrameWriter) {
    let (r, w) = tokio::io::split(stream);
    (
        FramedRead::new(r, FrameDecoder::new(MAX_FRAME_BYTES)),
        FramedWrite::new(w, write_codec()),
    )
}

/// The typed failure a call's transport outcome is, as coordination sees it:
/// whether the request can have left matters (see
/// [`ReplicaFailure::proves_not_applied`]), so the mapping keeps "never
/// connected" apart from "lost after sending".
pub fn failure_of(e: &RpcError) -> ReplicaFailure {
    match e {
        RpcError::ConnectRefused { .. } => ReplicaFailure::ConnectRefused,
        RpcError::ConnectTimedOut { ms, .. } | RpcError::HandshakeTimedOut { ms, .. } => {
            ReplicaFailure::ConnectTimeout { ms: *ms }
        }
        RpcError::ConnectFailed { .. } | RpcError::HandshakeFailed { .. } => {
            ReplicaFailure::ConnectFailed
        }
        RpcError::HandshakeRefused { reason, .. } => {
            ReplicaFailure::HandshakeRefused(reason.clone())
        }
        RpcError::KnownDown { .. } => ReplicaFailure::KnownDown,
        RpcError::UnknownPeer { .. } => ReplicaFailure::NoAddress,
        RpcError::Timeout { ms } => ReplicaFailure::Timeout { ms: *ms },
        RpcError::ConnectionLost | RpcError::Io(_) => ReplicaFailure::ConnectionLost,
        RpcError::FrameTooLarge { .. } | RpcError::Codec(_) => ReplicaFailure::Malformed,
    }
}

/// Encodes a message into one frame's payload, refusing one over [`MAX_FRAME_BYTES`].
pub fn encode(message: &Message) -> Result<Bytes, RpcError> {
    encode_within(message, MAX_FRAME_BYTES)
}

/// Encodes a message into one frame's payload of at most `limit` bytes.
pub fn encode_within(message: &Message, limit: usize) -> Result<Bytes, RpcError> {
    let bytes = encode_message(message).map_err(|e| RpcError::Codec(e.to_string()))?;
    if bytes.len() > limit {
        return Err(RpcError::FrameTooLarge {
            len: bytes.len(),
            limit,
        });
    }
    Ok(Bytes::from(bytes))
}

/// Reads the next message; `Ok(None)` at a clean end of stream.
pub async fn recv(reader: &mut FrameReader) -> Result<Option<Message>, RpcError> {
    match reader.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(e),
        Some(Ok(frame)) => decode_message(&frame)
            .map(Some)
            .map_err(|e| RpcError::Codec(e.to_string())),
    }
}

/// Writes one message and flushes (used for handshakes).
pub async fn send(writer: &mut FrameWriter, message: &Message) -> Result<(), RpcError> {
    writer
        .send(encode(message)?)
        .await
        .map_err(|e| RpcError::Io(e.to_string()))
}

/// Sends queued frames until the queue closes, the stream fails or `closed`
/// is cancelled; cancels `closed` on the way out.
pub async fn write_loop(
    mut writer: FrameWriter,
    mut queue: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            biased;
            frame = queue.recv() => frame,
            _ = closed.cancelled() => None,
        };
        let Some(frame) = frame else { break };
        let mut result = writer.feed(frame).await;
        // Drain what is queued; yield once so tasks about to send can join
        // this write, then drain again: one syscall carries many frames.
        for round in 0..2 {
            while result.is_ok() {
                match queue.try_recv() {
                    Ok(more) => result = writer.feed(more).await,
                    Err(_) => break,
                }
            }
            if round == 0 {
                tokio::task::yield_now().await;
            }
        }
        if result.is_err() || SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
            break;
        }
    }
    closed.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32) -> BytesMut {
        BytesMut::from(&len.to_be_bytes()[..])
    }

    #[test]
    fn a_claimed_length_over_the_limit_is_refused_at_the_header() {
        let mut decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME_BYTES);
        let mut src = header(100 * 1024 * 1024);
        assert_eq!(
            decoder.decode(&mut src),
            Err(RpcError::FrameTooLarge {
                len: 100 * 1024 * 1024,
                limit: MAX_HANDSHAKE_FRAME_BYTES
            })
        );
        assert!(src.capacity() < 1024, "nothing reserved for the claim");
    }

    #[test]
    fn a_claimed_length_within_the_limit_reserves_only_a_bounded_read_ahead() {
        let mut decoder = FrameDecoder::new(MAX_FRAME_BYTES);
        let mut src = header(100 * 1024 * 1024);
        assert_eq!(decoder.decode(&mut src), Ok(None));
        assert!(
            src.capacity() <= HEADER_BYTES + READ_RESERVE_BYTES,
            "reserved {} bytes for a 100 MB claim",
            src.capacity()
        );
        src.extend_from_slice(&[0u8; 1000]);
        assert_eq!(decoder.decode(&mut src), Ok(None));
        assert!(src.capacity() <= 2 * (HEADER_BYTES + 1000 + READ_RESERVE_BYTES));
    }

    #[test]
    fn frames_split_anywhere_decode_whole_and_in_order() {
        let mut wire = BytesMut::new();
        for payload in [&b"one"[..], b"", b"three"] {
            wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            wire.extend_from_slice(payload);
        }
        for cut in 0..wire.len() {
            let mut decoder = FrameDecoder::new(16);
            let mut src = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(frame) = decoder.decode(&mut src).unwrap() {
                got.push(frame.to_vec());
            }
            src.extend_from_slice(&wire[cut..]);
            while let Some(frame) = decoder.decode(&mut src).unwrap() {
                got.push(frame.to_vec());
            }
            assert_eq!(
                got,
                [b"one".to_vec(), vec![], b"three".to_vec()],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_oversized_message_fails_its_encoding_not_the_writer() {
        let message = Message::Response {
            id: 1,
            body: ringkv_core::protocol::Response::Pong,
        };
        let len = encode(&message).unwrap().len();
        assert_eq!(
            encode_within(&message, len - 1),
            Err(RpcError::FrameTooLarge {
                len,
                limit: len - 1
            })
        );
    }
}
