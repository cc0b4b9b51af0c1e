//! Sizes and durations as a person reads them: `88.1 MB`, `2 h 14 min`. For the text the
//! binary shows (`status`, the summaries, the progress display); JSON, CSV and the logs
//! keep exact numbers.
//!
//! Not indicatif's formatters: `DecimalBytes` always prints two decimals (`88.14 MB`) and
//! `HumanDuration` only the largest unit (`2 hours`), where a person planning around a
//! job wants `2 h 14 min`.

use std::fmt;
use std::time::Duration;

/// A byte count in decimal (SI) units, one decimal below 100 of the unit and none from
/// there: `512 B`, `1.0 kB`, `88.1 MB`, `191 GB`; the units disks and transfer rates are
/// sold in, and no more digits than a person compares at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    /// A count from SQLite, where sizes are `i64`; a negative one (never stored) shows as 0.
    pub fn of(bytes: i64) -> Self {
        Self(u64::try_from(bytes).unwrap_or(0))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
        if self.0 < 1000 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64;
        let mut unit = 0;
        // 999.5 and above would round to `1000`: the next unit says it as `1.0`.
        while value >= 999.5 && unit < UNITS.len() - 1 {
            value /= 1000.0;
            unit += 1;
        }
        // 99.95 and above would round to `100.0`: say `100`.
        let decimals = if value < 99.95 { 1 } else { 0 };
        write!(f, "{value:.decimals$} {}", UNITS[unit])
    }
}

/// A duration in at most two units, the smaller rounded: `0.4 s`, `42 s`, `3 min 5 s`,
/// `2 h 14 min`, `3 d 4 h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// Milliseconds, as reports carry them.
    pub fn ms(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        const DAY: u64 = 24 * HOUR;
        let exact = self.0.as_secs_f64();
        if exact < 9.95 {
            return write!(f, "{exact:.1} s");
        }
        let s = self
            .0
            .as_secs()
            .saturating_add(u64::from(self.0.subsec_millis() >= 500));
        let pair = |f: &mut fmt::Formatter<'_>, big: u64, big_unit, small: u64, small_unit| {
            if small == 0 {
                write!(f, "{big} {big_unit}")
            } else {
                write!(f, "{big} {big_unit} {small} {small_unit}")
            }
        };
        // Rounded to the smaller unit shown: 23 h 59 min 40 s is `1 d`.
        let minutes = s.saturating_add(MIN / 2) / MIN;
        let hours = s.saturating_add(HOUR / 2) / HOUR;
        if s < MIN {
            write!(f, "{s} s")
        } else if s < HOUR {
            pair(f, s / MIN, "min", s % MIN, "s")
        } else if minutes < DAY / MIN {
            pair(f, minutes / 60, "h", minutes % 60, "min")
        } else {
            pair(f, hours / 24, "d", hours % 24, "h")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_in_decimal_units_with_one_decimal_below_100() {
        let cases = [
            (0, "0 B"),
            (7, "7 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1049, "1.0 kB"),
            (1050, "1.1 kB"),
            (1536, "1.5 kB"),
            (99_949, "99.9 kB"),
            (99_950, "100 kB"),
            (999_499, "999 kB"),
            (999_500, "1.0 MB"),
            (88_144_665, "88.1 MB"),
            (1_610_612_736, "1.6 GB"),
            (191_000_000_000, "191 GB"),
            (1_000_000_000_000, "1.0 TB"),
            (u64::MAX, "18.4 EB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(Size(bytes).to_string(), text, "{bytes}");
        }
        assert_eq!(Size::of(-1).to_string(), "0 B");
        assert_eq!(Size::of(1_234_567).to_string(), "1.2 MB");
    }

    #[test]
    fn durations_have_at_most_two_units() {
        let secs = |s: u64| Span(Duration::from_secs(s)).to_string();
        assert_eq!(Span::ms(0).to_string(), "0.0 s");
        assert_eq!(Span::ms(431).to_string(), "0.4 s");
        assert_eq!(Span::ms(9_940).to_string(), "9.9 s");
        assert_eq!(Span::ms(9_960).to_string(), "10 s");
        assert_eq!(secs(42), "42 s");
        assert_eq!(Span::ms(59_600).to_string(), "1 min");
        assert_eq!(secs(185), "3 min 5 s");
        assert_eq!(secs(3599), "59 min 59 s");
        assert_eq!(secs(3600), "1 h");
        assert_eq!(secs(2 * 3600 + 14 * 60 + 10), "2 h 14 min");
        assert_eq!(secs(2 * 3600 + 14 * 60 + 30), "2 h 15 min");
        assert_eq!(secs(86_399), "1 d");
        assert_eq!(secs(3 * 86_400 + 4 * 3600 + 100), "3 d 4 h");
        assert_eq!(Span(Duration::MAX).to_string(), "213503982334601 d 7 h");
    }
}
