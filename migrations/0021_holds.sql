-- Legal holds (#23): a held recording is never expired, pruned, moved or rewritten.
-- A hold names one recording, one creator, or a range of start times (inclusive, ms).
CREATE TABLE holds (
    id                INTEGER PRIMARY KEY NOT NULL,
    meeting_record_id TEXT,
    userid            TEXT,
    since_ms          INTEGER,
    until_ms          INTEGER,
    reason            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    released_at       INTEGER,
    CHECK ((meeting_record_id IS NOT NULL) + (userid IS NOT NULL)
           + (since_ms IS NOT NULL AND until_ms IS NOT NULL) = 1)
) STRICT;
