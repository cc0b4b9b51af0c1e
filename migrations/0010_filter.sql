-- `[filter]`: a file the filter leaves out is `skipped`, with the rule that left it out in
-- `skip_rule` (e.g. "filter.min_size: 524288 B < 1MB"). The filter is evaluated again at
-- every start against these rows (nothing is listed again): a widened filter queues what
-- now matches, a narrowed one skips what is not archived yet. Archived files stay archived.
--
-- SQLite cannot change a CHECK constraint, so `files` is rebuilt. Its only child table is
-- `uploads` (and `upload_parts` under it): their rows are set aside and put back, so that
-- dropping the old `files` deletes no parent of a live row (foreign keys are on, and a
-- migration runs inside a transaction, where they cannot be turned off).
CREATE TEMP TABLE uploads_keep AS SELECT * FROM uploads;
CREATE TEMP TABLE upload_parts_keep AS SELECT * FROM upload_parts;
DELETE FROM upload_parts;
DELETE FROM uploads;

CREATE TABLE files_new (
    record_file_id     TEXT PRIMARY KEY NOT NULL,
    meeting_record_id  TEXT NOT NULL REFERENCES meetings (meeting_record_id),
    record_start_time  INTEGER NOT NULL,
    record_end_time    INTEGER NOT NULL,
    record_size        INTEGER NOT NULL,
    path               TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN
                         ('queued', 'transferring', 'archived', 'failed', 'unavailable',
                          'skipped')),
    download_address   TEXT,
    address_issued_at  INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    bytes_done         INTEGER NOT NULL DEFAULT 0,
    etag               TEXT,
    hash_state         BLOB,
    sha256             TEXT,
    archived_size      INTEGER,
    archived_at        INTEGER,
    verified_at        INTEGER,
    updated_at         INTEGER NOT NULL,
    kind               TEXT NOT NULL DEFAULT 'video'
                         CHECK (kind IN ('video', 'audio', 'transcript')),
    parent_file_id     TEXT,
    size_known         INTEGER NOT NULL DEFAULT 1,
    deleted_in_cloud_at INTEGER,
    skip_rule          TEXT                      -- set exactly when status = 'skipped'
) STRICT;

INSERT INTO files_new (record_file_id, meeting_record_id, record_start_time, record_end_time,
    record_size, path, status, download_address, address_issued_at, attempts, last_error,
    bytes_done, etag, hash_state, sha256, archived_size, archived_at, verified_at, updated_at,
    kind, parent_file_id, size_known, deleted_in_cloud_at)
SELECT record_file_id, meeting_record_id, record_start_time, record_end_time,
    record_size, path, status, download_address, address_issued_at, attempts, last_error,
    bytes_done, etag, hash_state, sha256, archived_size, archived_at, verified_at, updated_at,
    kind, parent_file_id, size_known, deleted_in_cloud_at
FROM files;

DROP TABLE files;
ALTER TABLE files_new RENAME TO files;

CREATE INDEX files_status ON files (status, address_issued_at);
CREATE INDEX files_meeting ON files (meeting_record_id);
CREATE INDEX files_parent ON files (parent_file_id);

INSERT INTO uploads SELECT * FROM temp.uploads_keep;
INSERT INTO upload_parts SELECT * FROM temp.upload_parts_keep;
DROP TABLE temp.uploads_keep;
DROP TABLE temp.upload_parts_keep;
