//! `[filter]`: which recordings are archived. A recording left out is not forgotten: its
//! row is `skipped` with the rule that left it out, so `status` and `verify` show it and a
//! wider filter at the next start queues it again without listing anything.
//!
//! Rules are checked in a fixed order and the first that fails names itself, as
//! `filter.<key>: <why>`: that text is what the admin sees, so it says which key to change.

use crate::domain::SkipRule;
use regex::Regex;
use std::time::Duration;

/// `record_type` of the listing (API doc, section 1): 0 a cloud recording, 2 an uploaded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    Cloud,
    Uploaded,
}

impl RecordType {
    pub const ALL: [Self; 2] = [Self::Cloud, Self::Uploaded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloud => "cloud",
            Self::Uploaded => "uploaded",
        }
    }

    /// The listing's number for it.
    fn code(self) -> i64 {
        match self {
            Self::Cloud => 0,
            Self::Uploaded => 2,
        }
    }
}

/// A minimum the admin wrote, kept with its text so that a skip reason quotes it as written.
#[derive(Debug, Clone)]
pub struct Minimum<T> {
    pub value: T,
    pub text: String,
}

/// The validated `[filter]` table; the default archives everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Creators (userids) whose recordings are archived; empty: everyone's.
    pub users: Vec<String>,
    pub exclude_users: Vec<String>,
    /// The subject must match this (anywhere in it, as `regex` searches).
    pub subject: Option<Regex>,
    pub exclude_subject: Option<Regex>,
    /// From the recording file's start to its end.
    pub min_duration: Option<Minimum<Duration>>,
    /// Bytes of the recording file, as listed.
    pub min_size: Option<Minimum<u64>>,
    /// Empty: every type.
    pub record_types: Vec<RecordType>,
}

/// What the filter looks at of one recording file: its meeting's fields and its own.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub userid: &'a str,
    pub subject: &'a str,
    pub record_type: i64,
    /// `record_end_time - record_start_time`, ms.
    pub duration_ms: i64,
    pub size: u64,
}

impl Filter {
    /// `None` when the file is to be archived; otherwise the first rule it fails, as
    /// `filter.<key>: <why>`.
    pub fn skip_rule(&self, c: &Candidate<'_>) -> Option<SkipRule> {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == c.userid) {
            return Some(SkipRule::new(
                "filter.users",
                format_args!("creator `{}` is not listed", c.userid),
            ));
        }
        if self.exclude_users.iter().any(|u| u == c.userid) {
            return Some(SkipRule::new(
                "filter.exclude_users",
                format_args!("creator `{}` is excluded", c.userid),
            ));
        }
        if let Some(re) = &self.subject
            && !re.is_match(c.subject)
        {
            return Some(SkipRule::new(
                "filter.subject",
                format_args!("subject {:?} does not match `{re}`", c.subject),
            ));
        }
        if let Some(re) = &self.exclude_subject
            && re.is_match(c.subject)
        {
            return Some(SkipRule::new(
                "filter.exclude_subject",
                format_args!("subject {:?} matches `{re}`", c.subject),
            ));
        }
        if let Some(min) = &self.min_duration {
            let ms = u64::try_from(c.duration_ms).unwrap_or(0);
            if Duration::from_millis(ms) < min.value {
                let secs = Duration::from_secs(ms / 1000);
                return Some(SkipRule::new(
                    "filter.min_duration",
                    format_args!("{} < {}", humantime::format_duration(secs), min.text),
                ));
            }
        }
        if let Some(min) = &self.min_size
            && c.size < min.value
        {
            return Some(SkipRule::new(
                "filter.min_size",
                format_args!("{} B < {}", c.size, min.text),
            ));
        }
        if !self.record_types.is_empty()
            && !self.record_types.iter().any(|t| t.code() == c.record_type)
        {
            let name = RecordType::ALL
                .into_iter()
                .find(|t| t.code() == c.record_type)
                .map_or_else(|| format!("type {}", c.record_type), |t| t.as_str().into());
            return Some(SkipRule::new(
                "filter.record_types",
                format_args!("{name} is not listed"),
            ));
        }
        None
    }
}

/// Parses a size as the admin writes it: `1048576`, `"512 KB"`, `"1MiB"`, `"2 GB"`. KB, MB
/// and GB are powers of 1000, KiB, MiB and GiB of 1024.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(userid: &'a str, subject: &'a str) -> Candidate<'a> {
        Candidate {
            userid,
            subject,
            record_type: 0,
            duration_ms: 30 * 60_000,
            size: 10_000_000,
        }
    }

    #[test]
    fn the_default_filter_archives_everything() {
        assert_eq!(Filter::default().skip_rule(&file("anyone", "")), None);
    }

    #[test]
    fn each_rule_names_its_key_and_why() {
        let f = Filter {
            users: vec!["zhangsan".into(), "lisi".into()],
            exclude_users: vec!["lisi".into()],
            subject: Some(Regex::new("(?i)sync|周会").unwrap()),
            exclude_subject: Some(Regex::new("^test").unwrap()),
            min_duration: Some(Minimum {
                value: Duration::from_secs(60),
                text: "1m".into(),
            }),
            min_size: Some(Minimum {
                value: 1_000_000,
                text: "1 MB".into(),
            }),
            record_types: vec![RecordType::Cloud],
        };
        let rule = |c: Candidate<'_>| f.skip_rule(&c);
        assert_eq!(rule(file("zhangsan", "Weekly sync")), None);
        assert_eq!(rule(file("zhangsan", "产品周会 3")), None);
        assert_eq!(
            rule(file("wangwu", "Weekly sync")).unwrap(),
            "filter.users: creator `wangwu` is not listed"
        );
        assert!(
            rule(file("lisi", "sync"))
                .unwrap()
                .starts_with("filter.exclude_users:")
        );
        assert!(
            rule(file("zhangsan", "All hands"))
                .unwrap()
                .starts_with("filter.subject:")
        );
        assert!(
            rule(file("zhangsan", "test sync"))
                .unwrap()
                .starts_with("filter.exclude_subject:")
        );
        let short = Candidate {
            duration_ms: 45_500,
            ..file("zhangsan", "sync")
        };
        assert_eq!(rule(short).unwrap(), "filter.min_duration: 45s < 1m");
        let small = Candidate {
            size: 512,
            ..file("zhangsan", "sync")
        };
        assert_eq!(rule(small).unwrap(), "filter.min_size: 512 B < 1 MB");
        let uploaded = Candidate {
            record_type: 2,
            ..file("zhangsan", "sync")
        };
        assert_eq!(
            rule(uploaded).unwrap(),
            "filter.record_types: uploaded is not listed"
        );
    }

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(parse_size("1048576"), Some(1_048_576));
        assert_eq!(parse_size("512 KB"), Some(512_000));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("2 gb"), Some(2_000_000_000));
        assert_eq!(parse_size("1.5 MB"), None);
        assert_eq!(parse_size("MB"), None);
        assert_eq!(parse_size("10 parsecs"), None);
    }
}
