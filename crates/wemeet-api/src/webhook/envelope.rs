//! The payload's envelope: base64 of AES-256-CBC when an EncodingAESKey is set, plain base64
//! of the JSON when not.

use aes::Aes256;
use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use std::fmt;

/// The length of a console EncodingAESKey: 43 base64 characters, 32 bytes.
pub const ENCODING_AES_KEY_LEN: usize = 43;

/// Reads the base64 the platform and the console produce as leniently as the platforms'
/// own SDKs do (Node's `Buffer.from(.., 'base64')`, Python's `b64decode`): padding optional
/// and unused trailing bits ignored. A console key is 43 random characters of the base64
/// alphabet, so its last one usually carries 2 non-zero bits that a strict decoder refuses.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The AES-256 key of an EncodingAESKey. A secret: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodingAesKey([u8; 32]);

/// Why a text is not an EncodingAESKey.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an EncodingAESKey is {ENCODING_AES_KEY_LEN} characters; this one has {0}")]
    Length(usize),
    #[error("an EncodingAESKey is base64 (A-Z, a-z, 0-9, + and /); this one is not")]
    NotBase64,
}

/// Why a payload (`check_str` or `data`) cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not base64")]
    NotBase64,
    /// Not whole AES blocks, or a padding that is not PKCS#7: another key made it, or none.
    #[error("the payload does not decrypt with the EncodingAESKey")]
    Decrypt,
}

impl EncodingAesKey {
    /// Reads the 43 characters the console shows: the key is their base64 decoding (with
    /// the `=` the console leaves out).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let length = text.chars().count();
        if length != ENCODING_AES_KEY_LEN {
            return Err(KeyError::Length(length));
        }
        let bytes = LENIENT.decode(text).map_err(|_| KeyError::NotBase64)?;
        bytes.try_into().map(Self).map_err(|_| KeyError::NotBase64)
    }

    /// AES-256-CBC with the IV the platform uses: the key's first 16 bytes.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl fmt::Debug for EncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingAesKey([redacted])")
    }
}

/// The plaintext of a payload: decrypted with `key` when the subscription has an
/// EncodingAESKey, else only base64-decoded.
pub fn open(key: Option<&EncodingAesKey>, payload: &str) -> Result<Vec<u8>, PayloadError> {
    let bytes = LENIENT
        .decode(payload.trim())
        .map_err(|_| PayloadError::NotBase64)?;
    let Some(key) = key else {
        return Ok(bytes);
    };
    cbc::Decryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_vec::<Pkcs7>(&bytes)
        .map_err(|_| PayloadError::Decrypt)
}

/// The payload a sender makes of `plaintext`: the inverse of [`open`] (canonical base64,
/// padded).
pub fn seal(key: Option<&EncodingAesKey>, plaintext: &[u8]) -> String {
    let bytes = match key {
        Some(key) => cbc::Encryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
            .encrypt_padded_vec::<Pkcs7>(plaintext),
        None => plaintext.to_vec(),
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector made outside this crate, with `openssl enc -aes-256-cbc -K <key> -iv
    /// <first 16 bytes>` and Python's `base64`: the key below decodes to
    /// 59e99e7a...bf3d69b7.
    const KEY: &str = "WemeetArchiverWebhookVectorKey0123456789abc";
    const PLAIN: &[u8] = br#"{"event":"recording.completed","trace_id":"trace-vector-1"}"#;
    const SEALED: &str = "7qrHV25v1e+JFoRqTHLGk0QmAIzODf099W+XOhmMDK0AeMMIsIl9ttcV6Ey50xQ2\
                          ctQN6SM2Khmm+UUvnyQxPA==";

    #[test]
    fn matches_a_vector_made_with_openssl_both_ways() {
        let key = EncodingAesKey::parse(KEY).unwrap();
        assert_eq!(
            hex::encode(key.0),
            "59e99e7ad02b7218af7ab59e6e1a2891579cb68aca7b2d35db7e39ebbf3d69b7"
        );
        assert_eq!(seal(Some(&key), PLAIN), SEALED);
        assert_eq!(open(Some(&key), SEALED).unwrap(), PLAIN);
    }

    #[test]
    fn without_a_key_the_payload_is_plain_base64() {
        let sealed = seal(None, PLAIN);
        assert_eq!(open(None, &sealed).unwrap(), PLAIN);
        assert_eq!(open(None, sealed.trim_end_matches('=')).unwrap(), PLAIN);
    }

    #[test]
    fn a_console_key_whose_last_character_has_trailing_bits_is_accepted() {
        // `c` and `d` differ only in the 2 bits past the 256th: the same key.
        let canonical = EncodingAesKey::parse(KEY).unwrap();
        let noisy = EncodingAesKey::parse(&KEY.replace("abc", "abd")).unwrap();
        assert_eq!(canonical, noisy);
    }

    #[test]
    fn keys_that_are_not_43_base64_characters_are_refused() {
        assert_eq!(EncodingAesKey::parse(&KEY[..42]), Err(KeyError::Length(42)));
        assert_eq!(
            EncodingAesKey::parse(&format!("{KEY}=")),
            Err(KeyError::Length(44))
        );
        assert_eq!(
            EncodingAesKey::parse(&KEY.replace('W', "!")),
            Err(KeyError::NotBase64)
        );
    }

    #[test]
    fn a_payload_of_another_key_or_not_base64_is_refused() {
        let key = EncodingAesKey::parse(KEY).unwrap();
        let other = EncodingAesKey::parse(&KEY.replace('W', "X")).unwrap();
        assert_eq!(open(Some(&other), SEALED), Err(PayloadError::Decrypt));
        assert_eq!(open(Some(&key), "%%%"), Err(PayloadError::NotBase64));
        // Not whole blocks.
        assert_eq!(open(Some(&key), "AAAA"), Err(PayloadError::Decrypt));
        assert!(!format!("{key:?}").contains("59e9"));
    }
}
