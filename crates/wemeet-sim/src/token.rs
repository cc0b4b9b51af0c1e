//! Download tokens, as the COS host's signed query strings.
//!
//! A token is `base64url(expiry_ms ‖ nonce ‖ HMAC(server key, record_file_id ‖ expiry ‖ nonce)[..16])`.
//! The server key is random per simulator run, so tokens are unguessable and a token of one
//! file never opens another; the random nonce makes every issued address distinct, which
//! lets tests grep logs for each of them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;

const TAG_LEN: usize = 16;
const PAYLOAD_LEN: usize = 16;

/// What a presented token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Expired,
    /// Missing, malformed, forged, or issued for another file.
    Invalid,
}

pub struct TokenSigner {
    key: [u8; 32],
}

impl TokenSigner {
    pub fn random() -> Self {
        Self {
            key: rand::rng().random(),
        }
    }

    fn mac(&self, record_file_id: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(record_file_id.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// A fresh token for `record_file_id` that expires at `expires_ms` (epoch ms).
    pub fn issue(&self, record_file_id: &str, expires_ms: i64) -> String {
        let nonce: u64 = rand::rng().random();
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
        bytes.extend_from_slice(&expires_ms.to_be_bytes());
        bytes.extend_from_slice(&nonce.to_be_bytes());
        let tag = self.mac(record_file_id, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn check(&self, record_file_id: &str, token: &str, now_ms: i64) -> TokenCheck {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
            return TokenCheck::Invalid;
        };
        if bytes.len() != PAYLOAD_LEN + TAG_LEN {
            return TokenCheck::Invalid;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        if self
            .mac(record_file_id, payload)
            .verify_truncated_left(tag)
            .is_err()
        {
            return TokenCheck::Invalid;
        }
        let mut expiry = [0; 8];
        expiry.copy_from_slice(&payload[..8]);
        if i64::from_be_bytes(expiry) <= now_ms {
            TokenCheck::Expired
        } else {
            TokenCheck::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_until_expiry_and_bound_to_its_file() {
        let s = TokenSigner::random();
        let t = s.issue("111", 10_000);
        assert_eq!(s.check("111", &t, 9_999), TokenCheck::Valid);
        assert_eq!(s.check("111", &t, 10_000), TokenCheck::Expired);
        assert_eq!(s.check("222", &t, 0), TokenCheck::Invalid);
        assert_eq!(s.check("111", "garbage!", 0), TokenCheck::Invalid);
        assert_ne!(t, s.issue("111", 10_000), "every issue is distinct");
    }

    #[test]
    fn another_server_key_rejects() {
        let t = TokenSigner::random().issue("1", i64::MAX);
        assert_eq!(TokenSigner::random().check("1", &t, 0), TokenCheck::Invalid);
    }
}
