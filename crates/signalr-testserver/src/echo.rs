//! `EchoConnectionHandler`: a raw connection (no hub protocol) that echoes every byte back,
//! but only when the connection request carried the cookie `testCookie`; otherwise it ends at
//! once.

use async_trait::async_trait;
use bytes::Bytes;
use signalr_connections::{Connection, ConnectionApplication, ConnectionHandler};

/// Creates an [`EchoApplication`] per connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoConnectionHandler;

/// Echoes what it receives.
pub struct EchoApplication {
    connection: Connection,
}

impl ConnectionHandler for EchoConnectionHandler {
    fn on_connected(&self, connection: Connection) -> Box<dyn ConnectionApplication> {
        let has_cookie = connection.request().cookies.iter().any(|(name, _)| name == "testCookie");
        if !has_cookie {
            connection.close();
        }
        Box::new(EchoApplication { connection })
    }
}

#[async_trait]
impl ConnectionApplication for EchoApplication {
    async fn on_data(&mut self, data: Bytes) {
        if self.connection.send(data).is_err() {
            self.connection.abort();
        }
    }
    async fn on_closed(&mut self) {}
}
