//! `sam-desktop`: the SAM control plane (docs/architecture.md has the map). The
//! `sam` CLI and the Tauri app are two thin front ends over [`api::Sam`].

pub mod agent_client;
pub mod api;
#[cfg(feature = "app")]
pub mod app;
pub mod error;
pub mod identity;
pub mod nodes;
pub mod notifications;
pub mod paths;
pub mod providers;
pub mod secrets;
pub mod store;

pub use api::Sam;
pub use error::{Error, Result};

use chrono::SubsecRound;

/// Now, to the millisecond.
pub fn now() -> sam_protocol::Timestamp {
    chrono::Utc::now().trunc_subsecs(3)
}
