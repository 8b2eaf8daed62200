//! The functional-test server against §7.1: HTTP endpoints with reqwest, `TestHub` with a raw
//! WebSocket client, and the binary's command line.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signalr_testserver::{AppArgs, build};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const HANG_GUARD: Duration = Duration::from_secs(10);

async fn start() -> SocketAddr {
    let app = build(AppArgs::default()).router;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { signalr_connections::server::serve(listener, app, Default::default(), std::future::pending()).await.unwrap() },
    );
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct HubClient {
    ws: Ws,
    pending: Vec<Value>,
}

impl HubClient {
    async fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HubClient {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), http::HeaderValue::from_str(value).unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut client = HubClient { ws, pending: Vec::new() };
        client.ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")).await.unwrap();
        let first = client.read_frame().await.expect("handshake response");
        assert_eq!(&first[..3], b"{}\x1e");
        client.split(&first[3..]);
        client
    }

    async fn read_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            match tokio::time::timeout(HANG_GUARD, self.ws.next()).await.expect("in time")? {
                Ok(Message::Text(text)) => return Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => return Some(bytes.to_vec()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn split(&mut self, bytes: &[u8]) {
        for part in bytes.split(|b| *b == 0x1e).filter(|p| !p.is_empty()) {
            let value: Value = serde_json::from_slice(part).unwrap();
            if value["type"] != 6 {
                self.pending.push(value);
            }
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            if !self.pending.is_empty() {
                return self.pending.remove(0);
            }
            let frame = self.read_frame().await.expect("open connection");
            self.split(&frame);
        }
    }

    async fn send(&mut self, message: Value) {
        self.ws.send(Message::text(format!("{message}\x1e"))).await.unwrap();
    }

    async fn invoke(&mut self, id: &str, target: &str, arguments: Value) -> Value {
        self.send(json!({"type":1,"invocationId":id,"target":target,"arguments":arguments})).await;
        self.next().await
    }
}

#[tokio::test]
async fn test_hub_methods_match_the_functional_tests() {
    let addr = start().await;
    let mut client =
        HubClient::connect(addr, "/testhub?numRedirects=3", &[("x-header", "custom value"), ("cookie", "testCookie=testValue")]).await;
    assert_eq!(client.invoke("0", "Echo", json!(["hi"])).await["result"], "hi");
    assert_eq!(
        client.invoke("1", "ThrowException", json!(["An error occurred."])).await["error"],
        "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred."
    );
    assert_eq!(client.invoke("2", "GetNumRedirects", json!([])).await["result"], 3);
    assert_eq!(client.invoke("3", "GetActiveTransportName", json!([])).await["result"], "WebSockets");
    assert_eq!(client.invoke("4", "GetHeader", json!(["X-HEADER"])).await["result"], "custom value");
    assert_eq!(client.invoke("5", "GetCookie", json!(["testCookie"])).await["result"], "testValue");
    assert_eq!(client.invoke("6", "GetCookie", json!(["nope"])).await["result"], Value::Null);
    assert_eq!(
        client.invoke("7", "SendComplexObject", json!([])).await["result"],
        json!({"String":"hello world","IntArray":[1,2,3],"ByteArray":"AQID","Guid":"00010203-0405-0607-0706-050403020100","DateTime":"2000-01-01T00:00:00Z"})
    );
    let complex = json!({"String":"s","IntArray":[5],"ByteArray":"aGVsbG8=","Guid":"00010203-0405-0607-0706-050403020100","DateTime":"2002-04-01T10:20:15Z"});
    assert_eq!(client.invoke("8", "EchoComplexObject", json!([complex.clone()])).await["result"], complex);
    assert_eq!(
        client.invoke("9", "EmptyStream", json!([])).await["error"],
        "The client attempted to invoke the streaming 'EmptyStream' method with a non-streaming invocation."
    );
    client.send(json!({"type":4,"invocationId":"10","target":"StreamThrowException","arguments":["An error occurred."]})).await;
    assert_eq!(
        client.next().await["error"],
        "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred."
    );
    client.send(json!({"type":1,"invocationId":"11","target":"StreamingConcat","arguments":[],"streamIds":["12"]})).await;
    client.send(json!({"type":3,"invocationId":"12","error":"Something bad"})).await;
    assert_eq!(
        client.next().await["error"],
        "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad"
    );
    client.send(json!({"type":1,"target":"InvokeWithString","arguments":["message"]})).await;
    assert_eq!(client.next().await, json!({"type":1,"target":"Message","arguments":["message"]}));
    client.send(json!({"type":1,"target":"SendCustomObject","arguments":[{"Name":"test","Value":42}]})).await;
    assert_eq!(client.next().await, json!({"type":1,"target":"CustomObject","arguments":[{"Name":"test","Value":42}]}));
    client.send(json!({"type":4,"invocationId":"13","target":"Stream","arguments":[]})).await;
    for item in ["a", "b", "c"] {
        assert_eq!(client.next().await["item"], item);
    }
    assert_eq!(client.next().await, json!({"type":3,"invocationId":"13"}));
}

#[tokio::test]
async fn client_results_through_the_clientresult_endpoint() {
    let addr = start().await;
    let mut client = HubClient::connect(addr, "/testhub", &[]).await;
    let id = client.invoke("0", "GetCallerConnectionId", json!([])).await["result"].as_str().unwrap().to_owned();
    for (reply, expected) in [
        (json!({"result": 10}), "10"),
        (json!({"error": "Error: from callback"}), "Error: from callback"),
        (json!({"error": "Client didn't provide a result."}), "Client didn't provide a result."),
    ] {
        let request = tokio::spawn(reqwest::get(format!("http://{addr}/clientresult/{id}")));
        let invocation = client.next().await;
        assert_eq!(invocation["target"], "Result");
        let mut completion = reply.clone();
        completion["type"] = json!(3);
        completion["invocationId"] = invocation["invocationId"].clone();
        client.send(completion).await;
        let body = request.await.unwrap().unwrap().text().await.unwrap();
        assert_eq!(body, expected);
    }
    let body = reqwest::get(format!("http://{addr}/clientresult/unknownid")).await.unwrap().text().await.unwrap();
    assert_eq!(body, "Connection 'unknownid' does not exist.");
}

#[tokio::test]
async fn groups_and_connections_across_clients() {
    let addr = start().await;
    let mut a = HubClient::connect(addr, "/testhub", &[]).await;
    let mut b = HubClient::connect(addr, "/testhub", &[]).await;
    let b_id = b.invoke("0", "GetCallerConnectionId", json!([])).await["result"].as_str().unwrap().to_owned();
    b.invoke("1", "JoinGroup", json!(["room"])).await;
    a.invoke("1", "SendToGroup", json!(["room", "hello room"])).await;
    assert_eq!(b.next().await, json!({"type":1,"target":"Message","arguments":["hello room"]}));
    a.invoke("2", "SendToConnection", json!([b_id, "just you"])).await;
    assert_eq!(b.next().await["arguments"][0], "just you");
    b.invoke("3", "LeaveGroup", json!(["room"])).await;
    a.invoke("4", "SendToGroup", json!(["room", "nobody"])).await;
    a.send(json!({"type":1,"invocationId":"5","target":"SendToAll","arguments":["everyone"]})).await;
    assert_eq!(b.next().await["arguments"][0], "everyone");
}

#[tokio::test]
async fn test_hub_identifies_users_by_an_optional_token() {
    let addr = start().await;
    let token = reqwest::get(format!("http://{addr}/generateJwtToken")).await.unwrap().text().await.unwrap();
    let mut user = HubClient::connect(addr, &format!("/testhub?access_token={token}"), &[]).await;
    // An invalid token on a hub without [Authorize] leaves the caller anonymous (no 401).
    let mut anonymous = HubClient::connect(addr, "/testhub?access_token=invalid", &[]).await;
    anonymous.invoke("0", "SendToUser", json!(["testuser", "for testuser"])).await;
    assert_eq!(user.next().await, json!({"type":1,"target":"Message","arguments":["for testuser"]}));
    user.send(json!({"type":1,"invocationId":"1","target":"SendToUser","arguments":["testuser","again"]})).await;
    // The sender is testuser itself: its message and completion arrive in either order.
    let mut got = [user.next().await, user.next().await];
    got.sort_by_key(|m| m["type"].as_u64());
    assert_eq!(got[0]["arguments"][0], "again");
    anonymous.invoke("2", "SendToAll", json!(["all"])).await;
    assert_eq!(user.next().await["arguments"][0], "all");
}

#[tokio::test]
async fn http_endpoints_redirects_cookies_cors_and_errors() {
    let addr = start().await;
    let http = reqwest::Client::new();

    let body = http.post(format!("http://{addr}/redirect/negotiate?baseUrl=http://h:1")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "{ \"url\": \"http://h:1/testHub?numRedirects=1\" }");
    let body = http.get(format!("http://{addr}/redirect?baseUrl=http://h:1")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "{ \"url\": \"http://h:1/testHub?numRedirects=2\" }");

    let response = http.post(format!("http://{addr}/bad-negotiate/negotiate?negotiateVersion=1")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "Some response from server");

    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects.post(format!("http://{addr}/echoredirect/negotiate?a=1")).send().await.unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], "/echo/negotiate?a=1");

    let response = http.post(format!("http://{addr}/testhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    let cookies: Vec<String> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("testCookie=testValue")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("testCookie2=testValue2")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("expiredCookie=doesntmatter") && c.contains("1970")), "{cookies:?}");
    let negotiated: Value = response.json().await.unwrap();
    assert_eq!(negotiated["connectionToken"].as_str().unwrap().len(), 22);

    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/testhub/negotiate"))
        .header("origin", "http://elsewhere:9876")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-requested-with,x-signalr-user-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://elsewhere:9876");
    assert_eq!(preflight.headers()["access-control-allow-credentials"], "true");
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    assert_eq!(preflight.headers()["access-control-allow-headers"], "x-requested-with,x-signalr-user-agent");
    let response = http
        .post(format!("http://{addr}/testHub/negotiate?negotiateVersion=1"))
        .header("origin", "http://elsewhere:9876")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "http://elsewhere:9876");
    assert_eq!(response.headers().get_all("access-control-allow-origin").iter().count(), 1);

    let negotiated: Value =
        http.post(format!("http://{addr}/testhub-nowebsockets/negotiate?negotiateVersion=1")).send().await.unwrap().json().await.unwrap();
    let transports: Vec<&str> =
        negotiated["availableTransports"].as_array().unwrap().iter().map(|t| t["transport"].as_str().unwrap()).collect();
    assert_eq!(transports, ["ServerSentEvents", "LongPolling"]);
}

#[tokio::test]
async fn authorized_hub_needs_a_token_from_generate_jwt_token() {
    let addr = start().await;
    let http = reqwest::Client::new();
    let response = http.post(format!("http://{addr}/authorizedhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "");
    let response =
        http.post(format!("http://{addr}/authorizedhub/negotiate?negotiateVersion=1")).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(response.status(), 401);

    let token = http.get(format!("http://{addr}/generateJwtToken")).send().await.unwrap().text().await.unwrap();
    let response = http.post(format!("http://{addr}/authorizedhub/negotiate?negotiateVersion=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut client = HubClient::connect(addr, &format!("/authorizedhub?access_token={token}"), &[]).await;
    assert_eq!(client.invoke("0", "GetUserNameIdentifier", json!([])).await["result"], "testuser");
    assert_eq!(client.invoke("1", "Echo", json!(["secure"])).await["result"], "secure");
}

#[tokio::test]
async fn raw_echo_endpoint_echoes_only_with_the_test_cookie() {
    let addr = start().await;
    let mut request = format!("ws://{addr}/echo").into_client_request().unwrap();
    request.headers_mut().insert("cookie", http::HeaderValue::from_static("testCookie=testValue"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text("Hello World!")).await.unwrap();
    let echoed = tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), b"Hello World!");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo")).await.unwrap();
    let _ = ws.send(Message::text("Hello World!")).await;
    loop {
        match tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(Message::Text(t))) => panic!("echoed without the cookie: {t}"),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn binary_prints_the_listening_address_and_serves() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalr-testserver"))
        .args(["--urls", "http://127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(HANG_GUARD, lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = line.strip_prefix("Now listening on: ").expect("exact prefix").to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    let token = reqwest::get(format!("{url}/generateJwtToken")).await.unwrap().text().await.unwrap();
    assert_eq!(token.split('.').count(), 3);
    child.kill().await.unwrap();

    let output =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_signalr-testserver")).args(["--urls", "ftp://nowhere"]).output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--urls must start with http://"));
}
