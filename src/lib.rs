//! SuperInsights (Rust): a self-hosted web analytics server, wire-compatible with SuperInsights 1.x.
//! See ARCHITECTURE.md for how the modules fit together.

pub mod ai;
pub mod analytics;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod ingest;
pub mod reports;
pub mod runtime;
pub mod server;
pub mod services;
pub mod startup;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;

#[cfg(test)]
mod layering;
