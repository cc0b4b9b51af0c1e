-- The full-text index of what was said: the text of every archived `txt` transcript, in an
-- FTS5 table with the trigram tokenizer (Chinese needs no dictionary; Latin text matches
-- without regard to case). A query of three characters or more is a trigram MATCH; a
-- shorter one (预算, 面试) is a LIKE over the same stored text, which trigram cannot index.
CREATE VIRTUAL TABLE transcript_fts USING fts5 (body, tokenize = 'trigram');

-- Which transcript each row of `transcript_fts` holds (the same rowid), and the SHA-256 of
-- the bytes it was read from: a row counts only while its file is archived with that hash,
-- so a copy re-archived with other bytes is never searched by its old text, and the next
-- fill replaces it.
CREATE TABLE transcript_texts (
    id              INTEGER PRIMARY KEY,         -- rowid of transcript_fts
    record_file_id  TEXT NOT NULL UNIQUE,        -- the transcript's row of `files`
    sha256          TEXT NOT NULL,
    bytes           INTEGER NOT NULL,            -- size of the text indexed
    indexed_at      INTEGER NOT NULL             -- ms
) STRICT;
