-- The `storage.layout` template the archive's paths were rendered with. A process whose
-- configured template differs refuses to start: files already listed keep their paths,
-- so a silent change would leave one archive in two layouts. An archive made before
-- templates existed was laid out with what is now the default template.
CREATE TABLE archive_layout (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    template     TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL                -- ms
) STRICT;

INSERT INTO archive_layout (id, template, recorded_at)
SELECT 1, '{start:%Y}/{start:%m}/{start:%d}/{meeting_code}-{subject}/{record_file_id}',
       CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE EXISTS (SELECT 1 FROM files);
