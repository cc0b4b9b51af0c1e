-- Expiry (#23): when `expire` removed a recording from the archive, past `retention.keep`.
-- Its files keep their rows (and hashes) for the record; `verify` no longer expects them.
ALTER TABLE meetings ADD COLUMN expired_at INTEGER;
