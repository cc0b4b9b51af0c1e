//! `relayout`: moving an archive to the configured `storage.layout`, crash-safely.
//!
//! The plan (every file whose path changes, and the target template) is recorded before
//! the first move. Then, file by file: move (local rename, S3 copy then delete), then
//! commit the new path with the move's removal. A run killed between the two finds the
//! file already at its new path, which a move treats as done: rerunning `relayout`
//! finishes the plan. Once every move is committed the meetings get their new folders
//! (`meeting.json` rewritten there, the old ones removed) and the target becomes the
//! archive's layout, so `backfill` and `run` start again.

use super::{App, AppError};
use crate::archive::layout::{Layout, MeetingFields};
use crate::domain::RecordFileId;
use crate::state::{FileKind, LaidOutFile};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one `relayout` did, or (`dry_run`) would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayoutReport {
    /// The template the archive was laid out with, and the configured one.
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    /// `(old path, new path)` of every file moved by this run (planned, with `dry_run`).
    pub moves: Vec<(String, String)>,
    /// Paths left where they are because their recording is under a legal hold.
    pub held: Vec<String>,
}

/// The new path of every file and the new folder of every meeting.
struct Plan {
    moves: Vec<(RecordFileId, String, String)>,
    dirs: Vec<(String, String)>,
    old_dirs: Vec<String>,
}

/// Renders every stored file with `layout`: videos from their meeting's fields and their
/// place in it, artifacts beside their video, named after it as before.
/// The files of `held` recordings keep their paths and folders (a held recording is never
/// moved), and a folder one of them keeps is not emptied of its `meeting.json`.
fn plan(layout: &Layout, files: &[LaidOutFile], held: &HashSet<String>) -> Result<Plan, AppError> {
    let (dirs, new_video) = video_paths(layout, files, held);
    let moves = moves(files, &new_video);
    refuse_collisions(files, &moves)?;
    let kept: HashSet<&str> = dirs
        .iter()
        .filter(|(id, _)| held.contains(*id))
        .map(|(_, (old, _))| old.as_str())
        .collect();
    let old_dirs = dirs
        .values()
        .filter(|(old, new)| old != new && !kept.contains(old.as_str()))
        .map(|(old, _)| old.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok(Plan {
        moves,
        dirs: dirs
            .into_iter()
            .filter(|(id, _)| !held.contains(id))
            .map(|(id, (_, new))| (id, new))
            .collect(),
        old_dirs,
    })
}

/// A folder's or a path's (old, new).
type OldNew = (String, String);

/// Each meeting's (old, new) folder by meeting_record_id, and each video's (old, new)
/// path by record_file_id; a held recording's stay as they are.
fn video_paths<'a>(
    layout: &Layout,
    files: &'a [LaidOutFile],
    held: &HashSet<String>,
) -> (BTreeMap<String, OldNew>, HashMap<&'a str, OldNew>) {
    let mut dirs: BTreeMap<String, OldNew> = BTreeMap::new();
    let mut new_video: HashMap<&str, OldNew> = HashMap::new();
    let mut index_in_meeting: HashMap<&str, usize> = HashMap::new();
    for f in files.iter().filter(|f| f.kind == FileKind::Video) {
        let fields = MeetingFields {
            userid: &f.userid,
            subject: &f.subject,
            meeting_code: &f.meeting_code,
            meeting_id: &f.meeting_id,
            meeting_record_id: f.meeting_record_id.as_str(),
            media_start_time_ms: f.media_start_time,
        };
        let index = index_in_meeting
            .entry(f.meeting_record_id.as_str())
            .or_default();
        *index += 1;
        let (dir, path) = if held.contains(f.meeting_record_id.as_str()) {
            (f.dir.clone(), f.path.clone())
        } else {
            let dir = layout.meeting_dir(&fields);
            let path = layout.file_path(&dir, &fields, f.record_file_id.as_str(), *index);
            (dir, path)
        };
        dirs.insert(f.meeting_record_id.to_string(), (f.dir.clone(), dir));
        new_video.insert(f.record_file_id.as_str(), (f.path.clone(), path));
    }
    (dirs, new_video)
}

/// `(record_file_id, old path, new path)` of every file whose path changes: a video to
/// its new path, an artifact beside its video's, its suffix kept.
fn moves(
    files: &[LaidOutFile],
    new_video: &HashMap<&str, OldNew>,
) -> Vec<(RecordFileId, String, String)> {
    let mut moves = Vec::new();
    for f in files {
        let new_path = match (&f.kind, &f.parent_file_id) {
            (FileKind::Video, _) => new_video[f.record_file_id.as_str()].1.clone(),
            (_, Some(parent)) => {
                let Some((old_video, new_video)) = new_video.get(parent.as_str()) else {
                    continue;
                };
                let old_stem = old_video.strip_suffix(".mp4").unwrap_or(old_video);
                let new_stem = new_video.strip_suffix(".mp4").unwrap_or(new_video);
                match f.path.strip_prefix(old_stem) {
                    Some(suffix) => format!("{new_stem}{suffix}"),
                    None => continue,
                }
            }
            (_, None) => continue,
        };
        if new_path != f.path {
            moves.push((f.record_file_id.clone(), f.path.clone(), new_path));
        }
    }
    moves
}

/// A move must never land on another file: two new paths alike (names that sanitise
/// alike), or a new path that another file holds now.
fn refuse_collisions(
    files: &[LaidOutFile],
    moves: &[(RecordFileId, String, String)],
) -> Result<(), AppError> {
    let staying: HashSet<&str> = {
        let moving: HashSet<&str> = moves.iter().map(|m| m.0.as_str()).collect();
        files
            .iter()
            .filter(|f| !moving.contains(f.record_file_id.as_str()))
            .map(|f| f.path.as_str())
            .collect()
    };
    let moving_from: HashSet<&str> = moves.iter().map(|m| m.1.as_str()).collect();
    let mut targets = HashSet::new();
    for (_, _, new_path) in moves {
        if !targets.insert(new_path.as_str())
            || staying.contains(new_path.as_str())
            || moving_from.contains(new_path.as_str())
        {
            return Err(AppError::RelayoutCollision(new_path.clone()));
        }
    }
    Ok(())
}

impl App {
    /// `relayout [--dry-run]`: moves every file to its path under the configured layout
    /// (see the module), or only says what would move.
    pub async fn relayout(&self, dry_run: bool) -> Result<RelayoutReport, AppError> {
        let archive = self.archive()?;
        self.check_account(archive.as_ref()).await?;
        let layout = &self.config.storage.layout;
        let to = layout.template().to_string();
        let from = self.store.archive_layout(&to).await?;
        let in_progress = self.store.relayout_target().await?;
        if let Some(target) = &in_progress
            && *target != to
        {
            return Err(AppError::RelayoutInProgress {
                target: target.clone(),
                configured: to,
            });
        }
        let mut report = RelayoutReport {
            from: from.clone(),
            to: to.clone(),
            dry_run,
            moves: Vec::new(),
            held: Vec::new(),
        };
        if from == to {
            return Ok(report);
        }
        let held: HashSet<String> = self.store.held_meetings().await?.into_iter().collect();
        let files = self.store.laid_out_files().await?;
        report.held = files
            .iter()
            .filter(|f| held.contains(f.meeting_record_id.as_str()))
            .map(|f| f.path.clone())
            .collect();
        let plan = plan(layout, &files, &held)?;
        if dry_run {
            report.moves = match in_progress {
                None => plan
                    .moves
                    .into_iter()
                    .map(|(_, old, new)| (old, new))
                    .collect(),
                Some(_) => (self.store.pending_moves().await?)
                    .into_iter()
                    .map(|m| (m.path, m.new_path))
                    .collect(),
            };
            return Ok(report);
        }
        if in_progress.is_none() {
            let moves: Vec<(RecordFileId, String)> = plan
                .moves
                .iter()
                .map(|(id, _, new)| (id.clone(), new.clone()))
                .collect();
            self.store.plan_relayout(&to, &moves).await?;
        }
        for m in self.store.pending_moves().await? {
            archive
                .relocate(&m.path, &m.new_path)
                .await
                .map_err(AppError::Archive)?;
            self.store
                .commit_move(&m.record_file_id, &m.new_path)
                .await?;
            tracing::info!(from = %m.path, to = %m.new_path, "moved");
            report.moves.push((m.path, m.new_path));
        }
        for dir in &plan.old_dirs {
            archive
                .remove(&format!("{dir}/{}", crate::verify::classify::MEETING_JSON))
                .await
                .map_err(AppError::Archive)?;
        }
        self.store.finish_relayout(&plan.dirs).await?;
        self.write_marker(archive.as_ref(), &to).await?;
        crate::archive::meeting_json::rewrite_stale(&self.store, archive.as_ref()).await?;
        crate::audit::write_trail_or_warn(&self.store, archive.as_ref()).await;
        Ok(report)
    }
}
