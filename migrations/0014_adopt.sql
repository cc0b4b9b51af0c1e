-- Adopting an intact copy already at a file's destination (a database rebuilt over an
-- existing archive): when it was adopted instead of downloaded, and whether its SHA-256
-- was only computed (no `meeting.json` recorded one to compare with: `status` counts
-- those). `reindexed_at`: the row was rebuilt by `reindex` from its folder's
-- `meeting.json`, not listed.
ALTER TABLE files ADD COLUMN adopted_at INTEGER;
ALTER TABLE files ADD COLUMN adopted_without_record INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN reindexed_at INTEGER;
