//! An application channel beside the hub's: one Redis channel published and subscribed through
//! the backplane's own connection machinery ([`crate::link`]), so it follows what the hub's
//! channels follow: a Sentinel `+switch-master`, a Redis Cluster (the channel on its slot's
//! primary) and a shard's failover there, reconnects with the same back-off, and publishes
//! held (bounded) while Redis is away.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::link::{BackplaneStatus, LinkOptions, Received, RedisLink};

/// One channel: [`AppChannel::publish`] from anywhere, [`AppChannel::recv`] from one task.
pub struct AppChannel {
    link: RedisLink,
    channel: Bytes,
    received: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    subscribed: parking_lot::Mutex<Option<oneshot::Receiver<()>>>,
}

impl AppChannel {
    /// Connects (in the background: returns at once, whether Redis is reachable or not) and
    /// subscribes to `channel`. `options.presence_channel` is ignored: nothing waits for a
    /// fleet on an application channel.
    pub fn start(mut options: LinkOptions, channel: impl Into<String>) -> Result<Self, redis::RedisError> {
        options.presence_channel = None;
        let channel = channel.into();
        let (link, received) = RedisLink::start(options)?;
        let subscribed = link.subscribe(channel.clone());
        Ok(Self {
            link,
            channel: Bytes::from(channel.into_bytes()),
            received: tokio::sync::Mutex::new(received),
            subscribed: parking_lot::Mutex::new(Some(subscribed)),
        })
    }

    /// Queues a PUBLISH of `payload` on the channel; returns at once. Held while Redis is away
    /// (the oldest dropped past the publish queue's capacity) and sent once it is back.
    pub fn publish(&self, payload: impl Into<Bytes>) {
        self.link.publish(self.channel.clone(), payload.into());
    }

    /// The next message received on the channel; `None` once the channel is shut down.
    pub async fn recv(&self) -> Option<Bytes> {
        let mut received = self.received.lock().await;
        loop {
            let message = received.recv().await?;
            if message.channel.as_bytes() == &self.channel[..] {
                return Some(message.payload);
            }
        }
    }

    /// Resolves once the first subscription is confirmed by Redis (or at once when Redis was
    /// away: the subscription is then made when it is back; [`AppChannel::watch_status`] tells
    /// when). Only the first call waits; later calls return at once.
    pub async fn first_subscription(&self) {
        let pending = self.subscribed.lock().take();
        if let Some(pending) = pending {
            let _ = pending.await;
        }
    }

    /// The connections' status (the subscriber's tells whether messages are received now).
    pub fn watch_status(&self) -> watch::Receiver<BackplaneStatus> {
        self.link.watch_status()
    }

    /// Closes the connections (dropping the channel does too).
    pub fn shutdown(&self) {
        self.link.shutdown();
    }
}
