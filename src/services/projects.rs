//! Project use cases: validation of the project form and of the drop-rules form, and the
//! changes that make cached API keys or dashboards stale ([`ProjectChanges`]), which invalidate
//! them as part of the change so no caller can forget. (Members are organization-wide: see
//! `services::orgs`.)

use crate::{
    domain::audit::codes,
    domain::records::{Project, ProjectUpdate},
    domain::{
        drop_rules::{DropFilter, DropMode, DropRules, FilterOp},
        ids::DocId,
    },
    ingest::keys::KeyCache,
    runtime::cache::DashboardCache,
    services::audit,
    store::{ProjectStore, StoreResult, Stores},
};

/// Changes to a project that cached state depends on. Each one writes the store, then drops
/// this instance's cached API keys of the project (other instances see it within the key
/// cache's TTL) and every cached dashboard of it (shared through Redis when the cache is).
pub struct ProjectChanges<'a> {
    stores: &'a Stores,
    projects: &'a dyn ProjectStore,
    keys: &'a KeyCache,
    dashboards: &'a DashboardCache,
}

impl<'a> ProjectChanges<'a> {
    pub fn new(stores: &'a Stores, keys: &'a KeyCache, dashboards: &'a DashboardCache) -> Self {
        Self {
            stores,
            projects: &*stores.projects,
            keys,
            dashboards,
        }
    }

    /// New public and secret keys; the old ones stop working on this instance at once.
    pub async fn regenerate_keys(&self, id: DocId) -> StoreResult<Project> {
        let project = self.projects.regenerate_keys(id).await?;
        self.keys.invalidate_project(id);
        self.record(codes::PROJECT_REGENERATE_KEYS, &project).await;
        Ok(project)
    }

    /// Replaces the drop rules; ingestion applies them from the next request, dashboards are
    /// recomputed.
    pub async fn set_drop_rules(&self, id: DocId, rules: &DropRules) -> StoreResult<()> {
        self.projects.set_drop_rules(id, rules).await?;
        self.forget(id).await;
        Ok(())
    }

    /// Soft-deletes the project: its keys stop working, its dashboards are gone.
    pub async fn delete(&self, id: DocId) -> StoreResult<()> {
        self.projects.soft_delete_project(id).await?;
        self.forget(id).await;
        self.record_id(codes::PROJECT_SOFT_DELETE, id).await;
        Ok(())
    }

    /// Deletes every analytics document of the project.
    pub async fn clear_data(&self, id: DocId) -> StoreResult<()> {
        self.projects.clear_project_data(id).await?;
        self.forget(id).await;
        self.record_id(codes::PROJECT_CLEAR_DATA, id).await;
        Ok(())
    }

    async fn record(&self, code: &str, project: &Project) {
        audit::action(code)
            .project(project.id)
            .org(project.org_id)
            .record(self.stores)
            .await;
    }

    async fn record_id(&self, code: &str, id: DocId) {
        match self.projects.project(id).await {
            Ok(Some(project)) => self.record(code, &project).await,
            _ => audit::action(code).project(id).record(self.stores).await,
        }
    }

    async fn forget(&self, id: DocId) {
        self.keys.invalidate_project(id);
        self.dashboards.invalidate(id).await;
    }
}

/// Creates a project of `org` from a validated form.
pub async fn create(stores: &Stores, org: DocId, update: &ProjectUpdate) -> StoreResult<Project> {
    let created = stores
        .projects
        .create_project(crate::domain::records::NewProject {
            name: update.name.clone(),
            icon: update.icon.clone(),
            environment: update.environment.clone(),
            org_id: org,
        })
        .await?;
    // Retention is not part of NewProject's defaults; apply it right away.
    let project = stores.projects.update_project(created.id, update).await?;
    audit::action(codes::PROJECT_CREATE)
        .project(project.id)
        .org(org)
        .record(stores)
        .await;
    Ok(project)
}

/// Changes a project's editable fields from a validated form.
pub async fn update(stores: &Stores, id: DocId, update: &ProjectUpdate) -> StoreResult<Project> {
    let project = stores.projects.update_project(id, update).await?;
    audit::action(codes::PROJECT_UPDATE)
        .project(project.id)
        .org(project.org_id)
        .record(stores)
        .await;
    Ok(project)
}

pub const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];

/// Raw project form values, kept for re-rendering the form after an error.
#[derive(Clone, Debug)]
pub struct ProjectForm {
    pub name: String,
    pub icon: String,
    pub environment: String,
    pub data_retention_days: String,
}

impl Default for ProjectForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            icon: "📊".into(),
            environment: "production".into(),
            data_retention_days: "90".into(),
        }
    }
}

impl ProjectForm {
    /// Validates into an update; the error text is shown to the user.
    pub fn validate(&self) -> Result<ProjectUpdate, String> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err("Name is required".into());
        }
        if name.chars().count() > 120 {
            return Err("Name must be at most 120 characters".into());
        }
        let icon = if self.icon.trim().is_empty() {
            "📊".to_string()
        } else {
            self.icon.trim().to_string()
        };
        if icon.chars().count() > 16 {
            return Err("Icon must be at most 16 characters".into());
        }
        if !ENVIRONMENTS.contains(&self.environment.as_str()) {
            return Err("Environment must be production, staging or development".into());
        }
        let days: u32 = self
            .data_retention_days
            .trim()
            .parse()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or("Data retention must be a whole number of days between 1 and 365")?;
        Ok(ProjectUpdate {
            name: name.to_string(),
            icon,
            environment: self.environment.clone(),
            data_retention_days: days,
        })
    }
}

/// Builds drop rules from the settings form (`dropEnabled`, `dropMode`, `dropFilterKey[]`,
/// `dropFilterOp[]`, `dropFilterValue[]`). Rows without a key are ignored.
pub fn drop_rules_from_form(
    enabled: Option<&str>,
    mode: Option<&str>,
    keys: &[&str],
    ops: &[&str],
    values: &[&str],
) -> Result<DropRules, String> {
    let enabled = matches!(enabled, Some("on" | "true"));
    let mode = if mode == Some("whitelist") {
        DropMode::Whitelist
    } else {
        DropMode::Blacklist
    };
    let filters: Vec<DropFilter> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| !k.trim().is_empty())
        .map(|(i, k)| DropFilter {
            key: k.trim().to_string(),
            op: match ops.get(i).copied() {
                Some("contains") => FilterOp::Contains,
                Some("lowerThan") => FilterOp::LowerThan,
                Some("greaterThan") => FilterOp::GreaterThan,
                _ => FilterOp::Equals,
            },
            value: values
                .get(i)
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
        })
        .collect();
    if enabled && filters.is_empty() {
        return Err("At least one metadata filter is required when enabled".into());
    }
    Ok(DropRules {
        enabled,
        mode,
        filters,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, env: &str, days: &str) -> ProjectForm {
        ProjectForm {
            name: name.into(),
            icon: String::new(),
            environment: env.into(),
            data_retention_days: days.into(),
        }
    }

    #[test]
    fn project_form_rules() {
        let ok = form(" Shop ", "staging", "30").validate().unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.icon.as_str(), ok.data_retention_days),
            ("Shop", "📊", 30)
        );
        assert!(form("", "production", "90").validate().is_err());
        assert!(form("x", "prod", "90").validate().is_err());
        for bad in ["0", "366", "abc", "1.5"] {
            assert!(form("x", "production", bad).validate().is_err(), "{bad}");
        }
        assert!(form("x", "production", "365").validate().is_ok());
    }

    #[test]
    fn drop_rule_form_ignores_blank_rows_and_requires_a_filter_when_enabled() {
        let r = drop_rules_from_form(
            Some("on"),
            Some("whitelist"),
            &["eventName", " "],
            &["contains", "equals"],
            &["a,b", "x"],
        )
        .unwrap();
        assert_eq!(r.mode, DropMode::Whitelist);
        assert_eq!(
            r.filters,
            vec![DropFilter {
                key: "eventName".into(),
                op: FilterOp::Contains,
                value: "a,b".into()
            }]
        );
        assert!(drop_rules_from_form(Some("on"), None, &[""], &["equals"], &[""]).is_err());
        let off = drop_rules_from_form(None, None, &[], &[], &[]).unwrap();
        assert!(!off.enabled);
        let weird_op =
            drop_rules_from_form(Some("true"), None, &["k"], &["regex"], &["v"]).unwrap();
        assert_eq!(weird_op.filters[0].op, FilterOp::Equals);
    }
}
