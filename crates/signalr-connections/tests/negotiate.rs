//! Negotiate: versions, exact response shape, transports, stateful-reconnect flag, auth, bad input.

mod common;

use std::sync::Arc;

use common::Server;
use signalr_connections::{Authenticator, HttpConnectionOptions, RequestInfo, TransportType, Unauthorized, User};

fn is_id(value: &str) -> bool {
    value.len() == 22 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn negotiate_raw(server: &Server, query: &str) -> reqwest::Response {
    reqwest::Client::new().post(format!("{}/negotiate{query}", server.base)).send().await.unwrap()
}

#[tokio::test]
async fn version_1_response_is_exact() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    let response = negotiate_raw(&server, "?negotiateVersion=1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("content-length"));
    let body = response.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = json["connectionId"].as_str().unwrap();
    let token = json["connectionToken"].as_str().unwrap();
    assert!(is_id(id) && is_id(token));
    assert_ne!(id, token);
    let expected = format!(
        r#"{{"negotiateVersion":1,"connectionId":"{id}","connectionToken":"{token}","availableTransports":[{{"transport":"WebSockets","transferFormats":["Text","Binary"]}},{{"transport":"ServerSentEvents","transferFormats":["Text"]}},{{"transport":"LongPolling","transferFormats":["Text","Binary"]}}]}}"#
    );
    assert_eq!(body, expected);
}

#[tokio::test]
async fn version_0_has_no_token_and_higher_versions_get_1() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    let body = negotiate_raw(&server, "").await.text().await.unwrap();
    assert!(body.starts_with(r#"{"negotiateVersion":0,"connectionId":""#), "{body}");
    assert!(!body.contains("connectionToken"));
    let json = server.negotiate("?NegotiateVersion=5").await;
    assert_eq!(json["negotiateVersion"], 1);
    assert!(json["connectionToken"].is_string());
}

#[tokio::test]
async fn version_errors_are_json_with_status_200() {
    let server = Server::start(HttpConnectionOptions::default().minimum_negotiate_version(1)).await;
    for (query, error) in [
        ("?negotiateVersion=abc", "The client requested a non-integer protocol version."),
        ("?negotiateVersion=1.5", "The client requested a non-integer protocol version."),
        ("", "The client requested version '0', but the server does not support this version."),
        ("?negotiateVersion=0", "The client requested version '0', but the server does not support this version."),
        ("?negotiateVersion=-3", "The client requested version '-3', but the server does not support this version."),
    ] {
        let response = negotiate_raw(&server, query).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.text().await.unwrap();
        assert_eq!(body, serde_json::json!({ "error": error }).to_string(), "query {query:?}");
    }
}

#[tokio::test]
async fn negotiate_with_other_methods_is_405() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    let client = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = client.request(method.clone(), format!("{}/negotiate", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn transports_are_filtered_and_ordered() {
    let options = HttpConnectionOptions::default().transports([TransportType::LongPolling, TransportType::ServerSentEvents]);
    let server = Server::start(options).await;
    let json = server.negotiate("?negotiateVersion=1").await;
    assert_eq!(
        json["availableTransports"],
        serde_json::json!([
            {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
            {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}
        ])
    );
}

#[tokio::test]
async fn stateful_reconnect_flag_only_when_asked_and_allowed() {
    let allowed = Server::start(HttpConnectionOptions::default().allow_stateful_reconnects(true)).await;
    let body = negotiate_raw(&allowed, "?negotiateVersion=1&useStatefulReconnect=true").await.text().await.unwrap();
    assert!(body.starts_with(r#"{"useStatefulReconnect":true,"negotiateVersion":1,"#), "{body}");
    let body = negotiate_raw(&allowed, "?negotiateVersion=1").await.text().await.unwrap();
    assert!(!body.contains("useStatefulReconnect"), "{body}");

    let refused = Server::start(HttpConnectionOptions::default()).await;
    let body = negotiate_raw(&refused, "?negotiateVersion=1&useStatefulReconnect=true").await.text().await.unwrap();
    assert!(!body.contains("useStatefulReconnect"), "{body}");
}

#[tokio::test]
async fn garbage_bodies_are_ignored() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    let client = reqwest::Client::new();
    for body in [&b"\xff\xfe garbage"[..], b"{\"negotiateVersion\":", b"", &[0u8; 70_000][..]] {
        let response = client
            .post(format!("{}/negotiate?negotiateVersion=1", server.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["connectionToken"].is_string());
    }
}

/// Accepts the token `good`, refuses any other token, and lets anonymous callers through.
struct TokenAuth;

impl Authenticator for TokenAuth {
    fn authenticate(&self, _request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        match bearer {
            None => Ok(None),
            Some("good") => Ok(Some(User { identifier: Some("alice".into()), claims: vec![("role".into(), "admin".into())] })),
            Some(other) => Err(Unauthorized(format!("bad token {other}"))),
        }
    }
}

#[tokio::test]
async fn refused_or_missing_credentials_get_401_with_empty_body() {
    let options = HttpConnectionOptions::default().authenticator(Arc::new(TokenAuth));
    let server = Server::start(options).await;
    let client = reqwest::Client::new();
    let url = format!("{}/negotiate?negotiateVersion=1", server.base);

    let refused = client.post(&url).bearer_auth("bad").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.status().canonical_reason(), Some("Unauthorized"));
    assert_eq!(refused.text().await.unwrap(), "");
    let refused = client.post(format!("{url}&access_token=bad")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // The header wins over the query.
    let accepted = client.post(format!("{url}&access_token=bad")).bearer_auth("good").send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    let accepted = client.post(format!("{url}&access_token=good")).send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    let anonymous = client.post(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);

    let required = Server::start(HttpConnectionOptions::default().authenticator(Arc::new(TokenAuth)).require_authentication(true)).await;
    let url = format!("{}/negotiate?negotiateVersion=1", required.base);
    let anonymous = client.post(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.text().await.unwrap(), "");
    assert_eq!(client.post(&url).bearer_auth("good").send().await.unwrap().status(), 200);

    // Without an authenticator, requiring authentication refuses everyone.
    let nobody = Server::start(HttpConnectionOptions::default().require_authentication(true)).await;
    let response = client.post(format!("{}/negotiate", nobody.base)).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn user_of_the_connecting_request_reaches_the_application() {
    let options = HttpConnectionOptions::default().authenticator(Arc::new(TokenAuth));
    let mut server = Server::start(options).await;
    let token = server.negotiate("?negotiateVersion=1&access_token=good").await["connectionToken"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let first_poll = client.get(format!("{}?id={token}&access_token=good", server.base)).send().await.unwrap();
    assert_eq!(first_poll.status(), 200);
    let connection = server.connected().await;
    let user = connection.user().expect("authenticated user");
    assert_eq!(user.identifier.as_deref(), Some("alice"));
    assert_eq!(user.claims, vec![("role".to_owned(), "admin".to_owned())]);
    // A refused token on a later request of the same connection is refused too.
    let poll = client.get(format!("{}?id={token}&access_token=bad", server.base)).send().await.unwrap();
    assert_eq!(poll.status(), 401);
}
