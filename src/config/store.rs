//! Where the primary data lives (`MONGODB_URI`, or the embedded SQLite file and its settings).

use super::{ConfigError, Env, Secret};
use std::path::{Path, PathBuf};

/// Where the primary data lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// Embedded SQLite file (the default).
    Sqlite {
        path: PathBuf,
        /// How long a writer waits for another process's lock before the store counts as unavailable.
        busy_timeout_ms: u64,
        /// `NORMAL` (the default; WAL: a commit survives a process crash, the last ones may not
        /// survive a power cut) or `FULL` (fsync on every commit).
        synchronous: String,
    },
    /// MongoDB at this URI (credentials inside are redacted in Debug).
    Mongo {
        uri: Secret,
        database: Option<String>,
    },
}

impl StoreConfig {
    /// `MONGODB_URI` (with `MONGODB_DB`) when set, else SQLite (`SQLITE_PATH`, default
    /// `DATA_DIR/superinsights.db`; `SQLITE_BUSY_TIMEOUT_MS`, `SQLITE_SYNCHRONOUS`).
    pub(super) fn from_env(env: &Env, data_dir: &Path) -> Result<Self, ConfigError> {
        Ok(match env.string("MONGODB_URI") {
            Some(uri) => {
                if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                    return Err(ConfigError::new(
                        "MONGODB_URI",
                        "must start with mongodb:// or mongodb+srv://",
                    ));
                }
                StoreConfig::Mongo {
                    uri: Secret::new(uri),
                    database: env.string("MONGODB_DB"),
                }
            }
            None => StoreConfig::Sqlite {
                path: env
                    .get("SQLITE_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("superinsights.db")),
                busy_timeout_ms: env.number("SQLITE_BUSY_TIMEOUT_MS", 5000u64)?,
                synchronous: match env
                    .get("SQLITE_SYNCHRONOUS")
                    .unwrap_or("normal")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    s @ ("full" | "normal") => s.to_uppercase(),
                    _ => {
                        return Err(ConfigError::new(
                            "SQLITE_SYNCHRONOUS",
                            "must be full or normal",
                        ));
                    }
                },
            },
        })
    }
}
