//! CONTRACT §2: the authentication matrix — tokens, scopes, routing headers and the
//! order of checks — against a real agent.

mod common;

use std::process::Command;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sam_protocol::WorkspaceStatus;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A workspace id of the right shape that no agent ever made.
const NO_SUCH_WS: &str = "zzzzzzzzzzzz";

/// Sends `method path` with an optional bearer token and extra headers.
async fn call(
    agent: &Agent,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = agent.http.request(method.clone(), agent.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if method == Method::POST || method == Method::PATCH {
        req = req.json(&json!({"displayName": "from-auth-test"}));
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

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

/// Node claims for `agent`, with `changes` merged over them (`null` removes a claim).
fn claims_with(agent: &Agent, changes: Value) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "iss": "sam-desktop",
        "aud": "sam-agent",
        "node": agent.node_id,
        "scope": "node",
        "iat": now,
        "exp": now + 300,
    });
    let map = claims.as_object_mut().expect("object");
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    claims
}

fn token_with(agent: &Agent, changes: Value) -> String {
    sign(&agent.key, &claims_with(agent, changes))
}

/// base64url without padding, for hand-built tokens.
fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A PEM private key made by the openssl CLI (`genpkey` with these arguments).
fn openssl_key(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl genpkey {args:?} failed");
    out.stdout
}

/// Every token in `tokens` is refused with 401 on a known node route, a workspace
/// route and an unknown path alike.
async fn assert_all_unauthorized(agent: &Agent, tokens: &[(&str, String)]) {
    for (what, token) in tokens {
        for path in [
            "/node",
            "/workspaces",
            &format!("/workspaces/{NO_SUCH_WS}"),
            "/no/such/route",
        ] {
            let (s, body) = call(agent, Method::GET, path, Some(token), &[]).await;
            assert_error(&format!("{what} on {path}"), s, &body, 401, "unauthorized");
        }
    }
}

#[tokio::test]
async fn health_needs_no_token() {
    let agent = Agent::start().await;
    for token in [None, Some("garbage")] {
        let (s, body) = call(&agent, Method::GET, "/health", token, &[]).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert!(
            body["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{body}"
        );
    }
    // Only GET /health is open: anything else there still needs a token.
    let (s, body) = call(&agent, Method::POST, "/health", None, &[]).await;
    assert_error("POST /health", s, &body, 401, "unauthorized");
}

#[tokio::test]
async fn missing_malformed_and_foreign_credentials_are_unauthorized() {
    let agent = Agent::start().await;

    // No Authorization header at all, and schemes other than Bearer.
    for path in ["/node", "/workspaces", "/events", "/no/such/route"] {
        let (s, body) = call(&agent, Method::GET, path, None, &[]).await;
        assert_error(
            &format!("no token on {path}"),
            s,
            &body,
            401,
            "unauthorized",
        );
    }
    let good = agent.node_token();
    for auth in [
        "Basic dXNlcjpwYXNz".to_string(),
        format!("Token {good}"),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        good.clone(),
    ] {
        let r = agent
            .http
            .get(agent.url("/node"))
            .header("Authorization", &auth)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_error(
            &format!("Authorization: {auth:.12}…"),
            s,
            &body,
            401,
            "unauthorized",
        );
    }

    let claims = claims_with(&agent, json!({}));
    let payload = b64url(claims.to_string().as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3);

    // alg none, with and without a trailing signature part.
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let alg_none_no_dot = format!("{none_header}.{payload}");
    // The good token's signature over a header that says none.
    let alg_none_signed = format!("{none_header}.{}.{}", parts[1], parts[2]);

    // HS256 keyed with the agent's own public key PEM: the classic confusion attack.
    let pem = std::fs::read(agent.dir.path().join("trusted.pem")).expect("trusted.pem");
    let hs256_pem = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&pem),
    )
    .expect("hs256");
    let hs256_plain = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"secret"),
    )
    .expect("hs256");

    // RS256 and ES256, from keys of their own.
    let rsa = openssl_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&rsa).expect("rsa key"),
    )
    .expect("rs256");
    let ec = openssl_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let es256 = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&ec).expect("ec key"),
    )
    .expect("es256");

    // EdDSA, but signed by a key the agent does not trust.
    let other_key = sign(&new_key(), &claims);

    // The good token with its payload swapped for another (signature no longer fits).
    let longer = claims_with(&agent, json!({"exp": unix_now() + 3000}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(longer.to_string().as_bytes()),
        parts[2]
    );
    // The good token with a flipped signature byte.
    let mut sig = parts[2].to_string();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(0..1, flipped);
    let bad_sig = format!("{}.{}.{sig}", parts[0], parts[1]);

    assert_all_unauthorized(
        &agent,
        &[
            ("garbage", "garbage".into()),
            ("three garbage parts", "a.b.c".into()),
            ("alg none", alg_none),
            ("alg none without signature part", alg_none_no_dot),
            ("alg none with a signature", alg_none_signed),
            ("HS256 keyed with the public key PEM", hs256_pem),
            ("HS256", hs256_plain),
            ("RS256", rs256),
            ("ES256", es256),
            ("another Ed25519 key", other_key),
            ("tampered payload", tampered),
            ("flipped signature", bad_sig),
        ],
    )
    .await;

    // Control: the good token passes.
    let (s, body) = call(&agent, Method::GET, "/node", Some(&good), &[]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["nodeId"], agent.node_id.as_str());
}

#[tokio::test]
async fn claims_are_checked() {
    let agent = Agent::start().await;
    let now = unix_now();
    let day = 24 * 60 * 60;

    let refused = [
        (
            "expired 10 minutes ago",
            json!({"iat": now - 900, "exp": now - 600}),
        ),
        (
            "expired beyond the leeway",
            json!({"iat": now - 400, "exp": now - 90}),
        ),
        (
            "issued in the future beyond the leeway",
            json!({"iat": now + 300, "exp": now + 600}),
        ),
        ("wrong iss", json!({"iss": "someone-else"})),
        ("wrong aud", json!({"aud": "sam-desktop"})),
        ("wrong node", json!({"node": "another-node"})),
        ("lifetime of 24 h + 1 s", json!({"exp": now + day + 1})),
        (
            "lifetime of 24 h + 1 s issued in the past",
            json!({"iat": now - 100, "exp": now - 100 + day + 1}),
        ),
        (
            "workspace scope without a workspace claim",
            json!({"scope": "workspace"}),
        ),
        ("unknown scope", json!({"scope": "admin"})),
        (
            "a lifetime that overflows: iat -1, exp i64::MAX",
            json!({"iat": -1, "exp": i64::MAX}),
        ),
        (
            "a lifetime that overflows: iat i64::MIN",
            json!({"iat": i64::MIN, "exp": now + 300}),
        ),
        (
            "exp before iat by more than a day",
            json!({"iat": now, "exp": now - day - 10}),
        ),
        ("exp a string", json!({"exp": "soon"})),
        ("exp a float", json!({"exp": (now + 300) as f64 + 0.5})),
        ("iat a string", json!({"iat": "now"})),
        ("no exp", json!({"exp": null})),
        ("no iat", json!({"iat": null})),
        ("no iss", json!({"iss": null})),
        ("no aud", json!({"aud": null})),
        ("no node", json!({"node": null})),
        ("no scope", json!({"scope": null})),
    ];
    let tokens: Vec<(&str, String)> = refused
        .iter()
        .map(|(what, changes)| (*what, token_with(&agent, changes.clone())))
        .collect();
    assert_all_unauthorized(&agent, &tokens).await;

    let accepted = [
        (
            "expired within the 60 s leeway",
            json!({"iat": now - 300, "exp": now - 30}),
        ),
        (
            "issued in the future within the leeway",
            json!({"iat": now + 30, "exp": now + 330}),
        ),
        ("lifetime of exactly 24 h", json!({"exp": now + day})),
    ];
    for (what, changes) in accepted {
        let token = token_with(&agent, changes);
        let (s, body) = call(&agent, Method::GET, "/node", Some(&token), &[]).await;
        assert_eq!(s, 200, "{what}: {body}");
        assert_eq!(body["nodeId"], agent.node_id.as_str(), "{what}");
    }
}

#[tokio::test]
async fn workspace_tokens_reach_their_own_workspace_only() {
    let agent = Agent::start().await;
    let ws = agent.running("scoped").await;
    let id = ws.id.as_str();
    let token = agent.workspace_token(id);

    // Node-level routes: 403 forbidden.
    for (method, path) in [
        (Method::GET, "/workspaces".to_string()),
        (Method::POST, "/workspaces".to_string()),
        (Method::GET, "/node".to_string()),
        (Method::PATCH, "/node".to_string()),
        (Method::POST, "/node/stop".to_string()),
        (Method::GET, "/events".to_string()),
        (Method::PATCH, format!("/workspaces/{id}")),
        (Method::DELETE, format!("/workspaces/{id}")),
    ] {
        let (s, body) = call(&agent, method.clone(), &path, Some(&token), &[]).await;
        assert_error(
            &format!("workspace token on {method} {path}"),
            s,
            &body,
            403,
            "forbidden",
        );
    }
    let (s, body) = call(&agent, Method::GET, "/events/ws", Some(&token), &[]).await;
    assert_error("workspace token on /events/ws", s, &body, 403, "forbidden");

    // Another workspace's routes: 403, whether that workspace exists or not, and
    // whatever shape its id has.
    for other in [NO_SUCH_WS, "nope", "ABCDEFGHIJKL"] {
        for (method, path) in [
            (Method::GET, format!("/workspaces/{other}")),
            (Method::POST, format!("/workspaces/{other}/stop")),
            (Method::POST, format!("/workspaces/{other}/restart")),
            (Method::GET, format!("/workspaces/{other}/events")),
            (Method::DELETE, format!("/workspaces/{other}")),
        ] {
            let (s, body) = call(&agent, method.clone(), &path, Some(&token), &[]).await;
            assert_error(
                &format!("token for {id} on {method} {path}"),
                s,
                &body,
                403,
                "forbidden",
            );
        }
    }
    // A token for another (nonexistent) workspace on this one.
    let foreign = agent.workspace_token(NO_SUCH_WS);
    let (s, body) = call(
        &agent,
        Method::GET,
        &format!("/workspaces/{id}"),
        Some(&foreign),
        &[],
    )
    .await;
    assert_error("foreign workspace token", s, &body, 403, "forbidden");

    // Its own workspace: every workspace-scoped route.
    let (s, body) = call(
        &agent,
        Method::GET,
        &format!("/workspaces/{id}"),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["id"], id);
    let (s, body) = call(
        &agent,
        Method::GET,
        &format!("/workspaces/{id}/events"),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let events = body["events"].as_array().expect("events");
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["workspaceId"] == id), "{body}");

    let (s, body) = call(
        &agent,
        Method::POST,
        &format!("/workspaces/{id}/stop"),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(s, 202, "{body}");
    agent.wait_for(id, WorkspaceStatus::Stopped).await;
    let (s, body) = call(
        &agent,
        Method::POST,
        &format!("/workspaces/{id}/restart"),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(s, 202, "{body}");
    agent.wait_for(id, WorkspaceStatus::Running).await;

    // The node token reaches the same workspace routes.
    let (s, _) = agent.get_json(&format!("/workspaces/{id}/events")).await;
    assert_eq!(s, 200);

    agent.delete(id).await;
    // Deleted: its own token now meets 404 workspace_not_found.
    let (s, body) = call(
        &agent,
        Method::GET,
        &format!("/workspaces/{id}"),
        Some(&token),
        &[],
    )
    .await;
    assert_error(
        "token of a deleted workspace",
        s,
        &body,
        404,
        "workspace_not_found",
    );
    assert_eq!(agent.docker_leftovers(), (vec![], vec![], vec![]));
}

#[tokio::test]
async fn order_of_checks_and_missing_resources() {
    let agent = Agent::start().await;
    let node = agent.node_token();

    // Unknown paths: 401 without a token, 404 not_found with one (of either scope).
    for path in ["/nope", "/workspaces/x/y/z", "/node/unknown", "/"] {
        let (s, body) = call(&agent, Method::GET, path, None, &[]).await;
        assert_error(
            &format!("{path} without token"),
            s,
            &body,
            401,
            "unauthorized",
        );
        let (s, body) = call(&agent, Method::GET, path, Some("garbage"), &[]).await;
        assert_error(&format!("{path} bad token"), s, &body, 401, "unauthorized");
        let (s, body) = call(&agent, Method::GET, path, Some(&node), &[]).await;
        assert_error(&format!("{path} node token"), s, &body, 404, "not_found");
        let ws_token = agent.workspace_token(NO_SUCH_WS);
        let (s, body) = call(&agent, Method::GET, path, Some(&ws_token), &[]).await;
        assert_error(
            &format!("{path} workspace token"),
            s,
            &body,
            404,
            "not_found",
        );
    }
    // A known path with a method it does not serve: also before scope, also 404.
    let (s, body) = call(&agent, Method::DELETE, "/node", None, &[]).await;
    assert_error("DELETE /node without token", s, &body, 401, "unauthorized");
    let (s, body) = call(&agent, Method::DELETE, "/node", Some(&node), &[]).await;
    assert_error("DELETE /node", s, &body, 404, "not_found");

    // A node token on a workspace that does not exist: 404 workspace_not_found.
    for (method, path) in [
        (Method::GET, format!("/workspaces/{NO_SUCH_WS}")),
        (Method::PATCH, format!("/workspaces/{NO_SUCH_WS}")),
        (Method::DELETE, format!("/workspaces/{NO_SUCH_WS}")),
        (Method::POST, format!("/workspaces/{NO_SUCH_WS}/stop")),
        (Method::POST, format!("/workspaces/{NO_SUCH_WS}/restart")),
        (Method::GET, format!("/workspaces/{NO_SUCH_WS}/events")),
    ] {
        let (s, body) = call(&agent, method.clone(), &path, Some(&node), &[]).await;
        assert_error(
            &format!("node token on {method} {path}"),
            s,
            &body,
            404,
            "workspace_not_found",
        );
    }

    // A workspace token whose claim names the path's workspace, which does not exist.
    let ghost = agent.workspace_token(NO_SUCH_WS);
    for (method, path) in [
        (Method::GET, format!("/workspaces/{NO_SUCH_WS}")),
        (Method::POST, format!("/workspaces/{NO_SUCH_WS}/stop")),
        (Method::POST, format!("/workspaces/{NO_SUCH_WS}/restart")),
        (Method::GET, format!("/workspaces/{NO_SUCH_WS}/events")),
    ] {
        let (s, body) = call(&agent, method.clone(), &path, Some(&ghost), &[]).await;
        assert_error(
            &format!("ghost token on {method} {path}"),
            s,
            &body,
            404,
            "workspace_not_found",
        );
    }
    // … but on a node route that workspace token is still just forbidden.
    let (s, body) = call(
        &agent,
        Method::DELETE,
        &format!("/workspaces/{NO_SUCH_WS}"),
        Some(&ghost),
        &[],
    )
    .await;
    assert_error("ghost token on DELETE", s, &body, 403, "forbidden");
}

#[tokio::test]
async fn routing_headers_must_match() {
    let agent = Agent::start().await;
    let ws = agent.running("routed").await;
    let id = ws.id.as_str();
    let node = agent.node_token();
    let scoped = agent.workspace_token(id);
    let ws_path = format!("/workspaces/{id}");
    let node_id = agent.node_id.clone();

    // X-SAM-Node-Id: must be this node, on every kind of route and token.
    for (path, token) in [
        ("/node", &node),
        ("/workspaces", &node),
        (ws_path.as_str(), &node),
        (ws_path.as_str(), &scoped),
    ] {
        let (s, body) = call(
            &agent,
            Method::GET,
            path,
            Some(token),
            &[("X-SAM-Node-Id", "some-other-node")],
        )
        .await;
        assert_error(
            &format!("node header mismatch on {path}"),
            s,
            &body,
            403,
            "forbidden",
        );
        let (s, body) = call(
            &agent,
            Method::GET,
            path,
            Some(token),
            &[("X-SAM-Node-Id", &node_id)],
        )
        .await;
        assert_eq!(s, 200, "node header match on {path}: {body}");
    }

    // X-SAM-Workspace-Id: must be the path's workspace on workspace routes…
    for token in [&node, &scoped] {
        for path in [ws_path.clone(), format!("{ws_path}/events")] {
            let (s, body) = call(
                &agent,
                Method::GET,
                &path,
                Some(token),
                &[("X-SAM-Workspace-Id", NO_SUCH_WS)],
            )
            .await;
            assert_error(
                &format!("workspace header mismatch on {path}"),
                s,
                &body,
                403,
                "forbidden",
            );
            let (s, body) = call(
                &agent,
                Method::GET,
                &path,
                Some(token),
                &[("X-SAM-Workspace-Id", id), ("X-SAM-Node-Id", &node_id)],
            )
            .await;
            assert_eq!(s, 200, "workspace header match on {path}: {body}");
        }
    }
    // … and a mismatch there fails before the workspace is looked up.
    let (s, body) = call(
        &agent,
        Method::GET,
        &format!("/workspaces/{NO_SUCH_WS}"),
        Some(&node),
        &[("X-SAM-Workspace-Id", id)],
    )
    .await;
    assert_error(
        "workspace header vs missing workspace",
        s,
        &body,
        403,
        "forbidden",
    );

    // … on node-level workspace routes too: a mismatched header deletes nothing and
    // renames nothing.
    for (method, what) in [(Method::DELETE, "delete"), (Method::PATCH, "rename")] {
        let (s, body) = call(
            &agent,
            method,
            &ws_path,
            Some(&node),
            &[("X-SAM-Workspace-Id", NO_SUCH_WS)],
        )
        .await;
        assert_error(
            &format!("{what} with a mismatched header"),
            s,
            &body,
            403,
            "forbidden",
        );
    }
    let (s, body) = call(
        &agent,
        Method::DELETE,
        &ws_path,
        Some(&node),
        &[("X-SAM-Node-Id", "some-other-node")],
    )
    .await;
    assert_error("delete for another node", s, &body, 403, "forbidden");
    let still = agent.workspace(id).await;
    assert_eq!(still.status, WorkspaceStatus::Running);
    assert_eq!(still.display_name, "routed");

    // … and ignored on routes without a workspace.
    for path in ["/workspaces", "/node", "/events"] {
        let (s, body) = call(
            &agent,
            Method::GET,
            path,
            Some(&node),
            &[("X-SAM-Workspace-Id", "bogus")],
        )
        .await;
        assert_eq!(s, 200, "workspace header ignored on {path}: {body}");
    }

    agent.delete(id).await;
}

#[tokio::test]
async fn websocket_upgrades_are_authenticated() {
    use futures::StreamExt;

    let agent = Agent::start().await;
    let connect = |token: Option<String>| {
        let mut req = agent
            .ws_url("/events/ws")
            .into_client_request()
            .expect("request");
        if let Some(t) = token {
            req.headers_mut()
                .insert("Authorization", format!("Bearer {t}").parse().expect("hv"));
        }
        tokio_tungstenite::connect_async(req)
    };
    // A refusal is a plain HTTP answer; its status, and the error JSON when the
    // client read the body along with the head.
    let refusal = |result: Result<(), tungstenite::Error>, what: &str, status: u16, code: &str| {
        match result {
            Ok(()) => panic!("{what}: the upgrade was accepted"),
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), status, "{what}");
                if let Some(body) = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                {
                    assert_error(what, status, &body, status, code);
                }
            }
            Err(e) => panic!("{what}: expected an HTTP refusal, got {e}"),
        }
    };

    refusal(
        connect(None).await.map(|_| ()),
        "ws without token",
        401,
        "unauthorized",
    );
    refusal(
        connect(Some("garbage".into())).await.map(|_| ()),
        "ws with a garbage token",
        401,
        "unauthorized",
    );
    let expired = token_with(
        &agent,
        json!({"iat": unix_now() - 900, "exp": unix_now() - 600}),
    );
    refusal(
        connect(Some(expired)).await.map(|_| ()),
        "ws with an expired token",
        401,
        "unauthorized",
    );
    refusal(
        connect(Some(agent.workspace_token(NO_SUCH_WS)))
            .await
            .map(|_| ()),
        "ws with a workspace token",
        403,
        "forbidden",
    );

    // Routing headers are checked on the upgrade too.
    let mut req = agent
        .ws_url("/events/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", agent.node_token())
            .parse()
            .expect("hv"),
    );
    req.headers_mut()
        .insert("X-SAM-Node-Id", "some-other-node".parse().expect("hv"));
    refusal(
        tokio_tungstenite::connect_async(req).await.map(|_| ()),
        "ws for another node",
        403,
        "forbidden",
    );

    // Control: a node token gets the stream (a heartbeat first).
    let (mut socket, resp) = connect(Some(agent.node_token())).await.expect("upgrade");
    assert_eq!(resp.status().as_u16(), 101);
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("frame");
    let frame: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
    assert_eq!(frame["type"], "heartbeat", "{frame}");
}
