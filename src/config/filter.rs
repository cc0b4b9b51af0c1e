//! The `[filter]` table, read into [`crate::filter::Filter`] (which applies it).

use super::{Choice, ConfigError, duration, invalid};
use crate::filter::{Filter, Minimum, RecordType, parse_size};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFilter {
    users: Vec<String>,
    exclude_users: Vec<String>,
    subject: Option<String>,
    exclude_subject: Option<String>,
    min_duration: Option<String>,
    min_size: Option<RawSize>,
    record_types: Vec<Choice<RecordType>>,
}

/// A size in bytes (`1048576`) or with a unit (`"1 MB"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

pub(super) fn validate_filter(raw: RawFilter) -> Result<Filter, ConfigError> {
    let min_size = raw.min_size.map(min_size).transpose()?;
    let min_duration = raw
        .min_duration
        .filter(|t| !t.trim().is_empty())
        .map(|text| {
            Ok::<_, ConfigError>(Minimum {
                value: duration("filter.min_duration", &text)?,
                text,
            })
        })
        .transpose()?;
    let record_types = raw
        .record_types
        .into_iter()
        .map(|name| {
            name.known("filter.record_types", |name| {
                format!(
                    "`{name}` is not a recording type; use a list of \"cloud\" and \
                     \"uploaded\", e.g. [\"cloud\"]"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter {
        users: raw.users,
        exclude_users: raw.exclude_users,
        subject: regex("filter.subject", raw.subject)?,
        exclude_subject: regex("filter.exclude_subject", raw.exclude_subject)?,
        min_duration,
        min_size,
        record_types,
    })
}

/// `None` when not set or empty.
fn regex(key: &'static str, text: Option<String>) -> Result<Option<regex::Regex>, ConfigError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            regex::Regex::new(&t).map_err(|e| {
                invalid(
                    key,
                    format!("`{t}` is not a regular expression ({e}); use e.g. \"(?i)weekly\""),
                )
            })
        })
        .transpose()
}

/// The size with its text as the admin wrote it (a skip reason quotes it).
fn min_size(raw: RawSize) -> Result<Minimum<u64>, ConfigError> {
    Ok(match raw {
        RawSize::Bytes(n) => Minimum {
            value: u64::try_from(n).map_err(|_| {
                invalid(
                    "filter.min_size",
                    format!("is {n}; use a size of at least 0, e.g. 1048576 or \"1 MB\""),
                )
            })?,
            text: format!("{n} B"),
        },
        RawSize::Text(text) => Minimum {
            value: parse_size(&text).ok_or_else(|| {
                invalid(
                    "filter.min_size",
                    format!(
                        "`{text}` is not a size; use bytes or a unit, e.g. 1048576, \"512 KB\", \"1 MiB\""
                    ),
                )
            })?,
            text,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, key_of, parse};
    use std::time::Duration;

    #[test]
    fn filter_keys_are_validated_by_name() {
        for (table, key) in [
            ("subject = \"(unclosed\"", "filter.subject"),
            ("exclude_subject = \"[a-\"", "filter.exclude_subject"),
            ("min_size = \"ten\"", "filter.min_size"),
            ("min_size = -1", "filter.min_size"),
            ("min_duration = \"soon\"", "filter.min_duration"),
            ("record_types = [\"live\"]", "filter.record_types"),
        ] {
            let text = format!("{GOOD}\n[filter]\n{table}\n");
            assert_eq!(key_of(parse(&text).unwrap_err()), key, "{table}");
        }
        let text = format!(
            "{GOOD}\n[filter]\nusers = [\"zhangsan\"]\nsubject = \"(?i)sync\"\n\
             min_duration = \"1m\"\nmin_size = \"1 MB\"\nrecord_types = [\"cloud\"]\n"
        );
        let f = parse(&text).unwrap().filter;
        assert_eq!(f.users, ["zhangsan"]);
        assert_eq!(f.min_size.unwrap().value, 1_000_000);
        assert_eq!(f.min_duration.unwrap().value, Duration::from_secs(60));
        assert!(f.subject.unwrap().is_match("Weekly SYNC"));
    }
}
