//! The lifetime manager against a real redis-server: several nodes in one process, each with
//! connections handed to it as the hub layer does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use signalr::hub::lifetime::{HubLifetimeManager, LifetimeError};
use signalr_protocol::{CompletionMessage, CompletionResult, Headers, HubMessage, HubProtocol, Value};
use signalr_redis::{RedisPublisher, invocation};

fn text(target: &str, message: &str) -> Arc<signalr::hub::lifetime::SerializedMessage> {
    invocation(target, vec![Value::Json(json!(message))])
}

fn frame(target: &str, message: &str) -> String {
    format!(r#"{{"type":1,"target":"{target}","arguments":["{message}"]}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_group_user_connection_and_exclusions_across_three_nodes() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "Diquis").await;
    let b = node(&redis, "Diquis").await;
    let c = node(&redis, "Diquis").await;
    let (a1, mut a1_in) = connection("a1", Some("alice"));
    let (b1, mut b1_in) = connection("b1", Some("alice"));
    let (c1, mut c1_in) = connection("c1", Some("bob"));
    a.on_connected(a1).await.unwrap();
    b.on_connected(b1).await.unwrap();
    c.on_connected(c1).await.unwrap();

    // All, from each node, reaches every node (delivered on receipt, also on the sender).
    c.send_all(text("Message", "hello all")).await.unwrap();
    for inbox in [&mut a1_in, &mut b1_in, &mut c1_in] {
        assert_eq!(inbox.next_text().await, frame("Message", "hello all"));
    }

    // AllExcept: b1 excluded; a marker sent afterwards proves b1 got nothing before it.
    a.send_all_except(text("Message", "not b1"), &["b1".into()]).await.unwrap();
    a.send_all(text("Message", "marker1")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "not b1"));
    assert_eq!(c1_in.next_text().await, frame("Message", "not b1"));
    assert_eq!(b1_in.next_text().await, frame("Message", "marker1"));
    assert_eq!(a1_in.next_text().await, frame("Message", "marker1"));
    assert_eq!(c1_in.next_text().await, frame("Message", "marker1"));

    // Group: a1 and c1 join locally; b sends.
    a.add_to_group("a1", "tenant:acme").await.unwrap();
    c.add_to_group("c1", "tenant:acme").await.unwrap();
    b.send_group("tenant:acme", text("Message", "to group")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "to group"));
    assert_eq!(c1_in.next_text().await, frame("Message", "to group"));
    // GroupExcept, then a marker to the same group.
    b.send_group_except("tenant:acme", text("Message", "not c1"), &["c1".into()]).await.unwrap();
    b.send_group("tenant:acme", text("Message", "marker2")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "not c1"));
    assert_eq!(a1_in.next_text().await, frame("Message", "marker2"));
    assert_eq!(c1_in.next_text().await, frame("Message", "marker2"));
    // Groups: a connection in both groups gets it twice, as in .NET.
    a.add_to_group("a1", "second").await.unwrap();
    c.send_groups(&["tenant:acme".into(), "second".into(), String::new()], text("Message", "groups")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "groups"));
    assert_eq!(a1_in.next_text().await, frame("Message", "groups"));
    assert_eq!(c1_in.next_text().await, frame("Message", "groups"));

    // User: alice has a connection on a and on b; exclusions are not applied on user channels.
    c.send_user("alice", text("Message", "to alice")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "to alice"));
    assert_eq!(b1_in.next_text().await, frame("Message", "to alice"));
    c.send_users(&["bob".into(), "alice".into()], text("Message", "users")).await.unwrap();
    assert_eq!(c1_in.next_text().await, frame("Message", "users"));
    assert_eq!(a1_in.next_text().await, frame("Message", "users"));
    assert_eq!(b1_in.next_text().await, frame("Message", "users"));

    // Connection: remote (through Redis) and local (written directly).
    a.send_connection("c1", text("Message", "to c1")).await.unwrap();
    assert_eq!(c1_in.next_text().await, frame("Message", "to c1"));
    a.send_connection("a1", text("Message", "local a1")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "local a1"));
    b.send_connections(&["a1".into(), "b1".into()], text("Message", "conns")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "conns"));
    assert_eq!(b1_in.next_text().await, frame("Message", "conns"));

    // After leaving, a1 no longer gets the group; the user channel survives b1's disconnect.
    a.remove_from_group("a1", "tenant:acme").await.unwrap();
    b.send_group("tenant:acme", text("Message", "after leave")).await.unwrap();
    assert_eq!(c1_in.next_text().await, frame("Message", "after leave"));
    b.on_disconnected("b1").await.unwrap();
    c.send_user("alice", text("Message", "alice again")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "alice again"));
    c.send_all(text("Message", "final")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "final"));
    assert!(a1_in.is_empty(), "a1 got the group message after leaving");

    // Subscriptions follow the local state (ref-counted): check with PUBSUB.
    let mut raw = redis.raw().await;
    let channels: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").arg("Diquis*").query_async(&mut raw).await.unwrap();
    let prefix = format!("Diquis{HUB}");
    assert!(channels.contains(&format!("{prefix}:user:alice")));
    assert!(channels.contains(&format!("{prefix}:group:second")));
    assert!(channels.contains(&format!("{prefix}:connection:a1")));
    assert!(!channels.contains(&format!("{prefix}:connection:b1")), "b1's channel must be gone");
    let all_subscribers: (String, u64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(format!("{prefix}:all")).query_async(&mut raw).await.unwrap();
    assert_eq!(all_subscribers.1, 3);
    assert!(a.counters().published > 0 && a.counters().received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_change_of_a_connection_on_another_node_is_acknowledged() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "P").await;
    let b = node(&redis, "P").await;
    let (a1, mut a1_in) = connection("a1", None);
    let (m1, mut m1_in) = msgpack_connection("m1");
    a.on_connected(a1).await.unwrap();
    a.on_connected(m1).await.unwrap();

    // B adds A's connections; the call returns once A acked (A has subscribed by then).
    b.add_to_group("a1", "g").await.unwrap();
    b.add_to_group("m1", "g").await.unwrap();
    b.send_group("g", text("Message", "via group")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "via group"));
    // The MessagePack connection gets the messagepack entry of the same envelope.
    let packed = m1_in.next().await;
    let mut buf = bytes::BytesMut::from(&packed[..]);
    match signalr_protocol::MessagePackHubProtocol.parse_message(&mut buf, 1 << 20).unwrap() {
        Some(HubMessage::Invocation(invocation)) => assert_eq!(invocation.target, "Message"),
        other => panic!("unexpected {other:?}"),
    }

    b.remove_from_group("a1", "g").await.unwrap();
    b.send_group("g", text("Message", "after remove")).await.unwrap();
    b.send_all(text("Message", "marker")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "marker"));

    // A connection that exists nowhere: no ack; fails after the (shortened) ack timeout.
    let mut short = options(&redis.connection_string("P"));
    short.ack_timeout = Duration::from_millis(300);
    let c = signalr_redis::RedisHubLifetimeManager::new(short).unwrap();
    assert!(c.wait_until_healthy(DEADLINE).await);
    let error = c.add_to_group("nobody", "g").await.unwrap_err();
    assert!(matches!(error, LifetimeError::Timeout(_)), "{error:?}");
}

fn parse_json(frame_text: &str) -> serde_json::Value {
    serde_json::from_str(frame_text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_results_across_nodes() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "P").await;
    let b = node(&redis, "P").await;
    let (a1, mut a1_in) = connection("a1", None);
    a.on_connected(a1).await.unwrap();

    // B invokes a1 (on A); A's client answers; B gets the value.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.invoke_connection("a1", "GetMessage", vec![Value::Json(json!(1))]).await })
    };
    let request = parse_json(&a1_in.next_text().await);
    assert_eq!(request["target"], "GetMessage");
    let invocation_id = request["invocationId"].as_str().unwrap().to_string();
    assert_eq!(invocation_id.len(), 22);
    let completion = CompletionMessage {
        headers: Headers::new(),
        invocation_id: invocation_id.clone(),
        result: CompletionResult::Result(Value::Json(json!("hi"))),
    };
    assert!(a.set_connection_result("a1", completion.clone()).await);
    let value = waiting.await.unwrap().unwrap();
    assert_eq!(value.deserialize::<String>().unwrap(), "hi");
    // A second answer with the same id is not a pending result any more.
    assert!(!a.set_connection_result("a1", completion).await);

    // An error answer.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.invoke_connection("a1", "Fail", vec![]).await })
    };
    let id = parse_json(&a1_in.next_text().await)["invocationId"].as_str().unwrap().to_string();
    assert!(
        a.set_connection_result(
            "a1",
            CompletionMessage { headers: Headers::new(), invocation_id: id, result: CompletionResult::Error("boom".into()) }
        )
        .await
    );
    assert!(matches!(waiting.await.unwrap(), Err(LifetimeError::ClientError(e)) if e == "boom"));

    // The client disconnects before answering: "Connection disconnected." comes back.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.invoke_connection("a1", "Never", vec![]).await })
    };
    a1_in.until("Never").await;
    a.on_disconnected("a1").await.unwrap();
    assert!(matches!(waiting.await.unwrap(), Err(LifetimeError::Disconnected(id)) if id == "a1"));

    // No node holds the connection: PUBLISH reaches nobody.
    let error = b.invoke_connection("ghost", "X", vec![]).await.unwrap_err();
    assert!(matches!(error, LifetimeError::UnknownConnection(id) if id == "ghost"));

    // A local client result never touches Redis.
    let (b1, mut b1_in) = connection("b1", None);
    b.on_connected(b1).await.unwrap();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.invoke_connection("b1", "Local", vec![]).await })
    };
    let id = parse_json(&b1_in.next_text().await)["invocationId"].as_str().unwrap().to_string();
    assert!(
        b.set_connection_result(
            "b1",
            CompletionMessage { headers: Headers::new(), invocation_id: id, result: CompletionResult::Result(Value::Json(json!(42))) }
        )
        .await
    );
    assert_eq!(waiting.await.unwrap().unwrap().deserialize::<i64>().unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_without_connections_reaches_every_node() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "Diquis").await;
    let b = node(&redis, "Diquis").await;
    let (a1, mut a1_in) = connection("a1", Some("u1"));
    let (b1, mut b1_in) = connection("b1", None);
    a.on_connected(a1).await.unwrap();
    b.on_connected(b1).await.unwrap();

    let publisher = RedisPublisher::new(options(&redis.connection_string("Diquis"))).unwrap();
    assert!(publisher.manager().wait_until_healthy(DEADLINE).await);
    publisher.send_all("TenantCreated", vec![Value::Json(json!({"tenantId": "t1"}))]).await.unwrap();
    let expected = r#"{"type":1,"target":"TenantCreated","arguments":[{"tenantId":"t1"}]}"#;
    assert_eq!(a1_in.next_text().await, expected);
    assert_eq!(b1_in.next_text().await, expected);
    publisher.add_to_group("b1", "admins").await.unwrap();
    publisher.send_group("admins", "Message", vec![Value::Json(json!("g"))]).await.unwrap();
    assert_eq!(b1_in.next_text().await, frame("Message", "g"));
    publisher.send_user("u1", "Message", vec![Value::Json(json!("u"))]).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "u"));
    publisher.send_connection("b1", "Message", vec![Value::Json(json!("c"))]).await.unwrap();
    assert_eq!(b1_in.next_text().await, frame("Message", "c"));
    // The hub layer's HubContext can be built over the same manager.
    let context = signalr::HubContext::new(publisher.manager().clone());
    context.clients().all().send("Message", ("ctx".to_string(),)).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "ctx"));
    assert_eq!(b1_in.next_text().await, frame("Message", "ctx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_channel_is_logged_and_skipped() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "P").await;
    let (a1, mut a1_in) = connection("a1", Some("u"));
    a.on_connected(a1).await.unwrap();
    a.add_to_group("a1", "g").await.unwrap();
    let channels = a.channels().clone();
    let mut raw = redis.raw().await;
    let garbage: Vec<(String, Vec<u8>)> = vec![
        (channels.all(), b"not messagepack at all".to_vec()),
        (channels.all(), vec![0x92, 0x90, 0x81, 0xa4, b'j', b's']),
        (channels.all(), vec![0x91, 0x90]),
        (channels.all(), vec![]),
        (channels.group("g"), vec![0x92, 0x90, 0x81, 0xa4, b'j', b's', b'o', b'n', 0xc4, 0x50, b'{']),
        (channels.user("u"), vec![0xc1]),
        (channels.connection("a1"), vec![0x94, 0x90, 0x80, 0x01]),
        (channels.group_management(), vec![0x94, 0x01, 0xa1, b'S', 0x01, 0xa1, b'G']),
        (channels.group_management(), vec![0x95, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (channels.ack(a.server_name()), vec![0x90]),
        (channels.return_results(a.server_name()), vec![0x91, 0xa4, b'j', b's', b'o', b'n']),
        (channels.return_results(a.server_name()), vec![0x92, 0xa3, b'f', b'o', b'o', 0xc4, 0x01, 0x2a]),
        (channels.return_results(a.server_name()), vec![0x92, 0xa4, b'j', b's', b'o', b'n', 0xc4, 0x01, b'{']),
    ];
    let invalid_before = a.counters().invalid;
    for (channel, payload) in &garbage {
        let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut raw).await.unwrap();
    }
    // An envelope with only an unknown protocol entry: valid, but nothing for a JSON client.
    let unknown = signalr_redis::protocol::write_invocation(&[] as &[&str], &[("blazorpack", b"\x01")], None);
    let _: i64 = redis::cmd("PUBLISH").arg(channels.all()).arg(unknown).query_async(&mut raw).await.unwrap();
    // Then a good message: it arrives first, so everything before it was skipped.
    a.send_all(text("Message", "still alive")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "still alive"));
    eventually("every bad message counted", || a.counters().invalid >= invalid_before + garbage.len() as u64).await;
    assert!(a.status().is_healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_traffic() {
    let mut redis = RedisServer::start().await;
    let a = node(&redis, "P").await;
    let b = node(&redis, "P").await;
    let (a1, mut a1_in) = connection("a1", None);
    let (a2, mut a2_in) = connection("a2", None);
    let (b1, mut b1_in) = connection("b1", Some("bob"));
    a.on_connected(a1).await.unwrap();
    a.on_connected(a2).await.unwrap();
    b.on_connected(b1).await.unwrap();
    b.add_to_group("b1", "g").await.unwrap();
    a.send_all(text("Message", "before")).await.unwrap();
    assert_eq!(b1_in.next_text().await, frame("Message", "before"));
    a1_in.until("before").await;
    a2_in.until("before").await;

    // Traffic: a steady stream of broadcasts from A.
    let sender = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                a.send_all(text("Tick", &i.to_string())).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    b1_in.until("Tick").await;
    redis.kill();
    let mut down = a.watch_status();
    tokio::time::timeout(DEADLINE, down.wait_for(|s| !s.is_healthy())).await.unwrap().unwrap();

    // While Redis is away: local single-connection sends still work; sends are queued.
    a.send_connection("a2", text("Message", "local during outage")).await.unwrap();
    assert_eq!(a2_in.until("local during outage").await, frame("Message", "local during outage"));
    a.send_group("g", text("Message", "group during outage")).await.unwrap();
    a.send_user("bob", text("Message", "user during outage")).await.unwrap();
    a.send_all(text("Message", "all during outage")).await.unwrap();
    assert!(a.counters().queued > 0);
    assert!(!a.status().is_healthy());
    assert!(a.status().last_error.is_some());

    redis.spawn();
    assert!(a.wait_until_healthy(DEADLINE).await);
    assert!(b.wait_until_healthy(DEADLINE).await);
    sender.await.unwrap();
    // Everything published during the outage arrives, after the nodes re-subscribed.
    b1_in.until("group during outage").await;
    b1_in.until("user during outage").await;
    b1_in.until("all during outage").await;
    a1_in.until("all during outage").await;
    // The last tick reaches the other node: cross-node delivery resumed.
    b1_in.until(r#""arguments":["199"]"#).await;
    // Subscriptions of connections, groups and users were re-issued.
    a.send_connection("b1", text("Message", "conn after")).await.unwrap();
    assert_eq!(b1_in.until("conn after").await, frame("Message", "conn after"));
    a.send_group("g", text("Message", "group after")).await.unwrap();
    assert_eq!(b1_in.until("group after").await, frame("Message", "group after"));
    assert!(a.counters().reconnects >= 1 && b.counters().reconnects >= 1);
    assert_eq!(a.counters().dropped, 0);
    assert_eq!(a.local_connection_count(), 2, "no local connection was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absent_at_start_then_started() {
    let port = free_port();
    let connection_string = format!("127.0.0.1:{port},channelPrefix=P,abortConnect=true");
    let a = Arc::new(signalr_redis::RedisHubLifetimeManager::new(options(&connection_string)).unwrap());
    let b = Arc::new(signalr_redis::RedisHubLifetimeManager::new(options(&connection_string)).unwrap());
    let (a1, mut a1_in) = connection("a1", None);
    let (b1, mut b1_in) = connection("b1", None);
    // Connections are accepted while Redis is away, and local sends work.
    a.on_connected(a1).await.unwrap();
    b.on_connected(b1).await.unwrap();
    a.send_connection("a1", text("Message", "local")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "local"));
    let mut status = a.watch_status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.last_error.as_deref().is_some_and(|e| e != "connecting"))).await.unwrap().unwrap();
    assert!(!a.status().is_healthy());

    let mut redis = RedisServer::configured(port, Vec::new());
    redis.spawn();
    assert!(a.wait_until_healthy(DEADLINE).await);
    assert!(b.wait_until_healthy(DEADLINE).await);
    a.send_connection("b1", text("Message", "cross")).await.unwrap();
    assert_eq!(b1_in.next_text().await, frame("Message", "cross"));
    b.send_all(text("Message", "all")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "all"));
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl CLI.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(status.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&status.stderr));
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca"]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_password_and_acl_user() {
    let tls_port = free_port();
    let certificates = RedisServer::configured(0, Vec::new());
    make_certificates(&certificates.dir);
    let dir = certificates.dir.display().to_string();
    // `--port 0`: TLS only.
    let mut redis_tls = RedisServer::configured(
        0,
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            format!("{dir}/server.crt"),
            "--tls-key-file".into(),
            format!("{dir}/server.key"),
            "--tls-ca-cert-file".into(),
            format!("{dir}/ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
            "--requirepass".into(),
            "s3cret".into(),
            "--user".into(),
            "alice".into(),
            "on".into(),
            ">alicepw".into(),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ],
    );
    redis_tls.spawn();
    let ca = std::fs::read(format!("{dir}/ca.crt")).unwrap();

    let password_node = |connection_string: String| {
        let options = options(&connection_string).with_tls_root_certificates(ca.clone());
        Arc::new(signalr_redis::RedisHubLifetimeManager::new(options).unwrap())
    };
    // StackExchange.Redis form with a password, and a rediss:// URL with an ACL user.
    let a = password_node(format!("127.0.0.1:{tls_port},ssl=True,password=s3cret,abortConnect=False,channelPrefix=T"));
    let b = password_node(format!("rediss://alice:alicepw@127.0.0.1:{tls_port}?channelPrefix=T"));
    assert!(a.wait_until_healthy(DEADLINE).await, "{:?}", a.status());
    assert!(b.wait_until_healthy(DEADLINE).await, "{:?}", b.status());
    let (b1, mut b1_in) = connection("b1", None);
    b.on_connected(b1).await.unwrap();
    a.send_all(text("Message", "over tls")).await.unwrap();
    assert_eq!(b1_in.next_text().await, frame("Message", "over tls"));

    // A wrong password stays unhealthy and says why.
    let wrong = password_node(format!("127.0.0.1:{tls_port},ssl=true,password=wrong,channelPrefix=T"));
    let mut status = wrong.watch_status();
    let seen = tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| s.last_error.as_deref().is_some_and(|e| e.contains("WRONGPASS") || e.to_lowercase().contains("auth"))),
    )
    .await;
    assert!(seen.is_ok(), "{:?}", wrong.status());
    assert!(!wrong.status().is_healthy());
    // Without the test CA the server certificate is refused.
    let untrusted =
        Arc::new(signalr_redis::RedisHubLifetimeManager::new(options(&format!("127.0.0.1:{tls_port},ssl=true,password=s3cret"))).unwrap());
    let mut status = untrusted.watch_status();
    let seen = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.last_error.as_deref().is_some_and(|e| e != "connecting"))).await;
    assert!(seen.is_ok());
    assert!(!untrusted.status().is_healthy());
    drop(redis_tls);
    drop(certificates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_pings_keep_the_subscriber_healthy() {
    let redis = RedisServer::start().await;
    let mut options = options(&redis.connection_string("P"));
    options.link.keepalive_interval = Duration::from_millis(20);
    let a = signalr_redis::RedisHubLifetimeManager::new(options).unwrap();
    assert!(a.wait_until_healthy(DEADLINE).await);
    let mut status = a.watch_status();
    status.borrow_and_update();
    // Some 25 keepalive periods: a PING answered wrongly would mark the node unhealthy.
    let changed = tokio::time::timeout(Duration::from_millis(500), status.changed()).await;
    assert!(changed.is_err(), "status changed while idle: {:?}", a.status());
    assert_eq!(a.counters().reconnects, 0);
    // And it still delivers.
    let (a1, mut a1_in) = connection("a1", None);
    a.on_connected(a1).await.unwrap();
    a.send_all(text("Message", "alive")).await.unwrap();
    assert_eq!(a1_in.next_text().await, frame("Message", "alive"));
}
