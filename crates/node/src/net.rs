//! The network edge: how a node opens and accepts byte streams.
//!
//! Node-to-node RPC never names `tokio::net` directly; only the client HTTP
//! listener (which the simulation does not run) binds a tokio socket itself.
//! Production uses [`TcpNetwork`] (TCP with `TCP_NODELAY`); the deterministic simulation
//! plugs in turmoil's simulated TCP through the same [`Network`] trait, so the
//! RPC layer, coordinator and replicas run unchanged under a seeded network.
//! Addresses are `host:port` strings so simulated host names work too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub type BoxStream = Box<dyn Stream>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bound listening socket.
pub trait Listener: Send + Sync + 'static {
    /// Waits for the next connection; returns it with the peer's address.
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, String)>>;
}

/// Opens connections and listening sockets.
pub trait Network: Send + Sync + 'static {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// Real TCP, with Nagle's algorithm off (requests are small and latency-bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNetwork;

struct TcpListener(tokio::net::TcpListener);

impl Listener for TcpListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxStream, addr.to_string()))
        })
    }
}

impl Network for TcpNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            Ok(Box::new(TcpListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}
