//! End-to-end tests: the real server on a real loopback port, real SQLite files, real
//! `redis-server` processes, and the real binary for CLI and signal handling.

mod support;

mod accounts;
mod browser;
mod browser_accounts;
mod cli;
mod dashboard;
mod ingest;
mod org_admin;
mod outage;
mod process;
mod rate_limit;
mod redis;
mod ws;
