//! A minimal SignalR client (negotiate v1, WebSockets, JSON protocol) for the tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One invocation received from the server.
#[derive(Debug, Clone)]
pub struct Received {
    pub target: String,
    pub arguments: Vec<Value>,
}

/// A connected hub client.
pub struct HubClient {
    pub connection_id: String,
    rx: mpsc::UnboundedReceiver<Received>,
    _task: tokio::task::JoinHandle<()>,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub enum ConnectError {
    /// Negotiate answered with this status.
    Negotiate(u16),
    /// Anything else.
    Other(String),
}

/// Connects to `/hubs/notifications` with a bearer token (query `access_token` on the socket).
pub async fn connect(base: &str, token: Option<&str>) -> Result<HubClient, ConnectError> {
    connect_with(base, token, &[]).await
}

/// Connects with extra headers on negotiate and on the WebSocket request.
pub async fn connect_with(base: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Result<HubClient, ConnectError> {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("{base}/hubs/notifications/negotiate?negotiateVersion=1"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.map_err(|e| ConnectError::Other(e.to_string()))?;
    if !r.status().is_success() {
        return Err(ConnectError::Negotiate(r.status().as_u16()));
    }
    let body: Value = r.json().await.map_err(|e| ConnectError::Other(e.to_string()))?;
    let connection_id = body["connectionId"].as_str().unwrap_or_default().to_string();
    let conn_token = body["connectionToken"].as_str().unwrap_or_default().to_string();
    let mut ws_url = format!("{}/hubs/notifications?id={conn_token}", base.replacen("http", "ws", 1));
    if let Some(t) = token {
        ws_url.push_str(&format!("&access_token={t}"));
    }
    let mut request = ws_url.into_client_request().map_err(|e| ConnectError::Other(e.to_string()))?;
    for (k, v) in headers {
        request.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| ConnectError::Other(e.to_string()))?;
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}")).await.map_err(|e| ConnectError::Other(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut handshake_done = false;
        while let Some(Ok(msg)) = ws.next().await {
            let text = match msg {
                Message::Text(t) => t.to_string(),
                Message::Close(_) => break,
                _ => continue,
            };
            for frame in text.split('\u{1e}').filter(|f| !f.is_empty()) {
                let v: Value = match serde_json::from_str(frame) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if !handshake_done {
                    handshake_done = true;
                    if v.get("error").is_some() {
                        return;
                    }
                    continue;
                }
                match v["type"].as_i64() {
                    Some(1) => {
                        let _ = tx.send(Received {
                            target: v["target"].as_str().unwrap_or_default().to_string(),
                            arguments: v["arguments"].as_array().cloned().unwrap_or_default(),
                        });
                    }
                    Some(6) => {
                        let _ = ws.send(Message::text("{\"type\":6}\u{1e}")).await;
                    }
                    Some(7) => return,
                    _ => {}
                }
            }
        }
    });
    Ok(HubClient { connection_id, rx, _task: task })
}

impl HubClient {
    /// The next invocation with target `target` (others are skipped), within 60 s.
    pub async fn next(&mut self, target: &str) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) if r.target == target => return r,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("hub connection closed while waiting for {target}"),
                Err(_) => panic!("no {target} within 60 s"),
            }
        }
    }

    /// Every invocation received before the next `target` one, and that one.
    pub async fn until(&mut self, target: &str) -> Vec<Received> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => {
                    let done = r.target == target;
                    seen.push(r);
                    if done {
                        return seen;
                    }
                }
                Ok(None) => panic!("hub connection closed while waiting for {target}"),
                Err(_) => panic!("no {target} within 60 s"),
            }
        }
    }

    /// Waits until the server closes the connection; false if it is still open after `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}
