//! The archiver's own words, below every layer that stores or moves them: what a file is
//! (`FileKind`), where it is in its life (`FileStatus`), and the API's ids as types of their
//! own, so that a file's id cannot be passed where a meeting's is expected (nor either
//! where an address is). Plain values: no I/O, nothing but `std`, `serde` and `sqlx`'s
//! column mapping.

/// An enum stored in a column by its lowercase name, and so named in JSON and `status`:
/// a file's kind and status.
macro_rules! column_enum {
    ($item:item) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            sqlx::Type,
        )]
        #[serde(rename_all = "lowercase")]
        #[sqlx(rename_all = "lowercase")]
        $item
    };
}

column_enum! {
    /// What a row of `files` holds: a recording's video, or one of its artifacts.
    pub enum FileKind {
        /// The MP4 the listing announces (with its size).
        Video,
        /// The audio track alone (m4a), from `/v1/addresses`.
        Audio,
        /// A transcript (txt, pdf, docx), from `/v1/addresses`; may appear hours late.
        Transcript,
    }
}

impl FileKind {
    pub const ALL: [Self; 3] = [Self::Video, Self::Audio, Self::Transcript];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Transcript => "transcript",
        }
    }
}

column_enum! {
    /// Where a file is in its life (see `migrations/0001_init.sql` and `0005_addresses.sql`).
    pub enum FileStatus {
        /// Listed and transcoded: waiting for a worker (with or without an address yet).
        Queued,
        Transferring,
        Archived,
        /// Its attempts ran out (network, host, storage): `--retry-failed` tries again.
        Failed,
        /// The API says it cannot be downloaded: `/v1/addresses` gave no address for it after
        /// every attempt, or refused the recording outright.
        Unavailable,
        /// Left out by `[filter]` (the rule is in `skip_rule`): not a failure, never
        /// downloaded nor pruned; a wider filter queues it again at the next start.
        Skipped,
    }
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Transferring => "transferring",
            Self::Archived => "archived",
            Self::Failed => "failed",
            Self::Unavailable => "unavailable",
            Self::Skipped => "skipped",
        }
    }

    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Transferring,
        Self::Archived,
        Self::Failed,
        Self::Unavailable,
        Self::Skipped,
    ];

    /// Still to be downloaded: a worker will get to it.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Transferring)
    }
}

/// An id the API gives, stored as its text: a newtype over `String`, bound and read by
/// `sqlx` and written by `serde` as the bare string, and compared with a `str` (tests and
/// the API's replies hold plain strings).
macro_rules! api_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                Self(id.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        /// Read as the text it is (a path, a log line, a comparison); only taking one is
        /// typed.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

api_id! {
    /// A file's key in `files`: the API's `record_file_id` for a video, derived from its
    /// video's for an artifact (`{id}-audio`, `{id}-transcript-1.txt`...).
    RecordFileId
}

api_id! {
    /// A recording's id (`meeting_record_id`): the meeting's recordings, one folder.
    MeetingRecordId
}

/// A window of the listing: UNIX seconds, both bounds inclusive, as the API's query takes
/// them (`UnixMs::end_of_second(end)` is the last instant it covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Compared with a `(start, end)` pair, as tests write one.
impl PartialEq<(i64, i64)> for Window {
    fn eq(&self, &(start, end): &(i64, i64)) -> bool {
        self.start == start && self.end == end
    }
}

/// Where a recording stands on Tencent's side (`state` in the listing): only a transcoded
/// one has files to download. Stored as the API's number, in the database and in
/// `meeting.json`; a number this program does not know is kept as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(from = "i64", into = "i64")]
pub enum MeetingState {
    Recording,
    Transcoding,
    Transcoded,
    Other(i64),
}

impl From<i64> for MeetingState {
    fn from(code: i64) -> Self {
        match code {
            1 => Self::Recording,
            2 => Self::Transcoding,
            3 => Self::Transcoded,
            other => Self::Other(other),
        }
    }
}

impl From<MeetingState> for i64 {
    fn from(state: MeetingState) -> Self {
        match state {
            MeetingState::Recording => 1,
            MeetingState::Transcoding => 2,
            MeetingState::Transcoded => 3,
            MeetingState::Other(code) => code,
        }
    }
}

/// `recording`, `transcoding`, `transcoded`, or `state N` for a number not known here.
impl std::fmt::Display for MeetingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Recording => f.write_str("recording"),
            Self::Transcoding => f.write_str("transcoding"),
            Self::Transcoded => f.write_str("transcoded"),
            Self::Other(code) => write!(f, "state {code}"),
        }
    }
}

impl sqlx::Type<sqlx::Sqlite> for MeetingState {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <i64 as sqlx::Type<sqlx::Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, sqlx::Sqlite> for MeetingState {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::sqlite::SqliteArgumentsBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <i64 as sqlx::Encode<'_, sqlx::Sqlite>>::encode(i64::from(*self), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for MeetingState {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<i64 as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?.into())
    }
}

/// Why `[filter]` leaves a file out, as `files.skip_rule` stores it: `key: detail`, the
/// key naming the rule (`filter.users`, `filter.min_size`..., `filter` when the file's
/// video was judged), the detail what the recording showed it. Written by
/// [`SkipRule::new`] and split by [`SkipRule::key`], nowhere else; read as its text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct SkipRule(String);

impl SkipRule {
    pub fn new(key: &str, detail: impl std::fmt::Display) -> Self {
        Self(format!("{key}: {detail}"))
    }

    /// The rule's key: the text before its first `:` (all of it, without one).
    pub fn key(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(key, _)| key)
    }
}

/// A rule as it was stored (`key: detail`).
impl From<&str> for SkipRule {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl std::ops::Deref for SkipRule {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SkipRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for SkipRule {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
