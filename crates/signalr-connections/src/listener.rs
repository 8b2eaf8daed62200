//! The TCP listener a SignalR server should accept on: every connection gets `TCP_NODELAY`.
//!
//! Without it the kernel's Nagle algorithm holds a small write while earlier bytes are not yet
//! acknowledged, and clients delay their acknowledgements (40 ms on Linux, up to 200 ms on
//! Windows) until they have something to send. A server that pushes small messages then sees
//! a reply or broadcast wait for the client's next message: measured here, a hub call's
//! completion arrived one call interval late (20 ms at 50 calls/s) whenever the connection had
//! just been sent another message. Kestrel sets `NoDelay` on its sockets for the same reason.
//! Writes are coalesced by the transports themselves (one vectored write per batch), so Nagle
//! has nothing left to merge.

use std::net::SocketAddr;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// A [`TcpListener`] whose accepted connections have `TCP_NODELAY` set; pass it to
/// `axum::serve`.
pub type NoDelayListener = TapIo<TcpListener, fn(&mut TcpStream)>;

/// Wraps `listener` so every accepted connection gets `TCP_NODELAY`.
pub fn nodelay(listener: TcpListener) -> NoDelayListener {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

/// Binds `addr` and wraps the listener with [`nodelay`].
pub async fn bind_nodelay(addr: SocketAddr) -> std::io::Result<NoDelayListener> {
    Ok(nodelay(TcpListener::bind(addr).await?))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        // The connection still works, only small writes may wait for an acknowledgement.
        tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let mut listener = bind_nodelay("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = listener.accept().await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(accepted.nodelay().unwrap(), "an accepted socket must not use Nagle's algorithm");
        // A plain listener leaves Nagle on: what the wrapper is for.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(plain.local_addr().unwrap()).await.unwrap();
        let (socket, _) = plain.accept().await.unwrap();
        assert!(!socket.nodelay().unwrap());
    }
}
