//! The simulated account: meetings, their files and when each becomes visible/transcoded.
//!
//! Everything is drawn from one seeded stream, so a given config always yields the same
//! account. The first meetings carry the subjects that break naive archivers (path
//! traversal, separators, reserved Windows names, very long, emoji, control characters,
//! empty), and two meetings share a meeting_code on the same day, as a recurring meeting does.
//!
//! Who may reach a file (sharing, downloads, whether any address exists) is not drawn from
//! the stream but hashed from the file's id: changing those fractions must not shift every
//! later id, size and byte of the account.

use crate::config::SimConfig;
use crate::prng::{SplitMix64, hash_str, mix64};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;
/// Beijing time, where "the same day" of a recurring meeting is judged.
const UTC_OFFSET_S: i64 = 8 * HOUR_S;

/// Subjects given, in this order, to the first meetings.
pub fn hostile_subjects() -> Vec<String> {
    let long: String = "会议录制归档测试".chars().cycle().take(300).collect();
    vec![
        "../../etc/passwd".into(),
        "a/b\\c".into(),
        "CON".into(),
        long,
        "周会 🎉🚀".into(),
        "line1\nline2".into(),
        "a\u{0}b".into(),
        String::new(),
    ]
}

/// Creators given, in this order, to the first meetings when `hostile_userids` is set: a
/// per-user layout must keep them inside the archive too.
pub fn hostile_userids() -> Vec<String> {
    vec![
        "../../root".into(),
        "dept/legal".into(),
        "a\u{0}b".into(),
        "x".repeat(300),
        String::new(),
        "..".into(),
        "CON".into(),
    ]
}

const ORDINARY_SUBJECTS: &[&str] = &[
    "产品周会",
    "Weekly sync",
    "项目评审",
    "All hands",
    "技术分享",
    "客户沟通会",
    "Sprint planning",
    "季度复盘",
    "设计评审",
    "1:1",
];

const CREATORS: &[&str] = &["admin", "zhangsan", "lisi", "wangwu", "zhaoliu"];

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One salt per per-file decision, so that the decisions are independent of each other.
const SHARED_SALT: u64 = 0x5348_4152_4544_0001;
const DOWNLOAD_ALLOWED_SALT: u64 = 0x444F_574E_4C4F_0002;
const NO_ADDRESS_SALT: u64 = 0x4E4F_4144_4452_0003;
const AUDIO_SALT: u64 = 0x4155_4449_4F00_0004;
const TRANSCRIPT_SALT: u64 = 0x5452_414E_5300_0005;
const LATE_SALT: u64 = 0x4C41_5445_0000_0006;
const TRANSCRIPT_SHAPE_SALT: u64 = 0x5348_4150_4500_0007;
const SHORT_SALT: u64 = 0x5348_4F52_5400_0008;
const UPLOADED_SALT: u64 = 0x5550_4C4F_4144_0009;

/// The transcript sets a file may have: one, two of different types, and two of one type
/// (the second is `.transcript.2.txt` in the archive).
const TRANSCRIPT_SETS: [&[&str]; 3] = [&["txt"], &["txt", "pdf"], &["txt", "docx", "txt"]];

/// The fractions behind the per-file access decisions, with the seed they are keyed by.
#[derive(Debug, Clone, Copy)]
struct AccessMix {
    seed: u64,
    shared: f64,
    download_allowed: f64,
    no_address: f64,
    audio: f64,
    audio_size: Option<u64>,
    transcripts: f64,
    late_transcripts: f64,
    short: f64,
    uploaded: f64,
}

impl AccessMix {
    fn new(config: &SimConfig) -> Self {
        Self {
            seed: config.seed,
            shared: config.shared_fraction,
            download_allowed: config.download_allowed_fraction,
            no_address: config.no_address_fraction,
            audio: config.audio_fraction,
            audio_size: config.audio_size,
            transcripts: config.transcript_fraction,
            late_transcripts: config.late_transcript_fraction,
            short: config.short_fraction,
            uploaded: config.uploaded_fraction,
        }
    }

    /// The audio track and transcripts of one file (none for a file nothing can reach).
    fn artifacts(&self, record_file_id: &str, size: u64, access: Access) -> Vec<SimArtifact> {
        let mut out = Vec::new();
        if !access.downloadable {
            return out;
        }
        if self.decide(record_file_id, AUDIO_SALT, self.audio) {
            out.push(SimArtifact {
                key: format!("{record_file_id}-audio"),
                kind: ArtifactKind::Audio,
                file_type: "m4a",
                size: self.audio_size.unwrap_or((size / 8).max(1024)),
                late: false,
            });
        }
        if self.decide(record_file_id, TRANSCRIPT_SALT, self.transcripts) {
            let word = mix64(self.seed ^ hash_str(record_file_id) ^ TRANSCRIPT_SHAPE_SALT);
            let late = self.decide(record_file_id, LATE_SALT, self.late_transcripts);
            let set = TRANSCRIPT_SETS[(word % TRANSCRIPT_SETS.len() as u64) as usize];
            for (i, file_type) in set.iter().enumerate() {
                out.push(SimArtifact {
                    key: format!("{record_file_id}-t{}", i + 1),
                    kind: ArtifactKind::Transcript,
                    file_type,
                    size: 1024 + (word >> (8 + 4 * i)) % (16 * 1024),
                    late,
                });
            }
        }
        out
    }

    /// True for about `fraction` of all ids (none at 0, all at 1), the same for a given
    /// seed and id whatever else the dataset holds.
    fn decide(&self, record_file_id: &str, salt: u64, fraction: f64) -> bool {
        let word = mix64(self.seed ^ hash_str(record_file_id) ^ salt);
        // The top 53 bits as a double in [0, 1).
        let unit = (word >> 11) as f64 / (1u64 << 53) as f64;
        unit < fraction
    }

    fn access(&self, record_file_id: &str) -> Access {
        let shared = self.decide(record_file_id, SHARED_SALT, self.shared);
        Access {
            shared,
            download_allowed: shared
                && self.decide(record_file_id, DOWNLOAD_ALLOWED_SALT, self.download_allowed),
            downloadable: !self.decide(record_file_id, NO_ADDRESS_SALT, self.no_address),
        }
    }
}

/// Who can reach one file, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The owner turned sharing on: the listing shows the sharing fields.
    pub shared: bool,
    /// Sharing is on and downloads are allowed (never true without `shared`).
    pub download_allowed: bool,
    /// Some address can be issued for it at all (`no_address_fraction` clears it).
    pub downloadable: bool,
}

impl Access {
    /// The listing carries a download address: sharing on, download allowed, and an
    /// address exists.
    pub fn listing_address(&self) -> bool {
        self.download_allowed && self.downloadable
    }
}

/// What an artifact of a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// `audio_address` of `/v1/addresses`.
    Audio,
    /// One entry of its `meeting_summary`.
    Transcript,
}

/// An audio track or transcript of one file, served like the file itself.
#[derive(Debug, Clone)]
pub struct SimArtifact {
    /// What the download host binds its tokens, faults and bytes to (`{id}-audio`,
    /// `{id}-t1`, ...): the simulator's own name, not the archiver's.
    pub key: String,
    pub kind: ArtifactKind,
    /// `m4a`, `txt`, `pdf`, `docx`.
    pub file_type: &'static str,
    pub size: u64,
    /// A transcript that appears only `transcript_delay` after its meeting is transcoded.
    pub late: bool,
}

impl SimArtifact {
    /// The `Content-Type` the download host sends with it.
    pub fn content_type(&self) -> &'static str {
        match self.file_type {
            "m4a" => "audio/mp4",
            "txt" => "text/plain; charset=utf-8",
            "pdf" => "application/pdf",
            _ => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        }
    }
}

/// Meeting states as the API numbers them: only `TRANSCODED` meetings list their files.
pub mod state {
    pub const RECORDING: i64 = 1;
    pub const TRANSCODING: i64 = 2;
    pub const TRANSCODED: i64 = 3;
}

/// When a meeting appears and changes state, on the simulator's lifecycle clock
/// (time since start, plus whatever a test advanced it by).
#[derive(Debug, Clone)]
pub struct Timeline {
    pub visible_after: Duration,
    pub transcoding_at: Duration,
    pub transcoded_at: Duration,
}

impl Timeline {
    /// Transcoded long ago.
    pub fn done() -> Self {
        Self::recording_from(Duration::ZERO, Duration::ZERO)
    }

    /// Appears at `from`, recording; transcoding after half of `transcode`; done after it.
    pub fn recording_from(from: Duration, transcode: Duration) -> Self {
        Self {
            visible_after: from,
            transcoding_at: from + transcode / 2,
            transcoded_at: from + transcode,
        }
    }

    /// The state at `elapsed`, or `None` while the meeting is not listed yet.
    pub fn state_at(&self, elapsed: Duration) -> Option<i64> {
        if elapsed < self.visible_after {
            None
        } else if elapsed < self.transcoding_at {
            Some(state::RECORDING)
        } else if elapsed < self.transcoded_at {
            Some(state::TRANSCODING)
        } else {
            Some(state::TRANSCODED)
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimFile {
    pub record_file_id: String,
    pub record_start_ms: i64,
    pub record_end_ms: i64,
    pub size: u64,
    pub password: String,
    /// The path part of the sharing and view links.
    pub share_code: String,
    pub access: Access,
    /// Its audio track and transcripts (what `/v1/addresses` may reveal of it).
    pub artifacts: Vec<SimArtifact>,
}

impl SimFile {
    /// The playback page, the same from both endpoints.
    pub fn view_address(&self) -> String {
        format!("https://meeting.tencent.com/cw/{}", self.share_code)
    }
}

#[derive(Debug, Clone)]
pub struct Meeting {
    pub meeting_record_id: String,
    pub meeting_id: String,
    pub meeting_code: String,
    pub userid: String,
    pub subject: String,
    pub media_start_ms: i64,
    /// 0 cloud recording, 2 uploaded (`uploaded_fraction` of the meetings).
    pub record_type: i64,
    pub timeline: Timeline,
    pub files: Vec<SimFile>,
}

/// The seeded stream plus the ids already handed out, kept for the whole run so that
/// meetings added later stay deterministic, never collide with earlier ids and get their
/// access decided like the others.
pub struct Generator {
    rng: SplitMix64,
    used_ids: HashSet<String>,
    mix: AccessMix,
}

impl Generator {
    pub fn new(config: &SimConfig) -> Self {
        Self {
            rng: SplitMix64::new(config.seed),
            used_ids: HashSet::new(),
            mix: AccessMix::new(config),
        }
    }

    fn unique_id(&mut self, digits: u32) -> String {
        loop {
            let id = self.rng.digits(digits);
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    pub fn file_sizes(&mut self, config: &SimConfig) -> Vec<u64> {
        let lo = config.min_file_size.min(config.max_file_size);
        let hi = config.min_file_size.max(config.max_file_size);
        let fewest = (*config.files_per_meeting.start()).max(1);
        let most = (*config.files_per_meeting.end()).max(fewest);
        let count = self.rng.range(u64::from(fewest), u64::from(most));
        (0..count).map(|_| self.rng.range(lo, hi)).collect()
    }

    /// A meeting whose recording began at `media_start_ms`, one file per size.
    pub fn meeting(
        &mut self,
        subject: String,
        media_start_ms: i64,
        sizes: &[u64],
        timeline: Timeline,
        meeting_code: Option<String>,
    ) -> Meeting {
        let meeting_code = meeting_code.unwrap_or_else(|| {
            let digits = self.rng.range(9, 11) as u32;
            self.rng.digits(digits)
        });
        let mut next_start = media_start_ms + self.rng.range(0, 120_000) as i64;
        let files = sizes
            .iter()
            .map(|&size| {
                let mut length = self.rng.range(5 * 60_000, 90 * 60_000) as i64;
                let record_file_id = self.unique_id(19);
                // A test call: under a minute. Hashed, so the rest of the stream holds.
                if self.mix.decide(&record_file_id, SHORT_SALT, self.mix.short) {
                    let word = mix64(self.mix.seed ^ hash_str(&record_file_id) ^ SHORT_SALT);
                    length = 5_000 + (word % 50_000) as i64;
                }
                let access = self.mix.access(&record_file_id);
                let file = SimFile {
                    artifacts: self.mix.artifacts(&record_file_id, size, access),
                    access,
                    record_file_id,
                    record_start_ms: next_start,
                    record_end_ms: next_start + length,
                    size,
                    password: self.rng.string(ALNUM, 8),
                    share_code: self.rng.string(ALNUM, 12),
                };
                next_start += length + self.rng.range(1_000, 600_000) as i64;
                file
            })
            .collect();
        let meeting_record_id = self.unique_id(19);
        let uploaded = self
            .mix
            .decide(&meeting_record_id, UPLOADED_SALT, self.mix.uploaded);
        Meeting {
            meeting_record_id,
            meeting_id: self.unique_id(19),
            meeting_code,
            userid: (*self.rng.pick(CREATORS)).to_string(),
            subject,
            media_start_ms,
            record_type: if uploaded { 2 } else { 0 },
            timeline,
            files,
        }
    }

    fn ordinary_subject(&mut self) -> String {
        let base = *self.rng.pick(ORDINARY_SUBJECTS);
        format!("{base} {}", self.rng.range(1, 52))
    }
}

/// The meetings present at start (including later arrivals, hidden until their time).
/// `anchor_s` is the simulator's "now" at start.
pub fn generate(config: &SimConfig, anchor_s: i64, generator: &mut Generator) -> Vec<Meeting> {
    let g = generator;
    let n = config.meetings;
    let pending = ((n as f64) * config.pending_fraction.clamp(0.0, 1.0)).round() as usize;
    let span_s = i64::from(config.days.max(1)) * DAY_S;
    let hostile = hostile_subjects();
    let userids = hostile_userids();
    let recurring_first = hostile.len();
    let mut recurring: Option<(i64, String)> = None;
    let mut meetings = Vec::with_capacity(n + config.arrivals);

    for i in 0..n {
        let sizes = g.file_sizes(config);
        if i + pending >= n {
            // Still being recorded: the most recent meetings.
            let start_s = anchor_s - g.rng.range(600, 3 * HOUR_S as u64) as i64;
            let timeline = Timeline::recording_from(Duration::ZERO, config.transcode_delay);
            let subject = g.ordinary_subject();
            meetings.push(g.meeting(subject, start_s * 1000, &sizes, timeline, None));
        } else if i == recurring_first || i == recurring_first + 1 {
            let (start_s, code) = match recurring.take() {
                // The second occurrence: same code, four hours later, same Beijing day.
                Some((first_s, code)) => (first_s + 4 * HOUR_S, Some(code)),
                None => {
                    let days_back = g.rng.range(1, u64::from(config.days.max(1))) as i64;
                    let day = (anchor_s - days_back * DAY_S + UTC_OFFSET_S).div_euclid(DAY_S);
                    (day * DAY_S - UTC_OFFSET_S + 10 * HOUR_S, None)
                }
            };
            let m = g.meeting(
                "产品周会 (recurring)".into(),
                start_s * 1000,
                &sizes,
                Timeline::done(),
                code,
            );
            recurring = Some((start_s, m.meeting_code.clone()));
            meetings.push(m);
        } else {
            let subject = match hostile.get(i) {
                Some(s) => s.clone(),
                None => g.ordinary_subject(),
            };
            let start_s = anchor_s - g.rng.range(HOUR_S as u64, span_s as u64) as i64;
            meetings.push(g.meeting(subject, start_s * 1000, &sizes, Timeline::done(), None));
        }
    }

    if config.hostile_userids {
        for (m, userid) in meetings.iter_mut().zip(userids) {
            m.userid = userid;
        }
    }

    for k in 1..=config.arrivals {
        let at = config.arrival_every * k as u32;
        let sizes = g.file_sizes(config);
        let subject = g.ordinary_subject();
        let start_ms = anchor_s * 1000 + at.as_millis() as i64;
        let timeline = Timeline::recording_from(at, config.transcode_delay);
        meetings.push(g.meeting(subject, start_ms, &sizes, timeline, None));
    }
    meetings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(config: &SimConfig) -> Vec<Meeting> {
        generate(config, 1_750_000_000, &mut Generator::new(config))
    }

    fn files(ms: &[Meeting]) -> Vec<&SimFile> {
        ms.iter().flat_map(|m| &m.files).collect()
    }

    /// Share of `files` for which `pred` holds.
    fn share(files: &[&SimFile], pred: impl Fn(&Access) -> bool) -> f64 {
        files.iter().filter(|f| pred(&f.access)).count() as f64 / files.len() as f64
    }

    #[test]
    fn short_calls_and_uploads_come_in_their_shares_without_moving_the_rest() {
        let mixed = SimConfig {
            meetings: 400,
            short_fraction: 0.2,
            uploaded_fraction: 0.3,
            ..SimConfig::default()
        };
        let ms = account(&mixed);
        let fs = files(&ms);
        let short = fs
            .iter()
            .filter(|f| f.record_end_ms - f.record_start_ms < 60_000)
            .count() as f64
            / fs.len() as f64;
        assert!((0.15..0.25).contains(&short), "{short}");
        let uploaded = ms.iter().filter(|m| m.record_type == 2).count() as f64 / ms.len() as f64;
        assert!((0.24..0.36).contains(&uploaded), "{uploaded}");
        let plain = account(&SimConfig {
            short_fraction: 0.0,
            ..mixed
        });
        let ids = |ms: &[Meeting]| -> Vec<(String, u64)> {
            files(ms)
                .iter()
                .map(|f| (f.record_file_id.clone(), f.size))
                .collect()
        };
        assert_eq!(ids(&ms), ids(&plain));
    }

    #[test]
    fn same_seed_same_account() {
        let config = SimConfig::default();
        let (a, b) = (account(&config), account(&config));
        let ids = |ms: &[Meeting]| -> Vec<String> {
            ms.iter()
                .flat_map(|m| m.files.iter().map(|f| f.record_file_id.clone()))
                .collect()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.len(), config.meetings);
    }

    #[test]
    fn access_fractions_do_not_shift_the_rest_of_the_dataset() {
        let everything = SimConfig {
            shared_fraction: 1.0,
            download_allowed_fraction: 1.0,
            ..SimConfig::default()
        };
        let nothing = SimConfig {
            shared_fraction: 0.0,
            no_address_fraction: 1.0,
            ..SimConfig::default()
        };
        let key = |f: &&SimFile| (f.record_file_id.clone(), f.size, f.password.clone());
        let (a, b) = (account(&everything), account(&nothing));
        let (a, b) = (files(&a), files(&b));
        assert_eq!(
            a.iter().map(key).collect::<Vec<_>>(),
            b.iter().map(key).collect::<Vec<_>>()
        );
        assert!(a.iter().all(|f| f.access.listing_address()));
        assert!(b.iter().all(|f| !f.access.shared && !f.access.downloadable));
    }

    #[test]
    fn by_default_a_fifth_of_the_files_carry_a_listing_address() {
        let config = SimConfig {
            meetings: 1000,
            ..SimConfig::default()
        };
        let ms = account(&config);
        let all = files(&ms);
        let near = |x: f64, want: f64| (x - want).abs() < 0.04;
        assert!(near(share(&all, |a| a.shared), 0.4));
        assert!(near(share(&all, Access::listing_address), 0.2));
        assert!(all.iter().all(|f| f.access.downloadable));
        assert!(
            all.iter()
                .all(|f| f.access.shared || !f.access.download_allowed)
        );
    }

    #[test]
    fn no_address_fraction_is_decided_apart_from_sharing() {
        let config = SimConfig {
            meetings: 1000,
            shared_fraction: 0.5,
            no_address_fraction: 0.5,
            ..SimConfig::default()
        };
        let ms = account(&config);
        let all = files(&ms);
        let both = share(&all, |a| a.shared && !a.downloadable);
        assert!((both - 0.25).abs() < 0.04, "independent decisions: {both}");
    }

    #[test]
    fn hostile_subjects_and_recurring_pair_come_first() {
        let ms = account(&SimConfig::default());
        let hostile = hostile_subjects();
        for (m, s) in ms.iter().zip(&hostile) {
            assert_eq!(&m.subject, s);
        }
        let (a, b) = (&ms[hostile.len()], &ms[hostile.len() + 1]);
        assert_eq!(a.meeting_code, b.meeting_code);
        assert_ne!(a.meeting_record_id, b.meeting_record_id);
        let day = |ms: i64| (ms / 1000 + UTC_OFFSET_S).div_euclid(DAY_S);
        assert_eq!(day(a.media_start_ms), day(b.media_start_ms));
        assert!(b.media_start_ms < 1_750_000_000_000);
    }

    #[test]
    fn sizes_files_and_times_respect_the_config() {
        let config = SimConfig {
            files_per_meeting: 2..=2,
            min_file_size: 10,
            max_file_size: 20,
            days: 5,
            ..SimConfig::default()
        };
        let anchor_ms = 1_750_000_000_000;
        for m in account(&config) {
            assert_eq!(m.files.len(), 2);
            assert!(m.media_start_ms < anchor_ms);
            assert!(m.media_start_ms > anchor_ms - 7 * DAY_S * 1000);
            assert!(m.meeting_record_id.len() == 19 && m.meeting_code.len() >= 9);
            for f in &m.files {
                assert!((10..=20).contains(&f.size));
                assert_eq!(f.password.len(), 8);
            }
        }
    }

    #[test]
    fn pending_meetings_transcode_over_the_delay() {
        let config = SimConfig {
            meetings: 10,
            pending_fraction: 0.2,
            ..SimConfig::default()
        };
        let ms = account(&config);
        let pending: Vec<_> = ms
            .iter()
            .filter(|m| m.timeline.state_at(Duration::ZERO) == Some(1))
            .collect();
        assert_eq!(pending.len(), 2);
        let t = &pending[0].timeline;
        assert_eq!(t.state_at(config.transcode_delay / 2), Some(2));
        assert_eq!(t.state_at(config.transcode_delay), Some(3));
    }

    #[test]
    fn arrivals_are_hidden_until_their_time() {
        let config = SimConfig {
            meetings: 2,
            arrivals: 2,
            arrival_every: Duration::from_secs(30),
            ..SimConfig::default()
        };
        let ms = account(&config);
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[3].timeline.state_at(Duration::from_secs(59)), None);
        assert_eq!(ms[3].timeline.state_at(Duration::from_secs(60)), Some(1));
    }
}
