//! End-to-end tests: the real server on a real loopback port, real SQLite files (or a real
//! MongoDB wire-protocol server in the MongoDB leg: `backend`), real `redis-server` processes,
//! and the real binary for CLI and signal handling.

mod backend;
mod support;

mod accounts;
mod ai;
mod analytics_pages;
mod assets;
mod audit_log;
mod browser;
mod browser_accounts;
mod browser_charts;
mod browser_dashboard;
mod browser_email;
mod browser_pages;
mod browser_realtime;
mod cli;
mod clock;
mod connections;
mod dashboard;
mod diagnostics_pages;
mod email;
mod error_groups;
mod failover;
mod faults;
mod ingest;
mod ingest_buffer;
mod jobs;
mod legacy_mongodb;
mod metrics;
mod nginx;
mod org_admin;
mod outage;
mod process;
mod public_links;
mod rate_limit;
mod realtime;
mod redis;
mod reports;
mod s3_reports;
mod security;
mod visits;
mod ws;
