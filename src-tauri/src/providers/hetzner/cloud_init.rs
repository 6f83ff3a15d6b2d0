//! The cloud-init user data of a Hetzner node: built as a typed value and
//! serialised to YAML (never pasted together as text), so keys and quoting are
//! the serialiser's business.
//!
//! What it does on the server's first boot, nothing more:
//! - installs Docker (Debian's `docker.io`, after a package index update);
//! - replaces the image's SSH host keys with the **one-time** ed25519 host key the
//!   desktop made (`ssh_deletekeys`, `ssh_keys`), so the desktop's first SSH
//!   connection checks the key it already knows — no trust on first use. Right after
//!   that connection the server makes fresh host keys itself (see `hetzner.rs`), so
//!   the private key in the user data (which Hetzner keeps and serves to the server)
//!   stops being a host key;
//! - keeps root logins by key (`disable_root: false`: SAM logs in as root with the
//!   node's own key, which Hetzner installs from the SSH key resource) and turns
//!   password logins off.
//!
//! The agent, its config and its TLS key come afterwards, over SSH
//! (`bootstrap.rs`), so no agent secret is ever in the user data.
//!
//! Checked in tests with `cloud-init schema --config-file` (Debian's cloud-init
//! 22.4). That check ignores unknown top-level keys, so the tests also read the YAML
//! back and look for every key relied on here.

use serde::Serialize;

use crate::error::{Error, Result};

/// A one-time SSH host key for the server's first boot.
pub struct OneTimeHostKey<'a> {
    /// OpenSSH private key text (`-----BEGIN OPENSSH PRIVATE KEY-----` …).
    pub private_openssh: &'a str,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_openssh: &'a str,
}

/// The cloud-config document (the subset SAM uses, with cloud-init's key names).
#[derive(Serialize)]
struct CloudConfig<'a> {
    package_update: bool,
    package_upgrade: bool,
    packages: Vec<&'a str>,
    /// Remove the image's host keys before writing ours.
    ssh_deletekeys: bool,
    /// Key types cloud-init generates when missing: ed25519 is given below, so
    /// nothing is generated (the schema wants at least one entry).
    ssh_genkeytypes: Vec<&'a str>,
    ssh_keys: SshKeys<'a>,
    disable_root: bool,
    ssh_pwauth: bool,
    /// Docker up now and after every boot (Debian starts it on install; this makes
    /// it explicit).
    runcmd: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct SshKeys<'a> {
    ed25519_private: &'a str,
    ed25519_public: &'a str,
}

/// The user data for a new node's server: `#cloud-config` and the YAML document.
pub fn user_data(host_key: &OneTimeHostKey<'_>) -> Result<String> {
    let config = CloudConfig {
        package_update: true,
        package_upgrade: false,
        packages: vec!["docker.io"],
        ssh_deletekeys: true,
        ssh_genkeytypes: vec!["ed25519"],
        ssh_keys: SshKeys {
            ed25519_private: host_key.private_openssh,
            ed25519_public: host_key.public_openssh.trim(),
        },
        disable_root: false,
        ssh_pwauth: false,
        runcmd: vec![vec!["systemctl", "enable", "--now", "docker"]],
    };
    let yaml = serde_yaml_ng::to_string(&config)
        .map_err(|e| Error::internal(format!("Cannot write the cloud-init user data: {e}")))?;
    let text = format!("#cloud-config\n{yaml}");
    // Hetzner accepts at most 32 KiB of user data.
    if text.len() > 32 * 1024 {
        return Err(Error::internal("The cloud-init user data is over 32 KiB."));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_header_and_every_key_relied_on() {
        let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\nNzaC1r\n-----END OPENSSH PRIVATE KEY-----\n";
        let text = user_data(&OneTimeHostKey {
            private_openssh: private,
            public_openssh: "ssh-ed25519 AAAAC3Nz one-time\n",
        })
        .unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(doc["packages"][0].as_str(), Some("docker.io"));
        assert_eq!(doc["package_update"].as_bool(), Some(true));
        assert_eq!(doc["ssh_deletekeys"].as_bool(), Some(true));
        assert_eq!(doc["disable_root"].as_bool(), Some(false));
        assert_eq!(doc["ssh_pwauth"].as_bool(), Some(false));
        assert_eq!(
            doc["ssh_keys"]["ed25519_private"].as_str(),
            Some(private),
            "the key text comes back byte for byte"
        );
        assert_eq!(
            doc["ssh_keys"]["ed25519_public"].as_str(),
            Some("ssh-ed25519 AAAAC3Nz one-time")
        );
    }
}
