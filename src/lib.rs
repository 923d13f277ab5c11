//! impact: tracks the longer-term results of development cooperation Actions.
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod domain;
pub mod ingest;
pub mod metrics;
pub mod store;
