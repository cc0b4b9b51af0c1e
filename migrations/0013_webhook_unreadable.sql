-- A signed event that cannot be read (its JSON not of a shape this program understands,
-- or not opening with the configured EncodingAESKey) is still the platform's: it is
-- acknowledged with a 200 (a 4xx makes the platform retry and may disable the
-- subscription), kept here with its raw body for diagnosis, and worked by listing the live
-- window at once, so that the recording it announced is found anyway. `unreadable` says
-- why it could not be read; NULL for every event that could. Such a row has no files.
ALTER TABLE webhook_events ADD COLUMN unreadable TEXT;
