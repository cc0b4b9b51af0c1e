-- `status` counts the files adopted (with and without a recorded hash) and reindexed: few
-- rows of a large archive, so partial indexes hold exactly them and the counts walk those,
-- never the whole `files` table (issue #21: status costs the same at 100k files).
CREATE INDEX files_adopted ON files (adopted_at, adopted_without_record) WHERE adopted_at IS NOT NULL;
CREATE INDEX files_reindexed ON files (reindexed_at) WHERE reindexed_at IS NOT NULL;
