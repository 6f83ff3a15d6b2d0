//! Files of a workspace's project folder through the real agent and real Docker:
//! listing, binary reads and writes, ranges, atomic writes, ownership, confinement
//! (`..`, absolute paths, symlinks pointing out), limits, and a stopped workspace.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use reqwest::header::HeaderMap;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;

fn assert_error(what: &str, status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// GET /files?path=: (status, headers, body bytes).
async fn get(agent: &Agent, ws: &str, path: &str) -> (u16, HeaderMap, Vec<u8>) {
    get_with(agent, ws, path, None).await
}

async fn get_with(
    agent: &Agent,
    ws: &str,
    path: &str,
    range: Option<&str>,
) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = agent
        .req(Method::GET, &format!("/workspaces/{ws}/files"))
        .query(&[("path", path)]);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

/// The entries of a folder, as JSON objects.
async fn list(agent: &Agent, ws: &str, path: &str) -> Vec<Value> {
    let (s, headers, body) = get(agent, ws, path).await;
    assert_eq!(s, 200, "list {path}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-sam-entry"], "dir");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    json_of(&body)["entries"]
        .as_array()
        .expect("entries")
        .clone()
}

fn names(entries: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

async fn put(agent: &Agent, ws: &str, path: &str, data: Vec<u8>) -> (u16, Value) {
    let r = agent
        .req(Method::PUT, &format!("/workspaces/{ws}/files"))
        .query(&[("path", path)])
        .body(data)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, json_of(&r.bytes().await.unwrap_or_default()))
}

async fn delete(agent: &Agent, ws: &str, path: &str, recursive: bool) -> (u16, Value) {
    let mut req = agent
        .req(Method::DELETE, &format!("/workspaces/{ws}/files"))
        .query(&[("path", path)]);
    if recursive {
        req = req.query(&[("recursive", "true")]);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    (status, json_of(&r.bytes().await.unwrap_or_default()))
}

async fn mkdir(agent: &Agent, ws: &str, path: &str) -> (u16, Value) {
    let r = agent
        .req(Method::POST, &format!("/workspaces/{ws}/files/mkdir"))
        .query(&[("path", path)])
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, json_of(&r.bytes().await.unwrap_or_default()))
}

async fn mv(agent: &Agent, ws: &str, from: &str, to: &str) -> (u16, Value) {
    agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{ws}/files/move"),
            json!({"from": from, "to": to}),
        )
        .await
}

/// Runs a shell script in the project folder of the container; asserts success.
fn sh_in(ws: &sam_protocol::Workspace, user: Option<&str>, script: &str) -> String {
    let (ok, out) = docker_exec(&ws.id, user, &format!("cd {} && {script}", ws.project_path));
    assert!(ok, "{script}: {out}");
    out
}

/// Names in the project folder (hidden ones included) as the container sees them.
fn ls_a(ws: &sam_protocol::Workspace, dir: &str) -> Vec<String> {
    sh_in(ws, None, &format!("ls -A {dir}"))
        .lines()
        .map(str::to_string)
        .collect()
}

fn no_temp_files(names: &[String]) {
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".sam-") || n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );
}

#[tokio::test]
async fn lists_reads_writes_binary_and_ranges() {
    let agent = Agent::start().await;
    let ws = agent.running("files basic").await;
    let id = ws.id.as_str();

    // Every byte value, and 1 MiB of random bytes, round-trip byte for byte.
    let all: Vec<u8> = (0..=255u8).collect();
    let random: Vec<u8> = (0..MIB).map(|_| rand::random::<u8>()).collect();
    assert_eq!(put(&agent, id, "bin/all.bin", all.clone()).await.0, 204);
    assert_eq!(
        put(&agent, id, "bin/random.bin", random.clone()).await.0,
        204
    );
    let (s, headers, body) = get(&agent, id, "bin/all.bin").await;
    assert_eq!(s, 200);
    assert_eq!(body, all);
    assert_eq!(headers["x-sam-entry"], "file");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], "256");
    let (s, _, body) = get(&agent, id, "bin/random.bin").await;
    assert_eq!(s, 200);
    assert!(body == random, "1 MiB came back changed");
    // The container sees the same bytes.
    let out = sh_in(
        &ws,
        None,
        "wc -c < bin/all.bin; od -An -v -tx1 bin/all.bin | tr -d ' \\n' | head -c 16; echo; \
         od -An -v -tx1 bin/all.bin | tr -d ' \\n' | tail -c 8",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["256", "0001020304050607", "fcfdfeff"]
    );
    // An empty file.
    assert_eq!(put(&agent, id, "bin/empty", vec![]).await.0, 204);
    let (s, headers, body) = get(&agent, id, "bin/empty").await;
    assert_eq!((s, body.len()), (200, 0));
    assert_eq!(headers["x-sam-entry"], "file");

    // A listing: files, folders and symlinks, with size and modifiedAt.
    sh_in(
        &ws,
        None,
        "mkdir bin/sub && ln -s all.bin bin/link && ln -s /etc bin/out-link",
    );
    let entries = list(&agent, id, "bin").await;
    assert_eq!(
        names(&entries),
        ["all.bin", "empty", "link", "out-link", "random.bin", "sub"]
    );
    let entry = |name: &str| entries.iter().find(|e| e["name"] == name).unwrap().clone();
    assert_eq!(entry("all.bin")["kind"], "file");
    assert_eq!(entry("all.bin")["size"], 256);
    assert_eq!(entry("random.bin")["size"], MIB);
    assert_eq!(entry("empty")["size"], 0);
    assert_eq!(entry("sub")["kind"], "dir");
    assert_eq!(entry("link")["kind"], "symlink");
    assert_eq!(entry("out-link")["kind"], "symlink");
    let now = chrono::Utc::now();
    for e in &entries {
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(e["modifiedAt"].clone()).expect("modifiedAt is RFC 3339");
        assert!(
            (now - at).num_seconds().abs() < 600,
            "{e}: modifiedAt is not recent"
        );
    }
    // The project folder itself: empty path and ".".
    assert_eq!(names(&list(&agent, id, "").await), ["bin"]);
    assert_eq!(names(&list(&agent, id, ".").await), ["bin"]);
    assert_eq!(
        names(&list(&agent, id, "bin/sub").await),
        Vec::<String>::new()
    );
    // A symlink inside the folder is followed.
    let (s, _, body) = get(&agent, id, "bin/link").await;
    assert_eq!((s, body), (200, all.clone()));

    // Ranges.
    let range = |r: &'static str| get_with(&agent, id, "bin/all.bin", Some(r));
    let (s, h, body) = range("bytes=0-9").await;
    assert_eq!(s, 206);
    assert_eq!(h["content-range"], "bytes 0-9/256");
    assert_eq!(h["content-length"], "10");
    assert_eq!(body, (0..10).collect::<Vec<u8>>());
    let (s, h, body) = range("bytes=250-").await;
    assert_eq!(s, 206);
    assert_eq!(h["content-range"], "bytes 250-255/256");
    assert_eq!(body, (250..=255).collect::<Vec<u8>>());
    let (s, h, body) = range("bytes=-6").await;
    assert_eq!(s, 206, "a suffix range");
    assert_eq!(h["content-range"], "bytes 250-255/256");
    assert_eq!(body, (250..=255).collect::<Vec<u8>>());
    let (s, h, body) = range("bytes=-1000").await;
    assert_eq!(s, 206, "a suffix longer than the file");
    assert_eq!(h["content-range"], "bytes 0-255/256");
    assert_eq!(body, all);
    let (s, h, body) = range("bytes=100-100000").await;
    assert_eq!(s, 206);
    assert_eq!(h["content-range"], "bytes 100-255/256");
    assert_eq!(body, (100..=255).collect::<Vec<u8>>());
    for bad in ["bytes=256-", "bytes=1000-2000"] {
        let (s, h, body) = range(bad).await;
        assert_eq!(s, 416, "{bad}");
        assert_eq!(h["content-range"], "bytes */256", "{bad}");
        assert!(json_of(&body)["error"].is_string(), "{bad}: error JSON");
    }
    let (s, _, body) = get_with(&agent, id, "bin/random.bin", Some("bytes=524288-524299")).await;
    assert_eq!(s, 206);
    assert_eq!(body, random[524288..524300]);

    // Overwriting is atomic (temp + rename) and leaves no temporary files.
    for round in 0..5u8 {
        let data = vec![round; 1000 + round as usize];
        assert_eq!(put(&agent, id, "bin/all.bin", data.clone()).await.0, 204);
        assert_eq!(get(&agent, id, "bin/all.bin").await.2, data);
    }
    no_temp_files(&names(&list(&agent, id, "bin").await));
    no_temp_files(&ls_a(&ws, "bin"));
    no_temp_files(&ls_a(&ws, "."));

    // Missing things.
    let (s, _, body) = get(&agent, id, "bin/nope.txt").await;
    assert_error("missing file", s, &json_of(&body), 404, "not_found");
    let (s, _, body) = get(&agent, id, "nope/deeper/x").await;
    assert_error("missing folder", s, &json_of(&body), 404, "not_found");
    // A file used as a folder: no such path; nothing can be written below it.
    let (s, _, body) = get(&agent, id, "bin/all.bin/x").await;
    assert_error("a file as a folder", s, &json_of(&body), 404, "not_found");
    let (s, body) = put(&agent, id, "bin/all.bin/x", b"x".to_vec()).await;
    assert_error("PUT below a file", s, &body, 409, "conflict");
    // A symlink loop is a bad path, not an internal error.
    sh_in(&ws, None, "ln -s loop bin/loop");
    let (s, _, body) = get(&agent, id, "bin/loop").await;
    assert_error("a symlink loop", s, &json_of(&body), 400, "invalid_request");
    let (s, _, body) = get(&agent, id, "bin/loop/x").await;
    assert_error(
        "through a symlink loop",
        s,
        &json_of(&body),
        400,
        "invalid_request",
    );
    agent.delete(id).await;
}

#[tokio::test]
async fn written_files_belong_to_the_workspace_user() {
    let agent = Agent::start().await;
    let src = tempfile::tempdir().unwrap();
    let devcontainer = json!({"image": test_image(), "remoteUser": "dev"}).to_string();
    let url = git_repo(
        src.path(),
        &[
            ("README.md", "hello\n"),
            (".devcontainer/devcontainer.json", &devcontainer),
        ],
    );
    let ws = agent
        .create(json!({"displayName": "owned", "repository": url}))
        .await;
    let ws = agent.wait_for(&ws.id, WorkspaceStatus::Running).await;
    let id = ws.id.as_str();

    assert_eq!(
        put(&agent, id, "new/deep/file.txt", b"one\n".to_vec())
            .await
            .0,
        204
    );
    assert_eq!(mkdir(&agent, id, "made/by/mkdir").await.0, 204);
    // A file root made, replaced through the API, belongs to the user afterwards.
    sh_in(&ws, None, "echo root > rootfile && chown 0:0 rootfile");
    assert_eq!(put(&agent, id, "rootfile", b"mine\n".to_vec()).await.0, 204);
    assert_eq!(
        put(&agent, id, "README.md", b"edited\n".to_vec()).await.0,
        204
    );
    let out = sh_in(
        &ws,
        None,
        "stat -c '%u:%g %n' new new/deep new/deep/file.txt made made/by made/by/mkdir rootfile README.md",
    );
    for line in out.lines() {
        assert!(line.starts_with("1000:1000 "), "not the user's: {out}");
    }
    // So the user can go on working with them inside the container.
    sh_in(
        &ws,
        Some("dev"),
        "echo two >> new/deep/file.txt && touch made/by/mkdir/x && echo more >> rootfile",
    );
    let (_, _, body) = get(&agent, id, "new/deep/file.txt").await;
    assert_eq!(body, b"one\ntwo\n");
    let (_, _, body) = get(&agent, id, "rootfile").await;
    assert_eq!(body, b"mine\nmore\n");
    agent.delete(id).await;
}

#[tokio::test]
async fn escapes_are_refused_and_nothing_leaves_the_folder() {
    let agent = Agent::start().await;
    let ws = agent.running("escapes").await;
    let id = ws.id.as_str();
    let project = ws.project_path.clone();
    sh_in(
        &ws,
        None,
        &format!(
            "echo inside > inside.txt && mkdir d && ln -s /etc etc-link && ln -s ../.. up \
             && ln -s /etc/passwd passwd-link && ln -s {project}/inside.txt abs-inside \
             && ln -s inside.txt rel-inside && ln -s ../inside.txt d/rel-up"
        ),
    );
    let passwd_before = sh_in(&ws, None, "md5sum /etc/passwd");
    let volume_dir = {
        let (ok, out) = docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &format!("sam-ws-{id}"),
        ]);
        assert!(ok, "{out}");
        std::path::PathBuf::from(out.trim())
    };
    let host_around = || {
        let mut n: Vec<String> = std::fs::read_dir(volume_dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let host_before = host_around();

    // Symlinks that stay inside work (relative ones).
    let (s, _, body) = get(&agent, id, "rel-inside").await;
    assert_eq!((s, body), (200, b"inside\n".to_vec()));
    let (s, _, body) = get(&agent, id, "d/rel-up").await;
    assert_eq!((s, body), (200, b"inside\n".to_vec()));
    // A `..` that stays inside is fine.
    let (s, _, body) = get(&agent, id, "d/../inside.txt").await;
    assert_eq!((s, body), (200, b"inside\n".to_vec()));

    let forbidden = |what: String, s: u16, body: Value| {
        assert_error(&what, s, &body, 403, "forbidden");
    };
    for path in [
        "..",
        "../",
        "../x",
        "a/../../x",
        "d/../../x",
        "./../x",
        "/etc/passwd",
        "/",
        "etc-link",
        "etc-link/passwd",
        "up",
        "up/etc/passwd",
        "passwd-link",
        "abs-inside",
    ] {
        let (s, _, body) = get(&agent, id, path).await;
        forbidden(format!("GET {path}"), s, json_of(&body));
    }
    for path in [
        "../x",
        "a/../../x",
        "/tmp/x",
        "/etc/passwd",
        "etc-link/x",
        "etc-link/passwd",
        "up/x",
        "up/tmp/x",
        "passwd-link",
        "abs-inside",
    ] {
        let (s, body) = put(&agent, id, path, b"pwned".to_vec()).await;
        forbidden(format!("PUT {path}"), s, body);
    }
    for path in [
        "..",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "etc-link/passwd",
        "up/etc",
    ] {
        for recursive in [false, true] {
            let (s, body) = delete(&agent, id, path, recursive).await;
            forbidden(format!("DELETE {path} recursive={recursive}"), s, body);
        }
    }
    for path in [
        "..",
        "../new",
        "a/../../new",
        "/tmp/new",
        "etc-link/new",
        "up/new",
    ] {
        let (s, body) = mkdir(&agent, id, path).await;
        forbidden(format!("mkdir {path}"), s, body);
    }
    for from in [
        "../x",
        "/etc/passwd",
        "etc-link/passwd",
        "up/etc/passwd",
        "a/../../x",
    ] {
        let (s, body) = mv(&agent, id, from, "stolen").await;
        forbidden(format!("move from {from}"), s, body);
    }
    for to in [
        "../moved",
        "/tmp/moved",
        "etc-link/moved",
        "up/moved",
        "d/../../moved",
    ] {
        let (s, body) = mv(&agent, id, "inside.txt", to).await;
        forbidden(format!("move to {to}"), s, body);
    }

    // Nothing changed outside the folder, in the container or on the host.
    assert_eq!(sh_in(&ws, None, "md5sum /etc/passwd"), passwd_before);
    let (ok, out) = docker_exec(
        id,
        None,
        "ls -d /etc/x /etc/new /etc/moved /tmp/x /tmp/new /tmp/moved /moved /new /x /stolen \
         /workspaces/x /workspaces/new /workspaces/moved 2>&1",
    );
    assert!(
        !ok && !out.contains("/etc/x\n"),
        "something was made outside: {out}"
    );
    assert_eq!(out.matches("No such file").count(), 13, "{out}");
    assert_eq!(
        host_around(),
        host_before,
        "the host's volume folder changed"
    );
    let mut inside = ls_a(&ws, ".");
    inside.sort();
    assert_eq!(
        inside,
        [
            "abs-inside",
            "d",
            "etc-link",
            "inside.txt",
            "passwd-link",
            "rel-inside",
            "up"
        ]
    );

    // The links themselves are entries of the folder: removing one (even with
    // recursive=true) removes the link, never what it points to.
    assert_eq!(delete(&agent, id, "up", true).await.0, 204);
    assert_eq!(delete(&agent, id, "etc-link", true).await.0, 204);
    assert_eq!(sh_in(&ws, None, "md5sum /etc/passwd"), passwd_before);
    assert!(sh_in(&ws, None, "ls /etc").contains("passwd"));

    // NUL bytes in a path: 400, and the agent carries on.
    for path in ["a\0b", "\0", "inside.txt\0.png"] {
        let (s, _, body) = get(&agent, id, path).await;
        assert_error("GET with NUL", s, &json_of(&body), 400, "invalid_request");
        let (s, body) = put(&agent, id, path, b"x".to_vec()).await;
        assert_error("PUT with NUL", s, &body, 400, "invalid_request");
        let (s, body) = delete(&agent, id, path, false).await;
        assert_error("DELETE with NUL", s, &body, 400, "invalid_request");
        let (s, body) = mkdir(&agent, id, path).await;
        assert_error("mkdir with NUL", s, &body, 400, "invalid_request");
        let (s, body) = mv(&agent, id, path, "y").await;
        assert_error("move from NUL", s, &body, 400, "invalid_request");
        let (s, body) = mv(&agent, id, "inside.txt", path).await;
        assert_error("move to NUL", s, &body, 400, "invalid_request");
    }
    // The same over a raw socket, %00 exactly as written.
    let token = agent.node_token();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", agent.port))
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "GET /workspaces/{id}/files?path=inside.txt%00 HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"invalid_request\""), "{answer}");

    let (s, _, body) = get(&agent, id, "inside.txt").await;
    assert_eq!((s, body), (200, b"inside\n".to_vec()), "still serving");
    agent.delete(id).await;
}

/// Sends a PUT with a chunked body over a raw socket; returns the status and JSON.
async fn put_chunked(agent: &Agent, ws: &str, path: &str, data: &[u8]) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", agent.port))
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "PUT /workspaces/{ws}/files?path={path} HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        agent.node_token()
    );
    let mut framed = head.into_bytes();
    for chunk in data.chunks(256 * 1024) {
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    // Written by a task of its own, so an early answer is read while it sends.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&framed).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return (status, json_of(&buf[end + 4..end + 4 + len]));
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!("incomplete answer"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("an answer within 30 s");
    writer.abort();
    answer
}

#[tokio::test]
async fn bodies_over_16_mib_are_413_and_16_mib_is_fine() {
    let agent = Agent::start().await;
    let ws = agent.running("files limit").await;
    let id = ws.id.as_str();

    let exact: Vec<u8> = (0..16 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    let mut over = exact.clone();
    over.push(1);

    let (s, body) = put(&agent, id, "big.bin", over.clone()).await;
    assert_error("16 MiB + 1", s, &body, 413, "payload_too_large");
    let (s, body) = put_chunked(&agent, id, "big.bin", &over).await;
    assert_error("16 MiB + 1 chunked", s, &body, 413, "payload_too_large");
    let (s, _, _) = get(&agent, id, "big.bin").await;
    assert_eq!(s, 404, "nothing was written");
    assert!(ls_a(&ws, ".").is_empty(), "no file, no temporary file");

    let (s, body) = put(&agent, id, "big.bin", exact.clone()).await;
    assert_eq!(s, 204, "exactly 16 MiB: {body}");
    let (s, h, body) = get(&agent, id, "big.bin").await;
    assert_eq!(s, 200);
    assert_eq!(h["content-length"], (16 * MIB).to_string().as_str());
    assert!(body == exact, "16 MiB came back changed");
    let (s, body) = put_chunked(&agent, id, "chunked.bin", &exact).await;
    assert_eq!(s, 204, "exactly 16 MiB chunked: {body}");
    assert!(get(&agent, id, "chunked.bin").await.2 == exact);

    // A refused overwrite keeps the old content.
    let (s, body) = put(&agent, id, "big.bin", over).await;
    assert_error(
        "overwrite with 16 MiB + 1",
        s,
        &body,
        413,
        "payload_too_large",
    );
    assert!(get(&agent, id, "big.bin").await.2 == exact);
    let mut names = ls_a(&ws, ".");
    names.sort();
    assert_eq!(names, ["big.bin", "chunked.bin"]);
    agent.delete(id).await;
}

#[tokio::test]
async fn files_of_a_stopped_workspace_stay_readable_and_writable() {
    let agent = Agent::start().await;
    let ws = agent.running("files stopped").await;
    let id = ws.id.as_str();
    assert_eq!(
        put(&agent, id, "before.txt", b"before\n".to_vec()).await.0,
        204
    );

    let (s, body) = agent
        .send_json(Method::POST, &format!("/workspaces/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, 202, "{body}");
    agent.wait_for(id, WorkspaceStatus::Stopped).await;
    let (ok, state) = docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &format!("sam-ws-{id}"),
    ]);
    assert!(ok && state.trim() == "false", "the container runs: {state}");

    let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(
        put(&agent, id, "notes/while-stopped.bin", data.clone())
            .await
            .0,
        204
    );
    assert_eq!(mkdir(&agent, id, "made/while/stopped").await.0, 204);
    assert_eq!(mv(&agent, id, "before.txt", "made/before.txt").await.0, 204);
    let (s, _, body) = get(&agent, id, "notes/while-stopped.bin").await;
    assert_eq!(s, 200);
    assert!(body == data);
    let (s, _, body) = get_with(&agent, id, "notes/while-stopped.bin", Some("bytes=-4")).await;
    assert_eq!((s, body), (206, 99_999u32.to_le_bytes().to_vec()));
    assert_eq!(names(&list(&agent, id, "").await), ["made", "notes"]);
    assert_eq!(
        names(&list(&agent, id, "made").await),
        ["before.txt", "while"]
    );

    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{id}/restart"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let ws = agent.wait_for(id, WorkspaceStatus::Running).await;
    let out = sh_in(
        &ws,
        None,
        "wc -c < notes/while-stopped.bin; cat made/before.txt; ls -d made/while/stopped",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["400000", "before", "made/while/stopped"]
    );
    let (ok, head) = docker_exec(
        id,
        None,
        &format!(
            "od -An -v -tx1 {}/notes/while-stopped.bin | head -n 1",
            ws.project_path
        ),
    );
    assert!(ok);
    assert_eq!(
        head.split_whitespace().collect::<Vec<_>>(),
        [
            "00", "00", "00", "00", "01", "00", "00", "00", "02", "00", "00", "00", "03", "00",
            "00", "00"
        ]
    );
    let (s, _, body) = get(&agent, id, "notes/while-stopped.bin").await;
    assert_eq!(s, 200);
    assert!(body == data, "read back after the restart");
    agent.delete(id).await;
}

#[tokio::test]
async fn delete_move_and_mkdir() {
    let agent = Agent::start().await;
    let ws = agent.running("files ops").await;
    let id = ws.id.as_str();

    // mkdir makes parents; again is fine.
    assert_eq!(mkdir(&agent, id, "a/b/c").await.0, 204);
    assert_eq!(mkdir(&agent, id, "a/b/c").await.0, 204);
    assert_eq!(sh_in(&ws, None, "ls -d a/b/c"), "a/b/c\n");
    assert_eq!(names(&list(&agent, id, "a/b").await), ["c"]);
    assert_eq!(put(&agent, id, "a/b/c/f.txt", b"f".to_vec()).await.0, 204);
    // mkdir over a file is a conflict.
    let (s, body) = mkdir(&agent, id, "a/b/c/f.txt").await;
    assert_error("mkdir over a file", s, &body, 409, "conflict");

    // A non-empty folder needs recursive=true.
    let (s, body) = delete(&agent, id, "a", false).await;
    assert_error("delete non-empty", s, &body, 409, "conflict");
    assert_eq!(sh_in(&ws, None, "cat a/b/c/f.txt"), "f");
    assert_eq!(delete(&agent, id, "a", true).await.0, 204);
    let (s, _, body) = get(&agent, id, "a").await;
    assert_error("deleted folder", s, &json_of(&body), 404, "not_found");
    // An empty folder and a file go without it.
    assert_eq!(mkdir(&agent, id, "empty").await.0, 204);
    assert_eq!(delete(&agent, id, "empty", false).await.0, 204);
    assert_eq!(put(&agent, id, "gone.txt", b"x".to_vec()).await.0, 204);
    assert_eq!(delete(&agent, id, "gone.txt", false).await.0, 204);
    let (s, body) = delete(&agent, id, "gone.txt", false).await;
    assert_error("delete missing", s, &body, 404, "not_found");
    // The project folder itself cannot go.
    for path in ["", "."] {
        let (s, body) = delete(&agent, id, path, true).await;
        assert!(s == 400 || s == 403, "delete {path:?}: {s} {body}");
    }

    // Move: onto an existing path is a conflict, both left as they were.
    assert_eq!(put(&agent, id, "x.txt", b"x".to_vec()).await.0, 204);
    assert_eq!(put(&agent, id, "y.txt", b"y".to_vec()).await.0, 204);
    let (s, body) = mv(&agent, id, "x.txt", "y.txt").await;
    assert_error("move onto a file", s, &body, 409, "conflict");
    assert_eq!(get(&agent, id, "x.txt").await.2, b"x");
    assert_eq!(get(&agent, id, "y.txt").await.2, b"y");
    assert_eq!(mkdir(&agent, id, "dir").await.0, 204);
    let (s, body) = mv(&agent, id, "x.txt", "dir").await;
    assert_error("move onto a folder", s, &body, 409, "conflict");
    let (s, body) = mv(&agent, id, "nope.txt", "z.txt").await;
    assert_error("move a missing file", s, &body, 404, "not_found");
    // A move to a free name, and into a folder.
    assert_eq!(mv(&agent, id, "x.txt", "z.txt").await.0, 204);
    assert_eq!(get(&agent, id, "x.txt").await.0, 404);
    assert_eq!(get(&agent, id, "z.txt").await.2, b"x");
    assert_eq!(mv(&agent, id, "z.txt", "dir/z.txt").await.0, 204);
    assert_eq!(mv(&agent, id, "dir", "renamed").await.0, 204);
    assert_eq!(sh_in(&ws, None, "cat renamed/z.txt"), "x");
    let mut all = ls_a(&ws, ".");
    all.sort();
    assert_eq!(all, ["renamed", "y.txt"]);

    // Malformed move bodies.
    let (s, body) = agent
        .send_json(
            Method::POST,
            &format!("/workspaces/{id}/files/move"),
            json!({"from": "y.txt"}),
        )
        .await;
    assert_error("move without to", s, &body, 400, "invalid_request");
    // A missing file for GET, and an unknown workspace.
    let (s, _, body) = get(&agent, id, "missing.txt").await;
    assert_error("missing", s, &json_of(&body), 404, "not_found");
    let (s, _, body) = get(&agent, "nope", "x").await;
    assert_error(
        "unknown workspace",
        s,
        &json_of(&body),
        404,
        "workspace_not_found",
    );
    agent.delete(id).await;
}
