//! `sam-protocol`: the wire types of the node agent contract (docs/protocol.md).
//!
//! Invariant: this crate has no I/O and no runtime; it is serde types plus the few
//! pure rules both sides must agree on (error status codes, name normalisation).
//! Both `sam-agent` and `sam-desktop` use it, so the contract cannot drift.

pub mod v1;

pub use v1::*;
