//! CORS from options: preflight and actual responses, allowed and refused origins.

mod common;

use common::Server;
use signalr_connections::{CorsPolicy, HttpConnectionOptions};

async fn preflight(server: &Server, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/negotiate?negotiateVersion=1", server.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-requested-with,x-signalr-user-agent,authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn any_origin_is_echoed_with_credentials() {
    let server = Server::start(HttpConnectionOptions::default().cors(CorsPolicy::any_origin())).await;
    let response = preflight(&server, "http://other.example:8080").await;
    assert_eq!(response.status(), 204);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://other.example:8080");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(headers["access-control-allow-methods"], "POST");
    assert_eq!(headers["access-control-allow-headers"], "x-requested-with,x-signalr-user-agent,authorization");

    let actual = reqwest::Client::new()
        .post(format!("{}/negotiate?negotiateVersion=1", server.base))
        .header("origin", "http://other.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), 200);
    assert_eq!(actual.headers()["access-control-allow-origin"], "http://other.example:8080");
    assert_eq!(actual.headers()["access-control-allow-credentials"], "true");

    // Error responses carry the headers too, so the browser can read them.
    let error = reqwest::Client::new()
        .post(format!("{}?id=unknown", server.base))
        .header("origin", "http://other.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 404);
    assert_eq!(error.headers()["access-control-allow-origin"], "http://other.example:8080");
}

#[tokio::test]
async fn only_listed_origins_get_cors_headers() {
    let policy = CorsPolicy::origins(["https://app.example"]);
    let server = Server::start(HttpConnectionOptions::default().cors(policy)).await;
    let allowed = preflight(&server, "https://APP.example").await;
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://APP.example");
    let refused = preflight(&server, "https://evil.example").await;
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    let actual =
        reqwest::Client::new().post(format!("{}/negotiate", server.base)).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(actual.status(), 200);
    assert!(!actual.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn without_a_policy_options_is_405_and_no_headers_are_added() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &server.base)
        .header("origin", "http://x")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(!response.headers().contains_key("access-control-allow-origin"));
}
