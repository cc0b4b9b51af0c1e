-- Artifacts of a recording (its audio track, its transcripts) are rows of `files` like the
-- video: the same life (queued, transferring, archived, failed, unavailable), checkpoints,
-- uploads and verification. Their key is derived from their video's record_file_id
-- (`{id}/audio`, `{id}/transcript/{type}`, `{id}/transcript/{type}/2`), `parent_file_id`
-- names the video. The API announces no size for them: `size_known` is 0 until the first
-- response's Content-Length is recorded as `record_size`, and every resume is held to it.
ALTER TABLE files ADD COLUMN kind TEXT NOT NULL DEFAULT 'video'
    CHECK (kind IN ('video', 'audio', 'transcript'));
ALTER TABLE files ADD COLUMN parent_file_id TEXT;
ALTER TABLE files ADD COLUMN size_known INTEGER NOT NULL DEFAULT 1;
CREATE INDEX files_parent ON files (parent_file_id);

-- When /v1/addresses was last asked for the meeting's artifacts (NULL: never), and when the
-- wait for its transcripts ended without them (`download.artifact_wait` after the
-- recording ended; at once for an old one).
ALTER TABLE meetings ADD COLUMN artifacts_checked_at INTEGER;
ALTER TABLE meetings ADD COLUMN transcript_wait_ended_at INTEGER;
