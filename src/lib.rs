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
pub mod exports;
pub mod ingest;
pub mod metrics;
pub mod queries;
pub mod restart;
pub mod review;
pub mod server;
pub mod store;
pub mod web;

/// jemalloc, not glibc's malloc: under load glibc's allocator was ~38% of the service's CPU
/// (cross-thread frees, `malloc_consolidate`), and with jemalloc the POST rate rose ~30% while
/// the import's and rebuild's peak RSS went down (BENCHMARKS.md). Declared in the library so
/// the binary and the benchmarks run on the allocator that ships (feature `jemalloc`, default).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
