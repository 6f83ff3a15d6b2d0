//! CONTRACT §2: the claims of the Ed25519 JWTs the desktop mints.

use serde::{Deserialize, Serialize};

pub const TOKEN_ISSUER: &str = "sam-desktop";
pub const TOKEN_AUDIENCE: &str = "sam-agent";
/// The only signature algorithm accepted (`alg` header).
pub const TOKEN_ALGORITHM: &str = "EdDSA";
/// A token whose `exp - iat` is longer than this is refused.
pub const TOKEN_MAX_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// Clock skew allowed on `iat` and `exp`.
pub const TOKEN_LEEWAY_SECS: i64 = 60;

/// Optional routing headers (CONTRACT §2).
pub const HEADER_NODE_ID: &str = "x-sam-node-id";
pub const HEADER_WORKSPACE_ID: &str = "x-sam-workspace-id";
/// Idempotency header of `POST …/agent-sessions`.
pub const HEADER_IDEMPOTENCY_KEY: &str = "idempotency-key";

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Node,
    Workspace,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub node: String,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub iat: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub exp: i64,
}

impl Claims {
    /// Claims for a node-scoped token valid from `now` for `lifetime_secs`.
    pub fn node(node: impl Into<String>, now: i64, lifetime_secs: i64) -> Self {
        Self {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            node: node.into(),
            scope: Scope::Node,
            workspace: None,
            iat: now,
            exp: now + lifetime_secs,
        }
    }

    /// Claims for a token that reaches one workspace only.
    pub fn workspace(
        node: impl Into<String>,
        workspace: impl Into<String>,
        now: i64,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            scope: Scope::Workspace,
            workspace: Some(workspace.into()),
            ..Self::node(node, now, lifetime_secs)
        }
    }
}
