//! Segment filters (SuperInsights 1.x `utils/segmentFilters.js`, reference §4.7): parsed once
//! from a query string or form, then mapped by each store onto the fields of each collection.
//! Parsing never fails: unusable values are ignored, as in SI 1.x.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The segment a view is restricted to. Every field is an exact string match; empty means "all".
///
/// How the fields apply per collection (reference §4.7):
/// - events and performance: `client_id` → `clientId`; `user_id` → `properties.userId`;
///   `meta[k]` → `properties.k`. The other fields do not apply.
/// - page views: `client_id`, `device_type`, `browser`, `os`, `utm_*` → same-named fields;
///   `user_id` and `meta` do not apply.
/// - errors: `client_id` → the error's own `clientId` or `context.clientId`; `user_id` → its
///   own `userId` or `context.userId`; `meta[k]` → `context.k`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SegmentFilters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    /// Metadata: key (validated by [`valid_meta_key`]) → exact value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// A metadata key usable in a filter: `[A-Za-z0-9_.-]{1,80}`, not starting with `$`.
pub fn valid_meta_key(key: &str) -> bool {
    (1..=80).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl SegmentFilters {
    /// Reads the filters from query or form parameters, accepting both SI spellings
    /// (`clientId`/`client_id`, …), `meta` as a JSON object, and `metaKey` + `metaValue`.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut f = SegmentFilters::default();
        let mut meta_key = None;
        let mut meta_value = None;
        for (name, value) in params {
            let value = value.trim();
            if value.is_empty() || value.contains('\0') {
                continue;
            }
            let slot = match name {
                "clientId" | "client_id" => &mut f.client_id,
                "userId" | "user_id" => &mut f.user_id,
                "deviceType" | "device_type" => &mut f.device_type,
                "browser" => &mut f.browser,
                "os" => &mut f.os,
                "utmSource" | "utm_source" => &mut f.utm_source,
                "utmMedium" | "utm_medium" => &mut f.utm_medium,
                "utmCampaign" | "utm_campaign" => &mut f.utm_campaign,
                "meta" => {
                    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(value) {
                        for (k, v) in map {
                            let v = match v {
                                serde_json::Value::String(s) => s.trim().to_string(),
                                serde_json::Value::Number(n) => n.to_string(),
                                serde_json::Value::Bool(b) => b.to_string(),
                                _ => continue,
                            };
                            f.insert_meta(&k, v);
                        }
                    }
                    continue;
                }
                "metaKey" => {
                    meta_key = Some(value.to_string());
                    continue;
                }
                "metaValue" => {
                    meta_value = Some(value.to_string());
                    continue;
                }
                _ => continue,
            };
            *slot = Some(value.to_string());
        }
        if let (Some(k), Some(v)) = (meta_key, meta_value) {
            f.insert_meta(&k, v);
        }
        f
    }

    fn insert_meta(&mut self, key: &str, value: String) {
        let key = key.trim();
        if valid_meta_key(key) && !value.is_empty() && !value.contains('\0') {
            self.meta.insert(key.to_string(), value);
        }
    }

    /// Only the fields that apply to event, error and performance documents (`clientId`,
    /// `userId`, metadata): the others describe page views.
    pub fn documents_only(&self) -> SegmentFilters {
        SegmentFilters {
            client_id: self.client_id.clone(),
            user_id: self.user_id.clone(),
            meta: self.meta.clone(),
            ..SegmentFilters::default()
        }
    }

    /// True when nothing restricts the view.
    pub fn is_empty(&self) -> bool {
        *self == SegmentFilters::default()
    }

    /// A short stable digest of the filters, for cache keys (`-` when empty).
    pub fn cache_token(&self) -> String {
        if self.is_empty() {
            return "-".into();
        }
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// The filters as `(name, value)` query pairs (camelCase names, `meta` as JSON), e.g. to keep
    /// them in links and forms.
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, value) in [
            ("clientId", &self.client_id),
            ("userId", &self.user_id),
            ("deviceType", &self.device_type),
            ("browser", &self.browser),
            ("os", &self.os),
            ("utmSource", &self.utm_source),
            ("utmMedium", &self.utm_medium),
            ("utmCampaign", &self.utm_campaign),
        ] {
            if let Some(v) = value {
                out.push((name, v.clone()));
            }
        }
        if !self.meta.is_empty() {
            out.push((
                "meta",
                serde_json::to_string(&self.meta).unwrap_or_default(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> SegmentFilters {
        SegmentFilters::from_params(pairs.iter().copied())
    }

    #[test]
    fn both_spellings_are_read_and_values_trimmed() {
        let f = parse(&[
            ("client_id", " c1 "),
            ("userId", "u1"),
            ("device_type", "mobile"),
            ("utm_source", "news"),
            ("utmCampaign", "spring"),
        ]);
        assert_eq!(f.client_id.as_deref(), Some("c1"));
        assert_eq!(f.user_id.as_deref(), Some("u1"));
        assert_eq!(f.device_type.as_deref(), Some("mobile"));
        assert_eq!(f.utm_source.as_deref(), Some("news"));
        assert_eq!(f.utm_campaign.as_deref(), Some("spring"));
        assert!(!f.is_empty());
    }

    #[test]
    fn meta_accepts_json_objects_and_key_value_pairs_and_rejects_bad_keys() {
        let f = parse(&[
            (
                "meta",
                r#"{"plan":"pro","n":3,"$bad":"x","ok.key-1":" v ","obj":{}}"#,
            ),
            ("metaKey", "tier"),
            ("metaValue", "gold"),
        ]);
        let expected: BTreeMap<String, String> = [
            ("n", "3"),
            ("ok.key-1", "v"),
            ("plan", "pro"),
            ("tier", "gold"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(f.meta, expected);
        assert!(!valid_meta_key(&"k".repeat(81)));
        assert!(!valid_meta_key(""));
        assert!(!valid_meta_key("a b"));
    }

    #[test]
    fn empty_blank_and_nul_values_are_ignored() {
        let f = parse(&[("clientId", "  "), ("os", "a\0b"), ("meta", "not json")]);
        assert!(f.is_empty());
        assert_eq!(f.cache_token(), "-");
    }

    #[test]
    fn params_round_trip_and_cache_token_is_stable() {
        let f = parse(&[
            ("browser", "Firefox"),
            ("metaKey", "plan"),
            ("metaValue", "pro"),
        ]);
        let params = f.to_params();
        let again = SegmentFilters::from_params(params.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(again, f);
        assert_eq!(again.cache_token(), f.cache_token());
        assert_ne!(
            f.cache_token(),
            parse(&[("browser", "Chrome")]).cache_token()
        );
    }
}
