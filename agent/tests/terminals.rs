//! Terminals through the real agent, real Docker and real WebSockets.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub async fn connect(
    agent: &Agent,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = agent.ws_url(path).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connect")
        .0
}

#[tokio::test]
async fn echo_through_a_terminal() {
    let agent = Agent::start().await;
    let ws = agent.running("term").await;
    let (s, t) = agent
        .send_json(
            reqwest::Method::POST,
            &format!("/workspaces/{}/terminals", ws.id),
            json!({"cols": 80, "rows": 24}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let tid = t["id"].as_str().unwrap();
    let mut socket = connect(&agent, &format!("/workspaces/{}/terminals/{tid}/ws", ws.id)).await;
    socket
        .send(Message::Binary(
            b"echo hel''lo; stty size\n".to_vec().into(),
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("24 80") {
        let msg = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("output")
            .unwrap()
            .unwrap();
        if let Message::Binary(b) = msg {
            seen.extend_from_slice(&b);
        }
    }
    assert!(String::from_utf8_lossy(&seen).contains("hello"));
    agent.delete(&ws.id).await;
}
