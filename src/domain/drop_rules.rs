//! Per-project event drop rules (SuperInsights 1.x "INGESTION_DROP_EVENTS_V1"): a blacklist or
//! whitelist of AND-ed filters over an event's top-level fields and its `properties`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropMode {
    #[default]
    Blacklist,
    Whitelist,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterOp {
    #[default]
    #[serde(rename = "equals")]
    Equals,
    /// The filter value is a comma-separated list; matches when the field equals any element.
    #[serde(rename = "contains")]
    Contains,
    #[serde(rename = "lowerThan")]
    LowerThan,
    #[serde(rename = "greaterThan")]
    GreaterThan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropFilter {
    pub key: String,
    #[serde(default)]
    pub op: FilterOp,
    #[serde(default)]
    pub value: String,
}

/// The stored JSON shape: `{version:1, enabled, mode, filters:[{key, op, value}]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropRules {
    #[serde(default = "version_one")]
    pub version: u32,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub mode: DropMode,
    #[serde(default)]
    pub filters: Vec<DropFilter>,
}

fn version_one() -> u32 {
    1
}

impl Default for DropRules {
    fn default() -> Self {
        Self {
            version: 1,
            enabled: false,
            mode: DropMode::Blacklist,
            filters: Vec::new(),
        }
    }
}

impl DropRules {
    /// True when this raw event item must be dropped before validation.
    pub fn drops(&self, item: &Map<String, Value>) -> bool {
        if !self.enabled || self.filters.is_empty() {
            return false;
        }
        let matched = self.filters.iter().all(|f| f.matches(item));
        match self.mode {
            DropMode::Blacklist => matched,
            DropMode::Whitelist => !matched,
        }
    }
}

impl DropFilter {
    fn matches(&self, item: &Map<String, Value>) -> bool {
        let field = item
            .get(&self.key)
            .or_else(|| item.get("properties").and_then(|p| p.get(&self.key)));
        let Some(field) = field.filter(|v| !v.is_null()) else {
            return false;
        };
        match self.op {
            FilterOp::Equals => as_text(field) == self.value,
            FilterOp::Contains => {
                let text = as_text(field);
                self.value
                    .split(',')
                    .map(str::trim)
                    .any(|candidate| candidate == text)
            }
            FilterOp::LowerThan | FilterOp::GreaterThan => {
                let (Some(a), Some(b)) = (as_number(field), self.value.trim().parse::<f64>().ok())
                else {
                    return false;
                };
                if !a.is_finite() || !b.is_finite() {
                    return false;
                }
                if self.op == FilterOp::LowerThan {
                    a < b
                } else {
                    a > b
                }
            }
        }
    }
}

/// JavaScript's `String(value)` for the JSON values filters compare.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(mode: DropMode, filters: Vec<(&str, FilterOp, &str)>) -> DropRules {
        DropRules {
            enabled: true,
            mode,
            filters: filters
                .into_iter()
                .map(|(k, op, v)| DropFilter {
                    key: k.into(),
                    op,
                    value: v.into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn blacklist_drops_matching_items_by_top_level_or_property() {
        let r = rules(
            DropMode::Blacklist,
            vec![("eventName", FilterOp::Equals, "noise")],
        );
        assert!(r.drops(&item(json!({"eventName": "noise"}))));
        assert!(!r.drops(&item(json!({"eventName": "signal"}))));
        let r = rules(
            DropMode::Blacklist,
            vec![("plan", FilterOp::Equals, "free")],
        );
        assert!(r.drops(&item(
            json!({"eventName": "x", "properties": {"plan": "free"}})
        )));
    }

    #[test]
    fn contains_is_set_membership_not_substring() {
        let r = rules(
            DropMode::Blacklist,
            vec![("env", FilterOp::Contains, "dev, test")],
        );
        assert!(r.drops(&item(json!({"properties": {"env": "test"}}))));
        assert!(!r.drops(&item(json!({"properties": {"env": "tes"}}))));
    }

    #[test]
    fn numeric_ops_need_finite_numbers_and_all_filters_must_match() {
        let r = rules(
            DropMode::Blacklist,
            vec![
                ("durationMs", FilterOp::GreaterThan, "100"),
                ("eventName", FilterOp::Equals, "slow"),
            ],
        );
        assert!(r.drops(&item(json!({"eventName": "slow", "durationMs": 150}))));
        assert!(!r.drops(&item(json!({"eventName": "slow", "durationMs": 50}))));
        assert!(!r.drops(&item(json!({"eventName": "fast", "durationMs": 150}))));
        assert!(!r.drops(&item(json!({"eventName": "slow", "durationMs": "abc"}))));
    }

    #[test]
    fn whitelist_drops_non_matching_and_missing_fields() {
        let r = rules(
            DropMode::Whitelist,
            vec![("eventName", FilterOp::Equals, "keep")],
        );
        assert!(!r.drops(&item(json!({"eventName": "keep"}))));
        assert!(r.drops(&item(json!({"eventName": "other"}))));
        assert!(r.drops(&item(json!({}))));
    }

    #[test]
    fn disabled_rules_drop_nothing() {
        let mut r = rules(
            DropMode::Blacklist,
            vec![("eventName", FilterOp::Equals, "x")],
        );
        r.enabled = false;
        assert!(!r.drops(&item(json!({"eventName": "x"}))));
    }
}
