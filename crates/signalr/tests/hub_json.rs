//! Hub behaviour over raw WebSockets with the JSON protocol: handshake, invocations, exact
//! error texts, streams in both directions, client results, groups and the rest of §4.

mod common;

use std::time::Duration;

use common::{Client, Protocol, Received, start};
use serde_json::json;
use signalr::HubOptions;

fn detailed() -> HubOptions {
    HubOptions::default().enable_detailed_errors(true)
}

async fn handshake_error(request: &[u8], options: HubOptions) -> String {
    let server = start(options).await;
    let mut client = Client::open(server.addr, "/hub").await;
    client.send_text(String::from_utf8(request.to_vec()).unwrap()).await;
    let frame = client.next_frame().await.expect("an error response");
    let data = frame.into_data();
    assert_eq!(data.last(), Some(&0x1e));
    let response: serde_json::Value = serde_json::from_slice(&data[..data.len() - 1]).unwrap();
    assert!(client.next_frame().await.is_none(), "the server closes after a handshake error");
    response["error"].as_str().expect("error text").to_owned()
}

#[tokio::test]
async fn handshake_errors_have_the_exact_texts() {
    assert_eq!(
        handshake_error(b"{\"protocol\":\"CustomProtocol\",\"version\":1}\x1e", HubOptions::default()).await,
        "The protocol 'CustomProtocol' is not supported."
    );
    assert_eq!(
        handshake_error(b"{\"protocol\":\"json\",\"version\":3}\x1e", HubOptions::default()).await,
        "The server does not support version 3 of the 'json' protocol."
    );
    assert_eq!(
        handshake_error(b"{\"protocol\":\"json\"}\x1e", HubOptions::default()).await,
        "An unexpected error occurred during connection handshake."
    );
    assert!(
        handshake_error(b"not json\x1e", detailed())
            .await
            .starts_with("An unexpected error occurred during connection handshake. InvalidDataException: ")
    );
}

#[tokio::test]
async fn handshake_timeout_and_oversize_cancel_the_handshake() {
    let options = HubOptions::default().handshake_timeout(Duration::from_millis(200));
    let server = start(options).await;
    let mut client = Client::open(server.addr, "/hub").await;
    client.send_text("{\"protocol\":").await; // never finished
    let data = client.next_frame().await.expect("error response").into_data();
    assert_eq!(&data[..], b"{\"error\":\"Handshake was canceled.\"}\x1e");

    let options = HubOptions::default().maximum_receive_message_size(64);
    let server = start(options).await;
    let mut client = Client::open(server.addr, "/hub").await;
    client.send_text(format!("{{\"protocol\":\"json\",\"version\":1,\"x\":\"{}\"", "a".repeat(100))).await;
    let data = client.next_frame().await.expect("error response").into_data();
    assert_eq!(&data[..], b"{\"error\":\"Handshake was canceled.\"}\x1e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connection_to_a_hub_idle_longer_than_the_handshake_timeout_connects() {
    // The hub's clock starts with the hub; its heartbeat task only with the first connection.
    // The first handshake's deadline must be counted from the connection's arrival, not from
    // the hub's start, or a hub idle past the timeout cancels its first handshake at once.
    let options = HubOptions::default().handshake_timeout(Duration::from_secs(2));
    let server = start(options).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await; // the precondition: an idle hub
    let mut client = Client::open(server.addr, "/hub").await;
    // A client takes a moment to send its handshake (well within the timeout); meanwhile the
    // heartbeat task starts and makes its first pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.handshake(Protocol::Json, 1).await;
    assert_eq!(client.invoke("1", "Echo", json!(["first"])).await, json!({"type":3,"invocationId":"1","result":"first"}));
}

#[tokio::test]
async fn chunked_handshake_and_handshake_combined_with_an_invocation() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::open(server.addr, "/hub").await;
    client.send_text("{\"protocol\":").await;
    client.send_text("\"json\",\"ver").await;
    client.send_text("sion\":1}\x1e").await;
    assert_eq!(&client.next_frame().await.unwrap().into_data()[..], b"{}\x1e");
    assert_eq!(client.invoke("1", "Echo", json!(["x"])).await, json!({"type":3,"invocationId":"1","result":"x"}));

    let mut client = Client::open(server.addr, "/hub").await;
    client.protocol = Protocol::Json;
    client
        .send_text("{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":1,\"invocationId\":\"7\",\"target\":\"Echo\",\"arguments\":[\"same frame\"]}\x1e")
        .await;
    let first = client.next_frame().await.unwrap().into_data();
    assert_eq!(&first[..3], b"{}\x1e");
    let completion = if first.len() > 3 {
        serde_json::from_slice::<serde_json::Value>(&first[3..first.len() - 1]).unwrap()
    } else {
        client.next_json().await
    };
    assert_eq!(completion, json!({"type":3,"invocationId":"7","result":"same frame"}));
}

#[tokio::test]
async fn echo_is_case_insensitive_and_void_returns_null() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    assert_eq!(client.invoke("0", "echo", json!(["hi"])).await, json!({"type":3,"invocationId":"0","result":"hi"}));
    assert_eq!(client.invoke("1", "ADD", json!([2, 3])).await, json!({"type":3,"invocationId":"1","result":5}));
    assert_eq!(client.invoke("2", "Void", json!([])).await, json!({"type":3,"invocationId":"2","result":null}));
    // `type` last and unknown properties, as the JS client writes them.
    client.send_text("{\"arguments\":[\"z\"],\"invocationId\":\"3\",\"extra\":{\"a\":1},\"target\":\"Echo\",\"type\":1}\x1e").await;
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"3","result":"z"}));
}

#[tokio::test]
async fn errors_use_the_exact_dotnet_texts() {
    let server = start(detailed()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    assert_eq!(
        client.invoke("1", "ThrowException", json!(["An error occurred."])).await["error"],
        "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred."
    );
    assert_eq!(
        client.invoke("2", "Nope", json!([])).await["error"],
        "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
    );
    assert_eq!(
        client.invoke("3", "Echo", json!(["a", "b"])).await["error"],
        "Failed to invoke 'Echo' due to an error on the server. InvalidDataException: Invocation provides 2 argument(s) but target expects 1."
    );
    assert_eq!(
        client.invoke("4", "Add", json!(["x", 1])).await["error"],
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
    );
    assert_eq!(
        client.invoke("5", "EmptyStream", json!([])).await["error"],
        "The client attempted to invoke the streaming 'EmptyStream' method with a non-streaming invocation."
    );
    client.send(json!({"type":4,"invocationId":"6","target":"Echo","arguments":["x"]})).await;
    assert_eq!(
        client.next_json().await["error"],
        "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
    );
    client.send(json!({"type":4,"invocationId":"7","target":"StreamThrowException","arguments":["An error occurred."]})).await;
    assert_eq!(
        client.next_json().await,
        json!({"type":3,"invocationId":"7","error":"An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred."})
    );
    client.send(json!({"type":4,"invocationId":"8","target":"StreamFails","arguments":[]})).await;
    assert_eq!(client.next_json().await, json!({"type":2,"invocationId":"8","item":1}));
    assert_eq!(client.next_json().await["error"], "An error occurred on the server while streaming results. IOException: disk gone");
}

#[tokio::test]
async fn without_detailed_errors_only_hub_exceptions_show_details() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    assert_eq!(
        client.invoke("1", "ThrowException", json!(["secret"])).await["error"],
        "An unexpected error occurred invoking 'ThrowException' on the server."
    );
    assert_eq!(
        client.invoke("2", "ThrowHubException", json!(["for you"])).await["error"],
        "An unexpected error occurred invoking 'ThrowHubException' on the server. HubException: for you"
    );
    assert_eq!(client.invoke("3", "Echo", json!([])).await["error"], "Failed to invoke 'Echo' due to an error on the server.");
    // An unknown method is a HubException from the binder: its detail always shows.
    assert_eq!(
        client.invoke("4", "NonExistentMethod", json!([])).await["error"],
        "Failed to invoke 'NonExistentMethod' due to an error on the server. HubException: Method does not exist."
    );
}

#[tokio::test]
async fn non_blocking_invocations_get_no_reply_even_on_error() {
    let server = start(detailed()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"target":"ThrowException","arguments":["x"]})).await;
    client.send(json!({"type":1,"target":"Unknown","arguments":[]})).await;
    client.send(json!({"type":1,"target":"Echo","arguments":[1, 2]})).await;
    client.send(json!({"type":1,"target":"Echo","arguments":["fire and forget"]})).await;
    assert_eq!(client.invoke("9", "Echo", json!(["after"])).await, json!({"type":3,"invocationId":"9","result":"after"}));
}

#[tokio::test]
async fn unknown_message_types_are_skipped() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":99,"whatever":true})).await;
    assert_eq!(client.invoke("1", "Echo", json!(["still here"])).await["result"], "still here");
}

#[tokio::test]
async fn server_streams_and_cancellation() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":4,"invocationId":"1","target":"Stream","arguments":[]})).await;
    for item in ["a", "b", "c"] {
        assert_eq!(client.next_json().await, json!({"type":2,"invocationId":"1","item":item}));
    }
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"1"}));

    client.send(json!({"type":4,"invocationId":"2","target":"InfiniteStream","arguments":[]})).await;
    client.send(json!({"type":4,"invocationId":"2","target":"InfiniteStream","arguments":[]})).await;
    assert_eq!(client.next_json().await["error"], "Invocation ID '2' is already in use.");
    client.send(json!({"type":5,"invocationId":"2"})).await;
    let mut seen = [client.next_json().await, client.next_json().await];
    seen.sort_by_key(|m| m["type"].as_u64());
    assert_eq!(seen[0], json!({"type":1,"target":"StreamCanceled","arguments":[]}));
    assert_eq!(seen[1], json!({"type":3,"invocationId":"2"}));

    // Cancelled in the same frame as the start: the method still runs and sees the cancellation.
    client
        .send_text(
            "{\"type\":4,\"invocationId\":\"3\",\"target\":\"InfiniteStream\",\"arguments\":[]}\x1e{\"type\":5,\"invocationId\":\"3\"}\x1e",
        )
        .await;
    let mut seen = [client.next_json().await, client.next_json().await];
    seen.sort_by_key(|m| m["type"].as_u64());
    assert_eq!(seen[0], json!({"type":1,"target":"StreamCanceled","arguments":[]}));
    assert_eq!(seen[1], json!({"type":3,"invocationId":"3"}));
}

#[tokio::test]
async fn upload_streams_are_consumed_while_the_receive_loop_keeps_going() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"StreamingConcat","arguments":[],"streamIds":["2"]})).await;
    // A second invocation while the stream is open: dispatch must not be blocked by it.
    assert_eq!(client.invoke("3", "Echo", json!(["meanwhile"])).await["result"], "meanwhile");
    for part in ["Hello ", "world", "!"] {
        client.send(json!({"type":2,"invocationId":"2","item":part})).await;
    }
    client.send(json!({"type":3,"invocationId":"2"})).await;
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"1","result":"Hello world!"}));

    client.send(json!({"type":1,"invocationId":"4","target":"StreamingConcat","arguments":[],"streamIds":["5"]})).await;
    client.send(json!({"type":2,"invocationId":"5","item":"x"})).await;
    client.send(json!({"type":3,"invocationId":"5","error":"Something bad"})).await;
    assert_eq!(
        client.next_json().await["error"],
        "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad"
    );

    client.send(json!({"type":1,"invocationId":"6","target":"StreamingConcat","arguments":[],"streamIds":["7","8"]})).await;
    assert_eq!(
        client.next_json().await["error"],
        "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Client sent 2 stream(s), Hub method expects 1."
    );
    // Items for unknown streams are ignored.
    client.send(json!({"type":2,"invocationId":"99","item":"x"})).await;
    assert_eq!(client.invoke("10", "Echo", json!(["ok"])).await["result"], "ok");
}

#[tokio::test]
async fn client_results_from_a_hub_method_and_from_the_hub_context() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"AskCaller","arguments":[]})).await;
    let request = client.next_json().await;
    assert_eq!(request["type"], 1);
    assert_eq!(request["target"], "Result");
    let id = request["invocationId"].as_str().unwrap().to_owned();
    assert!(id.starts_with('s'), "server ids are s<n>: {id}");
    client.send(json!({"type":3,"invocationId":id,"result":41})).await;
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"1","result":42}));

    let connection_id = client.invoke("2", "ConnectionId", json!([])).await["result"].as_str().unwrap().to_owned();
    let context = server.context.clone();
    let waiting = tokio::spawn({
        let connection_id = connection_id.clone();
        async move { context.clients().client(connection_id).invoke::<i32, _>("Result", ()).await }
    });
    let request = client.next_json().await;
    client.send(json!({"type":3,"invocationId":request["invocationId"],"error":"Client didn't provide a result."})).await;
    let error = waiting.await.unwrap().unwrap_err();
    assert_eq!(error.message(), "Client didn't provide a result.");

    let error = server.context.clients().client("nobody").invoke::<i32, _>("Result", ()).await.unwrap_err();
    assert_eq!(error.message(), "Connection 'nobody' does not exist.");
}

#[tokio::test]
async fn groups_users_all_others_and_exclusions() {
    let server = start(HubOptions::default()).await;
    let mut a = Client::connect(server.addr, Protocol::Json).await;
    let mut b = Client::connect(server.addr, Protocol::Json).await;
    let mut c = Client::connect(server.addr, Protocol::Json).await;
    let b_id = b.invoke("0", "ConnectionId", json!([])).await["result"].as_str().unwrap().to_owned();
    assert_eq!(a.invoke("1", "JoinGroup", json!(["g"])).await["result"], serde_json::Value::Null);
    assert_eq!(b.invoke("1", "JoinGroup", json!(["g"])).await["result"], serde_json::Value::Null);

    let message = |text: &str| json!({"type":1,"target":"Message","arguments":[text]});

    // Group: a and b, not c. The sender's own completion may come before or after its message.
    c.invoke("2", "SendToGroup", json!(["g", "to group"])).await;
    assert_eq!(a.next_json().await, message("to group"));
    assert_eq!(b.next_json().await, message("to group"));

    // Others in group from a: only b.
    a.send(json!({"type":1,"invocationId":"3","target":"SendToOthersInGroup","arguments":["g","others in group"]})).await;
    assert_eq!(a.next_json().await["invocationId"], "3");
    assert_eq!(b.next_json().await, message("others in group"));

    // All except b.
    a.send(json!({"type":1,"invocationId":"4","target":"SendToAllExcept","arguments":[b_id.clone(),"not b"]})).await;
    let mut got = [a.next_json().await, a.next_json().await];
    got.sort_by_key(|m| m["type"].as_u64());
    assert_eq!(got[0], message("not b"));
    assert_eq!(c.next_json().await, message("not b"));

    // Connection.
    c.invoke("5", "SendToConnection", json!([b_id, "direct"])).await;
    assert_eq!(b.next_json().await, message("direct"));

    // Others from c: a and b.
    c.invoke("6", "SendToOthers", json!(["others"])).await;
    assert_eq!(a.next_json().await, message("others"));
    assert_eq!(b.next_json().await, message("others"));

    // After leaving, b gets no group message; everybody gets the broadcast that follows, which
    // proves b received nothing in between.
    b.invoke("7", "LeaveGroup", json!(["g"])).await;
    c.invoke("8", "SendToGroup", json!(["g", "g again"])).await;
    assert_eq!(a.next_json().await, message("g again"));
    server.context.clients().all().send("Message", ("from context",)).await.unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.next_json().await, message("from context"));
    }
    // Users: anonymous connections have no user, so nobody receives.
    c.invoke("9", "SendToUser", json!(["someone", "user"])).await;
    server.context.clients().all().send("Message", ("end",)).await.unwrap();
    assert_eq!(a.next_json().await, message("end"));
}

#[tokio::test]
async fn parallel_invocations_are_limited_and_queued_in_order() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"Block","arguments":[]})).await;
    client.send(json!({"type":1,"invocationId":"2","target":"Echo","arguments":["queued"]})).await;
    // Streams are not limited: this completes while Block holds the only slot.
    client.send(json!({"type":4,"invocationId":"3","target":"EmptyStream","arguments":[]})).await;
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"3"}));
    server.gate.add_permits(1);
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"1","result":"unblocked"}));
    assert_eq!(client.next_json().await, json!({"type":3,"invocationId":"2","result":"queued"}));

    let server = start(HubOptions::default().maximum_parallel_invocations_per_client(2)).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"Block","arguments":[]})).await;
    assert_eq!(client.invoke("2", "Echo", json!(["runs alongside"])).await["invocationId"], "2");
    server.gate.add_permits(1);
    assert_eq!(client.next_json().await["invocationId"], "1");
}

#[tokio::test]
async fn oversized_messages_close_the_connection() {
    let server = start(detailed().maximum_receive_message_size(1024)).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"Echo","arguments":["x".repeat(2000)]})).await;
    let close = client.next_json().await;
    assert_eq!(
        close,
        json!({"type":7,"error":"Connection closed with an error. InvalidDataException: The maximum message size of 1024B was exceeded. The message size can be configured in AddHubOptions."})
    );
    assert!(client.next_any().await.is_none());
}

#[tokio::test]
async fn invalid_json_closes_with_an_error() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send_text("{not json}\x1e").await;
    assert_eq!(client.next_json().await, json!({"type":7,"error":"Connection closed with an error."}));
    assert!(client.next_any().await.is_none());
}

#[tokio::test]
async fn keep_alive_pings_and_client_timeout() {
    let options = HubOptions::default().keep_alive_interval(Duration::from_millis(100)).client_timeout_interval(Duration::from_millis(400));
    let server = start(options).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    // Without a client ping the timeout does not apply: pings keep coming.
    for _ in 0..3 {
        assert_eq!(client.next_any().await.unwrap().json(), json!({"type":6}));
    }
    client.send(json!({"type":6})).await;
    // Now silent: the server gives up and allows a reconnect.
    let close = loop {
        let message = client.next_any().await.expect("close message").json();
        if message["type"] != 6 {
            break message;
        }
    };
    assert_eq!(close, json!({"type":7,"error":"Connection closed with an error.","allowReconnect":true}));
    assert!(client.next_any().await.is_none());
}

#[tokio::test]
async fn close_from_the_client_is_answered_and_abort_closes_without_reconnect() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":7})).await;
    assert_eq!(client.next_json().await, json!({"type":7}));
    assert!(client.next_any().await.is_none());

    let mut client = Client::connect(server.addr, Protocol::Json).await;
    client.send(json!({"type":1,"invocationId":"1","target":"Abort","arguments":[]})).await;
    let seen = client.until_closed().await;
    assert!(seen.contains(&Received::Json(json!({"type":7}))), "{seen:?}");
}

#[tokio::test]
async fn per_connection_context_items_and_query() {
    let server = start(HubOptions::default()).await;
    let mut client = Client::open(server.addr, "/hub?Flavour=mint").await;
    client.handshake(Protocol::Json, 1).await;
    assert_eq!(client.invoke("1", "GetItem", json!([])).await["result"], serde_json::Value::Null);
    client.invoke("2", "SetItem", json!(["kept"])).await;
    assert_eq!(client.invoke("3", "GetItem", json!([])).await["result"], "kept");
    assert_eq!(client.invoke("4", "GetQuery", json!(["flavour"])).await["result"], "mint");
    assert_eq!(client.invoke("5", "Transport", json!([])).await["result"], "WebSockets");
}
