-- Every statement on the hot path seeks an index, so that archiving the next recording,
-- answering `status` or running a live poll costs the same with 100 or 100,000 rows
-- (issue #21; `src/state/plans.rs` checks each statement's plan).

-- The claim's order needs the meeting's start: a copy on the file, kept in step by the two
-- triggers below whoever inserts the file or changes the meeting, lets one partial index
-- hold exactly the queued files in the claim's order (`files.rs`, CLAIM_LOOK). Before,
-- each claim sorted every queued row across a join.
ALTER TABLE files ADD COLUMN media_start_time INTEGER NOT NULL DEFAULT 0;

UPDATE files SET media_start_time =
    (SELECT m.media_start_time FROM meetings m WHERE m.meeting_record_id = files.meeting_record_id);

CREATE TRIGGER files_media_start_time_on_insert AFTER INSERT ON files
BEGIN
    UPDATE files SET media_start_time =
        (SELECT m.media_start_time FROM meetings m WHERE m.meeting_record_id = NEW.meeting_record_id)
    WHERE record_file_id = NEW.record_file_id;
END;

CREATE TRIGGER meetings_media_start_time_to_files AFTER UPDATE OF media_start_time ON meetings
WHEN NEW.media_start_time IS NOT OLD.media_start_time
BEGIN
    UPDATE files SET media_start_time = NEW.media_start_time
    WHERE meeting_record_id = NEW.meeting_record_id;
END;

CREATE INDEX files_claim ON files (status, address_issued_at IS NULL, address_issued_at DESC,
                                   media_start_time, meeting_record_id, record_file_id)
    WHERE status = 'queued';

-- meeting.json: a folder's meetings, and the folders whose file is behind (by the time of
-- their last change, which says when a burst of changes is over).
CREATE INDEX meetings_dir ON meetings (dir, media_start_time, meeting_record_id);
CREATE INDEX meetings_json_dirty ON meetings (json_dirty_at, dir) WHERE json_dirty_at IS NOT NULL;

-- `status`: its counts read indexes only, never the table.
CREATE INDEX files_kind_status ON files (kind, status);
CREATE INDEX files_status_archived ON files (status, archived_size, verified_at);
CREATE INDEX files_deleted_in_cloud ON files (deleted_in_cloud_at, kind, archived_size)
    WHERE deleted_in_cloud_at IS NOT NULL;
CREATE INDEX meetings_artifacts_checked ON meetings (artifacts_checked_at)
    WHERE artifacts_checked_at IS NOT NULL;

-- `verify`: a range of meetings' start, and every path (a file on disk no row claims is
-- "extra").
CREATE INDEX files_media_start_time ON files (media_start_time);
CREATE INDEX files_path ON files (path, status);


-- An idle worker's look for a meeting whose artifacts were never looked for.
CREATE INDEX meetings_artifacts_unchecked ON meetings (state, media_start_time)
    WHERE state = 3 AND artifacts_checked_at IS NULL;

-- `prune`: its candidates, the oldest archived first, so a round reads as many as it takes.
CREATE INDEX files_prune ON files (kind, archived_at, record_file_id)
    WHERE status = 'archived' AND deleted_in_cloud_at IS NULL;
