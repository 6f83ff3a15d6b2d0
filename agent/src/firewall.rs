//! Keeps workspaces away from the cloud metadata address (169.254.169.254), which
//! hands out credentials on most clouds.
//!
//! Every workspace network's bridge is named `sam<id>`, so two iptables rules with
//! the interface wildcard `sam+` cover all of them: one in `DOCKER-USER` (traffic
//! routed through the host, which Docker evaluates before its own rules and never
//! flushes) and one in `INPUT` (in case the host itself holds the address).

use tokio::process::Command;

pub const METADATA_ADDRESS: &str = "169.254.169.254/32";
/// Interface wildcard matching every workspace bridge.
pub const BRIDGE_WILDCARD: &str = "sam+";

#[derive(Debug, thiserror::Error)]
#[error("cannot block the cloud metadata address for workspaces: {0}")]
pub struct FirewallError(String);

fn rule(chain: &str) -> Vec<String> {
    [
        chain,
        "-i",
        BRIDGE_WILDCARD,
        "-d",
        METADATA_ADDRESS,
        "-p",
        "all",
        "-j",
        "REJECT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn iptables(args: &[&str], rule: &[String]) -> Result<bool, FirewallError> {
    let out = Command::new("iptables")
        .args(["-w", "5"])
        .args(args)
        .args(rule)
        .output()
        .await
        .map_err(|e| FirewallError(format!("iptables: {e}")))?;
    Ok(out.status.success())
}

async fn ensure_chain_rule(chain: &str) -> Result<(), FirewallError> {
    let rule = rule(chain);
    if iptables(&["-C"], &rule).await? {
        return Ok(());
    }
    let mut insert = rule.clone();
    insert.insert(1, "1".into());
    let out = Command::new("iptables")
        .args(["-w", "5", "-I"])
        .args(&insert)
        .output()
        .await
        .map_err(|e| FirewallError(format!("iptables: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FirewallError(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Makes sure both rules are in place (idempotent; cheap when they are).
pub async fn ensure_metadata_blocked() -> Result<(), FirewallError> {
    // DOCKER-USER exists once Docker has started with its iptables integration;
    // without it, FORWARD is where routed traffic is decided.
    let forward = if iptables(&["-n", "-L", "DOCKER-USER"], &[]).await? {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    ensure_chain_rule(forward).await?;
    ensure_chain_rule("INPUT").await
}
