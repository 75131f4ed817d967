//! Secret values: [`Secret`], which never shows its value in `Debug` output, and the production
//! boot check that refuses unset or well-known default secrets (SuperInsights 1.x's rule).

use super::{Config, ConfigError};
use std::fmt;

/// Secret values that SuperInsights 1.x refuses in production (compared case-insensitively).
const WEAK_SECRETS: &[&str] = &[
    "change-me-in-production",
    "replace-me",
    "changeme",
    "change-me",
    "secret",
    "password",
];

/// A string whose value must never be logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(unset)")
        } else {
            f.write_str("(redacted)")
        }
    }
}

impl Config {
    /// SuperInsights 1.x's boot check: in production every secret must be set and not a known default.
    pub(super) fn check_production_secrets(&self) -> Result<(), ConfigError> {
        let secrets = [
            ("SESSION_SECRET", &self.session_secret),
            ("JWT_ACCESS_SECRET", &self.jwt_access_secret),
            ("JWT_REFRESH_SECRET", &self.jwt_refresh_secret),
        ];
        for (var, secret) in secrets {
            if secret.is_empty() {
                return Err(ConfigError::new(var, "must be set in production"));
            }
            if WEAK_SECRETS
                .iter()
                .any(|weak| secret.expose().eq_ignore_ascii_case(weak))
            {
                return Err(ConfigError::new(
                    var,
                    "is a known default; set a strong secret in production",
                ));
            }
        }
        // The pepper may stay unset (SuperInsights 1.x's default, so its links keep working;
        // tokens carry 256 random bits either way), but a placeholder value is a mistake.
        let pepper = self.public_link_pepper.expose();
        if WEAK_SECRETS
            .iter()
            .any(|weak| pepper.eq_ignore_ascii_case(weak))
        {
            return Err(ConfigError::new(
                "PUBLIC_LINK_PEPPER",
                "is a known default; set a strong value or leave it unset",
            ));
        }
        Ok(())
    }
}
