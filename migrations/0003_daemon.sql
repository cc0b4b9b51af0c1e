-- Why each API call was made (refresh, live, backfill): `status` and the metrics show it,
-- and the priority tests read it.
ALTER TABLE api_calls ADD COLUMN purpose TEXT;

-- Small facts the daemon publishes for `status` (next poll time, backfill plan, ...).
CREATE TABLE daemon_state (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
) STRICT;
