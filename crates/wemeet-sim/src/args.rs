//! The flags of `wemeet-archiver simulate`.

use crate::config::{self, SimConfig, SimCredentials, SimWebhook};
use std::net::SocketAddr;
use std::time::Duration;

/// Serve a fake Tencent Meeting API and download host, for demos, tests and benchmarks.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8390")]
    pub listen: SocketAddr,

    /// Seed of the dataset: same seed, same meetings, ids, sizes and bytes.
    #[arg(long, default_value_t = config::DEFAULT_SEED)]
    pub seed: u64,

    /// Number of meetings in the account at start.
    #[arg(long, default_value_t = config::DEFAULT_MEETINGS)]
    pub meetings: usize,

    /// The simulator's "now" at start, as UNIX seconds (default: the real time). Fixing it
    /// makes the media timestamps reproducible too.
    #[arg(long)]
    pub start: Option<i64>,

    /// Meetings are spread over this many days before the start.
    #[arg(long, default_value_t = config::DEFAULT_DAYS)]
    pub days: u32,

    /// Fewest recording files per meeting.
    #[arg(long, default_value_t = 1)]
    pub min_files: u32,

    /// Most recording files per meeting.
    #[arg(long, default_value_t = 3)]
    pub max_files: u32,

    /// Smallest file size: bytes, or with a unit (KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    pub min_size: u64,

    /// Largest file size: bytes, or with a unit (KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "3MiB", value_parser = parse_size)]
    pub max_size: u64,

    /// Share of meetings (the most recent) still recording at start.
    #[arg(long, default_value_t = config::DEFAULT_PENDING_FRACTION)]
    pub pending_fraction: f64,

    /// How long a recording meeting takes to become transcoded (state 1 → 2 at half, → 3).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub transcode_delay: Duration,

    /// Meetings that appear while running, one every `--arrival-every`.
    #[arg(long, default_value_t = 0)]
    pub arrivals: usize,

    /// Interval between arriving meetings (e.g. 30s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub arrival_every: Duration,

    /// AppId (enterprise id) the simulator accepts.
    #[arg(long)]
    pub app_id: Option<String>,

    /// SdkId the simulator requires; without it, a request carrying one is rejected.
    #[arg(long)]
    pub sdk_id: Option<String>,

    /// SecretId (X-TC-Key) the simulator accepts.
    #[arg(long)]
    pub secret_id: Option<String>,

    /// SecretKey requests must be signed with.
    #[arg(long)]
    pub secret_key: Option<String>,

    /// The admin userid allowed to list recordings; others get 500014 (no permission).
    #[arg(long)]
    pub operator_id: Option<String>,

    /// Share of files whose owner turned sharing on.
    #[arg(long, default_value_t = config::DEFAULT_SHARED_FRACTION)]
    pub shared_fraction: f64,

    /// Share of shared files that allow downloads (only they carry a listing address).
    #[arg(long, default_value_t = config::DEFAULT_DOWNLOAD_ALLOWED_FRACTION)]
    pub download_allowed_fraction: f64,

    /// Listing calls allowed in any 60 s window (rejected calls count too).
    #[arg(long, default_value_t = config::DEFAULT_RATE_LIMIT_PER_MINUTE)]
    pub rate_limit_per_minute: u32,

    /// Lifetime of a download address (e.g. 6h, 90s, 500ms).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub address_ttl: Duration,

    /// The first N downloads of each file reset the connection halfway.
    #[arg(long, default_value_t = 0)]
    pub reset_first: u32,

    /// The first N downloads of each file end early, short of Content-Length.
    #[arg(long, default_value_t = 0)]
    pub truncate_first: u32,

    /// The first N downloads of each file answer 503 SlowDown.
    #[arg(long = "error-5xx-first", default_value_t = 0)]
    pub error_5xx_first: u32,

    /// Ignore Range headers: always 200 with the full body.
    #[arg(long)]
    pub ignore_range: bool,

    /// After the first download of each file, change its content (new ETag, same size).
    #[arg(long)]
    pub change_etag_after_first: bool,

    /// The first N downloads of each file pause halfway for `--stall`.
    #[arg(long, default_value_t = 0)]
    pub stall_first: u32,

    /// How long a stalled download pauses.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stall: Duration,

    /// The first N download addresses issued for each file are already expired.
    #[arg(long, default_value_t = 0)]
    pub stale_addresses_first: u32,

    /// Pace each download to this many bytes per second (bytes, or with a unit: 10MiB).
    #[arg(long, value_parser = parse_size)]
    pub bandwidth: Option<u64>,

    /// The first N accepted listing calls answer HTTP 500, error 41.
    #[arg(long = "listing-5xx-first", default_value_t = 0)]
    pub listing_5xx_first: u32,

    /// The next N accepted listing calls answer HTTP 200 with invalid JSON.
    #[arg(long, default_value_t = 0)]
    pub listing_invalid_json_first: u32,

    /// `/v1/addresses` calls allowed in any 60 s window (rejected calls count too).
    #[arg(long, default_value_t = config::DEFAULT_ADDRESSES_RATE_LIMIT_PER_MINUTE)]
    pub addresses_rate_limit_per_minute: u32,

    /// The first N `/v1/addresses` calls that would succeed answer HTTP 500, error 41.
    #[arg(long = "addresses-5xx-first", default_value_t = 0)]
    pub addresses_5xx_first: u32,

    /// The first N `/v1/addresses` answers for each file give it an empty download address.
    #[arg(long, default_value_t = 0)]
    pub addresses_empty_first: u32,

    /// Share of files for which no address is ever given (they cannot be downloaded).
    #[arg(long, default_value_t = 0.0)]
    pub no_address_fraction: f64,

    /// Share of files lasting under a minute (test calls).
    #[arg(long, default_value_t = config::DEFAULT_SHORT_FRACTION)]
    pub short_fraction: f64,

    /// Share of meetings that are uploaded recordings (listed with query_record_type 0 or 2).
    #[arg(long, default_value_t = 0.0)]
    pub uploaded_fraction: f64,

    /// Give the first meetings hostile creators (`../../root`, `dept/legal`, NUL, ...).
    #[arg(long)]
    pub hostile_userids: bool,

    /// Share of files with an audio track.
    #[arg(long, default_value_t = config::DEFAULT_AUDIO_FRACTION)]
    pub audio_fraction: f64,

    /// Share of files with transcripts.
    #[arg(long, default_value_t = config::DEFAULT_TRANSCRIPT_FRACTION)]
    pub transcript_fraction: f64,

    /// Share of files with transcripts whose transcripts appear `--transcript-delay` late.
    #[arg(long, default_value_t = config::DEFAULT_LATE_TRANSCRIPT_FRACTION)]
    pub late_transcript_fraction: f64,

    /// How long after transcoding late transcripts appear (e.g. 1h, 30s).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub transcript_delay: Duration,

    /// Every audio track has this size (default: an eighth of its file's).
    #[arg(long, value_parser = parse_size)]
    pub audio_size: Option<u64>,

    /// Calls to the DELETE endpoints allowed in any 60 s window (rejected calls count too).
    #[arg(long, default_value_t = config::DEFAULT_DELETES_RATE_LIMIT_PER_MINUTE)]
    pub deletes_rate_limit_per_minute: u32,

    /// The first N DELETE calls that would succeed answer HTTP 500, error 41, and delete
    /// nothing.
    #[arg(long = "deletes-5xx-first", default_value_t = 0)]
    pub deletes_5xx_first: u32,

    /// The N-th successful DELETE (1-based; 0: none) deletes at once, answers after `--stall`.
    #[arg(long, default_value_t = 0)]
    pub stall_nth_delete: u32,

    /// Post a signed recording.completed event to this URL whenever a meeting finishes
    /// transcoding while the simulator runs (e.g. http://127.0.0.1:8391/webhook).
    #[arg(long, value_name = "URL", requires = "webhook_token")]
    pub webhook: Option<String>,

    /// The webhook's Token (25 characters), as entered in the console.
    #[arg(long, value_name = "T")]
    pub webhook_token: Option<String>,

    /// The webhook's EncodingAESKey (43 characters); without it, payloads are plain base64.
    #[arg(long, value_name = "K")]
    pub webhook_aes_key: Option<String>,

    /// Post each event this long before its meeting is listed as transcoded (e.g. 5s).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub webhook_early: Duration,

    /// Deliver each event this many more times, with the same trace_id.
    #[arg(long, default_value_t = 0)]
    pub webhook_repeat: u32,
}

impl SimulateArgs {
    pub fn to_config(&self) -> SimConfig {
        let defaults = SimCredentials::default();
        let credentials = SimCredentials {
            app_id: self.app_id.clone().unwrap_or(defaults.app_id),
            sdk_id: self.sdk_id.clone(),
            secret_id: self.secret_id.clone().unwrap_or(defaults.secret_id),
            secret_key: self.secret_key.clone().unwrap_or(defaults.secret_key),
            operator_id: self.operator_id.clone().unwrap_or(defaults.operator_id),
        };
        SimConfig {
            seed: self.seed,
            meetings: self.meetings,
            start: self.start,
            days: self.days,
            files_per_meeting: self.min_files..=self.max_files,
            min_file_size: self.min_size,
            max_file_size: self.max_size,
            pending_fraction: self.pending_fraction,
            transcode_delay: self.transcode_delay,
            arrivals: self.arrivals,
            arrival_every: self.arrival_every,
            credentials,
            shared_fraction: self.shared_fraction,
            download_allowed_fraction: self.download_allowed_fraction,
            rate_limit_per_minute: self.rate_limit_per_minute,
            address_ttl: self.address_ttl,
            reset_first: self.reset_first,
            truncate_first: self.truncate_first,
            error_5xx_first: self.error_5xx_first,
            ignore_range: self.ignore_range,
            change_etag_after_first: self.change_etag_after_first,
            stall_first: self.stall_first,
            stall: self.stall,
            stale_addresses_first: self.stale_addresses_first,
            bandwidth: self.bandwidth,
            listing_5xx_first: self.listing_5xx_first,
            listing_invalid_json_first: self.listing_invalid_json_first,
            addresses_rate_limit_per_minute: self.addresses_rate_limit_per_minute,
            addresses_5xx_first: self.addresses_5xx_first,
            addresses_empty_first: self.addresses_empty_first,
            no_address_fraction: self.no_address_fraction,
            audio_fraction: self.audio_fraction,
            short_fraction: self.short_fraction,
            uploaded_fraction: self.uploaded_fraction,
            hostile_userids: self.hostile_userids,
            transcript_fraction: self.transcript_fraction,
            late_transcript_fraction: self.late_transcript_fraction,
            transcript_delay: self.transcript_delay,
            audio_size: self.audio_size,

            deletes_rate_limit_per_minute: self.deletes_rate_limit_per_minute,
            deletes_5xx_first: self.deletes_5xx_first,
            stall_nth_delete: self.stall_nth_delete,
            webhook: self.webhook.clone().map(|url| SimWebhook {
                url,
                token: self.webhook_token.clone().unwrap_or_default(),
                aes_key: self.webhook_aes_key.clone(),
                early: self.webhook_early,
                repeat: self.webhook_repeat,
            }),
        }
    }
}

/// Splits `"256KiB"` into `(256, "KiB")`.
fn split_unit(s: &str) -> (&str, &str) {
    let s = s.trim();
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..at], s[at..].trim())
}

/// Bytes, with an optional binary or decimal unit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(s);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 1048576 or 3MiB"))?;
    Ok((value * factor as f64).round() as u64)
}

/// A duration as humantime reads it (`20s`, `500ms`, `6h`, `1h 30m`); a bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range")),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration such as 20s, 500ms, 6h ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn sizes_and_durations_read_humanely() {
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn flag_defaults_match_config_defaults() {
        let config = Cli::parse_from(["sim"]).args.to_config();
        let default = SimConfig::default();
        assert_eq!(format!("{config:?}"), format!("{default:?}"));
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::parse_from([
            "sim",
            "--meetings",
            "3",
            "--min-size",
            "1KiB",
            "--reset-first",
            "2",
            "--error-5xx-first",
            "1",
            "--ignore-range",
            "--sdk-id",
            "sdk",
            "--shared-fraction",
            "0.25",
            "--addresses-5xx-first",
            "3",
            "--no-address-fraction",
            "0.1",
            "--deletes-rate-limit-per-minute",
            "7",
            "--stall-nth-delete",
            "2",
        ]);
        let config = cli.args.to_config();
        assert_eq!(config.meetings, 3);
        assert_eq!(config.min_file_size, 1024);
        assert_eq!(config.reset_first, 2);
        assert_eq!(config.error_5xx_first, 1);
        assert!(config.ignore_range);
        assert_eq!(config.credentials.sdk_id.as_deref(), Some("sdk"));
        assert_eq!(config.shared_fraction, 0.25);
        assert_eq!(config.addresses_5xx_first, 3);
        assert_eq!(config.no_address_fraction, 0.1);
        assert_eq!(config.deletes_rate_limit_per_minute, 7);
        assert_eq!(config.stall_nth_delete, 2);
    }

    #[test]
    fn webhook_flags_reach_the_config() {
        let cli = Cli::parse_from([
            "sim",
            "--webhook",
            "http://127.0.0.1:8391/webhook",
            "--webhook-token",
            "Tk25charsWemeetArchiver01",
            "--webhook-aes-key",
            "WemeetArchiverWebhookVectorKey0123456789abc",
            "--webhook-repeat",
            "1",
        ]);
        let webhook = cli.args.to_config().webhook.unwrap();
        assert_eq!(webhook.url, "http://127.0.0.1:8391/webhook");
        assert_eq!(webhook.token, "Tk25charsWemeetArchiver01");
        assert!(webhook.aes_key.is_some());
        assert_eq!((webhook.early, webhook.repeat), (Duration::ZERO, 1));
        assert!(!format!("{webhook:?}").contains("Tk25"));
        let without_token = Cli::try_parse_from(["sim", "--webhook", "http://x/"]);
        assert!(without_token.is_err(), "a webhook without its token");
    }
}
