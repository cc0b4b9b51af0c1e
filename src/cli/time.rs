//! The dates and instants of the command line.

use chrono::{DateTime, NaiveDate, TimeZone};
use wemeet_archiver::UnixMs;

/// `YYYY-MM-DD` is a day in `tz` (its start, or with `end_of_day` the start of the next
/// day, so `--until 2024-03-31` includes the 31st); anything else must be RFC 3339.
/// Returns UNIX seconds.
pub fn parse_time(text: &str, tz: chrono_tz::Tz, end_of_day: bool) -> Result<i64, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        return tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp())
            .ok_or_else(|| format!("{text} has no midnight in {tz}"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| format!("`{text}` is neither YYYY-MM-DD nor an RFC 3339 time"))
}

/// An inclusive bound on media start times: `--since` is its first millisecond; a day
/// given as `--until` is included to its last millisecond, an instant with its whole
/// second.
pub fn bound(text: &str, tz: chrono_tz::Tz, end: bool) -> Result<UnixMs, String> {
    let secs = parse_time(text, tz, end)?;
    let is_day = NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
    Ok(match (end, is_day) {
        (false, _) => UnixMs::from_secs(secs),
        // The start of the next day, less one millisecond.
        (true, true) => UnixMs::end_of_second(secs - 1),
        (true, false) => UnixMs::end_of_second(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_in_the_archive_time_zone() {
        let sh = chrono_tz::Asia::Shanghai;
        // 2024-01-01 00:00 in Shanghai is 2023-12-31 16:00 UTC
        assert_eq!(parse_time("2024-01-01", sh, false), Ok(1_704_038_400));
        assert_eq!(
            parse_time("2024-01-01", sh, true),
            Ok(1_704_038_400 + 86_400)
        );
        assert_eq!(
            parse_time("2024-01-01T00:00:00Z", sh, false),
            Ok(1_704_067_200)
        );
        assert!(parse_time("yesterday", sh, false).is_err());
    }

    #[test]
    fn until_bounds_include_their_day_or_their_second() {
        let sh = chrono_tz::Asia::Shanghai;
        let next_day = 1_704_038_400 + 86_400;
        assert_eq!(
            bound("2024-01-01", sh, true),
            Ok(UnixMs(next_day * 1000 - 1))
        );
        assert_eq!(
            bound("2024-01-01T00:00:00Z", sh, true),
            Ok(UnixMs(1_704_067_200_999))
        );
        assert_eq!(
            bound("2024-01-01", sh, false),
            Ok(UnixMs(1_704_038_400_000))
        );
    }
}
