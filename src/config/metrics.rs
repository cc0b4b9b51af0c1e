//! The `[metrics]` table: the optional Prometheus endpoint.

use super::{ConfigError, invalid};
use serde::Deserialize;

/// The optional Prometheus endpoint.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `None`: no HTTP listener at all (the default).
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
}

pub(super) fn validate_metrics(raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = match raw.listen.filter(|l| !l.trim().is_empty()) {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("`{text}` is not an address:port, e.g. \"127.0.0.1:9898\""),
            )
        })?),
    };
    Ok(MetricsConfig { listen })
}
