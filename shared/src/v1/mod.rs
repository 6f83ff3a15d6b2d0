//! Contract v1. One module per part of the contract.

pub mod auth;
pub mod error;
pub mod events;
pub mod names;
pub mod requests;
pub mod resources;
pub mod session_ws;
pub mod terminal_ws;

pub use auth::*;
pub use error::*;
pub use events::*;
pub use names::*;
pub use requests::*;
pub use resources::*;
pub use session_ws::*;
pub use terminal_ws::*;

/// Wire timestamps: RFC 3339, UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
