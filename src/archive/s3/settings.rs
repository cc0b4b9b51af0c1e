//! What the S3 backend needs to know: the bucket, S3's own limits, the credentials. The
//! configuration (`config::s3`) reads and validates these from the `[storage.s3]` table.

use reqwest::Url;
use std::time::Duration;
use wemeet_api::Secret;

/// S3's own limits: every part but the last is at least 5 MiB, a part is at most 5 GiB,
/// an upload has at most 10,000 parts.
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const S3_MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const S3_MAX_PARTS: u64 = 10_000;

/// S3 copies an object in one request only up to 5 GiB; the metadata of a larger object
/// cannot be replaced after its upload (see [`super::S3Bucket::set_sha256`]).
pub const MAX_COPY_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// An S3-compatible bucket (AWS S3, MinIO, Tencent COS, Ceph, ...).
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `None`: AWS S3 itself, at the endpoint of `region`.
    pub endpoint: Option<Url>,
    pub region: String,
    /// Prepended to every key, without leading or trailing `/`; empty for the bucket root.
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    pub allow_http: bool,
    /// Bytes per part of a multipart upload (a file's own part size may be larger: see
    /// `part_size_for`). Memory per transfer is `part_size × max_parts_in_flight`.
    pub part_size: u64,
    /// Parts of one transfer buffered or uploading at once.
    pub max_parts_in_flight: usize,
    /// Send a SHA-256 checksum with every part, for the bucket to check (some older
    /// S3-compatible servers reject the `x-amz-checksum-*` headers).
    pub part_checksums: bool,
    /// Longest a single request to the bucket may take (a part upload included).
    pub timeout: Duration,
    pub credentials: S3Credentials,
    /// `[retention] mode`: every object is put under S3 Object Lock retention; `None`:
    /// the bucket's own rules only.
    pub object_lock: Option<ObjectLockPolicy>,
}

/// How the archive's objects are locked (`[retention] mode` and `keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLockPolicy {
    pub mode: super::LockMode,
    /// A recording's objects are retained until its meeting's start + `keep`; the
    /// program's own objects (`meeting.json`, audit segments, holds) until their write
    /// + `keep`.
    pub keep: Duration,
}

/// All three are secrets to the logs (even the key id: it names an account).
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

const MIB: u64 = 1024 * 1024;

/// The part size for a file of `size` bytes: the configured one, or (for a file that
/// would need more than S3's 10,000 parts) the smallest whole number of MiB that fits;
/// `None` if even 5 GiB parts are not enough.
pub fn part_size_for(size: u64, configured: u64) -> Option<u64> {
    let needed = size.div_ceil(S3_MAX_PARTS).div_ceil(MIB) * MIB;
    Some(configured.max(needed)).filter(|&p| p <= S3_MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_only_when_10000_parts_are_not_enough() {
        let configured = 64 * MIB;
        assert_eq!(part_size_for(3 * MIB, configured), Some(configured));
        assert_eq!(
            part_size_for(10_000 * configured, configured),
            Some(configured)
        );
        let big = 10_000 * configured + 1;
        let grown = part_size_for(big, configured).unwrap();
        assert_eq!(grown, configured + MIB);
        assert!(big.div_ceil(grown) <= S3_MAX_PARTS);
        assert!(part_size_for(u64::MAX / 2, configured).is_none());
    }
}
