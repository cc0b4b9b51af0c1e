//! Time as the program stores it: milliseconds since the UNIX epoch, in one type.
//!
//! The API speaks seconds in its query windows and milliseconds in its replies, the
//! database stores milliseconds; a bare `i64` would let `secs * 1000 + 999` (the last
//! millisecond of an inclusive bound) drift by 999 without anyone seeing it. Conversions
//! live here, named for what they mean.

use std::time::Duration;

/// An instant, in milliseconds since the UNIX epoch (UTC).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    sqlx::Type,
    serde::Serialize,
    serde::Deserialize,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct UnixMs(pub i64);

impl UnixMs {
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// The first millisecond of UNIX second `secs`.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// The last millisecond of UNIX second `secs`: an inclusive bound given in seconds
    /// (the API's windows) covers its whole last second.
    pub fn end_of_second(secs: i64) -> Self {
        Self(secs.saturating_mul(1000).saturating_add(999))
    }

    /// The UNIX second this instant falls in.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// RFC 3339, for people (`None` outside chrono's range).
    pub fn to_rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp_millis(self.0).map(|t| t.to_rfc3339())
    }
}

impl std::ops::Add<Duration> for UnixMs {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl std::ops::Sub<Duration> for UnixMs {
    type Output = Self;
    fn sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bounds_cover_the_whole_second() {
        assert_eq!(UnixMs::from_secs(5), UnixMs(5000));
        assert_eq!(UnixMs::end_of_second(5), UnixMs(5999));
        assert_eq!(UnixMs(5999).as_secs(), 5);
        assert_eq!(UnixMs(-1).as_secs(), -1);
        assert_eq!(UnixMs(1000) + Duration::from_secs(2), UnixMs(3000));
        assert_eq!(UnixMs(3000).since(UnixMs(1000)), Duration::from_secs(2));
        assert_eq!(UnixMs(1000).since(UnixMs(3000)), Duration::ZERO);
    }
}
