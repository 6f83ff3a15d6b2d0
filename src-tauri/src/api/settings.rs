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

impl Sam {
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        validate(key, value)?;
        self.store().set_setting(key, value).await
    }

    /// Every setting in force (environment, else stored, else default), with where
    /// secrets are kept and which ones are set (never their values).
    pub async fn show_settings(&self) -> Result<serde_json::Value> {
        let stored: std::collections::BTreeMap<String, String> =
            self.store().settings().await?.into_iter().collect();
        let get = |k: &str| stored.get(k).cloned();
        Ok(serde_json::json!({
            "staleSeconds": self.setting_u32("stale-seconds", "NODE_HEARTBEAT_STALE_SECONDS", 30).await,
            "maxNodes": self.setting_u32("max-nodes", "MAX_NODES_PER_USER", 10).await,
            "maxWorkspaces": self.setting_u32("max-workspaces", "MAX_WORKSPACES_PER_NODE", 10).await,
            "maxSessions": self.setting_u32("max-sessions", "MAX_AGENT_SESSIONS_PER_WORKSPACE", 5).await,
            "hcloudEndpoint": std::env::var("SAM_HCLOUD_ENDPOINT").ok().or(get("hcloud-endpoint")).unwrap_or_else(|| "https://api.hetzner.cloud/v1".into()),
            "theme": get("theme").unwrap_or_else(|| "system".into()),
            "defaultImage": get("default-image").unwrap_or_else(|| "sam-workspace:latest".into()),
            "stateDir": self.dir().display().to_string(),
            "secretStore": self.secrets().describe(),
            "hetznerTokenSet": std::env::var("HCLOUD_TOKEN").is_ok() || self.secrets().get(HETZNER_TOKEN).await?.is_some(),
        }))
    }
}
