//! Analysis presets: the read-only builtins, validation of user presets (reference §6.4 limits),
//! and the JSON a model returns when asked to generate or refine one.

use super::client::ChatMessage;
use crate::domain::ids::DocId;
use serde_json::{Value, json};

pub const MAX_NAME: usize = 120;
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_TAG: usize = 40;
pub const MAX_TAGS: usize = 20;
pub const MAX_GOAL: usize = 2000;
pub const MAX_PROMPT_TEMPLATE: usize = 4000;
pub const MAX_FOCUS_AREA: usize = 40;
pub const MAX_FOCUS_AREAS: usize = 20;
/// Most public presets of other users listed.
pub const MAX_PUBLIC_LISTED: u32 = 200;

/// A stored preset (`aianalysispresets`).
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    pub id: DocId,
    pub owner_user_id: DocId,
    pub owner_email: String,
    /// `private` or `public`.
    pub visibility: String,
    pub fields: PresetFields,
    /// Starts at 1; every edit, publish, unpublish and refine adds one.
    pub version: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The editable part of a preset, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresetFields {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Conventionally `{focusAreas: [..], promptTemplate: ".."}`; always a JSON object.
    pub definition: Value,
}

impl Preset {
    /// The JSON shape of the preset routes (SuperInsights field names).
    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id.to_hex(),
            "id": self.id.to_hex(),
            "ownerUserId": self.owner_user_id.to_hex(),
            "ownerEmail": self.owner_email,
            "visibility": self.visibility,
            "name": self.fields.name,
            "description": self.fields.description,
            "tags": self.fields.tags,
            "version": self.version,
            "definition": self.fields.definition,
            "createdAt": crate::domain::timestamp::to_iso(self.created_at),
            "updatedAt": crate::domain::timestamp::to_iso(self.updated_at),
            "builtin": false,
        })
    }

    /// Whether `user` may read it (owner, or public).
    pub fn readable_by(&self, user: DocId) -> bool {
        self.owner_user_id == user || self.visibility == "public"
    }
}

/// A builtin preset (ids `builtin:*`, read-only).
#[derive(Clone, Debug, PartialEq)]
pub struct Builtin {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub focus_areas: &'static [&'static str],
    pub prompt_template: &'static str,
}

impl Builtin {
    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id,
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "visibility": "public",
            "version": 1,
            "tags": ["builtin"],
            "definition": {"focusAreas": self.focus_areas, "promptTemplate": self.prompt_template},
            "builtin": true,
        })
    }
}

pub const BUILTINS: [Builtin; 4] = [
    Builtin {
        id: "builtin:traffic",
        name: "Traffic analysis",
        description: "Where visitors land, how traffic moves day by day, and which pages matter.",
        focus_areas: &["traffic", "top pages", "daily trend"],
        prompt_template: "Concentrate on traffic: the daily trend of page views and unique visitors, the pages that gain or lose share, days that break the pattern, and what the page samples (referrers, campaigns, devices) say about where visits come from.",
    },
    Builtin {
        id: "builtin:errors",
        name: "Errors analysis",
        description: "Which errors hurt users most, since when, and what to fix first.",
        focus_areas: &["errors", "reliability", "regressions"],
        prompt_template: "Concentrate on reliability: rank the error fingerprints by impact, read their stack samples for a likely cause, flag fingerprints that appeared recently (first seen in the range), and propose fixes in priority order.",
    },
    Builtin {
        id: "builtin:performance",
        name: "Performance & bottlenecks",
        description: "Web vitals against their thresholds and the slowest timed operations.",
        focus_areas: &["web vitals", "timed events", "slow pages"],
        prompt_template: "Concentrate on speed: compare each web vital's percentiles with the good/poor thresholds, name the URLs and devices behind the worst records, and list the slowest timed events by p95 with likely causes.",
    },
    Builtin {
        id: "builtin:ecommerce-spikes",
        name: "Ecommerce buy spikes",
        description: "Spikes and dips in purchase-like events and what drove them.",
        focus_areas: &["conversions", "purchases", "spikes"],
        prompt_template: "Concentrate on commerce: infer which events are conversions (purchase, checkout, order, add-to-cart, payment…) from their names and properties, find the days they spike or drop, and relate them to traffic, campaigns and errors on those days.",
    },
];

/// The builtin with this id (`builtin:traffic`, …).
pub fn builtin(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}

pub fn is_builtin_id(id: &str) -> bool {
    id.starts_with("builtin:")
}

/// A preset's focus instructions (its `definition.promptTemplate`), if any.
pub fn prompt_template(definition: &Value) -> Option<&str> {
    definition
        .get("promptTemplate")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A validation failure, worded for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn too_long(field: &str, max: usize) -> Invalid {
    Invalid(format!("{field} must be at most {max} characters"))
}

/// `private` (default) or `public`; anything else is invalid.
pub fn visibility(value: Option<&Value>) -> Result<String, Invalid> {
    match value.and_then(Value::as_str).map(str::trim) {
        None | Some("") => Ok("private".into()),
        Some(v @ ("private" | "public")) => Ok(v.to_string()),
        Some(_) => Err(Invalid("visibility must be private or public".into())),
    }
}

/// Validates a preset body (`name`, `description`, `tags`, `definition`) into fields.
/// With `partial`, missing fields keep the values of `current`.
pub fn validate(body: &Value, current: Option<&PresetFields>) -> Result<PresetFields, Invalid> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::trim);
    let name = match (text("name"), current) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (None, Some(c)) => c.name.clone(),
        _ => return Err(Invalid("name is required".into())),
    };
    if name.chars().count() > MAX_NAME {
        return Err(too_long("name", MAX_NAME));
    }
    let description = match (text("description"), current) {
        (Some(d), _) => d.to_string(),
        (None, Some(c)) => c.description.clone(),
        (None, None) => String::new(),
    };
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(too_long("description", MAX_DESCRIPTION));
    }
    let tags = match (body.get("tags"), current) {
        (Some(Value::Array(list)), _) => {
            let mut tags = Vec::new();
            for t in list {
                let t = t
                    .as_str()
                    .ok_or_else(|| Invalid("tags must be strings".into()))?
                    .trim();
                if t.chars().count() > MAX_TAG {
                    return Err(too_long("each tag", MAX_TAG));
                }
                if !t.is_empty() && !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
            if tags.len() > MAX_TAGS {
                return Err(Invalid(format!("at most {MAX_TAGS} tags")));
            }
            tags
        }
        (None | Some(Value::Null), Some(c)) => c.tags.clone(),
        (None | Some(Value::Null), None) => Vec::new(),
        (Some(_), _) => return Err(Invalid("tags must be a list of strings".into())),
    };
    let definition = match (body.get("definition"), current) {
        (Some(d @ Value::Object(_)), _) => validate_definition(d)?,
        (None, Some(c)) => c.definition.clone(),
        _ => return Err(Invalid("definition must be an object".into())),
    };
    Ok(PresetFields {
        name,
        description,
        tags,
        definition,
    })
}

/// Checks `focusAreas` (strings ≤ 40 characters) and `promptTemplate` (≤ 4000 characters).
fn validate_definition(d: &Value) -> Result<Value, Invalid> {
    if let Some(areas) = d.get("focusAreas") {
        let list = areas
            .as_array()
            .ok_or_else(|| Invalid("definition.focusAreas must be a list of strings".into()))?;
        if list.len() > MAX_FOCUS_AREAS {
            return Err(Invalid(format!("at most {MAX_FOCUS_AREAS} focus areas")));
        }
        for a in list {
            let a = a
                .as_str()
                .ok_or_else(|| Invalid("definition.focusAreas must be a list of strings".into()))?;
            if a.chars().count() > MAX_FOCUS_AREA {
                return Err(too_long("each focus area", MAX_FOCUS_AREA));
            }
        }
    }
    if let Some(t) = d.get("promptTemplate") {
        let t = t
            .as_str()
            .ok_or_else(|| Invalid("definition.promptTemplate must be a string".into()))?;
        if t.chars().count() > MAX_PROMPT_TEMPLATE {
            return Err(too_long("definition.promptTemplate", MAX_PROMPT_TEMPLATE));
        }
    }
    Ok(d.clone())
}

/// The goal of a generate/refine request: required, ≤ 2000 characters.
pub fn goal(body: &Value) -> Result<String, Invalid> {
    let g = body
        .get("goal")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if g.is_empty() {
        return Err(Invalid("goal is required".into()));
    }
    if g.chars().count() > MAX_GOAL {
        return Err(too_long("goal", MAX_GOAL));
    }
    Ok(g.to_string())
}

const PRESET_SHAPE: &str = r#"{"name": string (at most 120 characters), "description": string (at most 1000), "visibility": "private" or "public", "definition": {"focusAreas": [short strings, at most 40 characters each], "promptTemplate": string (at most 4000 characters): the instructions an analyst model should follow for this focus}}"#;

/// Messages asking a model to write a preset for `goal`.
pub fn generate_messages(goal: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("Return ONLY JSON."),
        ChatMessage::user(format!(
            "Write an analysis preset for a web analytics tool (page views, custom events, timed \
             events, JS errors, web vitals). Answer with one JSON object of this shape and nothing \
             else:\n{PRESET_SHAPE}\n\nThe user's goal:\n{goal}"
        )),
    ]
}

/// Messages asking a model to rewrite `current` (a preset's JSON) for `goal`.
pub fn refine_messages(goal: &str, current: &Value) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("Return ONLY JSON."),
        ChatMessage::user(format!(
            "Here is an analysis preset for a web analytics tool:\n{current}\n\nRewrite it to meet \
             the user's goal below. Answer with the full updated preset as one JSON object of this \
             shape and nothing else:\n{PRESET_SHAPE}\n\nThe user's goal:\n{goal}"
        )),
    ]
}

/// The JSON object in a model's answer: the text between the first `{` and the last `}`.
pub fn extract_json(answer: &str) -> Result<Value, Invalid> {
    let (Some(start), Some(end)) = (answer.find('{'), answer.rfind('}')) else {
        return Err(Invalid("The model did not return a JSON object".into()));
    };
    if end < start {
        return Err(Invalid("The model did not return a JSON object".into()));
    }
    let v: Value = serde_json::from_str(&answer[start..=end])
        .map_err(|e| Invalid(format!("The model returned invalid JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(Invalid("The model did not return a JSON object".into()))
    }
}

/// A model's preset answer, validated: the fields and the visibility it asked for.
pub fn from_model_answer(answer: &str) -> Result<(PresetFields, String), Invalid> {
    let v = extract_json(answer)?;
    let fields = validate(&v, None)?;
    let vis = visibility(v.get("visibility")).unwrap_or_else(|_| "private".into());
    Ok((fields, vis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_the_four_of_the_reference_with_focus_instructions() {
        let ids: Vec<_> = BUILTINS.iter().map(|b| b.id).collect();
        assert_eq!(
            ids,
            [
                "builtin:traffic",
                "builtin:errors",
                "builtin:performance",
                "builtin:ecommerce-spikes"
            ]
        );
        let json = builtin("builtin:errors").unwrap().to_json();
        assert_eq!(json["builtin"], true);
        assert!(
            prompt_template(&json["definition"])
                .unwrap()
                .contains("fingerprints")
        );
        assert!(builtin("builtin:nope").is_none());
    }

    #[test]
    fn validation_applies_the_reference_limits() {
        let ok = validate(
            &json!({"name": " Funnel ", "tags": ["a", "a", " b "], "definition": {"focusAreas": ["x"], "promptTemplate": "y"}}),
            None,
        )
        .unwrap();
        assert_eq!(ok.name, "Funnel");
        assert_eq!(ok.tags, vec!["a", "b"]);
        let bad = |body: Value| validate(&body, None).unwrap_err().0;
        assert_eq!(bad(json!({"definition": {}})), "name is required");
        assert_eq!(
            bad(json!({"name": "x".repeat(121), "definition": {}})),
            "name must be at most 120 characters"
        );
        assert_eq!(
            bad(json!({"name": "n", "description": "d".repeat(1001), "definition": {}})),
            "description must be at most 1000 characters"
        );
        assert_eq!(
            bad(json!({"name": "n", "tags": ["t".repeat(41)], "definition": {}})),
            "each tag must be at most 40 characters"
        );
        assert_eq!(bad(json!({"name": "n"})), "definition must be an object");
        assert_eq!(
            bad(json!({"name": "n", "definition": {"promptTemplate": "p".repeat(4001)}})),
            "definition.promptTemplate must be at most 4000 characters"
        );
        assert_eq!(
            bad(json!({"name": "n", "definition": {"focusAreas": ["f".repeat(41)]}})),
            "each focus area must be at most 40 characters"
        );
        assert!(visibility(Some(&json!("secret"))).is_err());
        assert_eq!(visibility(None).unwrap(), "private");
    }

    #[test]
    fn partial_updates_keep_current_values() {
        let current = validate(&json!({"name": "A", "description": "d", "tags": ["t"], "definition": {"promptTemplate": "p"}}), None).unwrap();
        let next = validate(&json!({"description": "new"}), Some(&current)).unwrap();
        assert_eq!(
            (next.name.as_str(), next.description.as_str()),
            ("A", "new")
        );
        assert_eq!(next.tags, vec!["t"]);
        assert_eq!(next.definition, json!({"promptTemplate": "p"}));
    }

    #[test]
    fn model_answers_are_read_between_the_first_and_last_brace() {
        let answer = "Sure! Here it is:\n```json\n{\"name\": \"Checkout\", \"visibility\": \"public\", \"definition\": {\"focusAreas\": [\"checkout\"], \"promptTemplate\": \"Look at {checkout}\"}}\n```\nEnjoy.";
        let (fields, vis) = from_model_answer(answer).unwrap();
        assert_eq!(fields.name, "Checkout");
        assert_eq!(vis, "public");
        assert_eq!(
            prompt_template(&fields.definition),
            Some("Look at {checkout}")
        );
        assert!(from_model_answer("no json here").is_err());
        assert!(from_model_answer("} backwards {").is_err());
        assert!(from_model_answer("{\"name\": 1").is_err());
    }
}
