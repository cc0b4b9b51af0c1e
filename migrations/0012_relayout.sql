-- `relayout`: moving an archive to another `storage.layout`. The plan is recorded before
-- the first move (`target`, and one row per file whose path changes); each move is done,
-- then its file's new path committed with its row's removal, so a run killed at any point
-- is finished by the next: a move whose file is already at its new path is a no-op.
-- The template becomes `archive_layout.template` once every move is committed.
ALTER TABLE archive_layout ADD COLUMN target TEXT;

CREATE TABLE relayout_moves (
    record_file_id  TEXT PRIMARY KEY NOT NULL REFERENCES files (record_file_id),
    new_path        TEXT NOT NULL
) STRICT;
