//! Application services: use cases that combine several ports (e.g. provisioning an account with
//! its workspace and first project). Handlers and CLI commands call these; they hold no HTTP types.

pub mod accounts;
pub mod ai_analysis;
pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod demo;
pub mod diagnostics;
pub mod drill_downs;
pub mod email_reports;
pub mod mail;
pub mod orgs;
pub mod password_reset;
pub mod projects;
pub mod public_links;
pub mod realtime;
pub mod report_jobs;
pub mod retention;

/// Upper-cases the first letter, for showing a lower-case error message as a sentence.
pub fn sentence_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
