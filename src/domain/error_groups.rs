//! The state a developer gives an error group (one signature of a project): open, resolved or
//! ignored, and what the errors page shows from it. A resolved group with an occurrence after
//! it was resolved shows as regressed, in the open list again. Also the dashboard's errors
//! block ([`ErrorFigures`]): 1.x's figures with the groups beside them. Pure.

use crate::domain::ids::DocId;
use serde::{Deserialize, Serialize};

/// What a member set a group to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    Open,
    Resolved,
    Ignored,
}

impl GroupState {
    pub const ALL: [GroupState; 3] = [GroupState::Open, GroupState::Resolved, GroupState::Ignored];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Open => "open",
            GroupState::Resolved => "resolved",
            GroupState::Ignored => "ignored",
        }
    }

    /// `open`, `resolved` or `ignored` (exactly); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// The stored state of one group, per (project, signature).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroupState {
    pub project_id: DocId,
    /// The signature key (`domain::error_signature::Signature::key`).
    pub signature: String,
    pub state: GroupState,
    /// When the state was last set (epoch ms) and by whom.
    pub updated_at: i64,
    pub updated_by: Option<DocId>,
}

/// What the errors page shows for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShownState {
    Open,
    /// Resolved, then seen again after it was resolved.
    Regressed,
    Resolved,
    Ignored,
}

impl ShownState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShownState::Open => "open",
            ShownState::Regressed => "regressed",
            ShownState::Resolved => "resolved",
            ShownState::Ignored => "ignored",
        }
    }

    /// The label on the page.
    pub fn label(self) -> &'static str {
        match self {
            ShownState::Open => "Open",
            ShownState::Regressed => "Regressed",
            ShownState::Resolved => "Resolved",
            ShownState::Ignored => "Ignored",
        }
    }

    /// True for groups the default list shows (open and regressed).
    pub fn is_active(self) -> bool {
        matches!(self, ShownState::Open | ShownState::Regressed)
    }
}

/// The shown state of a group whose newest occurrence is at `last_seen` (epoch ms): a resolved
/// group seen after it was resolved is regressed.
pub fn shown_state(stored: Option<&ErrorGroupState>, last_seen: i64) -> ShownState {
    match stored {
        None => ShownState::Open,
        Some(s) => match s.state {
            GroupState::Open => ShownState::Open,
            GroupState::Ignored => ShownState::Ignored,
            GroupState::Resolved if last_seen > s.updated_at => ShownState::Regressed,
            GroupState::Resolved => ShownState::Resolved,
        },
    }
}

/// Which groups the errors page lists (`state` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Open and regressed (the default).
    #[default]
    Open,
    Resolved,
    Ignored,
    All,
}

impl StateFilter {
    pub const NAMES: [&'static str; 4] = ["open", "resolved", "ignored", "all"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(StateFilter::Open),
            "resolved" => Some(StateFilter::Resolved),
            "ignored" => Some(StateFilter::Ignored),
            "all" => Some(StateFilter::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn admits(self, shown: ShownState) -> bool {
        match self {
            StateFilter::Open => shown.is_active(),
            StateFilter::Resolved => shown == ShownState::Resolved,
            StateFilter::Ignored => shown == ShownState::Ignored,
            StateFilter::All => true,
        }
    }
}

/// The dashboard's errors block: SuperInsights 1.x's fields (`totalErrors`,
/// `uniqueFingerprints`, `errorsByDay`, unchanged in name and meaning) and, beside them, the
/// error groups by signature (`uniqueSignatures`, `topGroups`), any state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFigures {
    #[serde(flatten)]
    pub summary: crate::domain::analytics::ErrorsSummary,
    /// Distinct signatures (error groups) under the same restriction as `total_errors`.
    #[serde(default)]
    pub unique_signatures: u64,
    /// The most frequent groups, by count (ties by signature key).
    #[serde(default)]
    pub top_groups: Vec<GroupRow>,
}

/// One error group in the dashboard's errors table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRow {
    /// The signature key (16 hex digits): what `signature=` filters by.
    pub signature: String,
    /// The earliest occurrence's message in the range.
    pub message: String,
    /// The normalised message the group is keyed by.
    pub pattern: String,
    pub count: u64,
    /// ISO time of the newest occurrence in the range.
    pub last_seen: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(state: GroupState, at: i64) -> ErrorGroupState {
        ErrorGroupState {
            project_id: DocId::new(),
            signature: "0123456789abcdef".into(),
            state,
            updated_at: at,
            updated_by: None,
        }
    }

    #[test]
    fn resolved_groups_seen_again_are_regressed_and_listed_as_open() {
        assert_eq!(shown_state(None, 5), ShownState::Open);
        let r = stored(GroupState::Resolved, 100);
        assert_eq!(shown_state(Some(&r), 100), ShownState::Resolved);
        assert_eq!(shown_state(Some(&r), 101), ShownState::Regressed);
        assert!(StateFilter::Open.admits(ShownState::Regressed));
        assert!(!StateFilter::Open.admits(ShownState::Resolved));
        let i = stored(GroupState::Ignored, 100);
        assert_eq!(shown_state(Some(&i), 500), ShownState::Ignored);
        assert!(!StateFilter::default().admits(ShownState::Ignored));
        assert!(StateFilter::Ignored.admits(ShownState::Ignored));
        assert!(StateFilter::All.admits(ShownState::Resolved));
    }

    #[test]
    fn states_parse_exactly() {
        for g in GroupState::ALL {
            assert_eq!(GroupState::parse(g.as_str()), Some(g));
        }
        assert_eq!(GroupState::parse("Resolved"), None);
        assert_eq!(GroupState::parse("deleted"), None);
        for n in StateFilter::NAMES {
            assert_eq!(StateFilter::parse(n).map(StateFilter::as_str), Some(n));
        }
        assert_eq!(StateFilter::parse("x"), None);
    }
}
