//! The byte stream under a WebSocket.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::server::{SwitchedStream, switched_stream};

/// What a WebSocket reads and writes: the TCP stream itself when our server
/// ([`crate::server::serve`]) accepted the connection, hyper's upgraded stream from any other.
pub(crate) enum SocketStream {
    /// Taken back from hyper: no box, no HTTP guard (idle memory).
    Switched(SwitchedStream),
    /// An upgrade served by another server.
    Upgraded(TokioIo<Upgraded>),
}

impl From<Upgraded> for SocketStream {
    fn from(upgraded: Upgraded) -> Self {
        match switched_stream(upgraded) {
            Ok(switched) => SocketStream::Switched(switched),
            Err(upgraded) => SocketStream::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl AsyncRead for SocketStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SocketStream::Switched(stream) => Pin::new(stream).poll_read(cx, buf),
            SocketStream::Upgraded(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SocketStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SocketStream::Switched(stream) => Pin::new(stream).poll_write(cx, data),
            SocketStream::Upgraded(stream) => Pin::new(stream).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SocketStream::Switched(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            SocketStream::Upgraded(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            SocketStream::Switched(stream) => stream.is_write_vectored(),
            SocketStream::Upgraded(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SocketStream::Switched(stream) => Pin::new(stream).poll_flush(cx),
            SocketStream::Upgraded(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SocketStream::Switched(stream) => Pin::new(stream).poll_shutdown(cx),
            SocketStream::Upgraded(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
