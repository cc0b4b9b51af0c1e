//! Request ids: the `X-TC-Trace` of the API's answers, COS's `RequestId` and the
//! `trace_id` of webhook events.

use rand::RngExt;

/// A random request id: 32 lowercase hex digits.
pub fn trace_id() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}
