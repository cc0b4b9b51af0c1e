-- What the service publishes (for `status`, /metrics and /healthz), one typed column each.
-- It was a key/value table of strings, parsed on every read; a typo in a key compiled.
CREATE TABLE daemon_facts (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    next_poll_at            INTEGER,            -- ms: when the next live poll is due
    last_poll_ok_at         INTEGER,            -- ms: the last live poll that listed every page
    backfill_windows_done   INTEGER,            -- `run --since`: windows listed so far ...
    backfill_windows_total  INTEGER,            -- ... out of how many
    scrub_finished_at       INTEGER             -- ms: the last periodic scrub ([verify] interval)
) STRICT;

INSERT INTO daemon_facts (id, next_poll_at, last_poll_ok_at, backfill_windows_done,
                          backfill_windows_total, scrub_finished_at)
SELECT 1,
       (SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'next_poll_ms'),
       (SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'last_poll_ok_ms'),
       (SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'backfill_windows_done'),
       (SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'backfill_windows_total'),
       (SELECT CAST(value AS INTEGER) FROM daemon_state WHERE key = 'scrub_last_ms');

-- The findings of the last periodic scrub, by verdict (see `verify`).
CREATE TABLE scrub_findings (
    status  TEXT PRIMARY KEY NOT NULL,
    files   INTEGER NOT NULL
) STRICT;

INSERT INTO scrub_findings (status, files)
SELECT key, value FROM json_each((SELECT value FROM daemon_state WHERE key = 'scrub_summary'))
WHERE key IN ('ok', 'missing', 'size_mismatch', 'hash_mismatch', 'unreadable', 'extra',
              'partial', 'pending', 'failed');

DROP TABLE daemon_state;
