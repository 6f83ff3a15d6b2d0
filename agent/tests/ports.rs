//! Ports through the real agent, real Docker and real WebSockets: the port list, the
//! HTTP proxy (WebSocket upgrades included) and the TCP tunnel, all connecting inside
//! each workspace's own network namespace with no host port published.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs `argv` detached (`docker exec -d`) in a workspace's container.
fn exec_detached(ws: &str, argv: &[&str]) {
    let name = format!("sam-ws-{ws}");
    let mut args = vec!["exec", "-d", name.as_str()];
    args.extend_from_slice(argv);
    let (ok, out) = docker(&args);
    assert!(ok, "docker exec -d {argv:?}: {out}");
}

/// Runs a shell script in the container and asserts it succeeded.
fn sh(ws: &str, script: &str) -> String {
    let (ok, out) = docker_exec(ws, None, script);
    assert!(ok, "{script}: {out}");
    out
}

/// The ports GET /workspaces/{id}/ports lists.
async fn ports(agent: &Agent, ws: &str) -> Vec<u16> {
    let (s, body) = agent.get_json(&format!("/workspaces/{ws}/ports")).await;
    assert_eq!(s, 200, "{body}");
    body["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            assert_eq!(p["protocol"], "tcp", "{p}");
            p["port"].as_u64().expect("port") as u16
        })
        .collect()
}

/// Waits until `port` is listed as listening in the workspace.
async fn wait_listening(agent: &Agent, ws: &str, port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if ports(agent, ws).await.contains(&port) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} never listened in {ws}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A static site in `dir` of the container, served by busybox httpd on `addr`.
fn serve(ws: &str, dir: &str, addr: &str, index: &str, page: &str) {
    sh(
        ws,
        &format!(
            "mkdir -p {dir}/sub && printf '%s' '{index}' > {dir}/index.html \
             && printf '%s' '{page}' > {dir}/sub/page.html"
        ),
    );
    exec_detached(ws, &["busybox", "httpd", "-f", "-p", addr, "-h", dir]);
}

/// A proxied GET: (status, body).
async fn proxy_get(agent: &Agent, path: &str) -> (u16, String) {
    let r = agent
        .req(Method::GET, path)
        .send()
        .await
        .expect("proxy request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

fn ws_request(
    agent: &Agent,
    path: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = agent.ws_url(path).into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    request
}

async fn ws_connect(agent: &Agent, path: &str) -> Socket {
    tokio_tungstenite::connect_async(ws_request(agent, path))
        .await
        .unwrap_or_else(|e| panic!("WebSocket {path}: {e}"))
        .0
}

/// A WebSocket connect that must be refused with a plain HTTP answer: (status, JSON).
async fn ws_refused(agent: &Agent, path: &str) -> (u16, Value) {
    match tokio_tungstenite::connect_async(ws_request(agent, path)).await {
        Ok(_) => panic!("{path}: the upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
        Err(e) => panic!("{path}: not an HTTP refusal: {e}"),
    }
}

/// Sends `request` through the TCP tunnel and collects everything that comes back
/// until the app closes the connection.
async fn tunnel_exchange(agent: &Agent, ws: &str, port: u16, request: &[u8]) -> Vec<u8> {
    let mut socket = ws_connect(agent, &format!("/workspaces/{ws}/ports/{port}/tcp")).await;
    socket
        .send(Message::Binary(request.to_vec().into()))
        .await
        .expect("send");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Binary(b)) => got.extend_from_slice(&b),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the tunnel closes after the app's answer");
    got
}

fn assert_error(what: &str, status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

fn assert_no_host_ports(ws: &str) {
    let (ok, out) = docker(&["port", &format!("sam-ws-{ws}")]);
    assert!(ok && out.trim().is_empty(), "host ports published: {out}");
}

#[tokio::test]
async fn two_workspaces_on_port_3000_are_reached_apart() {
    let agent = Agent::start().await;
    let (a, b) = tokio::join!(agent.running("ports a"), agent.running("ports b"));
    assert!(ports(&agent, &a.id).await.is_empty(), "nothing listens yet");

    serve(
        &a.id,
        "/srv/a",
        "127.0.0.1:3000",
        "workspace A",
        "page of A",
    );
    serve(
        &b.id,
        "/srv/b",
        "127.0.0.1:3000",
        "workspace B",
        "page of B",
    );
    // More listeners in A: on every IPv4 address, and on IPv6's any address (the
    // containers here have IPv6 disabled, so [::1] cannot be bound; [::] is listed
    // from /proc/net/tcp6 and takes IPv4 connections too).
    serve(&a.id, "/srv/a4", "0.0.0.0:3001", "A on 0.0.0.0", "-");
    serve(&a.id, "/srv/a6", "[::]:3002", "A on [::]", "-");
    for port in [3000, 3001, 3002] {
        wait_listening(&agent, &a.id, port).await;
    }
    wait_listening(&agent, &b.id, 3000).await;
    assert_eq!(ports(&agent, &a.id).await, [3000, 3001, 3002]);
    assert_eq!(ports(&agent, &b.id).await, [3000]);
    let (ok, tables) = docker_exec(&a.id, None, "cat /proc/net/tcp6");
    assert!(
        ok && tables.contains(":0BBA "),
        "3002 is an IPv6 listener: {tables}"
    );

    // The HTTP proxy: each workspace's own app, the prefix stripped.
    for (ws, name) in [(&a.id, "A"), (&b.id, "B")] {
        let base = format!("/workspaces/{ws}/ports/3000");
        assert_eq!(
            proxy_get(&agent, &format!("{base}/")).await,
            (200, format!("workspace {name}"))
        );
        assert_eq!(
            proxy_get(&agent, &base).await,
            (200, format!("workspace {name}")),
            "without the trailing slash"
        );
        assert_eq!(
            proxy_get(&agent, &format!("{base}/sub/page.html?x=1")).await,
            (200, format!("page of {name}")),
            "the app sees /sub/page.html"
        );
        let (s, _) = proxy_get(&agent, &format!("{base}/missing.html")).await;
        assert_eq!(s, 404, "the app's own 404 is passed on");
    }
    assert_eq!(
        proxy_get(&agent, &format!("/workspaces/{}/ports/3001/", a.id)).await,
        (200, "A on 0.0.0.0".to_string())
    );
    assert_eq!(
        proxy_get(&agent, &format!("/workspaces/{}/ports/3002/", a.id)).await,
        (200, "A on [::]".to_string())
    );

    // A workspace token reaches its own workspace's app.
    let r = agent
        .http
        .get(agent.url(&format!("/workspaces/{}/ports/3000/", b.id)))
        .bearer_auth(agent.workspace_token(&b.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "workspace B");

    // The TCP tunnel: a raw HTTP exchange with each workspace's own app.
    for (ws, name) in [(&a.id, "A"), (&b.id, "B")] {
        let answer = tunnel_exchange(
            &agent,
            ws,
            3000,
            b"GET /sub/page.html HTTP/1.0\r\nHost: localhost\r\n\r\n",
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.") && text.contains(" 200 "),
            "tunnel answer: {text}"
        );
        assert!(
            text.ends_with(&format!("\r\n\r\npage of {name}")),
            "tunnel answer: {text}"
        );
    }

    // Nothing is published on the host, and the workspaces cannot reach each other.
    assert_no_host_ports(&a.id);
    assert_no_host_ports(&b.id);
    let (ok, out) = docker(&[
        "inspect",
        "-f",
        "{{json .HostConfig.PortBindings}}",
        &format!("sam-ws-{}", a.id),
    ]);
    assert!(
        ok && matches!(out.trim(), "{}" | "null"),
        "port bindings: {out}"
    );

    agent.delete(&a.id).await;
    agent.delete(&b.id).await;
}

/// Answers one HTTP request: its head goes to /tmp/echo.head, its body (by
/// Content-Length) to /tmp/echo.body, and the body is sent back.
const ECHO_BACK: &str = r#"#!/bin/sh
cr=$(printf '\r')
len=0
: > /tmp/echo.head
while IFS= read -r line; do
  printf '%s\n' "$line" >> /tmp/echo.head
  case "$line" in
    [Cc]ontent-[Ll]ength:*) len=$(echo "${line#*:}" | tr -d ' \r') ;;
  esac
  [ "$line" = "$cr" ] && break
done
head -c "$len" > /tmp/echo.body
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$len"
cat /tmp/echo.body
"#;

/// Answers one HTTP request with a 10-byte body: "first" at once, "-last" once
/// /tmp/go exists.
const SLOW: &str = r#"#!/bin/sh
cr=$(printf '\r')
while IFS= read -r line; do
  [ "$line" = "$cr" ] && break
done
printf 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nfirst'
while [ ! -e /tmp/go ]; do usleep 20000; done
printf '%s' '-last'
"#;

fn install_script(ws: &str, path: &str, body: &str) {
    sh(
        ws,
        &format!("cat > {path} <<'SAM_EOF'\n{body}SAM_EOF\nchmod +x {path}"),
    );
}

#[tokio::test]
async fn the_app_gets_no_token_and_bodies_stream_both_ways() {
    let agent = Agent::start().await;
    let ws = agent.running("proxy details").await;
    install_script(&ws.id, "/tmp/echo-back.sh", ECHO_BACK);
    install_script(&ws.id, "/tmp/slow.sh", SLOW);

    // What reaches the app: the path without the prefix, the query, the app's own
    // headers; no Authorization, no X-SAM-*; the prefix in X-Forwarded-Prefix.
    exec_detached(
        &ws.id,
        &["nc", "-l", "-p", "3000", "-e", "/tmp/echo-back.sh"],
    );
    wait_listening(&agent, &ws.id, 3000).await;
    let r = agent
        .req(
            Method::GET,
            &format!("/workspaces/{}/ports/3000/deep/path?x=1&y=two", ws.id),
        )
        .header("X-SAM-Node-Id", &agent.node_id)
        .header("X-SAM-Workspace-Id", &ws.id)
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let head = sh(&ws.id, "cat /tmp/echo.head").replace('\r', "");
    let lines: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
    assert_eq!(lines[0], "get /deep/path?x=1&y=two http/1.1", "{head}");
    assert!(
        !lines.iter().any(|l| l.starts_with("authorization:")),
        "the token reached the app: {head}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("x-sam-")),
        "X-SAM-* reached the app: {head}"
    );
    let token = agent.node_token();
    let jwt_header = token.split('.').next().unwrap();
    assert!(
        !head.contains(jwt_header),
        "the token reached the app: {head}"
    );
    let prefix = format!("x-forwarded-prefix: /workspaces/{}/ports/3000", ws.id).to_lowercase();
    for want in [prefix.as_str(), "x-custom: kept", "host: localhost:3000"] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {head}");
    }

    // A 4 MiB POST body streams to the app: (most of) the first MiB arrives before
    // the rest is even sent; the app sends it all back.
    exec_detached(
        &ws.id,
        &["nc", "-l", "-p", "3001", "-e", "/tmp/echo-back.sh"],
    );
    wait_listening(&agent, &ws.id, 3001).await;
    let body: Vec<u8> = (0..4 << 20).map(|_| rand::random::<u8>()).collect();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", agent.port))
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /workspaces/{}/ports/3001/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        ws.id,
        agent.node_token(),
        body.len()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    wr.write_all(&body[..1 << 20]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, n) = docker_exec(&ws.id, None, "wc -c < /tmp/echo.body 2>/dev/null || echo 0");
        // Most of it: buffers on the way may hold a little back.
        if n.trim().parse::<usize>().unwrap_or(0) >= 768 << 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first MiB never reached the app (has {})",
            n.trim()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest = body[1 << 20..].to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(&rest).await.unwrap();
        wr
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut answer))
        .await
        .expect("the answer within 30 s")
        .unwrap();
    drop(writer.await.unwrap());
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let response_head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
    assert!(response_head.starts_with("http/1.1 200"), "{response_head}");
    assert!(
        response_head.contains(&format!("content-length: {}", body.len())),
        "{response_head}"
    );
    assert!(
        answer[split..] == body[..],
        "the body came back changed ({} bytes)",
        answer.len() - split
    );

    // A response body streams to the client: its first part arrives while the app
    // still holds back the rest.
    exec_detached(&ws.id, &["nc", "-l", "-p", "3002", "-e", "/tmp/slow.sh"]);
    wait_listening(&agent, &ws.id, 3002).await;
    let mut r = agent
        .req(Method::GET, &format!("/workspaces/{}/ports/3002/", ws.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the first part before the app sends the rest")
        .unwrap()
        .expect("a chunk");
    assert_eq!(&first[..], b"first");
    sh(&ws.id, "touch /tmp/go");
    let mut rest = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"-last");

    // The TCP tunnel carries raw bytes both ways: `cat` as an echo server, every
    // byte value, 1 MiB, sent and read at once.
    exec_detached(&ws.id, &["nc", "-l", "-p", "3003", "-e", "/bin/cat"]);
    wait_listening(&agent, &ws.id, 3003).await;
    let socket = ws_connect(&agent, &format!("/workspaces/{}/ports/3003/tcp", ws.id)).await;
    let (mut tx, mut rx) = socket.split();
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 256) as u8).collect();
    let sent = data.clone();
    let sender = tokio::spawn(async move {
        for chunk in sent.chunks(100_000) {
            tx.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
        tx
    });
    let mut echoed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while echoed.len() < data.len() {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => echoed.extend_from_slice(&b),
                Some(Ok(_)) => {}
                other => panic!("tunnel ended early: {other:?}"),
            }
        }
    })
    .await
    .expect("the echo within 30 s");
    assert!(echoed == data, "the tunnel changed the bytes");
    // Closing the WebSocket ends the TCP connection: cat exits, nothing listens.
    let mut tx = sender.await.unwrap();
    tx.send(Message::Close(None)).await.unwrap();
    drop((tx, rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, ps) = docker_exec(&ws.id, None, "ps");
        if !ps.contains("nc -l -p 3003") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection outlived its tunnel: {ps}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_host_ports(&ws.id);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn a_websocket_app_is_reached_through_the_proxy() {
    let agent = Agent::start().await;
    let ws = agent
        .create(json!({"displayName": "ws echo", "image": fixture_image()}))
        .await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    exec_detached(&ws.id, &["ws-echo", "3000"]);
    wait_listening(&agent, &ws.id, 3000).await;

    let mut socket = ws_connect(&agent, &format!("/workspaces/{}/ports/3000/echo", ws.id)).await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    socket
        .send(Message::Text("hello through the proxy".into()))
        .await
        .unwrap();
    socket
        .send(Message::Binary(binary.clone().into()))
        .await
        .unwrap();
    socket.send(Message::Text("ü ✓".into())).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < 3 {
            match socket.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => got.push(m),
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("three echoes");
    assert_eq!(got[0], Message::Text("hello through the proxy".into()));
    assert_eq!(got[1], Message::Binary(binary.into()));
    assert_eq!(got[2], Message::Text("ü ✓".into()));
    socket.close(None).await.unwrap();

    // A second connection works as well (each request its own connection).
    let mut again = ws_connect(&agent, &format!("/workspaces/{}/ports/3000/", ws.id)).await;
    again.send(Message::Text("again".into())).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(10), again.next())
        .await
        .expect("echo")
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::Text("again".into()));
    assert_no_host_ports(&ws.id);
    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn bad_ports_unreachable_ports_and_stopped_workspaces() {
    let agent = Agent::start().await;
    let ws = agent.running("bad ports").await;
    let id = ws.id.as_str();

    // Non-canonical spellings too: the prefix the app must not see is the one
    // in the request.
    for bad in [
        "0", "70000", "65536", "abc", "-1", "3000x", "+3000", "03000", "00",
    ] {
        let (s, body) = agent
            .get_json(&format!("/workspaces/{id}/ports/{bad}/"))
            .await;
        assert_error(
            &format!("proxy port {bad}"),
            s,
            &body,
            400,
            "invalid_request",
        );
        let (s, body) = agent
            .send_json(
                Method::POST,
                &format!("/workspaces/{id}/ports/{bad}/x"),
                json!({}),
            )
            .await;
        assert_error(
            &format!("POST port {bad}"),
            s,
            &body,
            400,
            "invalid_request",
        );
        let (s, body) = ws_refused(&agent, &format!("/workspaces/{id}/ports/{bad}/tcp")).await;
        assert_error(
            &format!("tunnel port {bad}"),
            s,
            &body,
            400,
            "invalid_request",
        );
    }

    // Nothing listens: 502 with the error JSON, for the proxy and the tunnel (which
    // answers before upgrading).
    for port in [3999, 65535, 1] {
        let (s, body) = agent
            .get_json(&format!("/workspaces/{id}/ports/{port}/"))
            .await;
        assert_error(
            &format!("proxy to {port}"),
            s,
            &body,
            502,
            "port_unreachable",
        );
        let (s, body) = agent
            .send_json(
                Method::PUT,
                &format!("/workspaces/{id}/ports/{port}/api"),
                json!({"a": 1}),
            )
            .await;
        assert_error(&format!("PUT to {port}"), s, &body, 502, "port_unreachable");
        let (s, body) = ws_refused(&agent, &format!("/workspaces/{id}/ports/{port}/tcp")).await;
        assert_error(
            &format!("tunnel to {port}"),
            s,
            &body,
            502,
            "port_unreachable",
        );
    }
    // A plain GET of the tunnel path is not a WebSocket.
    let (s, body) = agent
        .get_json(&format!("/workspaces/{id}/ports/3999/tcp"))
        .await;
    assert_error("tunnel without upgrade", s, &body, 400, "invalid_request");

    // An app that closes without answering is a 502 too.
    exec_detached(id, &["nc", "-l", "-p", "3000", "-e", "/bin/true"]);
    wait_listening(&agent, id, 3000).await;
    let (s, body) = agent
        .get_json(&format!("/workspaces/{id}/ports/3000/"))
        .await;
    assert_error("app closed", s, &body, 502, "port_unreachable");

    // The agent keeps serving, and a real app is reached after all that.
    serve(id, "/srv/ok", "127.0.0.1:3001", "still fine", "-");
    wait_listening(&agent, id, 3001).await;
    assert_eq!(
        proxy_get(&agent, &format!("/workspaces/{id}/ports/3001/")).await,
        (200, "still fine".to_string())
    );
    let (s, _) = agent.get_json("/health").await;
    assert_eq!(s, 200);

    // A stopped workspace has no ports to reach.
    let (s, body) = agent
        .send_json(Method::POST, &format!("/workspaces/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, 202, "{body}");
    agent.wait_for(id, WorkspaceStatus::Stopped).await;
    let (s, body) = agent.get_json(&format!("/workspaces/{id}/ports")).await;
    assert_error("list when stopped", s, &body, 409, "workspace_not_running");
    let (s, body) = agent
        .get_json(&format!("/workspaces/{id}/ports/3001/"))
        .await;
    assert_error("proxy when stopped", s, &body, 409, "workspace_not_running");
    let (s, body) = ws_refused(&agent, &format!("/workspaces/{id}/ports/3001/tcp")).await;
    assert_error(
        "tunnel when stopped",
        s,
        &body,
        409,
        "workspace_not_running",
    );
    // The port is still checked first.
    let (s, body) = agent.get_json(&format!("/workspaces/{id}/ports/0/")).await;
    assert_error("bad port when stopped", s, &body, 400, "invalid_request");

    // An unknown workspace.
    let (s, body) = agent.get_json("/workspaces/nope/ports").await;
    assert_error("unknown workspace", s, &body, 404, "workspace_not_found");
    let (s, body) = agent.get_json("/workspaces/nope/ports/3000/").await;
    assert_error(
        "unknown workspace proxy",
        s,
        &body,
        404,
        "workspace_not_found",
    );
    agent.delete(id).await;
}
