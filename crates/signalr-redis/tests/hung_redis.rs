//! A Redis that stops answering without closing anything (SIGSTOP: a stalled server, a network
//! partition without RST): the nodes report it within the command timeout, an acknowledged
//! send fails instead of being reported sent, and when Redis resumes the nodes are healthy
//! again by themselves and acknowledged sends reach the subscribed connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use signalr::hub::lifetime::{HubLifetimeManager, LifetimeError};
use signalr_protocol::Value;
use signalr_redis::{Recipients, RedisHubLifetimeManager, invocation};

/// A node that notices a hang quickly: commands time out after 500 ms, PING every 200 ms.
async fn quick_node(redis: &RedisServer) -> Arc<RedisHubLifetimeManager> {
    let mut options = options(&format!("{},syncTimeout=500", redis.connection_string("hung")));
    options.link.keepalive_interval = Duration::from_millis(200);
    let manager = Arc::new(RedisHubLifetimeManager::new(options).unwrap());
    assert!(manager.wait_until_healthy(DEADLINE).await, "node did not become healthy: {:?}", manager.status());
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_is_reported_and_acknowledged_sends_fail_until_it_resumes() {
    let redis = RedisServer::start().await;
    let receiver = quick_node(&redis).await;
    let sender = quick_node(&redis).await;
    let (connection, mut inbox) = connection("c1", None);
    receiver.on_connected(connection).await.unwrap();
    receiver.add_to_group("c1", "admins").await.unwrap();

    let receivers = sender
        .send_acknowledged(Recipients::Group("admins"), &invocation("Note", vec![Value::Json(serde_json::json!(1))]), DEADLINE)
        .await
        .unwrap();
    assert_eq!(receivers, 1, "Redis handed the message to the one subscribed node");
    assert!(inbox.until("Note").await.contains("[1]"));

    redis.signal("STOP");
    // Published into the frozen Redis before anyone can tell: no acknowledgement, an error.
    let frozen = sender
        .send_acknowledged(
            Recipients::Group("admins"),
            &invocation("Note", vec![Value::Json(serde_json::json!(2))]),
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(frozen, Err(LifetimeError::Timeout(_))), "unacknowledged send must fail, got {frozen:?}");
    // Both nodes see the hang (health checks, not a closed socket).
    for node in [&sender, &receiver] {
        let mut status = node.watch_status();
        tokio::time::timeout(DEADLINE, status.wait_for(|s| !s.is_healthy())).await.expect("the hang is reported").unwrap();
        let error = node.status().last_error.unwrap_or_default();
        assert!(error.contains("did not answer"), "the reason names the silence: {error}");
    }
    let refused =
        sender.send_acknowledged(Recipients::Group("admins"), &invocation("Note", vec![Value::Json(serde_json::json!(3))]), DEADLINE).await;
    assert!(matches!(refused, Err(LifetimeError::Backplane(_))), "while unhealthy an acknowledged send fails at once, got {refused:?}");

    redis.signal("CONT");
    for node in [&sender, &receiver] {
        assert!(node.wait_until_healthy(DEADLINE).await, "healthy again after SIGCONT: {:?}", node.status());
    }
    let receivers = sender
        .send_acknowledged(Recipients::Group("admins"), &invocation("Note", vec![Value::Json(serde_json::json!(4))]), DEADLINE)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let text = inbox.until("[4]").await;
    assert!(text.contains("Note"));
}
