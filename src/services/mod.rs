//! Application services: use cases that combine several ports (e.g. provisioning an account with
//! its workspace and first project). Handlers and CLI commands call these; they hold no HTTP types.

pub mod accounts;
pub mod orgs;
pub mod projects;
pub mod retention;
