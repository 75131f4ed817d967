//! Application services: use cases that combine several ports (e.g. provisioning an account with
//! its workspace and first project). Handlers and CLI commands call these; they hold no HTTP types.

pub mod accounts;
pub mod ai_analysis;
pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod demo;
pub mod diagnostics;
pub mod drill;
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

/// Fixtures shared by the services' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::store::{Project, Stores, sqlite::migrated_stores};

    /// A migrated SQLite store in `dir` with one user (`email`) and its first project.
    pub async fn sqlite_with_project(dir: &tempfile::TempDir, email: &str) -> (Stores, Project) {
        let stores = migrated_stores(dir.path()).await;
        let project = super::accounts::provision(
            &stores,
            email,
            "password1",
            crate::domain::records::PlatformRole::User,
            "P",
        )
        .await
        .unwrap()
        .project;
        (stores, project)
    }
}
