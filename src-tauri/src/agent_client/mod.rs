//! The typed client for one node's `sam-agent` (CONTRACT.md), over sam-protocol
//! types only: HTTPS/WSS with the node's certificate pinned (plain HTTP only for a
//! loopback agent), a fresh scoped token per call, and the agent's `{error,
//! message}` answers mapped once into [`Error`] with a next step.

pub mod files;
pub mod pinning;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use sam_protocol::{
    AgentSession, CreateSession, CreateTerminal, CreateWorkspace, ErrorBody, EventPage, Health,
    HistoryPage, NodeInfo, NodeStopPlan, NodeStopped, PatchNode, RenameWorkspace, SessionList,
    Terminal, TerminalList, Workspace, WorkspaceList,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{Error, Result, code};
use crate::identity::Identity;

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Time for ordinary calls (creates answer 202 at once; long work is followed
/// through events).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct NodeClient {
    pub node_id: String,
    base: String,
    pinned: Option<String>,
    http: reqwest::Client,
    tls: Option<Arc<rustls::ClientConfig>>,
    identity: Arc<Identity>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("node_id", &self.node_id)
            .field("base", &self.base)
            .finish()
    }
}

/// Which token a call carries.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    Node,
    Workspace(&'a str),
    None,
}

impl NodeClient {
    /// `address` is `http://127.0.0.1:PORT` (loopback only) or `https://HOST:PORT`
    /// with the certificate's `fingerprint`.
    pub fn new(
        node_id: &str,
        address: &str,
        fingerprint: Option<&str>,
        identity: Arc<Identity>,
    ) -> Result<Self> {
        let url = url::Url::parse(address)
            .map_err(|e| Error::invalid(format!("{address:?} is not a node address: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CALL_TIMEOUT)
            .no_proxy();
        let tls = match (url.scheme(), fingerprint) {
            ("https", Some(fp)) => {
                let config = pinning::client_config(fp);
                builder = builder.use_preconfigured_tls((*config).clone());
                Some(config)
            }
            ("https", None) => {
                return Err(Error::invalid(format!(
                    "{address} has no pinned certificate fingerprint."
                )));
            }
            ("http", _) => {
                let host = url.host_str().unwrap_or("");
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(Error::invalid(format!(
                        "{address} is plain HTTP off loopback; SAM talks to remote nodes over pinned TLS only."
                    )));
                }
                None
            }
            (scheme, _) => {
                return Err(Error::invalid(format!(
                    "{scheme}:// is not a node address scheme."
                )));
            }
        };
        let http = builder
            .build()
            .map_err(|e| Error::internal(format!("Cannot build the HTTP client: {e}")))?;
        Ok(NodeClient {
            node_id: node_id.to_string(),
            base: address.trim_end_matches('/').to_string(),
            pinned: fingerprint.map(str::to_string),
            http,
            tls,
            identity,
        })
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    fn token(&self, scope: Scope<'_>) -> Option<String> {
        match scope {
            Scope::Node => Some(self.identity.node_token(&self.node_id)),
            Scope::Workspace(ws) => Some(self.identity.workspace_token(&self.node_id, ws)),
            Scope::None => None,
        }
    }

    /// A transport failure, in words.
    fn unreachable(&self, e: &dyn std::error::Error) -> Error {
        let mut chain = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        if chain.contains(pinning::MISMATCH) {
            let got = chain
                .split(" got ")
                .nth(1)
                .map(|s| {
                    s.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(|c: char| !c.is_alphanumeric())
                        .to_string()
                })
                .unwrap_or_default();
            return Error::new(
                code::CERTIFICATE_CHANGED,
                format!(
                    "The node {} presented a different TLS certificate: expected {}, got {got}. SAM refuses to talk to it.",
                    self.base,
                    self.pinned.as_deref().unwrap_or("?")
                ),
            )
            .hint("If you replaced the node's certificate on purpose, remove the node and add it again; otherwise someone may be intercepting the connection.");
        }
        Error::new(
            code::UNREACHABLE,
            format!("The node at {} cannot be reached: {chain}", self.base),
        )
        .hint(
            "Check that the node is running and reachable; `sam node show NODE` tells its health.",
        )
    }

    /// An agent's `{error, message}` answer, with the next step where there is one.
    fn agent_error(status: u16, body: &[u8]) -> Error {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let Some(body) = parsed else {
            return Error::internal(format!(
                "The agent answered {status} without an error body: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        };
        let code = body.error.as_str().to_string();
        let hint = match code.as_str() {
            "unauthorized" => Some(
                "This node does not trust this installation's key; remove the node and add it again.",
            ),
            "workspace_busy" => {
                Some("Wait for the current change to finish (`sam events WS --follow` shows it).")
            }
            "workspace_not_running" => Some("Start it with `sam ws restart WS`."),
            "session_already_attached" => {
                Some("Take it over with --takeover, or read along with --watch.")
            }
            "docker_unavailable" => {
                Some("Start Docker on the node; SAM picks it up again by itself.")
            }
            "workspace_limit_reached" => {
                Some("Delete a workspace, or raise the limit: `sam settings set max-workspaces N`.")
            }
            "session_limit_reached" => {
                Some("Stop a session, or raise the limit: `sam settings set max-sessions N`.")
            }
            "port_unreachable" => Some("Start the app inside the workspace, or check the port."),
            _ => None,
        };
        let mut e = Error::new(&code, body.message);
        if let Some(h) = hint {
            e = e.hint(h);
        }
        e
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        scope: Scope<'_>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let bytes = self.call_raw(method, path, scope, body, &[]).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::internal(format!(
                "The agent's answer to {path} is not what SAM expects: {e}"
            ))
            .hint("The node's agent may be older or newer than this app; update it.")
        })
    }

    /// A call with a raw body (or none) that also answers one response header.
    pub async fn call_with_header(
        &self,
        method: Method,
        path: &str,
        scope: Scope<'_>,
        body: Option<bytes::Bytes>,
        header: &str,
    ) -> Result<(bytes::Bytes, Option<String>)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = self.token(scope) {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let value = (!header.is_empty())
            .then(|| {
                resp.headers()
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .flatten();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status >= 400 {
            return Err(Self::agent_error(status, &bytes));
        }
        Ok((bytes, value))
    }

    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        scope: Scope<'_>,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, &str)],
    ) -> Result<bytes::Bytes> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = self.token(scope) {
            req = req.bearer_auth(token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status >= 400 {
            return Err(Self::agent_error(status, &bytes));
        }
        Ok(bytes)
    }

    // ---- node ----

    pub async fn health(&self) -> Result<Health> {
        self.call(Method::GET, "/health", Scope::None, None::<&()>)
            .await
    }

    pub async fn node(&self) -> Result<NodeInfo> {
        self.call(Method::GET, "/node", Scope::Node, None::<&()>)
            .await
    }

    pub async fn patch_node(&self, patch: &PatchNode) -> Result<NodeInfo> {
        self.call(Method::PATCH, "/node", Scope::Node, Some(patch))
            .await
    }

    pub async fn stop_plan(&self) -> Result<NodeStopPlan> {
        self.call(
            Method::POST,
            "/node/stop?dryRun=true",
            Scope::Node,
            None::<&()>,
        )
        .await
    }

    pub async fn stop_node(&self) -> Result<NodeStopped> {
        self.call(Method::POST, "/node/stop", Scope::Node, None::<&()>)
            .await
    }

    pub async fn events(
        &self,
        workspace: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<EventPage> {
        let mut path = match workspace {
            Some(ws) => format!("/workspaces/{ws}/events?limit={limit}"),
            None => format!("/events?limit={limit}"),
        };
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let scope = workspace.map(Scope::Workspace).unwrap_or(Scope::Node);
        self.call(Method::GET, &path, scope, None::<&()>).await
    }

    // ---- workspaces ----

    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let list: WorkspaceList = self
            .call(Method::GET, "/workspaces", Scope::Node, None::<&()>)
            .await?;
        Ok(list.workspaces)
    }

    pub async fn workspace(&self, id: &str) -> Result<Workspace> {
        self.call(
            Method::GET,
            &format!("/workspaces/{id}"),
            Scope::Workspace(id),
            None::<&()>,
        )
        .await
    }

    pub async fn create_workspace(&self, req: &CreateWorkspace) -> Result<Workspace> {
        self.call(Method::POST, "/workspaces", Scope::Node, Some(req))
            .await
    }

    pub async fn rename_workspace(&self, id: &str, name: &str) -> Result<Workspace> {
        let body = RenameWorkspace {
            display_name: name.to_string(),
        };
        self.call(
            Method::PATCH,
            &format!("/workspaces/{id}"),
            Scope::Node,
            Some(&body),
        )
        .await
    }

    pub async fn stop_workspace(&self, id: &str) -> Result<Workspace> {
        self.call(
            Method::POST,
            &format!("/workspaces/{id}/stop"),
            Scope::Workspace(id),
            None::<&()>,
        )
        .await
    }

    pub async fn restart_workspace(&self, id: &str) -> Result<Workspace> {
        self.call(
            Method::POST,
            &format!("/workspaces/{id}/restart"),
            Scope::Workspace(id),
            None::<&()>,
        )
        .await
    }

    pub async fn delete_workspace(&self, id: &str) -> Result<Workspace> {
        self.call(
            Method::DELETE,
            &format!("/workspaces/{id}"),
            Scope::Node,
            None::<&()>,
        )
        .await
    }

    // ---- terminals ----

    pub async fn terminals(&self, ws: &str) -> Result<Vec<Terminal>> {
        let list: TerminalList = self
            .call(
                Method::GET,
                &format!("/workspaces/{ws}/terminals"),
                Scope::Workspace(ws),
                None::<&()>,
            )
            .await?;
        Ok(list.terminals)
    }

    pub async fn create_terminal(&self, ws: &str, req: &CreateTerminal) -> Result<Terminal> {
        self.call(
            Method::POST,
            &format!("/workspaces/{ws}/terminals"),
            Scope::Workspace(ws),
            Some(req),
        )
        .await
    }

    pub async fn delete_terminal(&self, ws: &str, tid: &str) -> Result<()> {
        self.call_raw(
            Method::DELETE,
            &format!("/workspaces/{ws}/terminals/{tid}"),
            Scope::Workspace(ws),
            None::<&()>,
            &[],
        )
        .await
        .map(|_| ())
    }

    // ---- sessions ----

    pub async fn sessions(&self, ws: &str) -> Result<Vec<AgentSession>> {
        let list: SessionList = self
            .call(
                Method::GET,
                &format!("/workspaces/{ws}/agent-sessions"),
                Scope::Workspace(ws),
                None::<&()>,
            )
            .await?;
        Ok(list.sessions)
    }

    pub async fn create_session(
        &self,
        ws: &str,
        req: &CreateSession,
        idempotency_key: Option<&str>,
    ) -> Result<AgentSession> {
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|k| vec![("Idempotency-Key", k)])
            .unwrap_or_default();
        let bytes = self
            .call_raw(
                Method::POST,
                &format!("/workspaces/{ws}/agent-sessions"),
                Scope::Workspace(ws),
                Some(req),
                &headers,
            )
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("The agent's session answer is not valid: {e}")))
    }

    pub async fn session(&self, ws: &str, sid: &str) -> Result<AgentSession> {
        self.call(
            Method::GET,
            &format!("/workspaces/{ws}/agent-sessions/{sid}"),
            Scope::Workspace(ws),
            None::<&()>,
        )
        .await
    }

    pub async fn stop_session(&self, ws: &str, sid: &str) -> Result<AgentSession> {
        self.call(
            Method::POST,
            &format!("/workspaces/{ws}/agent-sessions/{sid}/stop"),
            Scope::Workspace(ws),
            None::<&()>,
        )
        .await
    }

    pub async fn history(
        &self,
        ws: &str,
        sid: &str,
        since: u64,
        limit: u32,
    ) -> Result<HistoryPage> {
        self.call(
            Method::GET,
            &format!("/workspaces/{ws}/agent-sessions/{sid}/history?since={since}&limit={limit}"),
            Scope::Workspace(ws),
            None::<&()>,
        )
        .await
    }

    // ---- sockets ----

    /// Opens a WebSocket on `path` (with its query), authenticated like HTTP.
    pub async fn websocket(&self, path: &str, scope: Scope<'_>) -> Result<WsStream> {
        let url = format!("{}{path}", self.base.replacen("http", "ws", 1));
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::internal(format!("Bad socket address {url}: {e}")))?;
        if let Some(token) = self.token(scope) {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::internal("A token is not a valid header"))?;
            request.headers_mut().insert("authorization", value);
        }
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
        match tokio::time::timeout(Duration::from_secs(15), connect).await {
            Err(_) => Err(Error::new(
                code::UNREACHABLE,
                format!("The node at {} did not answer within 15 s.", self.base),
            )),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp.body().clone().unwrap_or_default();
                Err(Self::agent_error(status, &body))
            }
            Ok(Err(e)) => Err(self.unreachable(&e)),
        }
    }
}
