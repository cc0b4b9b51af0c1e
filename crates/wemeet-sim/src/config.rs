//! What a simulator run looks like: its dataset, its credentials and its faults.
//!
//! Every knob is a plain field so that a test states exactly the one thing it needs
//! (`SimConfig { reset_first: 1, ..Default::default() }`); the defaults describe a demo-like
//! account that behaves like the real service.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_MEETINGS: usize = 40;
pub const DEFAULT_DAYS: u32 = 90;
pub const DEFAULT_MIN_FILE_SIZE: u64 = 256 * 1024;
pub const DEFAULT_MAX_FILE_SIZE: u64 = 3 * 1024 * 1024;
pub const DEFAULT_PENDING_FRACTION: f64 = 0.1;
pub const DEFAULT_TRANSCODE_DELAY: Duration = Duration::from_secs(20);
pub const DEFAULT_ARRIVAL_EVERY: Duration = Duration::from_secs(60);
/// The documented limit of `/v1/corp/records`.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 10;
/// The documented lifetime of a download address.
pub const DEFAULT_ADDRESS_TTL: Duration = Duration::from_secs(6 * 3600);
pub const DEFAULT_STALL: Duration = Duration::from_secs(5);
/// With the next default, about 20 % of files carry a download address in the listing: in
/// a company most owners neither share their recordings nor allow downloads.
pub const DEFAULT_SHARED_FRACTION: f64 = 0.4;
pub const DEFAULT_DOWNLOAD_ALLOWED_FRACTION: f64 = 0.5;
/// Shares of files with an audio track, with transcripts, and of those whose transcripts
/// come late (`DEFAULT_TRANSCRIPT_DELAY` after transcoding).
pub const DEFAULT_AUDIO_FRACTION: f64 = 0.7;
pub const DEFAULT_TRANSCRIPT_FRACTION: f64 = 0.6;
pub const DEFAULT_LATE_TRANSCRIPT_FRACTION: f64 = 0.3;
/// Share of recording files under a minute long (test calls, a meeting opened by mistake).
pub const DEFAULT_SHORT_FRACTION: f64 = 0.1;
pub const DEFAULT_TRANSCRIPT_DELAY: Duration = Duration::from_secs(3600);
/// `/v1/addresses` has no documented limit: this is a guess, kept apart from the listing's.
pub const DEFAULT_ADDRESSES_RATE_LIMIT_PER_MINUTE: u32 = 60;
/// The deletions have no documented limit either: a guess, with a budget of its own.
pub const DEFAULT_DELETES_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// The credentials the simulator accepts, handed to the client under test.
#[derive(Clone, PartialEq, Eq)]
pub struct SimCredentials {
    pub app_id: String,
    /// `None`: the account was assigned no SdkId, so a request carrying one is rejected.
    pub sdk_id: Option<String>,
    pub secret_id: String,
    pub secret_key: String,
    /// The only userid allowed to list the account's recordings (the admin).
    pub operator_id: String,
}

impl Default for SimCredentials {
    fn default() -> Self {
        Self {
            app_id: "211000001".into(),
            sdk_id: None,
            secret_id: "AKIDsimulator0wemeet0archiver000".into(),
            secret_key: "simulator-secret-key-not-for-production".into(),
            operator_id: "admin".into(),
        }
    }
}

/// Redacts the secret key: even a test tool's config dump must not teach bad habits.
impl fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCredentials")
            .field("app_id", &self.app_id)
            .field("sdk_id", &self.sdk_id)
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"[redacted]")
            .field("operator_id", &self.operator_id)
            .finish()
    }
}

/// Where and how the simulator posts its webhook events, as the console's event
/// subscription (事件订阅) would be set up.
#[derive(Clone, PartialEq, Eq)]
pub struct SimWebhook {
    /// The subscriber's URL, e.g. `http://127.0.0.1:8391/webhook`.
    pub url: String,
    /// The console's Token (25 characters): it signs every request.
    pub token: String,
    /// The console's EncodingAESKey (43 characters); `None`: payloads are plain base64.
    pub aes_key: Option<String>,
    /// Each event goes out this long before the listing shows its meeting transcoded:
    /// Tencent says an event can come before every file is ready.
    pub early: Duration,
    /// Each event is delivered this many more times, with the same `trace_id` (deliveries
    /// are at least once).
    pub repeat: u32,
}

/// Redacts the token and the key, like [`SimCredentials`].
impl fmt::Debug for SimWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimWebhook")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .field("aes_key", &self.aes_key.as_ref().map(|_| "[redacted]"))
            .field("early", &self.early)
            .field("repeat", &self.repeat)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Drives every id, subject, time, size, password and content byte.
    pub seed: u64,
    /// Meetings present from the start (hostile subjects and a recurring pair come first).
    pub meetings: usize,
    /// The simulator's "now" at start, in UNIX seconds: meetings are spread over the `days`
    /// before it. `None` takes the real time, which is what a daemon test wants; a fixed
    /// value makes even the timestamps reproducible.
    pub start: Option<i64>,
    pub days: u32,
    pub files_per_meeting: RangeInclusive<u32>,
    pub min_file_size: u64,
    pub max_file_size: u64,
    /// Share of meetings (the most recent ones) still recording at start: state 1, then 2
    /// after `transcode_delay / 2`, then 3 after `transcode_delay`.
    pub pending_fraction: f64,
    pub transcode_delay: Duration,
    /// Meetings that arrive while running: the k-th appears `k * arrival_every` after
    /// start, recording (state 1), and is transcoded `transcode_delay` later.
    pub arrivals: usize,
    pub arrival_every: Duration,
    pub credentials: SimCredentials,
    /// Share of files whose owner turned sharing on (decided per file from its id, so the
    /// rest of the dataset does not depend on it).
    pub shared_fraction: f64,
    /// Share of the shared files that also allow downloads: only those carry a
    /// `download_address` in the listing.
    pub download_allowed_fraction: f64,
    /// Listing calls allowed in any 60 s; every arrival counts, rejected ones included.
    pub rate_limit_per_minute: u32,
    /// How long a download address stays valid after it was issued.
    pub address_ttl: Duration,
    /// The first N GETs of each file send about half the body, then reset the connection.
    pub reset_first: u32,
    /// The first N GETs of each file send about half the body, then end it early.
    pub truncate_first: u32,
    /// The first N GETs of each file answer 503 `SlowDown`.
    pub error_5xx_first: u32,
    /// Answer every GET with 200 and the full body, as a host without Range support.
    pub ignore_range: bool,
    /// After the first GET of each file, its content changes (new ETag and SHA-256, same size).
    pub change_etag_after_first: bool,
    /// The first N GETs of each file send about half the body, pause for `stall`, then go on.
    pub stall_first: u32,
    pub stall: Duration,
    /// The first N download addresses issued for each file are already expired.
    pub stale_addresses_first: u32,
    /// Bytes per second each download is paced to (`None`: as fast as the client reads).
    /// Crash tests use it so that a kill lands mid-transfer and little data sits unread in
    /// socket buffers (what the stats count as served is then what the client received).
    pub bandwidth: Option<u64>,
    /// The first N listing calls that pass authentication answer 500 with error 41 ...
    pub listing_5xx_first: u32,
    /// ... and the next N answer 200 with a body that is not JSON.
    pub listing_invalid_json_first: u32,
    /// `/v1/addresses` calls allowed in any 60 s, counted apart from the listing's.
    pub addresses_rate_limit_per_minute: u32,
    /// The first N `/v1/addresses` calls that would succeed answer 500 with error 41.
    pub addresses_5xx_first: u32,
    /// The first N `/v1/addresses` answers for each file give it an empty
    /// `download_address`, which Tencent says is normal.
    pub addresses_empty_first: u32,
    /// Share of files (decided per file from its id) that no endpoint ever gives an
    /// address for: files that cannot be downloaded at all.
    pub no_address_fraction: f64,
    /// Share of files with an audio track (`audio_address`), and with transcripts
    /// (`meeting_summary`), decided per file from its id.
    pub audio_fraction: f64,
    pub transcript_fraction: f64,
    /// Share of the files with transcripts whose transcripts appear only
    /// `transcript_delay` after the meeting is transcoded (on the lifecycle clock).
    pub late_transcript_fraction: f64,
    pub transcript_delay: Duration,
    /// Every audio track has this size (`None`: an eighth of its file's): crash tests
    /// want one that takes a while.
    pub audio_size: Option<u64>,
    /// Calls to the two `DELETE` endpoints allowed in any 60 s, counted apart from the
    /// others (one limit for both).
    pub deletes_rate_limit_per_minute: u32,
    /// The first N `DELETE` calls that would succeed answer 500 with error 41 and delete
    /// nothing.
    pub deletes_5xx_first: u32,
    /// The n-th `DELETE` call that succeeds (1-based; 0: none) deletes at once but answers
    /// only after `stall`: a crash test kills the client between a deletion and its record.
    pub stall_nth_delete: u32,
    /// Share of files (decided per file from its id) lasting under a minute.
    pub short_fraction: f64,
    /// Share of meetings (decided per meeting from its id) that are uploaded recordings
    /// (`record_type` 2): the listing shows them only with `query_record_type` 0 or 2.
    pub uploaded_fraction: f64,
    /// The first meetings get creators that break naive per-user folders (`../../root`,
    /// `dept/legal`, NUL, 300 bytes, empty, `..`, `CON`); the others keep ordinary ones.
    pub hostile_userids: bool,
    /// Posts a signed (and, with a key, encrypted) `recording.completed` event for every
    /// meeting that is transcoded while the simulator runs (the arrivals, `add_meeting`,
    /// and the ones still recording at start), as Tencent Meeting does.
    pub webhook: Option<SimWebhook>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            meetings: DEFAULT_MEETINGS,
            start: None,
            days: DEFAULT_DAYS,
            files_per_meeting: 1..=3,
            min_file_size: DEFAULT_MIN_FILE_SIZE,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            pending_fraction: DEFAULT_PENDING_FRACTION,
            transcode_delay: DEFAULT_TRANSCODE_DELAY,
            arrivals: 0,
            arrival_every: DEFAULT_ARRIVAL_EVERY,
            credentials: SimCredentials::default(),
            shared_fraction: DEFAULT_SHARED_FRACTION,
            download_allowed_fraction: DEFAULT_DOWNLOAD_ALLOWED_FRACTION,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            address_ttl: DEFAULT_ADDRESS_TTL,
            reset_first: 0,
            truncate_first: 0,
            error_5xx_first: 0,
            ignore_range: false,
            change_etag_after_first: false,
            stall_first: 0,
            stall: DEFAULT_STALL,
            stale_addresses_first: 0,
            bandwidth: None,
            listing_5xx_first: 0,
            listing_invalid_json_first: 0,
            addresses_rate_limit_per_minute: DEFAULT_ADDRESSES_RATE_LIMIT_PER_MINUTE,
            addresses_5xx_first: 0,
            addresses_empty_first: 0,
            no_address_fraction: 0.0,
            audio_fraction: DEFAULT_AUDIO_FRACTION,
            transcript_fraction: DEFAULT_TRANSCRIPT_FRACTION,
            late_transcript_fraction: DEFAULT_LATE_TRANSCRIPT_FRACTION,
            transcript_delay: DEFAULT_TRANSCRIPT_DELAY,
            audio_size: None,
            deletes_rate_limit_per_minute: DEFAULT_DELETES_RATE_LIMIT_PER_MINUTE,
            deletes_5xx_first: 0,
            stall_nth_delete: 0,
            short_fraction: DEFAULT_SHORT_FRACTION,
            uploaded_fraction: 0.0,
            hostile_userids: false,
            webhook: None,
        }
    }
}
