-- Events Tencent Meeting pushed to the webhook (`[webhook]`), one row per trace_id: the
-- platform delivers at least once, so a trace_id seen before is a duplicate and changes
-- nothing but `deliveries`. A row is written (and committed) before the HTTP 200 goes out,
-- so an event acknowledged before a crash is still worked after it.
CREATE TABLE webhook_events (
    trace_id          TEXT PRIMARY KEY NOT NULL,
    event             TEXT NOT NULL,             -- recording.completed, recording.deleted, ...
    received_at       INTEGER NOT NULL,          -- ms: the first delivery
    last_received_at  INTEGER NOT NULL,          -- ms: the latest delivery
    deliveries        INTEGER NOT NULL DEFAULT 1,
    -- pending: to work (at next_attempt_at); done: its files are listed (or marked deleted);
    -- abandoned: its files never showed up in the listing, left to the polls;
    -- ignored: an event this program does not act on (smart.transcripts, ...)
    status            TEXT NOT NULL CHECK (status IN ('pending', 'done', 'abandoned', 'ignored')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,                   -- ms
    last_error        TEXT,
    worked_at         INTEGER,                   -- ms: when it became done or abandoned
    body              TEXT NOT NULL              -- the event's JSON, as opened
) STRICT;

CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_received ON webhook_events (received_at);

-- The files each event names, with the meeting's times from the event: a recording is
-- found by listing a narrow window around them (the event carries no meeting_record_id).
-- No foreign key to `files`: an event may name files not listed yet (or never).
CREATE TABLE webhook_event_files (
    trace_id        TEXT NOT NULL REFERENCES webhook_events (trace_id),
    record_file_id  TEXT NOT NULL,
    meeting_id      TEXT NOT NULL,
    start_time      INTEGER NOT NULL,            -- UNIX seconds, from meeting_info (0: absent)
    end_time        INTEGER NOT NULL,            -- UNIX seconds, from meeting_info (0: absent)
    operate_time    INTEGER NOT NULL,            -- ms
    PRIMARY KEY (trace_id, record_file_id)
) STRICT;

CREATE INDEX webhook_event_files_file ON webhook_event_files (record_file_id);

-- A `recording.deleted` event is recorded in `files.deleted_in_cloud_at` (0008), as a
-- deletion by `prune` is: the archived copies stay, the queue forgets what can no longer
-- be downloaded.
