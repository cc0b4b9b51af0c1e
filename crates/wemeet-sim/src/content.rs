//! The bytes of a simulated recording, computable at any offset.
//!
//! Files can be multi-GB and are served with Range requests, so the content is never held
//! in memory: byte `p` of a file is byte `p % 8` of the 64-bit word `p / 8`, and word `i`
//! is `mix64(key + i * GAMMA)` (SplitMix64 evaluated at counter `i`). Any slice can thus
//! be produced directly, with no state carried from the previous one, and a resumed
//! download sees exactly the bytes a full one would have.
//!
//! The key depends on (seed, record_file_id, generation): bumping a file's generation
//! (the `change_etag_after_first` fault) gives it new bytes, a new ETag and a new SHA-256
//! while keeping its size.
//!
//! A `txt` transcript is the exception: its bytes are text ([`crate::transcript`]), a few
//! KiB held whole, so that what it says can be searched.

use crate::prng::{GAMMA, hash_str, mix64};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Size of the chunks a body is streamed in and hashed by.
pub const CHUNK: usize = 64 * 1024;

/// One version of one file's content.
#[derive(Debug, Clone)]
pub struct Content {
    key: u64,
    size: u64,
    /// The whole file, for a text transcript; `None` for pseudo-random bytes.
    text: Option<Bytes>,
}

impl Content {
    pub fn new(seed: u64, record_file_id: &str, generation: u64, size: u64) -> Self {
        let key =
            mix64(seed ^ mix64(hash_str(record_file_id))) ^ mix64(generation.wrapping_add(GAMMA));
        Self {
            key,
            size,
            text: None,
        }
    }

    /// The text transcript `record_file_id` (the host's key of the artifact).
    pub fn text(seed: u64, record_file_id: &str, generation: u64, size: u64) -> Self {
        let text = crate::transcript::text(seed, record_file_id, generation, size);
        Self {
            text: Some(Bytes::from(text)),
            ..Self::new(seed, record_file_id, generation, size)
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// A strong validator that changes whenever the bytes do (new generation).
    pub fn etag(&self) -> String {
        format!(
            "\"{:016x}{:016x}\"",
            mix64(self.key ^ 0x00E7_A600),
            mix64(self.key.rotate_left(17))
        )
    }

    fn word(&self, index: u64) -> u64 {
        mix64(self.key.wrapping_add(index.wrapping_mul(GAMMA)))
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        if let Some(text) = &self.text {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(text.len());
            let end = start.saturating_add(buf.len()).min(text.len());
            buf[..end - start].copy_from_slice(&text[start..end]);
            return;
        }
        let mut pos = offset;
        let mut done = 0;
        while done < buf.len() {
            let word = self.word(pos / 8).to_le_bytes();
            let skip = (pos % 8) as usize;
            let n = (8 - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
            done += n;
            pos += n as u64;
        }
    }

    /// The bytes at `offset..offset + len` as one buffer.
    pub fn slice(&self, offset: u64, len: usize) -> Bytes {
        let mut buf = vec![0; len];
        self.fill(offset, &mut buf);
        Bytes::from(buf)
    }

    /// Lowercase hex SHA-256 of the whole file, hashed chunk by chunk in flat memory.
    /// Slow for big files: callers cache it and keep it off the async threads.
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        let mut buf = vec![0; CHUNK];
        let mut pos = 0;
        while pos < self.size {
            let n = (self.size - pos).min(CHUNK as u64) as usize;
            self.fill(pos, &mut buf[..n]);
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(c: &Content) -> Vec<u8> {
        c.slice(0, c.size() as usize).to_vec()
    }

    #[test]
    fn same_offset_gives_same_bytes() {
        let a = Content::new(42, "1234567890123456789", 0, 1000);
        let b = Content::new(42, "1234567890123456789", 0, 1000);
        assert_eq!(a.slice(333, 100), b.slice(333, 100));
        assert_eq!(a.etag(), b.etag());
    }

    #[test]
    fn any_slice_matches_the_full_content() {
        let c = Content::new(1, "f", 0, 3 * CHUNK as u64 + 13);
        let whole = full(&c);
        for (off, len) in [
            (0, 1),
            (1, 7),
            (7, 9),
            (CHUNK - 3, 10),
            (CHUNK, CHUNK),
            (2 * CHUNK + 5, CHUNK + 8),
        ] {
            assert_eq!(
                &c.slice(off as u64, len)[..],
                &whole[off..off + len],
                "{off}+{len}"
            );
        }
    }

    #[test]
    fn chunked_hash_equals_hash_of_whole() {
        let c = Content::new(9, "x", 0, 2 * CHUNK as u64 + 100);
        assert_eq!(c.sha256_hex(), hex::encode(Sha256::digest(full(&c))));
    }

    #[test]
    fn generation_seed_and_id_change_the_bytes_and_etag() {
        let base = Content::new(42, "a", 0, 64);
        for other in [
            Content::new(42, "a", 1, 64),
            Content::new(43, "a", 0, 64),
            Content::new(42, "b", 0, 64),
        ] {
            assert_ne!(full(&base), full(&other));
            assert_ne!(base.etag(), other.etag());
        }
    }
}
