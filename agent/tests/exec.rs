//! The exec socket (CONTRACT §7, `GET /workspaces/{id}/exec/ws`): one command
//! without a terminal, through the real agent, real Docker and real WebSockets.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn try_connect(agent: &Agent, ws: &str) -> Result<Socket, (u16, Value)> {
    let mut request = agent
        .ws_url(&format!("/workspaces/{ws}/exec/ws"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.node_token()).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("connect: {e}"),
    }
}

async fn connect(agent: &Agent, ws: &str) -> Socket {
    try_connect(agent, ws)
        .await
        .unwrap_or_else(|(s, b)| panic!("exec socket refused: {s} {b}"))
}

/// Everything a run sent, in order.
#[derive(Debug, Default)]
struct Run {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Control frames, and for each the output bytes received before it.
    controls: Vec<(Value, usize)>,
    /// The close code (`None`: a close frame without one, or no close frame).
    close: Option<u16>,
    closed_cleanly: bool,
    /// Binary frames with a stream byte other than 1 or 2, or empty.
    bad_frames: usize,
}

impl Run {
    fn exit(&self) -> Option<i64> {
        self.controls
            .iter()
            .find(|(c, _)| c["type"] == "exit")
            .and_then(|(c, _)| c["code"].as_i64())
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Exactly one control frame, `exit`, after all output; then a normal close.
    fn assert_exited(&self, code: i64) {
        assert_eq!(self.controls.len(), 1, "{self:?}");
        let (frame, before) = &self.controls[0];
        assert_eq!(frame, &json!({"type": "exit", "code": code}), "{self:?}");
        assert_eq!(
            *before,
            self.stdout.len() + self.stderr.len(),
            "exit comes after all output: {self:?}"
        );
        assert_eq!(self.close, Some(1000), "a normal close: {self:?}");
        assert!(self.closed_cleanly, "{self:?}");
        assert_eq!(self.bad_frames, 0, "{self:?}");
    }
}

/// Reads a socket (or its read half) to its end.
async fn collect<S>(mut socket: S) -> Run
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut run = Run::default();
    let read = async {
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Binary(b)) => match b.first() {
                    Some(1) => run.stdout.extend_from_slice(&b[1..]),
                    Some(2) => run.stderr.extend_from_slice(&b[1..]),
                    _ => run.bad_frames += 1,
                },
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("text frame is not JSON ({e}): {t}"));
                    run.controls.push((v, run.stdout.len() + run.stderr.len()));
                }
                Ok(Message::Close(frame)) => {
                    run.close = frame.map(|f| u16::from(f.code));
                    run.closed_cleanly = true;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the exec socket ended in time");
    run
}

async fn start(agent: &Agent, ws: &str, start: Value) -> Socket {
    let mut socket = connect(agent, ws).await;
    socket
        .send(Message::Text(start.to_string().into()))
        .await
        .expect("send start");
    socket
}

/// Runs `start` with no stdin (eof at once) and reads everything.
async fn run(agent: &Agent, ws: &str, start_frame: Value) -> Run {
    let mut socket = start(agent, ws, start_frame).await;
    socket
        .send(Message::Text(r#"{"type":"eof"}"#.into()))
        .await
        .expect("send eof");
    collect(socket).await
}

fn cmd(argv: &[&str]) -> Value {
    json!({"type": "start", "command": argv})
}

#[tokio::test]
async fn stdout_stderr_and_exit_code() {
    let agent = Agent::start().await;
    let ws = agent.running("exec-basic").await;

    let r = run(
        &agent,
        &ws.id,
        cmd(&["sh", "-c", "echo out; echo err >&2; exit 7"]),
    )
    .await;
    assert_eq!(r.out(), "out\n", "{r:?}");
    assert_eq!(r.err(), "err\n", "{r:?}");
    r.assert_exited(7);

    // No terminal: no \r\n, no echo; the default directory is the project folder,
    // the default user the image's.
    let r = run(
        &agent,
        &ws.id,
        cmd(&[
            "sh",
            "-c",
            "pwd; id -u; [ -t 0 ] || [ -t 1 ] || echo no-tty",
        ]),
    )
    .await;
    assert_eq!(
        r.out(),
        format!("{}\n0\nno-tty\n", ws.project_path),
        "{r:?}"
    );
    assert_eq!(r.err(), "", "{r:?}");
    r.assert_exited(0);

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn stdin_through_binary_frames_then_eof() {
    let agent = Agent::start().await;
    let ws = agent.running("exec-stdin").await;

    let mut socket = start(&agent, &ws.id, cmd(&["cat"])).await;
    for chunk in [&b"hello\n"[..], b"\x00\x01\x02 binary \xff", b"\nbye"] {
        socket
            .send(Message::Binary(chunk.to_vec().into()))
            .await
            .unwrap();
    }
    socket
        .send(Message::Text(r#"{"type":"eof"}"#.into()))
        .await
        .unwrap();
    let r = collect(socket).await;
    assert_eq!(r.stdout, b"hello\n\x00\x01\x02 binary \xff\nbye", "{r:?}");
    r.assert_exited(0);

    // Much more than any buffer, echoed while it is still being written.
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let socket = start(&agent, &ws.id, cmd(&["cat"])).await;
    let (mut tx, rx) = socket.split();
    let chunks: Vec<Vec<u8>> = data.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let writer = tokio::spawn(async move {
        for c in chunks {
            tx.send(Message::Binary(c.into())).await.unwrap();
        }
        tx.send(Message::Text(r#"{"type":"eof"}"#.into()))
            .await
            .unwrap();
        tx
    });
    let r = collect(rx).await;
    let _tx = writer.await.unwrap();
    assert_eq!(r.stdout.len(), data.len(), "controls {:?}", r.controls);
    assert!(r.stdout == data, "the bytes came back unchanged");
    r.assert_exited(0);

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn env_cwd_and_interleaved_streams() {
    let agent = Agent::start().await;
    let ws = agent.running("exec-env").await;

    let r = run(
        &agent,
        &ws.id,
        json!({"type": "start", "command": ["sh", "-c", "echo \"$FOO|$EMPTY|$PATH\"; pwd"],
               "env": {"FOO": "bar baz", "EMPTY": ""}, "cwd": "/tmp"}),
    )
    .await;
    assert_eq!(
        r.out(),
        "bar baz||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/tmp\n",
        "{r:?}"
    );
    r.assert_exited(0);

    // A relative cwd is inside the project folder.
    let r = run(&agent, &ws.id, cmd(&["mkdir", "-p", "sub/dir"])).await;
    r.assert_exited(0);
    let r = run(
        &agent,
        &ws.id,
        json!({"type": "start", "command": ["pwd"], "cwd": "sub/dir"}),
    )
    .await;
    assert_eq!(r.out(), format!("{}/sub/dir\n", ws.project_path));
    r.assert_exited(0);

    // Many small writes to both streams: each arrives whole and in its own order.
    let script =
        "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; exit 4";
    let r = run(&agent, &ws.id, cmd(&["sh", "-c", script])).await;
    let want = |p: &str| (0..3000).map(|i| format!("{p}{i}\n")).collect::<String>();
    assert_eq!(r.out(), want("out"));
    assert_eq!(r.err(), want("err"));
    r.assert_exited(4);

    // Output bytes 0, 1 and 2 are data, not headers.
    let r = run(
        &agent,
        &ws.id,
        cmd(&[
            "sh",
            "-c",
            "printf '\\001\\002\\000x'; printf '\\002\\000' >&2",
        ]),
    )
    .await;
    assert_eq!(r.stdout, b"\x01\x02\x00x");
    assert_eq!(r.stderr, b"\x02\x00");
    r.assert_exited(0);

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn commands_that_cannot_run() {
    let agent = Agent::start().await;
    let ws = agent.running("exec-missing").await;

    // As shells report them: not found 127, not executable 126.
    let r = run(&agent, &ws.id, cmd(&["no-such-command-xyz"])).await;
    r.assert_exited(127);
    // Why, on stderr (Docker's words), and nothing on stdout.
    assert_eq!(r.out(), "", "{r:?}");
    assert!(r.err().contains("no-such-command-xyz"), "{r:?}");
    let r = run(&agent, &ws.id, cmd(&["/no/such/path"])).await;
    assert_eq!(r.exit(), Some(127), "{r:?}");
    let r = run(&agent, &ws.id, cmd(&["/etc/passwd"])).await;
    assert_eq!(r.exit(), Some(126), "{r:?}");
    let r = run(
        &agent,
        &ws.id,
        json!({"type": "start", "command": ["pwd"], "cwd": "/no/such/dir"}),
    )
    .await;
    assert!(
        matches!(r.exit(), Some(126) | Some(127)),
        "a missing cwd cannot run: {r:?}"
    );
    // And the socket still works for the next command.
    run(&agent, &ws.id, cmd(&["true"])).await.assert_exited(0);

    agent.delete(&ws.id).await;
}

#[tokio::test]
async fn a_bad_first_frame_gets_an_error() {
    let agent = Agent::start().await;
    let ws = agent.running("exec-bad").await;

    let firsts: Vec<Message> = vec![
        Message::Text("not json".into()),
        Message::Text(r#"{"type":"eof"}"#.into()),
        Message::Text(r#"{"type":"bogus"}"#.into()),
        Message::Text(r#"{"type":"start"}"#.into()),
        Message::Text(r#"{"type":"start","command":[]}"#.into()),
        Message::Text(r#"{"type":"start","command":"echo hi"}"#.into()),
        Message::Text(r#"{"type":"start","command":["echo","a\u0000b"]}"#.into()),
        Message::Text(r#"{"type":"start","command":["true"],"env":{"1BAD":"x"}}"#.into()),
        Message::Text(r#"{"type":"start","command":["true"],"env":{"A=B":"x"}}"#.into()),
        Message::Binary(b"echo hi\n".to_vec().into()),
    ];
    for first in firsts {
        let what = format!("{first:?}");
        let mut socket = connect(&agent, &ws.id).await;
        socket.send(first).await.unwrap();
        let r = collect(socket).await;
        assert_eq!(r.controls.len(), 1, "{what}: {r:?}");
        let (frame, _) = &r.controls[0];
        assert_eq!(frame["type"], "error", "{what}: {frame}");
        assert!(
            !frame["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {frame}"
        );
        assert!(
            r.stdout.is_empty() && r.stderr.is_empty(),
            "{what}: nothing ran"
        );
    }

    // After start, a text frame other than eof is answered with an error and the
    // command goes on.
    let mut socket = start(&agent, &ws.id, cmd(&["cat"])).await;
    socket.send(Message::Text("garbage".into())).await.unwrap();
    socket
        .send(Message::Binary(b"still here".to_vec().into()))
        .await
        .unwrap();
    socket
        .send(Message::Text(r#"{"type":"eof"}"#.into()))
        .await
        .unwrap();
    let r = collect(socket).await;
    assert_eq!(r.out(), "still here", "{r:?}");
    assert_eq!(r.controls.len(), 2, "{r:?}");
    assert_eq!(r.controls[0].0["type"], "error", "{r:?}");
    assert_eq!(r.controls[1].0, json!({"type": "exit", "code": 0}), "{r:?}");

    // The workspace must run.
    let (s, _) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{}/stop", ws.id),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    agent.wait_for(&ws.id, WorkspaceStatus::Stopped).await;
    let (status, body) = try_connect(&agent, &ws.id).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "workspace_not_running", "{body}");

    agent.delete(&ws.id).await;
}
