-- S3 multipart uploads in progress: one per file being streamed into a bucket. Kept so that
-- a restarted process continues the same upload from its next part instead of uploading
-- (and downloading) the whole recording again. The row goes when the object is complete,
-- or when the upload is aborted (the file failed for good, or the bucket forgot it).
CREATE TABLE uploads (
    record_file_id  TEXT PRIMARY KEY NOT NULL REFERENCES files (record_file_id),
    upload_id       TEXT NOT NULL,               -- the bucket's UploadId
    object_key      TEXT NOT NULL,               -- the key it was created for (prefix included)
    part_size       INTEGER NOT NULL,            -- bytes; every part but the last has this size
    created_at      INTEGER NOT NULL,            -- ms
    -- ms; set once CompleteMultipartUpload succeeded: the upload id is spent, and what is
    -- left (metadata, HEAD, `archived`) must not send the recording again
    completed_at    INTEGER
) STRICT;

-- Parts the bucket acknowledged, each recorded right after its upload returned. Part i holds
-- the source bytes [start_offset, end_offset) = [i * part_size, ...); `hash_state` is the
-- SHA-256 state after end_offset, so a resume from the end of the first contiguous run of
-- parts needs neither the earlier bytes nor a re-download.
CREATE TABLE upload_parts (
    record_file_id  TEXT NOT NULL REFERENCES uploads (record_file_id) ON DELETE CASCADE,
    part_index      INTEGER NOT NULL,            -- 0-based (S3's PartNumber is part_index + 1)
    part_id         TEXT NOT NULL,               -- object_store's PartId (ETag, checksum)
    start_offset    INTEGER NOT NULL,
    end_offset      INTEGER NOT NULL,
    hash_state      BLOB NOT NULL,
    uploaded_at     INTEGER NOT NULL,            -- ms
    PRIMARY KEY (record_file_id, part_index)
) STRICT;
