//! Test harness: an in-process server with a test hub, and a raw WebSocket client
//! (tokio-tungstenite) speaking the JSON or MessagePack hub protocol byte for byte.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use serde_json::{Value as Json, json};
use signalr::{ClientStream, Hub, HubCallContext, HubContext, HubError, HubOptions, HubService};
use signalr_connections::HttpConnectionOptions;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A guard against hangs; tests synchronise on messages, never on time.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// The running server.
pub struct Server {
    pub addr: SocketAddr,
    pub context: HubContext,
    /// Permits released by the test let `Block` calls finish.
    pub gate: Arc<Semaphore>,
}

/// The hub every test uses.
pub fn test_hub(gate: Arc<Semaphore>) -> Hub {
    Hub::builder("Tests.TestHub")
        .method("Echo", |_c: HubCallContext, (m,): (String,)| async move { Ok::<_, HubError>(m) })
        .method("Add", |_c: HubCallContext, (a, b): (i32, i32)| async move { Ok::<_, HubError>(a + b) })
        .method("Void", |_c: HubCallContext, (): ()| async move { Ok::<_, HubError>(()) })
        .method("ConnectionId", |c: HubCallContext, (): ()| async move { Ok::<_, HubError>(c.connection_id().to_owned()) })
        .method("ThrowException", |_c: HubCallContext, (m,): (String,)| async move {
            Err::<(), _>(HubError::exception("InvalidOperationException", m))
        })
        .method("ThrowHubException", |_c: HubCallContext, (m,): (String,)| async move { Err::<(), _>(HubError::hub_exception(m)) })
        .method("Block", move |_c: HubCallContext, (): ()| {
            let gate = gate.clone();
            async move {
                let permit = gate.acquire().await.map_err(|e| HubError::exception("Closed", e.to_string()))?;
                permit.forget();
                Ok::<_, HubError>("unblocked")
            }
        })
        .method("AskCaller", |c: HubCallContext, (): ()| async move {
            let value: i32 = c.clients().caller().invoke("Result", ()).await?;
            Ok::<_, HubError>(value + 1)
        })
        .method("Abort", |c: HubCallContext, (): ()| async move {
            c.abort();
            Ok::<_, HubError>(())
        })
        .method("SetItem", |c: HubCallContext, (v,): (String,)| async move {
            c.context().insert_item("k", v);
            Ok::<_, HubError>(())
        })
        .method("GetItem", |c: HubCallContext, (): ()| async move { Ok::<_, HubError>(c.context().item::<String>("k")) })
        .method("GetQuery", |c: HubCallContext, (n,): (String,)| async move { Ok::<_, HubError>(c.context().query(&n).map(str::to_owned)) })
        .method("Transport", |c: HubCallContext, (): ()| async move { Ok::<_, HubError>(c.context().transport().as_str()) })
        .stream("Stream", |_c: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(stream::iter(["a", "b", "c"].map(|s| Ok::<_, HubError>(s.to_owned()))))
        })
        .stream("Counter", |_c: HubCallContext, (count, interval_ms): (u32, u64)| async move {
            Ok::<_, HubError>(stream::iter(1..=count).then(move |n| async move {
                if interval_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                }
                Ok::<_, HubError>(n)
            }))
        })
        .stream("StreamFails", |_c: HubCallContext, (): ()| async move {
            Ok::<_, HubError>(stream::iter(vec![Ok(1), Err(HubError::exception("IOException", "disk gone"))]))
        })
        .stream("StreamThrowException", |_c: HubCallContext, (m,): (String,)| async move {
            Err::<stream::Empty<Result<i32, HubError>>, _>(HubError::exception("InvalidOperationException", m))
        })
        .stream("EmptyStream", |_c: HubCallContext, (): ()| async move { Ok::<_, HubError>(stream::empty::<Result<i32, HubError>>()) })
        .stream("InfiniteStream", |c: HubCallContext, (): ()| async move {
            let token = c.cancellation_token();
            let clients = c.clients();
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = clients.caller().send("StreamCanceled", ()).await;
            });
            Ok::<_, HubError>(stream::pending::<Result<String, HubError>>())
        })
        .method_with_streams("StreamingConcat", |_c: HubCallContext, (): (), (mut items,): (ClientStream<String>,)| async move {
            let mut text = String::new();
            while let Some(item) = items.next_item().await {
                text.push_str(&item?);
            }
            Ok::<_, HubError>(text)
        })
        .method("JoinGroup", |c: HubCallContext, (g,): (String,)| async move { c.groups().add_to_group(c.connection_id(), &g).await })
        .method("LeaveGroup", |c: HubCallContext, (g,): (String,)| async move { c.groups().remove_from_group(c.connection_id(), &g).await })
        .method("SendToAll", |c: HubCallContext, (m,): (String,)| async move { c.clients().all().send("Message", (m,)).await })
        .method("SendToOthers", |c: HubCallContext, (m,): (String,)| async move { c.clients().others().send("Message", (m,)).await })
        .method("SendToCaller", |c: HubCallContext, (m,): (String,)| async move { c.clients().caller().send("Message", (m,)).await })
        .method(
            "SendToGroup",
            |c: HubCallContext, (g, m): (String, String)| async move { c.clients().group(g).send("Message", (m,)).await },
        )
        .method("SendToOthersInGroup", |c: HubCallContext, (g, m): (String, String)| async move {
            c.clients().others_in_group(g).send("Message", (m,)).await
        })
        .method("SendToAllExcept", |c: HubCallContext, (id, m): (String, String)| async move {
            c.clients().all_except([id]).send("Message", (m,)).await
        })
        .method("SendToConnection", |c: HubCallContext, (id, m): (String, String)| async move {
            c.clients().client(id).send("Message", (m,)).await
        })
        .method("SendToUser", |c: HubCallContext, (u, m): (String, String)| async move { c.clients().user(u).send("Message", (m,)).await })
        .build()
}

/// Starts a server with the test hub at `/hub`.
pub async fn start(options: HubOptions) -> Server {
    start_with(options, HttpConnectionOptions::default()).await
}

/// Starts a server with explicit connection options.
pub async fn start_with(options: HubOptions, connection_options: HttpConnectionOptions) -> Server {
    let gate = Arc::new(Semaphore::new(0));
    let service = HubService::new(test_hub(gate.clone()), options);
    let context = service.context();
    let app = signalr_connections::case_insensitive_paths(service.router("/hub", connection_options));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap();
    });
    Server { addr, context, gate }
}

/// Which hub protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    MessagePack,
}

/// A parsed server message.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Json(Json),
    MsgPack(rmpv::Value),
}

impl Received {
    pub fn json(self) -> Json {
        match self {
            Received::Json(v) => v,
            Received::MsgPack(v) => panic!("expected JSON, got {v:?}"),
        }
    }
    pub fn msgpack(self) -> rmpv::Value {
        match self {
            Received::MsgPack(v) => v,
            Received::Json(v) => panic!("expected MessagePack, got {v}"),
        }
    }
}

/// A raw WebSocket hub client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Protocol,
    pending: VecDeque<Received>,
    /// Bytes of a partial message (never expected: the server sends whole messages).
    pub frames: Vec<Message>,
}

impl Client {
    /// Opens a WebSocket to `path_and_query` without negotiating.
    pub async fn open(addr: SocketAddr, path_and_query: &str) -> Client {
        let url = format!("ws://{addr}{path_and_query}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Client { ws, protocol: Protocol::Json, pending: VecDeque::new(), frames: Vec::new() }
    }

    /// Wraps an open WebSocket.
    pub fn open_from(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws, protocol: Protocol::Json, pending: VecDeque::new(), frames: Vec::new() }
    }

    /// Opens a WebSocket and completes the handshake for `protocol`.
    pub async fn connect(addr: SocketAddr, protocol: Protocol) -> Client {
        let mut client = Client::open(addr, "/hub").await;
        client.handshake(protocol, 1).await;
        client
    }

    /// Sends the handshake request and asserts the exact success response `{}\x1e`.
    pub async fn handshake(&mut self, protocol: Protocol, version: u32) {
        let name = match protocol {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        };
        self.protocol = protocol;
        self.send_text(format!("{{\"protocol\":\"{name}\",\"version\":{version}}}\x1e")).await;
        let frame = self.next_frame().await.expect("handshake response");
        let bytes = frame.into_data();
        assert_eq!(&bytes[..3], b"{}\x1e", "handshake response");
        // Anything after the response in the same frame is hub messages.
        if bytes.len() > 3 {
            self.parse_into_pending(&bytes[3..]);
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    /// Sends one JSON hub message.
    pub async fn send(&mut self, message: Json) {
        self.send_text(format!("{message}\x1e")).await;
    }

    /// Sends one MessagePack hub message (an array), length-prefixed.
    pub async fn send_msgpack(&mut self, message: rmpv::Value) {
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, &message).unwrap();
        let mut framed = Vec::new();
        let mut length = body.len();
        loop {
            let mut byte = (length & 0x7f) as u8;
            length >>= 7;
            if length > 0 {
                byte |= 0x80;
            }
            framed.push(byte);
            if length == 0 {
                break;
            }
        }
        framed.extend_from_slice(&body);
        self.send_binary(framed).await;
    }

    /// The next WebSocket data frame (`None` when the socket closed).
    pub async fn next_frame(&mut self) -> Option<Message> {
        loop {
            let message = tokio::time::timeout(HANG_GUARD, self.ws.next()).await.expect("server answered in time")?;
            match message {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    self.frames.push(m.clone());
                    return Some(m);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    fn parse_into_pending(&mut self, mut bytes: &[u8]) {
        match self.protocol {
            Protocol::Json => {
                assert_eq!(bytes.last(), Some(&0x1e), "JSON frames end on a message boundary");
                for part in bytes.split(|b| *b == 0x1e).filter(|p| !p.is_empty()) {
                    self.pending.push_back(Received::Json(serde_json::from_slice(part).expect("valid JSON")));
                }
            }
            Protocol::MessagePack => {
                while !bytes.is_empty() {
                    let mut length = 0usize;
                    let mut shift = 0;
                    let mut used = 0;
                    loop {
                        let byte = bytes[used];
                        used += 1;
                        length |= ((byte & 0x7f) as usize) << shift;
                        shift += 7;
                        if byte & 0x80 == 0 {
                            break;
                        }
                    }
                    let body = &bytes[used..used + length];
                    let value = rmpv::decode::read_value(&mut &body[..]).expect("valid MessagePack");
                    self.pending.push_back(Received::MsgPack(value));
                    bytes = &bytes[used + length..];
                }
            }
        }
    }

    /// The next hub message, pings included; `None` when the socket closed.
    pub async fn next_any(&mut self) -> Option<Received> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            let frame = self.next_frame().await?;
            match (&frame, self.protocol) {
                (Message::Text(_), Protocol::Json) | (Message::Binary(_), Protocol::MessagePack) => {}
                _ => panic!("wrong frame type for {:?}: {frame:?}", self.protocol),
            }
            let data = frame.into_data();
            self.parse_into_pending(&data);
        }
    }

    /// The next hub message that is not a Ping.
    pub async fn next(&mut self) -> Received {
        loop {
            let message = self.next_any().await.expect("connection open");
            let is_ping = match &message {
                Received::Json(v) => v["type"] == 6,
                Received::MsgPack(v) => v[0].as_u64() == Some(6),
            };
            if !is_ping {
                return message;
            }
        }
    }

    /// The next JSON message that is not a Ping.
    pub async fn next_json(&mut self) -> Json {
        self.next().await.json()
    }

    /// Invokes `target` and returns its Completion.
    pub async fn invoke(&mut self, id: &str, target: &str, arguments: Json) -> Json {
        self.send(json!({"type": 1, "invocationId": id, "target": target, "arguments": arguments})).await;
        self.next_json().await
    }

    /// Reads until the socket closes; returns the messages seen before.
    pub async fn until_closed(&mut self) -> Vec<Received> {
        let mut seen = Vec::new();
        while let Some(message) = self.next_any().await {
            seen.push(message);
        }
        seen
    }
}

/// POSTs a negotiate and returns the JSON response.
pub async fn negotiate(addr: SocketAddr, query: &str) -> Json {
    let response = reqwest::Client::new().post(format!("http://{addr}/hub/negotiate?{query}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}
