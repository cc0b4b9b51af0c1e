//! Download addresses just in time, from `GET /v1/addresses?meeting_record_id=`.
//!
//! The listing carries an address only where the owner turned sharing on and allowed
//! downloads, and every address dies 6 hours after it was issued. So a transfer takes its
//! address right before it starts: the listing's if it will outlive the transfer at the
//! observed throughput, else one `/v1/addresses` call for its meeting, which serves every
//! file of that meeting still to download (its siblings are claimed next, see
//! `Store::claim_next`). The listing is never re-read to refresh an address.

use crate::client::{ApiClient, CallError};
use crate::state::{FileRow, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(transparent)]
    Api(#[from] CallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Fetches addresses for workers, one call per meeting however many workers ask at once.
pub(super) struct Addresses {
    api: Arc<ApiClient>,
    store: Store,
    /// One lock per meeting being fetched: workers waiting for the same meeting share the
    /// call of the first (entries go when the last waiter leaves).
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Addresses {
    pub(super) fn new(api: Arc<ApiClient>, store: Store) -> Self {
        Self {
            api,
            store,
            in_flight: Mutex::default(),
        }
    }

    /// Makes sure `row`'s meeting has addresses issued after `row.address_issued_at` (the
    /// one the caller found too old, or none): asks `/v1/addresses` unless another worker
    /// did meanwhile. Returns the file as stored afterwards; its `download_address` is
    /// `None` when the API gave none for it.
    pub(super) async fn refresh(&self, row: &FileRow) -> Result<Option<FileRow>, AddressError> {
        let lock = self.lock_of(&row.meeting_record_id);
        let result = async {
            let _one_call = lock.lock().await;
            let current = self.store.file(&row.record_file_id).await?;
            let refreshed = current.as_ref().is_some_and(|f| {
                f.download_address.is_some() && f.address_issued_at > row.address_issued_at
            });
            if refreshed {
                return Ok(current);
            }
            self.fetch(&row.meeting_record_id).await?;
            Ok(self.store.file(&row.record_file_id).await?)
        }
        .await;
        self.release(&row.meeting_record_id, lock);
        result
    }

    /// One `/v1/addresses` call (every page of it) for a meeting; stores what it gives.
    async fn fetch(&self, meeting_record_id: &str) -> Result<(), AddressError> {
        let answer = self.api.record_addresses(meeting_record_id).await?;
        let given: Vec<(String, String)> = answer
            .reply
            .into_iter()
            .filter_map(|f| {
                let address = f.download_address?.expose().to_string();
                Some((f.record_file_id, address))
            })
            .collect();
        tracing::debug!(
            meeting = meeting_record_id,
            files = given.len(),
            "download addresses fetched"
        );
        // Issued no earlier than the call was sent: never overestimate their life.
        self.store.set_addresses(&given, answer.sent_at).await?;
        Ok(())
    }

    fn lock_of(&self, meeting_record_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(meeting_record_id.to_string()).or_default())
    }

    fn release(&self, meeting_record_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        drop(lock);
        // Only the map's own reference left: nobody waits for this meeting.
        if map
            .get(meeting_record_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(meeting_record_id);
        }
    }
}
