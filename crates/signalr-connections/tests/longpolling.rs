//! Long polling, POST sends and DELETE, over real HTTP.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use signalr_connections::{HttpConnectionOptions, TransportType};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn poll(server: &Server, token: &str) -> reqwest::Response {
    client().get(format!("{}?id={token}&_=1", server.base)).send().await.unwrap()
}

fn assert_no_cache(response: &reqwest::Response) {
    let headers = response.headers();
    assert_eq!(headers["cache-control"], "no-cache, no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["expires"], "Thu, 01 Jan 1970 00:00:00 GMT");
}

async fn post(server: &Server, token: &str, body: &'static str) -> reqwest::Response {
    client().post(format!("{}?id={token}", server.base)).body(body).send().await.unwrap()
}

#[tokio::test]
async fn first_poll_returns_at_once_then_polls_carry_data() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let first = poll(&server, &token).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "application/octet-stream");
    assert_eq!(first.headers()["content-length"], "0");
    assert_no_cache(&first);
    let connection = server.connected().await;
    assert_eq!(connection.transport(), TransportType::LongPolling);

    // Several messages queued before a poll come back together.
    assert_eq!(post(&server, &token, "burst:3").await.status(), 200);
    server.data().await;
    let second = poll(&server, &token).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["content-type"], "application/octet-stream");
    assert_no_cache(&second);
    assert_eq!(second.text().await.unwrap(), "m1m2m3");

    // A waiting poll is answered when data arrives.
    let waiting = tokio::spawn({
        let url = format!("{}?id={token}", server.base);
        async move { client().get(url).send().await.unwrap() }
    });
    connection.send(Bytes::from_static(b"late data")).unwrap();
    let answered = waiting.await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.text().await.unwrap(), "late data");
}

#[tokio::test]
async fn poll_timeout_answers_200_empty_text_plain() {
    let mut server = Server::start(HttpConnectionOptions::default().poll_timeout(Duration::from_millis(200))).await;
    let token = server.token().await;
    poll(&server, &token).await;
    server.connected().await;
    let timed_out = poll(&server, &token).await;
    assert_eq!(timed_out.status(), 200);
    assert_eq!(timed_out.headers()["content-type"], "text/plain");
    assert_no_cache(&timed_out);
    assert_eq!(timed_out.text().await.unwrap(), "");
}

#[tokio::test]
async fn a_newer_poll_ends_the_older_with_204() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    poll(&server, &token).await;
    let connection = server.connected().await;
    let spawn_poll = || {
        let url = format!("{}?id={token}", server.base);
        tokio::spawn(async move { client().get(url).send().await.unwrap() })
    };
    let mut older = spawn_poll();
    let mut newer = spawn_poll();
    // Whichever poll the server saw first is ended with 204 by the other one.
    let (ended, remaining) = tokio::select! {
        done = &mut older => (done.unwrap(), newer),
        done = &mut newer => (done.unwrap(), older),
    };
    assert_eq!(ended.status(), 204);
    connection.send(Bytes::from_static(b"for the newer")).unwrap();
    let response = remaining.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "for the newer");
}

#[tokio::test]
async fn close_answers_remaining_data_with_200_then_204_then_404() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    poll(&server, &token).await;
    let connection = server.connected().await;
    assert_eq!(post(&server, &token, "close").await.status(), 200);
    server.data().await;
    let last_data = poll(&server, &token).await;
    assert_eq!(last_data.status(), 200);
    assert_eq!(last_data.text().await.unwrap(), "bye");
    let end = poll(&server, &token).await;
    assert_eq!(end.status(), 204);
    assert_eq!(end.headers()["content-type"], "text/plain");
    assert_eq!(server.closed().await, connection.connection_id());
    let gone = poll(&server, &token).await;
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.text().await.unwrap(), "No Connection with that ID");
}

#[tokio::test]
async fn delete_answers_202_and_ends_the_outstanding_poll_with_204() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    poll(&server, &token).await;
    let connection = server.connected().await;
    let outstanding = tokio::spawn({
        let url = format!("{}?id={token}", server.base);
        async move { client().get(url).send().await.unwrap() }
    });
    // Make sure the poll is waiting: it answers a send, then we start another one.
    connection.send(Bytes::from_static(b"sync")).unwrap();
    assert_eq!(outstanding.await.unwrap().text().await.unwrap(), "sync");
    let outstanding = tokio::spawn({
        let url = format!("{}?id={token}", server.base);
        async move { client().get(url).send().await.unwrap() }
    });
    let deleted = client().delete(format!("{}?id={token}", server.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 202);
    assert_eq!(deleted.text().await.unwrap(), "");
    assert_eq!(outstanding.await.unwrap().status(), 204);
    assert_eq!(server.closed().await, connection.connection_id());
    let again = client().delete(format!("{}?id={token}", server.base)).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn post_and_delete_errors_have_exact_statuses_and_bodies() {
    let mut server = Server::start(HttpConnectionOptions::default().transport_max_buffer_size(1024)).await;
    let c = client();
    for method in [reqwest::Method::POST, reqwest::Method::DELETE, reqwest::Method::GET] {
        let missing = c.request(method.clone(), &server.base).send().await.unwrap();
        assert_eq!(missing.status(), 400, "{method}");
        assert_eq!(missing.text().await.unwrap(), "Connection ID required");
        let empty = c.request(method.clone(), format!("{}?id=", server.base)).send().await.unwrap();
        assert_eq!(empty.status(), 400, "{method}");
        for id in ["AAAAAAAAAAAAAAAAAAAAAA", "nope", "%FF%00", "x&id=y"] {
            let unknown = c.request(method.clone(), format!("{}?id={id}", server.base)).send().await.unwrap();
            assert_eq!(unknown.status(), 404, "{method} {id}");
            assert_eq!(unknown.text().await.unwrap(), "No Connection with that ID");
        }
    }
    // Other methods on the endpoint.
    let put = c.put(&server.base).send().await.unwrap();
    assert_eq!(put.status(), 405);

    // DELETE on a connection that is not long polling.
    let token = server.token().await;
    let not_lp = c.delete(format!("{}?id={token}", server.base)).send().await.unwrap();
    assert_eq!(not_lp.status(), 400);
    assert_eq!(not_lp.text().await.unwrap(), "Cannot terminate this connection using the DELETE endpoint.");

    // Oversized POST bodies, with and without a Content-Length.
    poll(&server, &token).await;
    server.connected().await;
    let big = c.post(format!("{}?id={token}", server.base)).body(vec![b'a'; 4096]).send().await.unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.text().await.unwrap(), "The request body exceeds the limit of 1024 bytes.");
    assert_eq!(chunked_post_status(&server, &token, 8, 512).await, 413);
    assert_eq!(chunked_post_status(&server, &token, 2, 100).await, 200);
    assert_eq!(server.data().await, vec![b'b'; 200]);
    // The connection still works and got none of it.
    assert_eq!(post(&server, &token, "ok").await.status(), 200);
    assert_eq!(server.data().await, "ok");
}

/// POSTs a chunked body (no Content-Length) over a raw socket; returns the status.
async fn chunked_post_status(server: &Server, token: &str, chunks: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut request =
        format!("POST /echo?id={token} HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .into_bytes();
    for _ in 0..chunks {
        request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b'b', size));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before reading everything; a failed write is fine then.
    let _ = socket.write_all(&request).await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn concurrent_posts_are_serialised() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    poll(&server, &token).await;
    server.connected().await;
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}?id={token}", server.base);
            tokio::spawn(async move { client().post(url).body("slow").send().await.unwrap().status() })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 200);
    }
    for _ in 0..8 {
        assert_eq!(server.data().await, "slow");
    }
    assert!(!server.overlap.load(Ordering::SeqCst), "on_data calls overlapped");
}

#[tokio::test]
async fn long_polling_is_refused_when_disabled() {
    let server = Server::start(HttpConnectionOptions::default().transports([TransportType::WebSockets])).await;
    let token = server.token().await;
    let response = poll(&server, &token).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "LongPolling transport not supported by this end point type");
}

#[tokio::test]
async fn changing_transport_from_long_polling_to_sse_is_refused() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    poll(&server, &token).await;
    server.connected().await;
    let sse = client().get(format!("{}?id={token}", server.base)).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(sse.status(), 400);
    assert_eq!(sse.text().await.unwrap(), "Cannot change transports mid-connection");
}
