-- Freeing the cloud (`prune`): when the API confirmed that a file is deleted from Tencent
-- Meeting's cloud (HTTP 200, or 4051 "already deleted" for a deletion whose answer was
-- lost), in ms; NULL while the cloud still holds it. Set in the transaction that records
-- the answer. The file stays `archived`: its copy is what is left, and `verify` checks it.
ALTER TABLE files ADD COLUMN deleted_in_cloud_at INTEGER;

-- When the service's last prune round finished ([prune] interval, counted across restarts),
-- and how many archived copies any run refused to delete the cloud's file for because they
-- were not intact (the metrics' wemeet_prune_refused_total).
ALTER TABLE daemon_facts ADD COLUMN prune_finished_at INTEGER;
ALTER TABLE daemon_facts ADD COLUMN prune_refused INTEGER NOT NULL DEFAULT 0;
