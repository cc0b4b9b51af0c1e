//! Where a secret of the config comes from: the environment, a file, a systemd credential,
//! or (least preferred) the config file itself.
//!
//! One order for every secret (the SecretKey, the webhook's Token and EncodingAESKey), so
//! an admin who learnt it for one knows it for all: `$ENV`, then `*_file`, then the
//! credential `LoadCredential=` put in `$CREDENTIALS_DIRECTORY`, then the inline value.

use super::{ConfigError, ENV_CREDENTIALS_DIRECTORY, invalid};
use std::path::{Path, PathBuf};
use wemeet_api::Secret;

/// The names one secret goes by.
pub(super) struct SecretSource {
    /// The key in the config file, e.g. `api.secret_key`.
    pub key: &'static str,
    /// The key naming a file that holds it, e.g. `api.secret_key_file`.
    pub file_key: &'static str,
    /// The environment variable that overrides both.
    pub env: &'static str,
    /// The name of the systemd credential.
    pub credential: &'static str,
}

/// A secret and where it was found, so that a message about its value names the right
/// place to fix it.
pub(super) struct Resolved {
    pub secret: Secret,
    /// The config key to name in an error about the value.
    pub key: &'static str,
    /// Where the value came from, when not from `key` itself (for the message).
    pub origin: Option<String>,
}

impl SecretSource {
    /// The secret, empty when none of the places holds one. Setting both the inline value
    /// and the file is ambiguous: an error rather than a guess.
    pub(super) fn resolve(
        &self,
        inline: Secret,
        file: Option<PathBuf>,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Resolved, ConfigError> {
        let found = |secret, key, origin| Resolved {
            secret,
            key,
            origin,
        };
        if let Some(value) = env(self.env).filter(|v| !v.is_empty()) {
            return Ok(found(
                Secret::new(value),
                self.key,
                Some(format!("${}", self.env)),
            ));
        }
        if file.is_some() && !inline.is_empty() {
            return Err(invalid(
                self.file_key,
                format!("is set together with {}; keep only one of them", self.key),
            ));
        }
        let read = |path: &Path, key: &'static str| {
            std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
        };
        if let Some(file) = file {
            let path = base_dir.join(file);
            let origin = format!("the file {}", path.display());
            return Ok(found(
                read(&path, self.file_key)?,
                self.file_key,
                Some(origin),
            ));
        }
        let credential = env(ENV_CREDENTIALS_DIRECTORY)
            .map(|dir| PathBuf::from(dir).join(self.credential))
            .filter(|p| inline.is_empty() && p.exists());
        if let Some(path) = credential {
            let origin = format!("the systemd credential {}", self.credential);
            return Ok(found(read(&path, self.key)?, self.key, Some(origin)));
        }
        Ok(found(inline, self.key, None))
    }
}

impl Resolved {
    /// An error about the value, naming the key and, if elsewhere, where it was read.
    pub(super) fn invalid(&self, message: impl std::fmt::Display) -> ConfigError {
        match &self.origin {
            Some(origin) => invalid(self.key, format!("{message} (read from {origin})")),
            None => invalid(self.key, message.to_string()),
        }
    }
}
