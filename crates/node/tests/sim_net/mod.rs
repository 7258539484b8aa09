//! turmoil's simulated TCP behind the node's `Network` trait, shared by the
//! simulation tests (`sim.rs`, `sim_restarts.rs`). Test support only: it
//! never touches a real socket.

use ringkv_node::net::{BoxFuture, BoxStream, Listener, Network};
use std::io;

/// turmoil's simulated TCP behind the node's `Network` trait.
pub struct SimNetwork;
struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, addr.to_string()))
        })
    }
}

impl Network for SimNetwork {
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            Ok(
                Box::new(SimListener(turmoil::net::TcpListener::bind(addr).await?))
                    as Box<dyn Listener>,
            )
        })
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(
            async move { Ok(Box::new(turmoil::net::TcpStream::connect(addr).await?) as BoxStream) },
        )
    }
}
