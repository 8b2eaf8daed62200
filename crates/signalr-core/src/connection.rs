//! [`HubConnection`]: a connection as a lifetime manager sees it.

use bytes::Bytes;
use signalr_protocol::HubProtocol;

use crate::error::SendError;
use crate::hint::PrefetchStep;
use crate::message::SerializedMessage;

/// A connection as the lifetime manager sees it: an id, an optional user, a protocol, and a
/// non-blocking way to hand it encoded messages.
///
/// Implemented by the hub layer's connection; a lifetime manager keeps `Arc<dyn HubConnection>`
/// for the connections that live on this node, in its [`crate::HubConnectionStore`].
pub trait HubConnection: Send + Sync + 'static {
    /// The public connection id (`Context.ConnectionId`).
    fn connection_id(&self) -> &str;
    /// The user identifier (`Context.UserIdentifier`), if the connection is authenticated.
    fn user_identifier(&self) -> Option<&str>;
    /// The hub protocol this connection speaks.
    fn protocol(&self) -> &dyn HubProtocol;
    /// Queues an already-encoded frame (in [`HubConnection::protocol`]) without waiting.
    ///
    /// Frames passed here are hub Invocations; with stateful reconnect they are numbered and
    /// kept for replay until the client acknowledges them.
    fn send_encoded(&self, frame: Bytes) -> Result<(), SendError>;
    /// Queues `message` in this connection's protocol without waiting.
    fn send(&self, message: &SerializedMessage) -> Result<(), SendError> {
        let protocol = self.protocol();
        match message.encoded(protocol) {
            Some(frame) => self.send_encoded(frame),
            None => Err(SendError::NoEncoding(protocol.name())),
        }
    }
    /// Closes the connection from the server side.
    fn abort(&self);
    /// Not part of the public contract (hidden, may change in any release): hints the CPU to
    /// load the state [`HubConnection::send_encoded`] will touch beyond this value itself (the
    /// transport's queue), a few receivers ahead in [`crate::Fanout::deliver_all`]. Does nothing
    /// by default, which is always correct; `signalr`'s connection implements it because
    /// 10,000-receiver broadcasts measured faster with it.
    #[doc(hidden)]
    fn prefetch(&self, step: PrefetchStep) {
        let _ = step;
    }
}
