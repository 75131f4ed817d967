//! Reading variables: [`Env`] (the process environment after `.env`, or pairs in tests) and the
//! strict parsers every setting goes through (trimmed strings, flags, numbers in a range).

use super::ConfigError;
use std::collections::BTreeMap;

/// Reads variables from a map, so tests never touch the process environment.
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment, after loading `ENV_FILE` (default `.env`) when present.
    pub fn from_process() -> Self {
        let file = std::env::var("ENV_FILE").unwrap_or_else(|_| ".env".into());
        let _ = dotenvy::from_filename(&file);
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The trimmed value, `None` when unset or empty.
    pub(super) fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(super) fn string(&self, var: &str) -> Option<String> {
        self.get(var).map(str::to_string)
    }

    /// Strict boolean: `true/false/1/0/yes/no/on/off` (any case); anything else is an error.
    pub(super) fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => parse_flag(v).ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!("expected true/false/1/0/yes/no/on/off, got {v:?}"),
                )
            }),
        }
    }

    /// A whole number within `min..=max`; out of range is an error naming the variable.
    pub(super) fn number_in(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let value = self.number(var, default)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                var,
                format!("must be between {min} and {max}"),
            ))
        }
    }

    pub(super) fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(var, format!("not a valid number: {v:?}"))),
        }
    }
}

/// Parses a strict boolean flag value.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
