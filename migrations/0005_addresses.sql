-- Two endpoints, two budgets: every call is logged with its endpoint (`records` is the
-- listing, `addresses` is GET /v1/addresses), and each budget counts only its own.
ALTER TABLE api_calls ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'records';
CREATE INDEX api_calls_endpoint_at ON api_calls (endpoint, at_ms);

-- `unavailable` used to mean "the listing gave no download address" (sharing off or
-- download not allowed). Addresses now come from GET /v1/addresses, which needs no sharing:
-- those files are queued again, and `unavailable` is left for what that endpoint refuses.
UPDATE files SET status = 'queued', last_error = NULL WHERE status = 'unavailable';
