//! End to end: in-process hub servers (crate `signalr` on axum, 127.0.0.1:0) sharing a real
//! redis-server through `RedisHubLifetimeManager`, reached by WebSocket clients speaking the
//! SignalR JSON protocol.

mod common;

use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use signalr::{Hub, HubCallContext, HubError, HubOptions, HubService};
use signalr_connections::{Authenticator, HttpConnectionOptions, RequestInfo, Unauthorized, User};
use signalr_redis::{RedisHubLifetimeManager, RedisPublisher};
use tokio_tungstenite::tungstenite::Message;

/// `?user=<id>` names the user (tests only).
struct QueryUser;

impl Authenticator for QueryUser {
    fn authenticate(&self, request: &RequestInfo, _bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        Ok(request.query.iter().find(|(k, _)| k == "user").map(|(_, v)| User { identifier: Some(v.clone()), claims: vec![] }))
    }
}

fn test_hub() -> Hub {
    Hub::builder("NotificationHub")
        .method("GetConnectionId", |ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(ctx.connection_id().to_string()) })
        .method("JoinGroup", |ctx: HubCallContext, (group,): (String,)| async move {
            ctx.groups().add_to_group(ctx.connection_id(), &group).await
        })
        .method("AddToGroup", |ctx: HubCallContext, (connection_id, group): (String, String)| async move {
            ctx.groups().add_to_group(&connection_id, &group).await
        })
        .method("SendToAll", |ctx: HubCallContext, (msg,): (String,)| async move { ctx.clients().all().send("Message", (msg,)).await })
        .method(
            "SendToOthers",
            |ctx: HubCallContext, (msg,): (String,)| async move { ctx.clients().others().send("Message", (msg,)).await },
        )
        .method("SendToGroup", |ctx: HubCallContext, (group, msg): (String, String)| async move {
            ctx.clients().group(group).send("Message", (msg,)).await
        })
        .method("SendToOthersInGroup", |ctx: HubCallContext, (group, msg): (String, String)| async move {
            ctx.clients().others_in_group(group).send("Message", (msg,)).await
        })
        .method("SendToUser", |ctx: HubCallContext, (user, msg): (String, String)| async move {
            ctx.clients().user(user).send("Message", (msg,)).await
        })
        .method("SendToConnection", |ctx: HubCallContext, (connection_id, msg): (String, String)| async move {
            ctx.clients().client(connection_id).send("Message", (msg,)).await
        })
        .method("AskClient", |ctx: HubCallContext, (connection_id,): (String,)| async move {
            ctx.clients().client(connection_id).invoke::<String, _>("GetMessage", ()).await
        })
        .build()
}

/// One hub server node on its own port, with its own backplane manager.
struct HubNode {
    port: u16,
    manager: Arc<RedisHubLifetimeManager>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HubNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hub_node(redis_connection: &str) -> HubNode {
    let manager = Arc::new(RedisHubLifetimeManager::new(options(redis_connection)).unwrap());
    let service = HubService::new(test_hub(), HubOptions::default().lifetime_manager(manager.clone()));
    let connection_options = HttpConnectionOptions { authenticator: Some(Arc::new(QueryUser)), ..Default::default() };
    let app = service.router("/hub", connection_options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap();
    });
    HubNode { port, manager, server }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A SignalR JSON client over WebSockets (skipNegotiation).
struct Client {
    socket: Socket,
    pending: Vec<Json>,
    next_id: u64,
    id: String,
}

impl Client {
    async fn connect(node: &HubNode, user: Option<&str>) -> Client {
        let query = user.map(|u| format!("?user={u}")).unwrap_or_default();
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/hub{query}", node.port)).await.unwrap();
        socket.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}")).await.unwrap();
        let mut client = Client { socket, pending: Vec::new(), next_id: 0, id: String::new() };
        let handshake = client.read_frames().await;
        assert_eq!(handshake[0], json!({}), "handshake response");
        client.pending.extend(handshake.into_iter().skip(1));
        client.id = client.invoke("GetConnectionId", json!([])).await.as_str().unwrap().to_string();
        client
    }

    async fn read_frames(&mut self) -> Vec<Json> {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .expect("nothing received in time")
                .expect("socket closed")
                .expect("socket error");
            let text = match message {
                Message::Text(text) => text.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            };
            return text.split('\u{1e}').filter(|part| !part.is_empty()).map(|part| serde_json::from_str(part).unwrap()).collect();
        }
    }

    /// The next hub message other than a ping.
    async fn next(&mut self) -> Json {
        loop {
            if self.pending.is_empty() {
                let frames = self.read_frames().await;
                self.pending.extend(frames);
            }
            let message = self.pending.remove(0);
            if message["type"] != 6 {
                return message;
            }
        }
    }

    async fn send(&mut self, value: Json) {
        self.socket.send(Message::text(format!("{value}\u{1e}"))).await.unwrap();
    }

    /// Invokes a hub method and returns its result; messages arriving meanwhile stay queued.
    async fn invoke(&mut self, target: &str, arguments: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({"type": 1, "invocationId": id, "target": target, "arguments": arguments})).await;
        let mut held = Vec::new();
        let result = loop {
            let message = self.next().await;
            if message["type"] == 3 && message["invocationId"] == id {
                assert!(message.get("error").is_none(), "{target} failed: {message}");
                break message.get("result").cloned().unwrap_or(Json::Null);
            }
            held.push(message);
        };
        held.append(&mut self.pending);
        self.pending = held;
        result
    }

    /// The next `Message` invocation's argument.
    async fn message(&mut self) -> String {
        loop {
            let message = self.next().await;
            if message["type"] == 1 && message["target"] == "Message" {
                return message["arguments"][0].as_str().unwrap().to_string();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hub_servers_reach_each_other_through_redis() {
    let redis = RedisServer::start().await;
    let connection = redis.connection_string("Diquis");
    let nodes = [hub_node(&connection).await, hub_node(&connection).await, hub_node(&connection).await];
    for node in &nodes {
        assert!(node.manager.wait_until_healthy(DEADLINE).await);
    }
    let mut a = Client::connect(&nodes[0], Some("alice")).await;
    let mut b = Client::connect(&nodes[1], Some("alice")).await;
    let mut c = Client::connect(&nodes[2], Some("bob")).await;

    // All.
    c.invoke("SendToAll", json!(["hello"])).await;
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.message().await, "hello");
    }
    // Others (all except the caller), then a marker proves the caller got nothing.
    a.invoke("SendToOthers", json!(["others"])).await;
    assert_eq!(b.message().await, "others");
    assert_eq!(c.message().await, "others");
    a.invoke("SendToAll", json!(["marker"])).await;
    assert_eq!(a.message().await, "marker");
    assert_eq!(b.message().await, "marker");
    assert_eq!(c.message().await, "marker");

    // Group: a joins on node 0; c is added to the group from node 1 by b (cross-node command).
    a.invoke("JoinGroup", json!(["room"])).await;
    let c_id = c.id.clone();
    b.invoke("AddToGroup", json!([c_id, "room"])).await;
    b.invoke("SendToGroup", json!(["room", "to room"])).await;
    assert_eq!(a.message().await, "to room");
    assert_eq!(c.message().await, "to room");
    c.invoke("SendToOthersInGroup", json!(["room", "room minus c"])).await;
    c.invoke("SendToGroup", json!(["room", "room marker"])).await;
    assert_eq!(a.message().await, "room minus c");
    assert_eq!(a.message().await, "room marker");
    assert_eq!(c.message().await, "room marker");

    // User: alice has a connection on node 0 and on node 1.
    c.invoke("SendToUser", json!(["alice", "hi alice"])).await;
    assert_eq!(a.message().await, "hi alice");
    assert_eq!(b.message().await, "hi alice");

    // Connection on another node.
    let b_id = b.id.clone();
    a.invoke("SendToConnection", json!([b_id, "direct"])).await;
    assert_eq!(b.message().await, "direct");

    // Client result across nodes: a asks c (on node 2) through node 0.
    a.send(json!({"type": 1, "invocationId": "ask", "target": "AskClient", "arguments": [c.id]})).await;
    let request = loop {
        let message = c.next().await;
        if message["type"] == 1 && message["target"] == "GetMessage" {
            break message;
        }
    };
    let invocation_id = request["invocationId"].as_str().unwrap().to_string();
    c.send(json!({"type": 3, "invocationId": invocation_id, "result": "from c"})).await;
    let answer = loop {
        let message = a.next().await;
        if message["type"] == 3 && message["invocationId"] == "ask" {
            break message;
        }
    };
    assert_eq!(answer["result"], "from c", "{answer}");

    // A process that hosts no hub reaches the clients of every node.
    let publisher = RedisPublisher::new(options(&connection)).unwrap();
    assert!(publisher.manager().wait_until_healthy(DEADLINE).await);
    publisher.send_all("Message", vec![signalr_protocol::Value::Json(json!("from jobs"))]).await.unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.message().await, "from jobs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stay_connected_while_redis_restarts() {
    let mut redis = RedisServer::start().await;
    let connection = redis.connection_string("Diquis");
    let nodes = [hub_node(&connection).await, hub_node(&connection).await];
    for node in &nodes {
        assert!(node.manager.wait_until_healthy(DEADLINE).await);
    }
    let mut a = Client::connect(&nodes[0], None).await;
    let mut a2 = Client::connect(&nodes[0], None).await;
    let mut b = Client::connect(&nodes[1], None).await;
    a.invoke("SendToAll", json!(["before"])).await;
    assert_eq!(b.message().await, "before");
    assert_eq!(a.message().await, "before");
    assert_eq!(a2.message().await, "before");

    redis.kill();
    let mut status = nodes[0].manager.watch_status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| !s.is_healthy())).await.unwrap().unwrap();
    // Local delivery goes on: a single-connection send on the same node is written directly.
    let a2_id = a2.id.clone();
    a.invoke("SendToConnection", json!([a2_id, "local"])).await;
    assert_eq!(a2.message().await, "local");
    // A broadcast during the outage is queued, and arrives once Redis is back.
    a.invoke("SendToAll", json!(["during outage"])).await;

    redis.spawn();
    for node in &nodes {
        assert!(node.manager.wait_until_healthy(DEADLINE).await);
    }
    assert_eq!(b.message().await, "during outage");
    assert_eq!(a.message().await, "during outage");
    b.invoke("SendToAll", json!(["after"])).await;
    assert_eq!(a.message().await, "after");
    assert_eq!(b.message().await, "after");
    // Nobody was disconnected: the same sockets still answer.
    assert_eq!(a.invoke("GetConnectionId", json!([])).await, json!(a.id));
    assert_eq!(b.invoke("GetConnectionId", json!([])).await, json!(b.id));
    assert_eq!(a2.message().await, "during outage");
    assert_eq!(a2.message().await, "after");
}
