//! The state shared by every handler of one simulator run.
//!
//! One mutex guards the whole mutable world: every critical section is short (no I/O, no
//! hashing), and a single lock keeps the counters, the rate window and the fault counters
//! consistent with each other without thinking about lock order.

use crate::config::SimConfig;
use crate::content::Content;
use crate::dataset::{self, Generator, Meeting, SimArtifact, SimFile, Timeline};
use crate::endpoint::Endpoint;
use crate::events::{DueEvent, WebhookDelivery};
use crate::stats::StatsRecorder;
use crate::token::TokenSigner;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One file of a transcoded meeting, as a test expects to find it archived (a file
/// deleted from the cloud since stays: its archived copy does).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestEntry {
    pub record_file_id: String,
    pub meeting_record_id: String,
    pub meeting_code: String,
    /// The meeting's creator, as listed.
    pub userid: String,
    pub subject: String,
    /// Milliseconds since the epoch, as listed.
    pub media_start_time: i64,
    /// 0 cloud, 2 uploaded.
    pub record_type: i64,
    /// The file's own span, ms since the epoch, as listed.
    pub record_start_time: i64,
    pub record_end_time: i64,
    pub record_size: u64,
    /// Lowercase hex SHA-256 of the file's current content.
    pub sha256: String,
    /// The listing carries a download address for it; when false, only `/v1/addresses`
    /// can reach it (if `downloadable`).
    pub listing_address: bool,
    /// Some endpoint gives an address for it; false for the `no_address_fraction` files,
    /// which cannot be downloaded at all.
    pub downloadable: bool,
}

/// An audio track or transcript of a transcoded meeting's file, as a test expects to find
/// it archived (when artifacts are archived).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// The file (video) it belongs to.
    pub record_file_id: String,
    pub kind: dataset::ArtifactKind,
    /// `m4a`, `txt`, `pdf`, `docx`.
    pub file_type: String,
    /// 1 for the first transcript of its type, 2 for a second one, ...
    pub nth: usize,
    pub size: u64,
    /// Lowercase hex SHA-256 of its current content.
    pub sha256: String,
}

/// The text of one `txt` transcript, as the download host serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TranscriptText {
    /// The file (video) it belongs to.
    pub record_file_id: String,
    /// 1 for its first `txt` transcript, 2 for a second one.
    pub nth: usize,
    pub text: String,
}

/// The run-time side of a file or artifact (each is one key of the download host): what
/// the fault knobs count and what its content is now.
#[derive(Debug, Default)]
pub struct FileRuntime {
    /// Index of the meeting in `World::meetings` and of the file in that meeting.
    pub meeting: usize,
    pub file: usize,
    /// For an artifact, its index in the file's `artifacts`.
    pub artifact: Option<usize>,
    pub generation: u64,
    /// Authorised GETs so far (the n-th GET decides the faults).
    pub gets: u32,
    /// Download addresses issued, by either endpoint (the n-th decides staleness).
    pub addresses_issued: u32,
    /// Times `/v1/addresses` answered for this file (the n-th decides emptiness).
    pub address_answers: u32,
    /// Deleted from the cloud: gone from the listing, `/v1/addresses` and the download
    /// host; a second deletion is answered 4051.
    pub deleted: bool,
}

pub struct World {
    pub meetings: Vec<Meeting>,
    pub files: HashMap<String, FileRuntime>,
    generator: Generator,
    /// The simulator's "now" at start, in epoch ms: the anchor of all media times.
    anchor_ms: i64,
    started: Instant,
    clock_offset: Duration,
    pub stats: StatsRecorder,
    /// `(timestamp, nonce)` pairs seen, with their arrival, for replay detection.
    pub nonces: HashMap<(String, String), Instant>,
    /// Listing calls that passed authentication and validation (for the listing faults).
    pub listings_accepted: u32,
    /// `/v1/addresses` calls that would have succeeded (for `addresses_5xx_first`).
    pub addresses_accepted: u32,
    /// `DELETE` calls that would have succeeded (for `deletes_5xx_first`) ...
    pub deletes_accepted: u32,
    /// ... and those that did (for `stall_nth_delete`).
    pub deletes_done: u32,
    pub issued_tokens: Vec<String>,
    /// Meetings whose `recording.completed` event was sent (by meeting_record_id).
    announced: HashSet<String>,
    /// Deletions through the API not announced yet (with a webhook only): the meeting's
    /// index and the files the call deleted.
    pub deletions_to_announce: Vec<(usize, Vec<String>)>,
    /// Every POST of the webhook, in order.
    pub webhook_deliveries: Vec<WebhookDelivery>,
}

impl FileRuntime {
    /// Size and `Content-Type` of what the download host serves under its key.
    pub fn served(&self, meetings: &[Meeting]) -> (u64, &'static str) {
        let f = &meetings[self.meeting].files[self.file];
        match self.artifact {
            Some(a) => (f.artifacts[a].size, f.artifacts[a].content_type()),
            None => (f.size, "video/mp4"),
        }
    }
}

impl World {
    /// Time on the lifecycle clock: since start, plus what tests advanced it by.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed() + self.clock_offset
    }

    pub fn is_deleted(&self, record_file_id: &str) -> bool {
        self.files.get(record_file_id).is_some_and(|rt| rt.deleted)
    }

    /// The files of meeting `i` still in the cloud, with their index in the meeting.
    pub fn live_files(&self, i: usize) -> impl Iterator<Item = (usize, &SimFile)> {
        self.meetings[i]
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !self.is_deleted(&f.record_file_id))
    }

    /// Every file of meeting `i` was deleted: the recording is gone from the cloud.
    pub fn recording_deleted(&self, i: usize) -> bool {
        let files = &self.meetings[i].files;
        !files.is_empty() && self.live_files(i).next().is_none()
    }

    /// Real time since start: unlike `elapsed`, never advanced by tests.
    fn real_elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn push_meeting(&mut self, meeting: Meeting) {
        let index = self.meetings.len();
        for (file, f) in meeting.files.iter().enumerate() {
            self.files.insert(
                f.record_file_id.clone(),
                FileRuntime {
                    meeting: index,
                    file,
                    ..FileRuntime::default()
                },
            );
            for (artifact, a) in f.artifacts.iter().enumerate() {
                self.files.insert(
                    a.key.clone(),
                    FileRuntime {
                        meeting: index,
                        file,
                        artifact: Some(artifact),
                        ..FileRuntime::default()
                    },
                );
            }
        }
        self.meetings.push(meeting);
    }

    /// Adds a meeting that starts recording now and is transcoded `transcode_after`
    /// later; returns its meeting_record_id.
    pub fn add_meeting(
        &mut self,
        subject: &str,
        file_sizes: &[u64],
        transcode_after: Duration,
    ) -> String {
        let media_start_ms = self.anchor_ms + self.real_elapsed().as_millis() as i64;
        let timeline = Timeline::recording_from(self.elapsed(), transcode_after);
        let subject = subject.to_string();
        let meeting = self
            .generator
            .meeting(subject, media_start_ms, file_sizes, timeline, None);
        let id = meeting.meeting_record_id.clone();
        self.push_meeting(meeting);
        id
    }

    /// Whether `/v1/addresses` shows an artifact now: a late transcript only
    /// `transcript_delay` after its meeting was transcoded.
    pub fn artifact_visible(
        &self,
        meeting: usize,
        artifact: &SimArtifact,
        delay: Duration,
    ) -> bool {
        !artifact.late || self.elapsed() >= self.meetings[meeting].timeline.transcoded_at + delay
    }
}

pub struct Sim {
    pub config: SimConfig,
    pub base_url: String,
    pub signer: TokenSigner,
    world: Mutex<World>,
    sha_cache: Mutex<HashMap<(String, u64), String>>,
}

/// Wall-clock epoch milliseconds (token expiry and request timestamps are real time).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Sim {
    pub fn new(config: SimConfig, base_url: String) -> Self {
        let anchor_ms = config.start.map_or_else(now_ms, |s| s * 1000);
        let mut generator = Generator::new(&config);
        let meetings = dataset::generate(&config, anchor_ms.div_euclid(1000), &mut generator);
        let mut world = World {
            meetings: Vec::new(),
            files: HashMap::new(),
            generator,
            anchor_ms,
            started: Instant::now(),
            clock_offset: Duration::ZERO,
            stats: StatsRecorder::default(),
            nonces: HashMap::new(),
            listings_accepted: 0,
            addresses_accepted: 0,
            deletes_accepted: 0,
            deletes_done: 0,
            issued_tokens: Vec::new(),
            announced: HashSet::new(),
            deletions_to_announce: Vec::new(),
            webhook_deliveries: Vec::new(),
        };
        for m in meetings {
            world.push_meeting(m);
        }
        Self {
            config,
            base_url,
            signer: TokenSigner::random(),
            world: Mutex::new(world),
            sha_cache: Mutex::new(HashMap::new()),
        }
    }

    /// A panic in one handler must not wedge the simulator for the rest of a test run.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sha_cache(&self) -> MutexGuard<'_, HashMap<(String, u64), String>> {
        self.sha_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes the download host serves under `record_file_id` (a file's or an
    /// artifact's key): text for a `txt` transcript, pseudo-random bytes otherwise.
    pub fn content(&self, record_file_id: &str, generation: u64, size: u64) -> Content {
        let is_text = {
            let w = self.world();
            w.files.get(record_file_id).is_some_and(|rt| {
                rt.artifact.is_some_and(|a| {
                    w.meetings[rt.meeting].files[rt.file].artifacts[a].file_type == "txt"
                })
            })
        };
        if is_text {
            Content::text(self.config.seed, record_file_id, generation, size)
        } else {
            Content::new(self.config.seed, record_file_id, generation, size)
        }
    }

    /// A fresh download address for one file, handed out `by` one endpoint; the first
    /// `stale_addresses_first` of each file, whichever endpoint issued them, are born
    /// expired.
    pub fn issue_address(&self, world: &mut World, record_file_id: &str, by: Endpoint) -> String {
        let now = now_ms();
        let stale = world.files.get_mut(record_file_id).is_some_and(|rt| {
            rt.addresses_issued += 1;
            rt.addresses_issued <= self.config.stale_addresses_first
        });
        let extension = world.files.get(record_file_id).map_or("mp4", |rt| {
            rt.artifact.map_or("mp4", |a| {
                world.meetings[rt.meeting].files[rt.file].artifacts[a].file_type
            })
        });
        let expires = if stale {
            now - 1000
        } else {
            now + self.config.address_ttl.as_millis() as i64
        };
        let token = self.signer.issue(record_file_id, expires);
        world.issued_tokens.push(token.clone());
        world.stats.address_issued(by);
        format!(
            "{}/cos/{record_file_id}/{record_file_id}.{extension}?token={token}",
            self.base_url
        )
    }

    /// SHA-256 of one generation of a file, computed once. Slow for big files: call it
    /// off the async threads.
    pub fn sha256(&self, record_file_id: &str, generation: u64, size: u64) -> String {
        let key = (record_file_id.to_string(), generation);
        if let Some(hit) = self.sha_cache().get(&key) {
            return hit.clone();
        }
        let sha = self.content(record_file_id, generation, size).sha256_hex();
        self.sha_cache().insert(key, sha.clone());
        sha
    }

    pub fn manifest(&self) -> Vec<ManifestEntry> {
        let pending: Vec<(ManifestEntry, u64)> = {
            let w = self.world();
            let elapsed = w.elapsed();
            w.meetings
                .iter()
                .filter(|m| m.timeline.state_at(elapsed) == Some(dataset::state::TRANSCODED))
                .flat_map(|m| {
                    let w = &w;
                    m.files.iter().map(move |f| {
                        let generation =
                            w.files.get(&f.record_file_id).map_or(0, |rt| rt.generation);
                        let entry = ManifestEntry {
                            record_file_id: f.record_file_id.clone(),
                            meeting_record_id: m.meeting_record_id.clone(),
                            meeting_code: m.meeting_code.clone(),
                            userid: m.userid.clone(),
                            subject: m.subject.clone(),
                            media_start_time: m.media_start_ms,
                            record_type: m.record_type,
                            record_start_time: f.record_start_ms,
                            record_end_time: f.record_end_ms,
                            record_size: f.size,
                            sha256: String::new(),
                            listing_address: f.access.listing_address(),
                            downloadable: f.access.downloadable,
                        };
                        (entry, generation)
                    })
                })
                .collect()
        };
        pending
            .into_iter()
            .map(|(mut e, generation)| {
                e.sha256 = self.sha256(&e.record_file_id, generation, e.record_size);
                e
            })
            .collect()
    }

    /// Every audio track and transcript `/v1/addresses` shows now for the files of the
    /// meetings transcoded now (late transcripts once they appeared), with its SHA-256.
    pub fn artifact_manifest(&self) -> Vec<ArtifactEntry> {
        self.visible_artifacts()
            .into_iter()
            .map(|(mut e, key, generation)| {
                e.sha256 = self.sha256(&key, generation, e.size);
                e
            })
            .collect()
    }

    /// The text of every `txt` transcript `/v1/addresses` shows now, as served.
    pub fn transcripts(&self) -> Vec<TranscriptText> {
        self.visible_artifacts()
            .into_iter()
            .filter(|(e, _, _)| e.file_type == "txt")
            .map(|(e, key, generation)| {
                let text = crate::transcript::text(self.config.seed, &key, generation, e.size);
                TranscriptText {
                    record_file_id: e.record_file_id,
                    nth: e.nth,
                    text: String::from_utf8(text).expect("transcripts are UTF-8"),
                }
            })
            .collect()
    }

    /// The artifacts shown now (without their hash), with their key and generation.
    fn visible_artifacts(&self) -> Vec<(ArtifactEntry, String, u64)> {
        let w = self.world();
        let elapsed = w.elapsed();
        let mut out = Vec::new();
        for (mi, m) in w.meetings.iter().enumerate() {
            if m.timeline.state_at(elapsed) != Some(dataset::state::TRANSCODED) {
                continue;
            }
            for f in &m.files {
                let mut nth: HashMap<&str, usize> = HashMap::new();
                for a in &f.artifacts {
                    if !w.artifact_visible(mi, a, self.config.transcript_delay) {
                        continue;
                    }
                    let n = nth.entry(a.file_type).or_default();
                    *n += 1;
                    let generation = w.files.get(&a.key).map_or(0, |rt| rt.generation);
                    let entry = ArtifactEntry {
                        record_file_id: f.record_file_id.clone(),
                        kind: a.kind,
                        file_type: a.file_type.into(),
                        nth: *n,
                        size: a.size,
                        sha256: String::new(),
                    };
                    out.push((entry, a.key.clone(), generation));
                }
            }
        }
        out
    }

    /// The ids of the files deleted from the cloud so far, sorted (their artifacts went
    /// with them).
    pub fn deleted(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .world()
            .files
            .iter()
            .filter(|(_, rt)| rt.deleted && rt.artifact.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The passwords the listing reveals: those of shared files (the others never leave
    /// the simulator, so a log cannot leak them).
    pub fn passwords(&self) -> Vec<String> {
        self.world()
            .meetings
            .iter()
            .flat_map(|m| &m.files)
            .filter(|f| f.access.shared)
            .map(|f| f.password.clone())
            .collect()
    }

    /// The events of the meetings that are transcoded (or will be within `early`) and were
    /// not announced yet; each is announced once. Only meetings transcoded while the
    /// simulator runs have one: those already transcoded at start are history.
    pub fn due_events(&self, early: Duration) -> Vec<DueEvent> {
        let mut w = self.world();
        let horizon = w.elapsed() + early;
        let now = now_ms();
        let World {
            meetings,
            announced,
            deletions_to_announce,
            ..
        } = &mut *w;
        let completed = meetings
            .iter()
            .filter(|m| m.timeline.transcoded_at > Duration::ZERO)
            .filter(|m| m.timeline.transcoded_at <= horizon)
            .filter(|m| announced.insert(m.meeting_record_id.clone()))
            .map(|m| {
                let recording = m.timeline.transcoding_at - m.timeline.visible_after;
                DueEvent::completed(m, recording, now)
            });
        let operator = &self.config.credentials.operator_id;
        let deleted = deletions_to_announce
            .drain(..)
            .map(|(i, files)| DueEvent::deleted(&meetings[i], files, operator, now));
        completed.chain(deleted).collect()
    }

    /// Moves the lifecycle clock (visibility, transcoding) forward. Request timestamps,
    /// token expiry and the rate window stay on real time: the client under test signs
    /// with the real clock and paces itself with it.
    pub fn advance(&self, by: Duration) {
        self.world().clock_offset += by;
    }
}
