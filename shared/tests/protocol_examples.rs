//! Checks docs/protocol.md against the wire types: every ```` ```json TypeName ````
//! block must deserialize into that type and serialize back to the same JSON value,
//! and every wire type must have at least one example. Plus a few focused tests of the
//! rules the contract fixes (error statuses, open sets, ignored fields, conversation
//! frames).

use std::collections::{BTreeMap, BTreeSet};

use sam_protocol::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

const PROTOCOL_MD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"));

/// One checked example: where it starts in protocol.md, its type name and its text.
struct Example {
    line: usize,
    type_name: String,
    json: String,
}

/// Every fenced block whose info string starts with `json`. A `json` block without a
/// type name is reported as an error: every JSON example in the file is checked.
fn examples() -> Result<Vec<Example>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut lines = PROTOCOL_MD.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let info = info.trim();
        let mut words = info.split_whitespace();
        let is_json = words.next() == Some("json");
        let type_name = words.next().map(str::to_string);
        let mut body = String::new();
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        let line = index + 1;
        if !closed {
            errors.push(format!("protocol.md:{line}: code block is never closed"));
        }
        if !is_json {
            continue;
        }
        match type_name {
            Some(type_name) => out.push(Example {
                line,
                type_name,
                json: body,
            }),
            None => errors.push(format!(
                "protocol.md:{line}: a json block must name its type: ```json TypeName"
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Deserializes `text` as `T`, serializes it back and compares the JSON values.
fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> Result<(), String> {
    let original: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let typed: T = serde_json::from_str(text).map_err(|e| format!("does not deserialize: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("does not serialize: {e}"))?;
    if back == original {
        Ok(())
    } else {
        Err(format!(
            "does not round-trip:\n  doc:  {original}\n  back: {back}"
        ))
    }
}

/// The wire types, by the name used in the doc's info strings.
macro_rules! wire_types {
    ($($name:ident),* $(,)?) => {
        const WIRE_TYPES: &[&str] = &[$(stringify!($name)),*];

        fn check(type_name: &str, text: &str) -> Result<(), String> {
            match type_name {
                $(stringify!($name) => round_trip::<$name>(text),)*
                other => Err(format!("unknown type name `{other}`")),
            }
        }
    };
}

wire_types! {
    // §2–3
    ErrorBody, Claims,
    // §4–5 resources and answers
    Workspace, AgentSession, Health, NodeInfo, Terminal, Port, FileEntry,
    WorkspaceList, SessionList, TerminalList, PortList, DirListing,
    NodeStopped, NodeStopPlan,
    // §5 request bodies
    CreateWorkspace, RenameWorkspace, PatchNode, CreateSession, CreateTerminal, MoveFile,
    // §4 events, §7 node stream
    Event, EventPage, NodeStreamFrame,
    // §7 terminal and exec sockets
    TerminalClientFrame, TerminalServerFrame, ExecClientFrame, ExecServerFrame,
    // §7 agent-session socket and history
    SessionFrame, SessionClientFrame, HistoryPage,
}

/// The `type` tags of each frame enum: every one must have an example.
const FRAME_TAGS: &[(&str, &[&str])] = &[
    ("NodeStreamFrame", &["heartbeat", "event", "reset"]),
    ("TerminalClientFrame", &["resize"]),
    ("TerminalServerFrame", &["ready", "exit", "error"]),
    ("ExecClientFrame", &["start", "eof"]),
    ("ExecServerFrame", &["exit", "error"]),
    (
        "SessionFrame",
        &[
            "session.attached",
            "session.detached",
            "error",
            "user.prompt",
            "agent.output",
            "agent.permission",
            "agent.permission_resolved",
            "agent.turn_end",
            "agent.error",
            "session.stopped",
        ],
    ),
    (
        "SessionClientFrame",
        &["prompt", "permission.response", "cancel"],
    ),
];

#[test]
fn every_example_in_protocol_md_round_trips() {
    let examples = examples().unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    assert!(!examples.is_empty(), "protocol.md has no json examples");
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|ex| {
            check(&ex.type_name, &ex.json)
                .err()
                .map(|e| format!("protocol.md:{} ({}): {e}", ex.line, ex.type_name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} examples fail:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn every_wire_type_has_an_example() {
    let examples = examples().unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    let named: BTreeSet<&str> = examples.iter().map(|ex| ex.type_name.as_str()).collect();
    let missing: Vec<&str> = WIRE_TYPES
        .iter()
        .copied()
        .filter(|name| !named.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "no example in protocol.md for {missing:?}"
    );
}

#[test]
fn every_frame_variant_has_an_example() {
    let examples = examples().unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for ex in &examples {
        if let Ok(value) = serde_json::from_str::<Value>(&ex.json)
            && let Some(tag) = value.get("type").and_then(Value::as_str)
        {
            seen.entry(ex.type_name.as_str())
                .or_default()
                .insert(tag.to_string());
        }
    }
    let mut missing = Vec::new();
    for (type_name, tags) in FRAME_TAGS {
        assert!(
            WIRE_TYPES.contains(type_name),
            "{type_name} is not a wire type"
        );
        for tag in *tags {
            if !seen.get(type_name).is_some_and(|s| s.contains(*tag)) {
                missing.push(format!("{type_name} {tag:?}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no example in protocol.md for {missing:?}"
    );
}

#[test]
fn error_codes_have_the_contract_statuses() {
    // CONTRACT §3, row by row; `internal` is this implementation's (protocol.md).
    let table: &[(&str, u16)] = &[
        ("invalid_request", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("not_found", 404),
        ("workspace_not_found", 404),
        ("session_not_found", 404),
        ("terminal_not_found", 404),
        ("workspace_not_running", 409),
        ("workspace_busy", 409),
        ("conflict", 409),
        ("port_timeout", 504),
        ("session_not_running", 409),
        ("session_already_attached", 409),
        ("workspace_limit_reached", 409),
        ("session_limit_reached", 409),
        ("payload_too_large", 413),
        ("port_unreachable", 502),
        ("docker_unavailable", 503),
        ("internal", 500),
    ];
    for (code, status) in table {
        let parsed: ErrorCode = serde_json::from_value(json!(code)).unwrap();
        assert!(
            !matches!(parsed, ErrorCode::Other(_)),
            "{code} is not a known code"
        );
        assert_eq!(parsed.status(), *status, "status of {code}");
        assert_eq!(parsed.as_str(), *code);
        assert_eq!(parsed.to_string(), *code);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(code));
    }
    // Every known variant is in the table (a new one must be added here).
    let all = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::WorkspaceNotFound,
        ErrorCode::SessionNotFound,
        ErrorCode::TerminalNotFound,
        ErrorCode::WorkspaceNotRunning,
        ErrorCode::WorkspaceBusy,
        ErrorCode::Conflict,
        ErrorCode::PortTimeout,
        ErrorCode::SessionNotRunning,
        ErrorCode::SessionAlreadyAttached,
        ErrorCode::WorkspaceLimitReached,
        ErrorCode::SessionLimitReached,
        ErrorCode::PayloadTooLarge,
        ErrorCode::PortUnreachable,
        ErrorCode::DockerUnavailable,
        ErrorCode::Internal,
    ];
    for code in &all {
        match code {
            ErrorCode::InvalidRequest
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::WorkspaceNotFound
            | ErrorCode::SessionNotFound
            | ErrorCode::TerminalNotFound
            | ErrorCode::WorkspaceNotRunning
            | ErrorCode::WorkspaceBusy
            | ErrorCode::Conflict
            | ErrorCode::PortTimeout
            | ErrorCode::SessionNotRunning
            | ErrorCode::SessionAlreadyAttached
            | ErrorCode::WorkspaceLimitReached
            | ErrorCode::SessionLimitReached
            | ErrorCode::PayloadTooLarge
            | ErrorCode::PortUnreachable
            | ErrorCode::DockerUnavailable
            | ErrorCode::Internal
            | ErrorCode::Other(_) => {}
        }
        assert!(
            table.iter().any(|(c, _)| *c == code.as_str()),
            "{code} missing from the table"
        );
    }
    assert_eq!(all.len(), table.len());
}

#[test]
fn unknown_error_code_is_kept() {
    let text = r#"{"error":"quota_exceeded","message":"Too many things."}"#;
    let body: ErrorBody = serde_json::from_str(text).unwrap();
    assert_eq!(body.error, ErrorCode::Other("quota_exceeded".into()));
    assert_eq!(body.error.status(), 500);
    assert_eq!(body.error.as_str(), "quota_exceeded");
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        serde_json::from_str::<Value>(text).unwrap()
    );
}

#[test]
fn unknown_event_type_is_kept() {
    let kind: EventType = serde_json::from_value(json!("future.thing")).unwrap();
    assert_eq!(kind, EventType::Other("future.thing".into()));
    assert_eq!(kind.as_str(), "future.thing");
    assert_eq!(serde_json::to_value(&kind).unwrap(), json!("future.thing"));

    let event = json!({
        "id": "0000000000000001-5f3c9e1b",
        "type": "future.thing",
        "level": "info",
        "nodeId": "node-7",
        "message": "New.",
        "createdAt": "2026-11-25T12:00:00Z"
    });
    let parsed: Event = serde_json::from_value(event.clone()).unwrap();
    assert_eq!(parsed.kind, EventType::Other("future.thing".into()));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), event);

    // Known names still map to their variants, and as_str agrees with serde.
    for known in [
        EventType::WorkspaceProgress,
        EventType::SessionPermissionResolved,
        EventType::NodeDocker,
        EventType::NodeUnhealthy,
    ] {
        let value = serde_json::to_value(&known).unwrap();
        assert_eq!(value, json!(known.as_str()));
        assert_eq!(serde_json::from_value::<EventType>(value).unwrap(), known);
    }
}

#[test]
fn unknown_fields_in_request_bodies_are_ignored() {
    let create: CreateWorkspace = serde_json::from_value(json!({
        "displayName": "api", "futureField": {"x": 1}, "image": "debian"
    }))
    .unwrap();
    assert_eq!(create.display_name, "api");
    assert_eq!(create.image.as_deref(), Some("debian"));

    let rename: RenameWorkspace =
        serde_json::from_value(json!({"displayName": "web", "color": "blue"})).unwrap();
    assert_eq!(rename.display_name, "web");

    let patch: PatchNode = serde_json::from_value(json!({
        "limits": {"maxWorkspaces": 4, "maxGpus": 2}, "labels": []
    }))
    .unwrap();
    assert_eq!(patch.limits.max_workspaces, Some(4));
    assert_eq!(patch.limits.max_sessions_per_workspace, None);

    let session: CreateSession =
        serde_json::from_value(json!({"agent": "claude", "model": "opus"})).unwrap();
    assert_eq!(session.agent.as_deref(), Some("claude"));

    let terminal: CreateTerminal =
        serde_json::from_value(json!({"cols": 80, "rows": 24, "term": "xterm"})).unwrap();
    assert_eq!((terminal.cols, terminal.rows), (80, 24));

    let mv: MoveFile =
        serde_json::from_value(json!({"from": "a", "to": "b", "overwrite": true})).unwrap();
    assert_eq!((mv.from.as_str(), mv.to.as_str()), ("a", "b"));

    // Client frames of the sockets too.
    let resize: TerminalClientFrame =
        serde_json::from_value(json!({"type": "resize", "cols": 10, "rows": 5, "dpi": 2})).unwrap();
    assert_eq!(resize, TerminalClientFrame::Resize { cols: 10, rows: 5 });

    let start: ExecClientFrame =
        serde_json::from_value(json!({"type": "start", "command": ["ls"], "tty": false})).unwrap();
    assert!(matches!(start, ExecClientFrame::Start { ref command, .. } if command == &["ls"]));

    let prompt: SessionClientFrame =
        serde_json::from_value(json!({"type": "prompt", "text": "hi", "priority": 1})).unwrap();
    assert_eq!(
        prompt,
        SessionClientFrame::Prompt(Prompt {
            text: Some("hi".into()),
            content: None
        })
    );

    let answer: SessionClientFrame = serde_json::from_value(json!({
        "type": "permission.response", "requestId": 3, "optionId": "allow", "note": "ok"
    }))
    .unwrap();
    assert_eq!(
        answer,
        SessionClientFrame::PermissionResponse {
            request_id: RequestId::Number(3),
            option_id: "allow".into()
        }
    );
}

#[test]
fn conversation_frames_are_exactly_the_contracts() {
    // CONTRACT §7: these take the next `seq` and are kept in history.
    const CONVERSATION: &[&str] = &[
        "user.prompt",
        "agent.output",
        "agent.permission",
        "agent.permission_resolved",
        "agent.turn_end",
        "agent.error",
        "session.stopped",
    ];
    // …and these carry the current head `seq` without taking one.
    const ABOUT_THE_SOCKET: &[&str] = &["session.attached", "session.detached", "error"];

    let bodies = vec![
        SessionFrameBody::Attached {
            session_id: "s".into(),
            takeover: false,
            watch: true,
        },
        SessionFrameBody::Detached {
            reason: "takeover".into(),
        },
        SessionFrameBody::Error {
            message: "bad frame".into(),
        },
        SessionFrameBody::UserPrompt(Prompt {
            text: Some("hi".into()),
            content: None,
        }),
        SessionFrameBody::AgentOutput { update: json!({}) },
        SessionFrameBody::AgentPermission {
            request_id: RequestId::String("r".into()),
            tool_call: json!({}),
            options: json!([]),
        },
        SessionFrameBody::AgentPermissionResolved {
            request_id: RequestId::Number(1),
            option_id: None,
            outcome: Some("cancelled".into()),
        },
        SessionFrameBody::AgentTurnEnd {
            stop_reason: "end_turn".into(),
        },
        SessionFrameBody::AgentError {
            message: "boom".into(),
        },
        SessionFrameBody::SessionStopped {
            reason: StopReason::UserStop,
        },
    ];

    let mut seen = BTreeSet::new();
    for body in &bodies {
        // Exhaustive on purpose: a new variant must be added to `bodies` above.
        match body {
            SessionFrameBody::Attached { .. }
            | SessionFrameBody::Detached { .. }
            | SessionFrameBody::Error { .. }
            | SessionFrameBody::UserPrompt(_)
            | SessionFrameBody::AgentOutput { .. }
            | SessionFrameBody::AgentPermission { .. }
            | SessionFrameBody::AgentPermissionResolved { .. }
            | SessionFrameBody::AgentTurnEnd { .. }
            | SessionFrameBody::AgentError { .. }
            | SessionFrameBody::SessionStopped { .. } => {}
        }
        let value = serde_json::to_value(SessionFrame {
            seq: 1,
            body: body.clone(),
        })
        .unwrap();
        let tag = value["type"].as_str().unwrap().to_string();
        let conversation = CONVERSATION.contains(&tag.as_str());
        assert!(
            conversation || ABOUT_THE_SOCKET.contains(&tag.as_str()),
            "{tag} is in neither list of CONTRACT §7"
        );
        assert_eq!(
            body.is_conversation(),
            conversation,
            "is_conversation of {tag}"
        );
        seen.insert(tag);
    }
    let expected: BTreeSet<String> = CONVERSATION
        .iter()
        .chain(ABOUT_THE_SOCKET)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, expected);
}
