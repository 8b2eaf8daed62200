//! [`Fanout`]: the hot loop of every broadcast, group and user send.

use bytes::Bytes;

use crate::connection::HubConnection;
use crate::error::SendError;
use crate::hint::{PrefetchStep, prefetch_lines};
use crate::message::SerializedMessage;

/// How many receivers ahead [`Fanout::deliver_all`] asks for a receiver's own value, its
/// transport state, and what that state points to. Each step reads what the one before
/// loaded; the distances are far enough to hide a memory round trip behind the work on the
/// receivers in between, near enough that the lines are still cached when used.
const PREFETCH_VALUE: usize = 9;
const PREFETCH_STATE: usize = 6;
const PREFETCH_TARGETS: usize = 3;

/// Delivers one message to many connections, looking its encoding up once per protocol rather
/// than once per receiver: the hot loop of every broadcast, group and user send.
pub struct Fanout<'a> {
    message: &'a SerializedMessage,
    /// The protocol name and encoding of the previous receiver; receivers mostly share one.
    last: Option<(&'static str, Option<Bytes>)>,
}

impl<'a> Fanout<'a> {
    /// A fan-out of `message`.
    pub fn new(message: &'a SerializedMessage) -> Self {
        Self { message, last: None }
    }

    /// Queues the message on `connection`: [`HubConnection::send`] with the encoding reused.
    pub fn deliver(&mut self, connection: &dyn HubConnection) -> Result<(), SendError> {
        let protocol = connection.protocol();
        let name = protocol.name();
        let frame = match &self.last {
            Some((last, frame)) if *last == name => frame.clone(),
            _ => {
                let frame = self.message.encoded(protocol);
                self.last = Some((name, frame.clone()));
                frame
            }
        };
        match frame {
            Some(frame) => connection.send_encoded(frame),
            None => Err(SendError::NoEncoding(name)),
        }
    }

    /// Queues the message on every connection of `connections`; a receiver that cannot take it
    /// (closed, slow consumer) is logged at debug level and skipped.
    ///
    /// While one receiver is served, the state of receivers a few places ahead is loaded into
    /// the CPU cache (a hidden hint each connection may implement): with thousands of receivers their state is
    /// rarely cached, and waiting for each in turn was most of a broadcast's cost.
    pub fn deliver_all<'c, I>(&mut self, connections: I)
    where
        I: Iterator<Item = &'c dyn HubConnection> + Clone,
    {
        let mut values = connections.clone();
        let mut states = connections.clone();
        let mut targets = connections.clone();
        values.by_ref().take(PREFETCH_VALUE).for_each(prefetch_value);
        states.by_ref().take(PREFETCH_STATE).for_each(|c| c.prefetch(PrefetchStep::State));
        targets.by_ref().take(PREFETCH_TARGETS).for_each(|c| c.prefetch(PrefetchStep::Targets));
        for connection in connections {
            if let Some(ahead) = values.next() {
                prefetch_value(ahead);
            }
            if let Some(ahead) = states.next() {
                ahead.prefetch(PrefetchStep::State);
            }
            if let Some(ahead) = targets.next() {
                ahead.prefetch(PrefetchStep::Targets);
            }
            if let Err(error) = self.deliver(connection) {
                tracing::debug!(connection_id = connection.connection_id(), %error, "message not delivered");
            }
        }
    }
}

/// Loads the connection value itself (what `protocol` and `send_encoded` read first).
#[inline(always)]
fn prefetch_value(connection: &dyn HubConnection) {
    let lines = std::mem::size_of_val(connection).div_ceil(64) + 1;
    prefetch_lines(connection as *const dyn HubConnection, lines);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use signalr_protocol::{InvocationMessage, JsonHubProtocol, MessagePackHubProtocol};

    use parking_lot::Mutex;
    use signalr_protocol::{HubMessage, HubProtocol, Value};

    use super::*;

    /// Records what it is sent and how often it is asked to prefetch; refuses when `closed`.
    struct Receiver {
        protocol: &'static dyn HubProtocol,
        closed: bool,
        frames: Mutex<Vec<Bytes>>,
        prefetches: AtomicUsize,
    }

    impl HubConnection for Receiver {
        fn connection_id(&self) -> &str {
            "receiver"
        }
        fn user_identifier(&self) -> Option<&str> {
            None
        }
        fn protocol(&self) -> &dyn HubProtocol {
            self.protocol
        }
        fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
            if self.closed {
                return Err(SendError::Closed);
            }
            self.frames.lock().push(frame);
            Ok(())
        }
        fn abort(&self) {}
        fn prefetch(&self, _step: PrefetchStep) {
            self.prefetches.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn receivers(count: usize) -> Vec<Receiver> {
        (0..count)
            .map(|index| Receiver {
                protocol: if index % 3 == 0 { &MessagePackHubProtocol } else { &JsonHubProtocol },
                closed: index % 7 == 5,
                frames: Mutex::new(Vec::new()),
                prefetches: AtomicUsize::new(0),
            })
            .collect()
    }

    fn message() -> SerializedMessage {
        SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            invocation_id: None,
            target: "Send".into(),
            arguments: vec![Value::Json(serde_json::json!("hi"))],
            stream_ids: Vec::new(),
            headers: Default::default(),
        }))
    }

    /// Fewer, as many and more receivers than the look-ahead distances: each open receiver gets
    /// the message once in its own protocol, closed ones are skipped, and every receiver is
    /// asked for both prefetch steps once.
    #[test]
    fn deliver_all_reaches_every_receiver_once_whatever_the_count() {
        let message = message();
        let json = message.encoded(&JsonHubProtocol).unwrap();
        let msgpack = message.encoded(&MessagePackHubProtocol).unwrap();
        assert_ne!(json, msgpack);
        for count in [0, 1, 2, PREFETCH_TARGETS, PREFETCH_STATE, PREFETCH_VALUE, PREFETCH_VALUE + 1, 100] {
            let all = receivers(count);
            Fanout::new(&message).deliver_all(all.iter().map(|r| r as &dyn HubConnection));
            for (index, receiver) in all.iter().enumerate() {
                let frames = receiver.frames.lock();
                if receiver.closed {
                    assert!(frames.is_empty(), "{count} receivers: #{index} is closed");
                } else {
                    let expected = if index % 3 == 0 { &msgpack } else { &json };
                    assert_eq!(frames.as_slice(), std::slice::from_ref(expected), "{count} receivers: #{index}");
                }
                assert_eq!(receiver.prefetches.load(Ordering::Relaxed), 2, "{count} receivers: #{index}");
            }
        }
    }

    #[test]
    fn deliver_reports_a_missing_encoding() {
        let message = SerializedMessage::from_encoded(vec![("json".into(), Bytes::from_static(b"{}\x1e"))]);
        let receiver = &receivers(1)[0];
        assert_eq!(receiver.protocol.name(), "messagepack");
        assert_eq!(Fanout::new(&message).deliver(receiver), Err(SendError::NoEncoding("messagepack")));
    }
}
