-- When a file of the meeting was archived after its folder's meeting.json was last written
-- (NULL: up to date). A crash between the two leaves the mark, and the next run rewrites
-- that meeting.json (replacing any leftover meeting.json.tmp).
ALTER TABLE meetings ADD COLUMN json_dirty_at INTEGER;
