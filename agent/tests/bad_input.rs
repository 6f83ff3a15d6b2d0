//! Bad input of every kind: malformed or oversized bodies, invalid fields, odd paths
//! and queries, images and repositories that cannot be had. The agent answers with
//! the contract's errors (CONTRACT §3), never a 500, and keeps working.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;

/// The contract's error shape: exactly `{error, message}`, the given code, a message.
fn assert_error(what: &str, status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{what}: answered {status} {body}");
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error body is not a JSON object: {body}"));
    assert_eq!(
        obj.get("error").and_then(Value::as_str),
        Some(want_code),
        "{what}: {body}"
    );
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no message: {body}"));
    assert!(!message.trim().is_empty(), "{what}: empty message");
    assert_eq!(obj.len(), 2, "{what}: only error and message: {body}");
}

/// POST /workspaces with raw bytes as the JSON body.
async fn post_raw(agent: &Agent, body: Vec<u8>) -> (u16, Value) {
    let r = agent
        .req(Method::POST, "/workspaces")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_json(agent: &Agent, body: Value) -> (u16, Value) {
    agent.send_json(Method::POST, "/workspaces", body).await
}

/// One HTTP/1.1 exchange over a plain TCP socket, for what reqwest would not send
/// as is (raw paths, chunked bodies). `body` is written by a task of its own while
/// the answer is read, so an early answer is seen. Returns (status, JSON body).
async fn raw_http(port: u16, head: String, body: Vec<Vec<u8>>) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.expect("write head");
    let writer = tokio::spawn(async move {
        for chunk in body {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        // Keep the write half open until the answer has been read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let parsed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(answer) = parse_response(&buf) {
                return answer;
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return parse_response(&buf).unwrap_or_else(|| {
                        panic!(
                            "incomplete answer: {:?}",
                            String::from_utf8_lossy(&buf[..buf.len().min(500)])
                        )
                    });
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("an answer within 30 s");
    writer.abort();
    parsed
}

/// A complete HTTP/1.1 answer with a Content-Length (or chunked) body, else None.
fn parse_response(buf: &[u8]) -> Option<(u16, Value)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let rest = &buf[end + 4..];
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body: Vec<u8> = if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = rest[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&rest[pos..line_end]).trim(), 16)
                    .ok()?;
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            if rest.len() < pos + size + 2 {
                return None;
            }
            out.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        out
    } else {
        rest.to_vec()
    };
    Some((
        status,
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).to_string())),
    ))
}

/// A GET of a raw (unnormalised) path with a node token.
async fn raw_get(agent: &Agent, method: &str, path: &str) -> (u16, Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        agent.node_token()
    );
    raw_http(agent.port, head, vec![]).await
}

/// The agent still serves: /health answers, and a normal workspace can be made
/// (and is removed again).
async fn still_works(agent: &Agent) {
    let r = agent
        .http
        .get(agent.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    let ws = agent.running("ok").await;
    assert_eq!(ws.status, WorkspaceStatus::Running);
    agent.delete(&ws.id).await;
}

/// Polls until the workspace is `error` (within `limit`), failing on `running`.
async fn wait_for_error(agent: &Agent, id: &str, limit: Duration) -> sam_protocol::Workspace {
    let deadline = Instant::now() + limit;
    loop {
        let ws = agent.workspace(id).await;
        match ws.status {
            WorkspaceStatus::Error => return ws,
            WorkspaceStatus::Running => panic!("workspace {id} is running, wanted error"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "workspace {id} not in error within {limit:?}: {:?}",
            ws.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workspace's events, newest first.
async fn workspace_events(agent: &Agent, id: &str) -> Vec<Value> {
    let (s, page) = agent
        .get_json(&format!("/workspaces/{id}/events?limit=500"))
        .await;
    assert_eq!(s, 200, "{page}");
    page["events"].as_array().expect("events").clone()
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let agent = Agent::start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\"displayName\": \"x\"".to_vec()),
        ("not JSON", b"displayName=x".to_vec()),
        ("empty body", Vec::new()),
        ("a JSON array", b"[]".to_vec()),
        ("a JSON string", b"\"x\"".to_vec()),
        ("null", b"null".to_vec()),
        ("invalid UTF-8", b"{\"displayName\": \"\xff\xfe\"}".to_vec()),
        ("displayName a number", br#"{"displayName": 5}"#.to_vec()),
        ("displayName null", br#"{"displayName": null}"#.to_vec()),
        ("displayName missing", br#"{"image": "x"}"#.to_vec()),
        (
            "image a number",
            br#"{"displayName": "x", "image": 1}"#.to_vec(),
        ),
        (
            "env an array",
            br#"{"displayName": "x", "env": ["A=1"]}"#.to_vec(),
        ),
        (
            "env value a number",
            br#"{"displayName": "x", "env": {"A": 1}}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        let (s, answer) = post_raw(&agent, body).await;
        assert_error(what, s, &answer, 400, "invalid_request");
    }
    // Very deep nesting (in an unknown field, then a bad displayName) does not
    // bring the agent down.
    let depth = 200_000;
    let mut deep = b"{\"x\": ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', depth));
    deep.extend(std::iter::repeat_n(b']', depth));
    deep.extend_from_slice(b", \"displayName\": 5}");
    let (s, answer) = post_raw(&agent, deep).await;
    assert_error("deeply nested", s, &answer, 400, "invalid_request");
    // Same for a rename and a limits change.
    let r = agent
        .req(Method::PATCH, "/node")
        .header("Content-Type", "application/json")
        .body("{\"limits\": ")
        .send()
        .await
        .expect("send");
    let s = r.status().as_u16();
    assert_error(
        "PATCH /node truncated",
        s,
        &r.json().await.unwrap_or(Value::Null),
        400,
        "invalid_request",
    );

    // Nothing was created by any of it.
    let (s, list) = agent.get_json("/workspaces").await;
    assert_eq!(s, 200);
    assert_eq!(list["workspaces"], json!([]));
    still_works(&agent).await;
}

#[tokio::test]
async fn bodies_over_1_mib_are_413() {
    let agent = Agent::start().await;

    // Exactly 1 MiB is read (and judged on its content: a wrong shape here).
    let mut exact = br#"{"displayName": 5}"#.to_vec();
    exact.resize(MIB, b' ');
    let (s, body) = post_raw(&agent, exact).await;
    assert_error("exactly 1 MiB", s, &body, 400, "invalid_request");

    // 1 MiB + 1 byte, with a Content-Length.
    let mut over = br#"{"displayName": "big"}"#.to_vec();
    over.resize(MIB + 1, b' ');
    let (s, body) = post_raw(&agent, over.clone()).await;
    assert_error(
        "1 MiB + 1 with Content-Length",
        s,
        &body,
        413,
        "payload_too_large",
    );

    // The same bytes with Content-Length, over a raw socket.
    let head = format!(
        "POST /workspaces HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        agent.node_token(),
        over.len()
    );
    let (s, body) = raw_http(agent.port, head, vec![over.clone()]).await;
    assert_error("raw 1 MiB + 1", s, &body, 413, "payload_too_large");

    // 1 MiB + 1 byte, chunked (no Content-Length): found while reading.
    let head = format!(
        "POST /workspaces HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        agent.node_token()
    );
    let mut chunks: Vec<Vec<u8>> = over
        .chunks(64 * 1024)
        .map(|c| {
            let mut framed = format!("{:x}\r\n", c.len()).into_bytes();
            framed.extend_from_slice(c);
            framed.extend_from_slice(b"\r\n");
            framed
        })
        .collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    let (s, body) = raw_http(agent.port, head.clone(), chunks).await;
    assert_error("chunked 1 MiB + 1", s, &body, 413, "payload_too_large");

    // A chunked body under the limit is read as usual.
    let small = br#"{"displayName": 7}"#;
    let mut framed = format!("{:x}\r\n", small.len()).into_bytes();
    framed.extend_from_slice(small);
    framed.extend_from_slice(b"\r\n0\r\n\r\n");
    let (s, body) = raw_http(agent.port, head, vec![framed]).await;
    assert_error("small chunked", s, &body, 400, "invalid_request");

    // A Content-Length that claims too much is refused before any body arrives.
    let head = format!(
        "POST /workspaces HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        agent.node_token(),
        100 * MIB
    );
    let (s, body) = raw_http(agent.port, head, vec![]).await;
    assert_error("claimed 100 MiB", s, &body, 413, "payload_too_large");

    // Oversized bodies on other JSON routes too.
    let r = agent
        .req(Method::PATCH, "/node")
        .header("Content-Type", "application/json")
        .body(over)
        .send()
        .await
        .expect("send");
    let s = r.status().as_u16();
    assert_error(
        "PATCH /node 1 MiB + 1",
        s,
        &r.json().await.unwrap_or(Value::Null),
        413,
        "payload_too_large",
    );

    // Refused before it was read, the body leaves the connection unusable: the
    // answer says so (Connection: close), so the client's next request, on the same
    // pooled client, goes through. Authentication still comes first (401).
    let oversized = vec![b' '; MIB + 1];
    for round in 0..5 {
        for (token, want, code) in [
            (Some(agent.node_token()), 413, "payload_too_large"),
            (None, 401, "unauthorized"),
        ] {
            let mut req = agent
                .http
                .post(agent.url("/workspaces"))
                .header("Content-Type", "application/json")
                .body(oversized.clone());
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("send");
            let s = r.status().as_u16();
            let close = r
                .headers()
                .get("connection")
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase);
            let body = r.json().await.unwrap_or(Value::Null);
            assert_error(&format!("round {round}"), s, &body, want, code);
            assert_eq!(close.as_deref(), Some("close"), "round {round}, {want}");
            let (s, list) = agent.get_json("/workspaces").await;
            assert_eq!(s, 200, "the request after a {want}: {list}");
        }
    }

    let (s, list) = agent.get_json("/workspaces").await;
    assert_eq!(s, 200);
    assert_eq!(list["workspaces"], json!([]));
    still_works(&agent).await;
}

#[tokio::test]
async fn display_names_are_validated() {
    let agent = Agent::start().await;
    let image = test_image();
    let refused = [
        ("empty", String::new()),
        ("spaces only", "   ".to_string()),
        ("whitespace only", " \t\n ".to_string()),
        ("65 characters", "a".repeat(65)),
        (
            "65 characters after trimming",
            format!("  {}  ", "b".repeat(65)),
        ),
        ("65 two-byte characters", "é".repeat(65)),
        ("a BEL", "bad\u{7}name".to_string()),
        ("a NUL", "bad\u{0}name".to_string()),
        ("an ESC", "\u{1b}[31mred".to_string()),
        ("a DEL", "bad\u{7f}".to_string()),
        ("a C1 control", "bad\u{80}x".to_string()),
    ];
    for (what, name) in refused {
        let (s, body) = post_json(&agent, json!({"displayName": name, "image": image})).await;
        assert_error(what, s, &body, 400, "invalid_request");
    }
    let (s, list) = agent.get_json("/workspaces").await;
    assert_eq!(s, 200);
    assert_eq!(list["workspaces"], json!([]), "nothing was created");

    // 64 characters (bytes do not count) are fine; unknown fields are ignored.
    let long = "a".repeat(64);
    let wide = "é".repeat(64);
    let mut made = Vec::new();
    for body in [
        json!({"displayName": long, "image": image}),
        json!({"displayName": wide, "image": image}),
        json!({
            "displayName": "extra fields",
            "image": image,
            "futureField": {"nested": [1, 2, 3]},
            "anotherOne": true,
        }),
    ] {
        let (s, ws) = post_json(&agent, body.clone()).await;
        assert_eq!(s, 202, "{body} answered {ws}");
        assert_eq!(ws["status"], "creating");
        made.push((ws["id"].as_str().expect("id").to_string(), ws));
    }
    assert_eq!(made[0].1["displayName"], long.as_str());
    assert_eq!(made[1].1["displayName"], wide.as_str());
    assert_eq!(made[2].1["displayName"], "extra fields");
    assert!(made[2].1.get("futureField").is_none());

    // A rename is held to the same rules.
    let id = made[2].0.clone();
    agent.wait_for(&id, WorkspaceStatus::Running).await;
    for (what, name) in [
        ("empty", String::new()),
        ("65", "c".repeat(65)),
        ("control", "x\u{1}".into()),
    ] {
        let (s, body) = agent
            .send_json(
                Method::PATCH,
                &format!("/workspaces/{id}"),
                json!({"displayName": name}),
            )
            .await;
        assert_error(&format!("rename {what}"), s, &body, 400, "invalid_request");
    }
    let (s, body) = agent
        .send_json(
            Method::PATCH,
            &format!("/workspaces/{id}"),
            json!({"displayName": 42}),
        )
        .await;
    assert_error("rename to a number", s, &body, 400, "invalid_request");
    assert_eq!(agent.workspace(&id).await.display_name, "extra fields");

    for (id, _) in &made {
        agent.wait_for(id, WorkspaceStatus::Running).await;
        agent.delete(id).await;
    }
    still_works(&agent).await;
}

#[tokio::test]
async fn odd_paths_and_queries_never_500() {
    let agent = Agent::start().await;
    let long = "a".repeat(200);
    let ids = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".",
        "abc",
        long.as_str(),
        "ABCDEFGHIJKL",
        "abcdefghijk%21",
        "%E6%97%A5%E6%9C%AC%E8%AA%9E",
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
        "%00",
        "a%2Fb",
        "..%2F..%2Fetc%2Fpasswd",
        "%FF%FE",
        "%20",
    ];
    for id in ids {
        for (method, suffix) in [
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/stop"),
            ("POST", "/restart"),
            ("GET", "/events"),
        ] {
            let path = format!("/workspaces/{id}{suffix}");
            let (s, body) = raw_get(&agent, method, &path).await;
            let code = body["error"].as_str().unwrap_or_default().to_string();
            let fine = (s == 404 && (code == "workspace_not_found" || code == "not_found"))
                || (s == 400 && code == "invalid_request");
            assert!(fine, "{method} {path} answered {s} {body}");
            assert_error(&format!("{method} {path}"), s, &body, s, &code);
        }
    }
    // The plainly well-formed but unknown ones are exactly workspace_not_found.
    for id in ["abc", "ABCDEFGHIJKL", long.as_str(), "%E6%97%A5%E6%9C%AC"] {
        let (s, body) = raw_get(&agent, "GET", &format!("/workspaces/{id}")).await;
        assert_error(id, s, &body, 404, "workspace_not_found");
    }
    // Traversal-looking paths outside /workspaces are just unknown routes.
    for path in ["/../node", "/workspaces/../../etc/passwd", "/%2e%2e/node"] {
        let (s, body) = raw_get(&agent, "GET", path).await;
        assert!(s == 404 || s == 200 || s == 400, "{path}: {s} {body}");
        if s != 200 {
            assert!(body["error"].is_string(), "{path}: {body}");
        }
    }

    // Bad queries on the event pages.
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=99999999999999999999",
        "cursor=nonsense",
        "cursor=0000000000000001-00000000",
        "cursor=%FF",
    ] {
        let (s, body) = agent.get_json(&format!("/events?{query}")).await;
        assert_error(
            &format!("/events?{query}"),
            s,
            &body,
            400,
            "invalid_request",
        );
    }
    for query in ["limit=1", "limit=500", "limit=50&cursor=", "unknown=1"] {
        let (s, body) = agent.get_json(&format!("/events?{query}")).await;
        assert_eq!(s, 200, "/events?{query}: {body}");
        assert!(body["events"].is_array(), "{body}");
    }
    let (_, first) = agent.get_json("/events?limit=1").await;
    assert_eq!(first["events"].as_array().map(Vec::len), Some(1));
    // A cursor from this node works.
    if let Some(cursor) = first["nextCursor"].as_str() {
        let (s, body) = agent.get_json(&format!("/events?cursor={cursor}")).await;
        assert_eq!(s, 200, "{body}");
    }

    let ws = agent.running("queried").await;
    for query in ["limit=0", "limit=501", "limit=abc", "cursor=nonsense"] {
        let (s, body) = agent
            .get_json(&format!("/workspaces/{}/events?{query}", ws.id))
            .await;
        assert_error(
            &format!("workspace events ?{query}"),
            s,
            &body,
            400,
            "invalid_request",
        );
    }
    agent.delete(&ws.id).await;
    still_works(&agent).await;
}

#[tokio::test]
async fn a_missing_image_ends_in_error_and_leaves_nothing() {
    let agent = Agent::start().await;
    let image = format!("sam-test-missing-{:08x}:latest", rand::random::<u32>());
    let started = Instant::now();
    let ws = agent
        .create(json!({"displayName": "no image", "image": image}))
        .await;
    let ws = wait_for_error(&agent, &ws.id, Duration::from_secs(10)).await;
    let message = ws.error.clone().expect("an error message");
    assert!(message.contains(&image), "{message}");

    let events = workspace_events(&agent, &ws.id).await;
    let error = events
        .iter()
        .find(|e| e["type"] == "workspace.error")
        .unwrap_or_else(|| panic!("no workspace.error event: {events:?}"));
    assert_eq!(error["level"], "error");
    assert_eq!(error["workspaceId"], ws.id.as_str());
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(&image)),
        "{error}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(error["createdAt"].as_str().expect("time"))
        .expect("rfc3339");
    assert!(
        (at.with_timezone(&chrono::Utc) - ws.created_at).num_seconds() <= 10,
        "recorded within 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The error workspace is still a record; no Docker object of it is left.
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
    let (s, list) = agent.get_json("/workspaces").await;
    assert_eq!(s, 200);
    assert_eq!(list["workspaces"].as_array().map(Vec::len), Some(1));

    // It can be deleted like any other.
    agent.delete(&ws.id).await;
    still_works(&agent).await;
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn an_unclonable_repository_ends_in_error_and_leaves_nothing() {
    let agent = Agent::start().await;
    let ws = agent
        .create(json!({
            "displayName": "no repo",
            "image": test_image(),
            "repository": "file:///nonexistent/sam-test-repo",
        }))
        .await;
    let ws = wait_for_error(&agent, &ws.id, Duration::from_secs(10)).await;
    let message = ws.error.clone().expect("an error message");
    assert!(message.to_lowercase().contains("clon"), "{message}");

    let events = workspace_events(&agent, &ws.id).await;
    let error = events
        .iter()
        .find(|e| e["type"] == "workspace.error")
        .unwrap_or_else(|| panic!("no workspace.error event: {events:?}"));
    assert_eq!(error["level"], "error");
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));

    // A branch that does not exist in a real repository fails the same way.
    let repo = git_repo(&agent.dir.path().join("repo"), &[("README", "hi\n")]);
    let ws2 = agent
        .create(json!({
            "displayName": "no branch",
            "image": test_image(),
            "repository": repo,
            "branch": "no-such-branch",
        }))
        .await;
    let ws2 = wait_for_error(&agent, &ws2.id, Duration::from_secs(10)).await;
    let message = ws2.error.clone().expect("an error message");
    assert!(message.to_lowercase().contains("clon"), "{message}");
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));

    agent.delete(&ws.id).await;
    agent.delete(&ws2.id).await;
    still_works(&agent).await;
}

#[tokio::test]
async fn invalid_repository_branch_and_env_are_400() {
    let agent = Agent::start().await;
    let image = test_image();
    let cases = [
        ("repository -oops", json!({"repository": "-oops"})),
        (
            "repository an option",
            json!({"repository": "--upload-pack=touch /tmp/x"}),
        ),
        (
            "repository an absolute path",
            json!({"repository": "/abs/path"}),
        ),
        (
            "repository a relative path",
            json!({"repository": "rel/path"}),
        ),
        ("repository ext::", json!({"repository": "ext::sh -c id"})),
        (
            "repository with a newline",
            json!({"repository": "https://example.com/a\n.git"}),
        ),
        ("branch without repository", json!({"branch": "main"})),
        (
            "branch an option",
            json!({"repository": "file:///tmp/x", "branch": "-b"}),
        ),
        (
            "branch with ..",
            json!({"repository": "file:///tmp/x", "branch": "a..b"}),
        ),
        ("gitToken without repository", json!({"gitToken": "t"})),
        (
            "env name starting with a digit",
            json!({"env": {"1BAD": "x"}}),
        ),
        ("env name with a dash", json!({"env": {"A-B": "x"}})),
        ("env name with =", json!({"env": {"A=B": "x"}})),
        ("env name empty", json!({"env": {"": "x"}})),
        ("env name with a space", json!({"env": {"A B": "x"}})),
        ("env value with NUL", json!({"env": {"A": "x\u{0}y"}})),
        ("image with a space", json!({"image": "busybox latest"})),
        ("image an option", json!({"image": "--privileged"})),
    ];
    for (what, extra) in cases {
        let mut body = json!({"displayName": what, "image": image});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (s, answer) = post_json(&agent, body).await;
        assert_error(what, s, &answer, 400, "invalid_request");
    }
    let (s, list) = agent.get_json("/workspaces").await;
    assert_eq!(s, 200);
    assert_eq!(list["workspaces"], json!([]), "nothing was created");
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));

    // Valid env names pass.
    let ws = agent
        .create(json!({
            "displayName": "env ok",
            "image": image,
            "env": {"_UNDER": "1", "MiXeD_9": "two words", "EMPTY": ""},
        }))
        .await;
    agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    let (ok, out) = docker_exec(&ws.id, None, "echo \"$MiXeD_9\"");
    assert!(ok && out.trim() == "two words", "{out}");
    agent.delete(&ws.id).await;
    still_works(&agent).await;
}
