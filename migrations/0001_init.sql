-- One row per meeting recording (meeting_record_id), as last listed.
CREATE TABLE meetings (
    meeting_record_id TEXT PRIMARY KEY NOT NULL,
    meeting_id        TEXT NOT NULL,
    meeting_code      TEXT NOT NULL,
    userid            TEXT NOT NULL,
    subject           TEXT NOT NULL,
    media_start_time  INTEGER NOT NULL,          -- ms since the epoch
    state             INTEGER NOT NULL,          -- 1 recording, 2 transcoding, 3 transcoded
    record_type       INTEGER NOT NULL,
    dir               TEXT NOT NULL,             -- folder relative to the archive root
    first_seen_at     INTEGER NOT NULL,          -- ms
    last_seen_at      INTEGER NOT NULL           -- ms
) STRICT;

CREATE INDEX meetings_state ON meetings (state);

-- One row per recording file; the life of a file is its `status`:
-- queued -> transferring -> archived, or failed (attempts exhausted), or unavailable
-- (the API gave no download address: sharing or download not allowed).
CREATE TABLE files (
    record_file_id     TEXT PRIMARY KEY NOT NULL,
    meeting_record_id  TEXT NOT NULL REFERENCES meetings (meeting_record_id),
    record_start_time  INTEGER NOT NULL,
    record_end_time    INTEGER NOT NULL,
    record_size        INTEGER NOT NULL,
    path               TEXT NOT NULL,            -- relative to the archive root
    status             TEXT NOT NULL CHECK (status IN
                         ('queued', 'transferring', 'archived', 'failed', 'unavailable')),
    download_address   TEXT,                     -- secret (signed token): never logged
    address_issued_at  INTEGER,                  -- ms, when we received the address
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    -- checkpoint of a transfer in progress: durable bytes, the server's ETag, hash state
    bytes_done         INTEGER NOT NULL DEFAULT 0,
    etag               TEXT,
    hash_state         BLOB,
    -- the result
    sha256             TEXT,
    archived_size      INTEGER,
    archived_at        INTEGER,
    verified_at        INTEGER,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX files_status ON files (status, address_issued_at);
CREATE INDEX files_meeting ON files (meeting_record_id);

-- Every listing call we sent (or tried to send), for the sliding-window rate budget:
-- persisted so that a restarted process knows what the last minute already spent.
CREATE TABLE api_calls (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    outcome  TEXT
) STRICT;

CREATE INDEX api_calls_at ON api_calls (at_ms);

-- Listing windows that were listed completely (every page), and when.
CREATE TABLE windows (
    start_time  INTEGER NOT NULL,                -- UNIX seconds
    end_time    INTEGER NOT NULL,
    listed_at   INTEGER NOT NULL,                -- ms
    pages       INTEGER NOT NULL,
    meetings    INTEGER NOT NULL,
    PRIMARY KEY (start_time, end_time)
) STRICT;
