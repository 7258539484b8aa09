//! A connection that keeps reading after a write failed, so the client sees
//! the server's answer to a request whose body it rejected.
//!
//! A node that refuses a body (413 `value_too_large`) answers and closes the
//! connection while the client is still sending. Its close resets the
//! connection, and the client's next write fails with a broken pipe or a
//! reset. hyper reports that write error and never reads the answer that
//! already sits in the socket's receive buffer, so the user saw
//! "SendRequest" instead of the 413 in about a third of the tries.
//!
//! [`LenientIo`] turns such a write failure into "written" (the bytes are
//! dropped: the peer will not read them anyway) and lets hyper go on
//! reading. The kernel still hands out data that arrived before the reset,
//! so hyper parses the answer; when no answer came, the read fails with the
//! reset or reaches end of stream, and the error says the connection closed
//! before an answer. It never invents data and never retries a request.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Wraps the TCP connector so each connection is a [`LenientIo`].
#[derive(Clone)]
pub(crate) struct LenientConnector(pub(crate) HttpConnector);

impl tower_service::Service<Uri> for LenientConnector {
    type Response = LenientIo<TokioIo<TcpStream>>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move {
            Ok(LenientIo {
                inner: connecting.await?,
                write_failed: false,
            })
        })
    }
}

/// A connection whose writes stop failing once the peer has gone away.
pub(crate) struct LenientIo<T> {
    inner: T,
    /// A write failed because the peer closed or reset the connection;
    /// every write since is dropped.
    write_failed: bool,
}

/// Whether a write error means "the peer stopped reading" (it may still
/// have answered).
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

impl<T: Read + Unpin> Read for LenientIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for LenientIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_failed {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if peer_gone(&e) => {
                self.write_failed = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_failed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Err(e)) if peer_gone(&e) => {
                self.write_failed = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_failed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for LenientIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
