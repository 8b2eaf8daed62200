//! Test harness: a real server on 127.0.0.1:0 serving an echo [`ConnectionHandler`] that reports
//! every event on a channel, so tests synchronise on events rather than on sleeps.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use bytes::Bytes;
use signalr_connections::{
    Connection, ConnectionApplication, ConnectionHandler, HttpConnectionOptions, TransferFormat, case_insensitive_paths, endpoint,
};
use tokio::sync::mpsc;

/// What the test handler saw.
#[derive(Debug)]
pub enum Event {
    Connected(Connection),
    Data(String, Bytes),
    Closed(String),
    Reconnected(String),
}

/// An echo handler: every byte received is sent back, except the commands below.
/// * `binary` switches to Binary frames (the reply goes out in the new format);
/// * `burst:N` sends `m1`..`mN` in one go (write coalescing);
/// * `close` closes gracefully after replying `bye`;
/// * `abort` aborts.
pub struct TestHandler {
    events: mpsc::UnboundedSender<Event>,
    /// Set while an on_data call runs, to detect overlapping calls.
    busy: Arc<AtomicBool>,
    pub overlap: Arc<AtomicBool>,
    reconnect_gate: Arc<tokio::sync::Mutex<()>>,
}

struct TestApp {
    connection: Connection,
    events: mpsc::UnboundedSender<Event>,
    busy: Arc<AtomicBool>,
    overlap: Arc<AtomicBool>,
    reconnect_gate: Arc<tokio::sync::Mutex<()>>,
}

impl ConnectionHandler for TestHandler {
    fn on_connected(&self, connection: Connection) -> Box<dyn ConnectionApplication> {
        let _ = self.events.send(Event::Connected(connection.clone()));
        Box::new(TestApp {
            connection,
            events: self.events.clone(),
            busy: self.busy.clone(),
            overlap: self.overlap.clone(),
            reconnect_gate: self.reconnect_gate.clone(),
        })
    }
}

#[async_trait]
impl ConnectionApplication for TestApp {
    async fn on_data(&mut self, data: Bytes) {
        if self.busy.swap(true, Ordering::SeqCst) {
            self.overlap.store(true, Ordering::SeqCst);
        }
        let id = self.connection.connection_id().to_owned();
        let _ = self.events.send(Event::Data(id, data.clone()));
        match &data[..] {
            b"binary" => {
                self.connection.set_transfer_format(TransferFormat::Binary);
                let _ = self.connection.send(data);
            }
            b"close" => {
                let _ = self.connection.send(Bytes::from_static(b"bye"));
                self.connection.close();
            }
            b"abort" => self.connection.abort(),
            b"slow" => {
                // Long enough for other POSTs to arrive while this one runs.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = self.connection.send(data);
            }
            other if other.starts_with(b"burst:") => {
                let n: usize = std::str::from_utf8(&other[6..]).unwrap().parse().unwrap();
                for i in 1..=n {
                    self.connection.send(Bytes::from(format!("m{i}"))).unwrap();
                }
            }
            _ => {
                let _ = self.connection.send(data);
            }
        }
        self.busy.store(false, Ordering::SeqCst);
    }

    async fn on_closed(&mut self) {
        let _ = self.events.send(Event::Closed(self.connection.connection_id().to_owned()));
    }

    async fn on_reconnected(&mut self) {
        let _ = self.events.send(Event::Reconnected(self.connection.connection_id().to_owned()));
        // A test holding the gate keeps the new socket's task here, with the application.
        drop(self.reconnect_gate.lock().await);
        let _ = self.connection.send(Bytes::from_static(b"welcome back"));
    }
}

/// A running test server.
pub struct Server {
    pub base: String,
    pub ws_base: String,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub overlap: Arc<AtomicBool>,
    /// While a test holds this lock, `on_reconnected` does not return.
    pub reconnect_gate: Arc<tokio::sync::Mutex<()>>,
}

impl Server {
    /// Starts a server with the endpoint at `/echo` and the given options.
    pub async fn start(options: HttpConnectionOptions) -> Server {
        let (tx, rx) = mpsc::unbounded_channel();
        let overlap = Arc::new(AtomicBool::new(false));
        let reconnect_gate = Arc::new(tokio::sync::Mutex::new(()));
        let handler = Arc::new(TestHandler {
            events: tx,
            busy: Arc::new(AtomicBool::new(false)),
            overlap: overlap.clone(),
            reconnect_gate: reconnect_gate.clone(),
        });
        let app = case_insensitive_paths(Router::new().nest("/echo", endpoint(options, handler)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            signalr_connections::server::serve(listener, app, Default::default(), std::future::pending()).await.unwrap();
        });
        Server { base: format!("http://{addr}/echo"), ws_base: format!("ws://{addr}/echo"), events: rx, overlap, reconnect_gate }
    }

    /// The next event, failing the test after 10 s without one.
    pub async fn next_event(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await.expect("no event within 10 s").expect("handler dropped")
    }

    /// Waits for the `Connected` event and returns the connection.
    pub async fn connected(&mut self) -> Connection {
        match self.next_event().await {
            Event::Connected(connection) => connection,
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    /// Waits for a `Data` event.
    pub async fn data(&mut self) -> Bytes {
        match self.next_event().await {
            Event::Data(_, data) => data,
            other => panic!("expected Data, got {other:?}"),
        }
    }

    /// Waits for a `Closed` event and returns the connection id.
    pub async fn closed(&mut self) -> String {
        match self.next_event().await {
            Event::Closed(id) => id,
            other => panic!("expected Closed, got {other:?}"),
        }
    }

    /// Negotiates (version 1 unless `query` says otherwise) and returns the JSON response.
    pub async fn negotiate(&self, query: &str) -> serde_json::Value {
        let url = format!("{}/negotiate{}", self.base, query);
        let response = reqwest::Client::new().post(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Negotiates version 1 and returns the connection token.
    pub async fn token(&self) -> String {
        self.negotiate("?negotiateVersion=1").await["connectionToken"].as_str().unwrap().to_owned()
    }
}

impl std::fmt::Debug for TestHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHandler")
    }
}
