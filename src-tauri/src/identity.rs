//! The installation's Ed25519 key pair and the short-lived tokens it signs.
//!
//! The private key lives only in `secrets` (and in memory); agents get the public
//! half as a PEM file. Every call mints a fresh token scoped to the node or to one
//! workspace, valid for a few minutes.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sam_protocol::Claims;

use crate::error::{Error, Result};
use crate::secrets::Secrets;

const SECRET_KEY: &str = "installation-key";
/// Tokens live this long (the agent allows 60 s of clock skew besides).
pub const TOKEN_LIFETIME_SECS: i64 = 300;

pub struct Identity {
    encoding: EncodingKey,
    public_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity { .. }")
    }
}

impl Identity {
    /// Loads the installation key, making it on first use.
    pub async fn load_or_create(secrets: &Secrets) -> Result<Self> {
        let key = match secrets.get(SECRET_KEY).await? {
            Some(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                Error::new(
                    crate::error::code::SECRET_STORE,
                    format!("The installation key in the secret store is damaged: {e}"),
                )
            })?,
            None => {
                let key = SigningKey::generate(&mut rand_core::OsRng);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| Error::internal(format!("Cannot encode a new key: {e}")))?;
                secrets.set(SECRET_KEY, &pem).await?;
                key
            }
        };
        Self::from_key(&key)
    }

    pub fn from_key(key: &SigningKey) -> Result<Self> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::internal(format!("Cannot encode the key: {e}")))?;
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::internal(format!("Cannot encode the public key: {e}")))?;
        Ok(Identity {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public_pem,
        })
    }

    /// The public key as a PEM `PUBLIC KEY` block (the agents' `--trusted-key`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.encoding)
            .unwrap_or_default()
    }

    pub fn node_token(&self, node: &str) -> String {
        self.sign(&Claims::node(
            node,
            chrono::Utc::now().timestamp(),
            TOKEN_LIFETIME_SECS,
        ))
    }

    pub fn workspace_token(&self, node: &str, workspace: &str) -> String {
        self.sign(&Claims::workspace(
            node,
            workspace,
            chrono::Utc::now().timestamp(),
            TOKEN_LIFETIME_SECS,
        ))
    }
}
