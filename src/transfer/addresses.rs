//! Download addresses just in time, from `GET /v1/addresses?meeting_record_id=`; and the
//! artifacts of a recording (audio track, transcripts), which only that endpoint reveals.
//!
//! The listing carries an address only where the owner turned sharing on and allowed
//! downloads, and every address dies 6 hours after it was issued. So a transfer takes its
//! address right before it starts: the listing's if it will outlive the transfer at the
//! observed throughput, else one `/v1/addresses` call for its meeting, which serves every
//! file of that meeting still to download (its siblings are claimed next, see
//! `Db::claim_next`). The listing is never re-read to refresh an address.
//!
//! Every such call also records the meeting's artifacts, when they are archived
//! (`download.artifacts`): they become rows of their own, queued with their addresses.

use crate::archive::layout::{self, Artifact};
use crate::client::{ApiClient, CallError};
use crate::domain::{MeetingRecordId, RecordFileId};
use crate::errors::Class;
use crate::state::{ArtifactUpsert, Db, DbError, FileKind, FileRow, GivenAddress};
use crate::time::UnixMs;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wemeet_api::AddressFile;

/// Why addresses (or artifacts) could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(transparent)]
    Api(#[from] CallError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AddressError {
    /// The API call's class; nothing goes on without the database.
    pub fn class(&self) -> Class {
        match self {
            Self::Api(e) => e.class(),
            Self::Db(_) => Class::Stop,
        }
    }
}

/// Which artifacts are archived, and how long transcripts are waited for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ArtifactPolicy {
    pub audio: bool,
    pub transcripts: bool,
    pub wait: Duration,
}

impl ArtifactPolicy {
    pub fn any(self) -> bool {
        self.audio || self.transcripts
    }
}

/// Fetches addresses for workers, one call per meeting however many workers ask at once.
pub(super) struct Addresses {
    api: Arc<ApiClient>,
    store: Db,
    artifacts: ArtifactPolicy,
    /// One lock per meeting being fetched: workers waiting for the same meeting share the
    /// call of the first (entries go when the last waiter leaves).
    in_flight: Mutex<HashMap<MeetingRecordId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Addresses {
    pub(super) fn new(api: Arc<ApiClient>, store: Db, artifacts: ArtifactPolicy) -> Self {
        Self {
            api,
            store,
            artifacts,
            in_flight: Mutex::default(),
        }
    }

    /// Makes sure `row`'s meeting has addresses issued after `row.address_issued_at` (the
    /// one the caller found too old, or none): asks `/v1/addresses` unless another worker
    /// did meanwhile. Returns the file as stored afterwards; its `download_address` is
    /// `None` when the API gave none for it.
    pub(super) async fn refresh(&self, row: &FileRow) -> Result<Option<FileRow>, AddressError> {
        let lock = self.lock_of(&row.meeting_record_id);
        let result = async {
            let _one_call = lock.lock().await;
            let current = self.store.file(&row.record_file_id).await?;
            let refreshed = current.as_ref().is_some_and(|f| {
                f.download_address.is_some() && f.address_issued_at > row.address_issued_at
            });
            if refreshed {
                return Ok(current);
            }
            self.fetch(&row.meeting_record_id).await?;
            Ok(self.store.file(&row.record_file_id).await?)
        }
        .await;
        self.release(&row.meeting_record_id, lock);
        result
    }

    /// Looks at a meeting for its artifacts (claimed by `Db::claim_artifact_check`).
    pub(super) async fn look_for_artifacts(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<(), AddressError> {
        let lock = self.lock_of(meeting_record_id);
        let result = async {
            let _one_call = lock.lock().await;
            self.fetch(meeting_record_id).await
        }
        .await;
        self.release(meeting_record_id, lock);
        result
    }

    /// One `/v1/addresses` call (every page of it) for a meeting; stores what it gives.
    async fn fetch(&self, meeting_record_id: &MeetingRecordId) -> Result<(), AddressError> {
        let answer = self.api.record_addresses(meeting_record_id).await?;
        let given: Vec<GivenAddress> = answer
            .reply
            .iter()
            .filter_map(|f| {
                Some(GivenAddress {
                    record_file_id: RecordFileId::new(&f.record_file_id),
                    address: f.download_address.clone()?,
                })
            })
            .collect();
        tracing::debug!(
            meeting = %meeting_record_id,
            files = given.len(),
            "download addresses fetched"
        );
        // Issued no earlier than the call was sent: never overestimate their life.
        self.store.set_addresses(&given, answer.sent_at).await?;
        if self.artifacts.any() {
            let artifacts = self.artifacts_of(meeting_record_id, &answer.reply).await?;
            self.store
                .upsert_artifacts(meeting_record_id, &artifacts, answer.sent_at)
                .await?;
            if self.artifacts.transcripts {
                self.maybe_end_transcript_wait(meeting_record_id).await?;
            }
        }
        Ok(())
    }

    /// The artifacts `/v1/addresses` gave for the meeting's known videos.
    async fn artifacts_of(
        &self,
        meeting_record_id: &MeetingRecordId,
        files: &[AddressFile],
    ) -> Result<Vec<ArtifactUpsert>, DbError> {
        let videos: HashMap<RecordFileId, String> = self
            .store
            .files_of_meeting(meeting_record_id)
            .await?
            .into_iter()
            .filter(|f| f.kind == FileKind::Video)
            .map(|f| (f.record_file_id, f.path))
            .collect();
        let mut out = Vec::new();
        for f in files {
            let Some(video_path) = videos.get(f.record_file_id.as_str()) else {
                continue;
            };
            let mut artifact = |artifact: Artifact<'_>, kind, address: &wemeet_api::Secret| {
                out.push(ArtifactUpsert {
                    key: layout::artifact_key(&f.record_file_id, artifact),
                    kind,
                    parent_file_id: RecordFileId::new(&f.record_file_id),
                    path: layout::artifact_path(video_path, artifact),
                    download_address: address.clone(),
                });
            };
            if self.artifacts.audio
                && let Some(address) = &f.audio_address
            {
                artifact(Artifact::Audio, FileKind::Audio, address);
            }
            if self.artifacts.transcripts {
                let mut seen: HashMap<RecordFileId, usize> = HashMap::new();
                for t in &f.meeting_summary {
                    let Some(address) = &t.download_address else {
                        continue;
                    };
                    // Counted by the name it gets (`docs` and `docx` are one type).
                    let named = layout::artifact_key(
                        "",
                        Artifact::Transcript {
                            file_type: &t.file_type,
                            nth: 1,
                        },
                    );
                    let nth = seen.entry(named).or_default();
                    *nth += 1;
                    let transcript = Artifact::Transcript {
                        file_type: &t.file_type,
                        nth: *nth,
                    };
                    artifact(transcript, FileKind::Transcript, address);
                }
            }
        }
        let mut keys = HashSet::new();
        out.retain(|a| keys.insert(a.key.clone()));
        Ok(out)
    }

    /// Transcripts can appear hours after transcoding: a meeting with a video still
    /// without one is looked at again at later polls, until `artifact_wait` after the
    /// recording ended (at once, for an old one); then the wait ends quietly.
    async fn maybe_end_transcript_wait(
        &self,
        meeting_record_id: &MeetingRecordId,
    ) -> Result<(), DbError> {
        let (waiting, ended) = self
            .store
            .videos_without_transcript(meeting_record_id)
            .await?;
        let now = UnixMs::now();
        if !waiting.is_empty() && now >= ended + self.artifacts.wait {
            tracing::info!(
                meeting = %meeting_record_id,
                files = waiting.len(),
                wait_s = self.artifacts.wait.as_secs(),
                "no transcript for these files within download.artifact_wait of the recording's end; not waiting any longer"
            );
            self.store
                .end_transcript_wait(meeting_record_id, now)
                .await?;
        }
        Ok(())
    }

    fn lock_of(&self, meeting_record_id: &MeetingRecordId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(meeting_record_id.clone()).or_default())
    }

    fn release(&self, meeting_record_id: &MeetingRecordId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        drop(lock);
        // Only the map's own reference left: nobody waits for this meeting.
        if map
            .get(meeting_record_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(meeting_record_id);
        }
    }
}
