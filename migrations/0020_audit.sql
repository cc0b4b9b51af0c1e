-- The audit trail (#23): one row per change to what the archive holds or promises,
-- hash-chained: `hash` is the SHA-256 of the record's canonical JSON without `hash`, and
-- `prev_hash` the hash of the record before (64 zeros for the first). Append-only: no
-- statement of the program updates or deletes a row.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY NOT NULL,   -- 1, 2, 3... without gaps
    at_ms             INTEGER NOT NULL,
    at                TEXT NOT NULL,                  -- RFC 3339 as hashed
    action            TEXT NOT NULL,
    meeting_record_id TEXT,
    record_file_id    TEXT,
    details           TEXT NOT NULL,                  -- canonical JSON as hashed
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at_ms);

-- The copies of the trail in the archive: each segment holds records first_seq..last_seq
-- as JSON lines. A segment is claimed (written_at NULL) before it is written, so two
-- processes never write overlapping ones; its content is a function of the rows, so
-- writing it again after a crash gives the same bytes.
CREATE TABLE audit_segments (
    first_seq   INTEGER PRIMARY KEY NOT NULL,
    last_seq    INTEGER NOT NULL,
    path        TEXT NOT NULL,                        -- relative to the archive root
    written_at  INTEGER                               -- ms; NULL: claimed, not written yet
) STRICT;

-- The outcome of the last `audit verify`, for `status` and `/metrics`.
CREATE TABLE audit_checks (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms       INTEGER NOT NULL,
    passed      INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    problem     TEXT
) STRICT;
