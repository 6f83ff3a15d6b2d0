//! Settings (`sam settings …`): plain values in SQLite; secrets in `secrets`.

use super::Sam;
use crate::error::{Error, Result};

/// Settings a person may set, and how each is checked.
pub const KEYS: &[&str] = &[
    "stale-seconds",
    "max-nodes",
    "max-workspaces",
    "max-sessions",
    "hcloud-endpoint",
    "theme",
    "default-image",
    "auto-local",
];

fn validate(key: &str, value: &str) -> Result<()> {
    let number = |min: u32, max: u32| -> Result<()> {
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(Error::invalid(format!(
                "{key} must be a whole number from {min} to {max}."
            ))),
        }
    };
    match key {
        "stale-seconds" => number(5, 3600),
        "max-nodes" | "max-workspaces" | "max-sessions" => number(1, 1000),
        "hcloud-endpoint" => {
            let url = url::Url::parse(value)
                .map_err(|e| Error::invalid(format!("hcloud-endpoint is not a URL: {e}")))?;
            if matches!(url.scheme(), "http" | "https") {
                Ok(())
            } else {
                Err(Error::invalid("hcloud-endpoint must be an http(s) URL."))
            }
        }
        "theme" => match value {
            "system" | "light" | "dark" => Ok(()),
            _ => Err(Error::invalid("theme must be system, light or dark.")),
        },
        "auto-local" => match value {
            "true" | "false" => Ok(()),
            _ => Err(Error::invalid("auto-local must be true or false.")),
        },
        "default-image" => {
            if value.is_empty() || value.contains(char::is_whitespace) {
                Err(Error::invalid("default-image must be an image reference."))
            } else {
                Ok(())
            }
        }
        _ => Err(Error::invalid(format!("{key:?} is not a setting."))
            .hint(format!("Settings: {}.", KEYS.join(", ")))),
    }
}

/// Secret keys: `hetzner-token` and `agent-key:NAME`.
pub fn agent_key_secret(agent: &str) -> Result<String> {
    if agent.is_empty()
        || !agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(format!("{agent:?} is not an agent name.")));
    }
    Ok(format!("agent-key:{agent}"))
}

pub const HETZNER_TOKEN: &str = "hetzner-token";

/// The window's colours: the OS's, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    System,
    Light,
    Dark,
}

/// The settings in force, as `sam settings show --json` and the app show them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub stale_seconds: u32,
    pub max_nodes: u32,
    pub max_workspaces: u32,
    pub max_sessions: u32,
    pub hcloud_endpoint: String,
    pub theme: Theme,
    pub default_image: String,
    /// Whether the app adds this computer as a node on its first start.
    pub auto_local: bool,
    pub state_dir: String,
    /// Where secrets are kept, in words.
    pub secret_store: String,
    pub hetzner_token_set: bool,
    /// The built-in agents whose API key is stored (never the keys).
    pub agent_keys: Vec<String>,
}

impl Sam {
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        validate(key, value)?;
        self.store().set_setting(key, value).await
    }

    /// Every setting in force (environment, else stored, else default), with where
    /// secrets are kept and which ones are set (never their values).
    pub async fn show_settings(&self) -> Result<Settings> {
        let stored: std::collections::BTreeMap<String, String> =
            self.store().settings().await?.into_iter().collect();
        let get = |k: &str| stored.get(k).cloned();
        Ok(Settings {
            stale_seconds: self
                .setting_u32("stale-seconds", "NODE_HEARTBEAT_STALE_SECONDS", 30)
                .await,
            max_nodes: self
                .setting_u32("max-nodes", "MAX_NODES_PER_USER", 10)
                .await,
            max_workspaces: self
                .setting_u32("max-workspaces", "MAX_WORKSPACES_PER_NODE", 10)
                .await,
            max_sessions: self
                .setting_u32("max-sessions", "MAX_AGENT_SESSIONS_PER_WORKSPACE", 5)
                .await,
            hcloud_endpoint: std::env::var("SAM_HCLOUD_ENDPOINT")
                .ok()
                .or(get("hcloud-endpoint"))
                .unwrap_or_else(|| "https://api.hetzner.cloud/v1".into()),
            theme: match get("theme").as_deref() {
                Some("light") => Theme::Light,
                Some("dark") => Theme::Dark,
                _ => Theme::System,
            },
            default_image: get("default-image").unwrap_or_else(|| "sam-workspace:latest".into()),
            auto_local: get("auto-local").as_deref() != Some("false"),
            state_dir: self.dir().display().to_string(),
            secret_store: self.secrets().describe(),
            hetzner_token_set: std::env::var("HCLOUD_TOKEN").is_ok()
                || self.secrets().get(HETZNER_TOKEN).await?.is_some(),
            agent_keys: self.agent_keys().await?,
        })
    }
}
