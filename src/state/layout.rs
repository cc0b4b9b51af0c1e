//! The `storage.layout` an archive was made with (`migrations/0011_layout.sql`).

use super::{Db, DbError};
use crate::time::UnixMs;

impl Db {
    /// The template recorded for this archive, recording `template` if none is yet (a new
    /// archive): the archive's paths were, and will be, rendered with what this returns.
    pub async fn archive_layout(&self, template: &str) -> Result<String, DbError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO archive_layout (id, template, recorded_at) VALUES (1, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(template)
        .bind(UnixMs::now())
        .execute(&mut *tx)
        .await?;
        let recorded = sqlx::query_scalar("SELECT template FROM archive_layout WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use crate::state::test_support::temp_store;

    #[tokio::test]
    async fn the_first_template_is_kept() {
        let (store, _dir) = temp_store().await;
        assert_eq!(
            store
                .archive_layout("{userid}/{record_file_id}")
                .await
                .unwrap(),
            "{userid}/{record_file_id}"
        );
        assert_eq!(
            store.archive_layout("{record_file_id}").await.unwrap(),
            "{userid}/{record_file_id}"
        );
    }
}
