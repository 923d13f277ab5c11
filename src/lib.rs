//! impact: tracks the longer-term results of development cooperation Actions.
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod api;
pub mod app;
pub mod bus;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod domain;
pub mod ingest;
pub mod metrics;
pub mod queries;
pub mod review;
pub mod store;
