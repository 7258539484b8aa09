//! Frames on the wire: a 4-byte big-endian length, then one encoded message.
//!
//! Frames longer than [`MAX_FRAME_BYTES`] are refused before any allocation
//! of their size. The writer loop drains every queued frame before flushing,
//! so a busy connection sends many messages per syscall.

use crate::net::BoxStream;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ringkv_core::codec::{decode_message, encode_message};
use ringkv_core::limits::MAX_FRAME_BYTES;
use ringkv_core::protocol::Message;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

pub type FrameReader = FramedRead<ReadHalf<BoxStream>, LengthDelimitedCodec>;
pub type FrameWriter = FramedWrite<WriteHalf<BoxStream>, LengthDelimitedCodec>;

/// Why an RPC call or connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("no answer within {ms} ms")]
    Timeout { ms: u64 },
    #[error("connection closed")]
    Closed,
    #[error("bad frame: {0}")]
    Codec(String),
    #[error("io error: {0}")]
    Io(String),
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
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
        .set_max_frame_length(MAX_HANDSHAKE_FRAME_BYTES);
}

/// Lifts the handshake limit back to [`MAX_FRAME_BYTES`].
pub fn allow_full_frames(reader: &mut FrameReader) {
    reader.decoder_mut().set_max_frame_length(MAX_FRAME_BYTES);
}

/// Splits a stream into a frame reader and writer.
pub fn split(stream: BoxStream) -> (FrameReader, FrameWriter) {
    let (r, w) = tokio::io::split(stream);
    (FramedRead::new(r, codec()), FramedWrite::new(w, codec()))
}

/// Encodes a message into one frame's payload.
pub fn encode(message: &Message) -> Result<Bytes, RpcError> {
    encode_message(message)
        .map(Bytes::from)
        .map_err(|e| RpcError::Codec(e.to_string()))
}

/// Reads the next message; `Ok(None)` at a clean end of stream.
pub async fn recv(reader: &mut FrameReader) -> Result<Option<Message>, RpcError> {
    match reader.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(RpcError::Io(e.to_string())),
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
