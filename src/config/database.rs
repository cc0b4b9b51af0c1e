//! The `[database]` table: where the SQLite state is.

use super::{ConfigError, non_empty_path};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    path: PathBuf,
}

pub(super) fn validate_database(
    raw: RawDatabase,
    base_dir: &Path,
) -> Result<DatabaseConfig, ConfigError> {
    Ok(DatabaseConfig {
        path: non_empty_path("database.path", raw.path, base_dir)?,
    })
}
