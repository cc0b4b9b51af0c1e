//! The signature of every webhook request: who knows the token made it.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The length of a console Token.
pub const TOKEN_LEN: usize = 25;

/// The three headers every webhook request carries (plain names, not `X-TC-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
}

/// Lowercase hex SHA-1 of `token`, `timestamp`, `nonce` and `data` (the URL check's
/// `check_str`, or an event's `data`), sorted lexicographically and concatenated.
pub fn signature(token: &str, timestamp: &str, nonce: &str, data: &str) -> String {
    let mut parts = [token, timestamp, nonce, data];
    parts.sort_unstable();
    let mut sha1 = Sha1::new();
    for part in parts {
        sha1.update(part.as_bytes());
    }
    hex::encode(sha1.finalize())
}

/// Whether `headers.signature` was made with `token` over `data`. Compared in constant
/// time, so that the time of a refusal says nothing about how much of a forgery was right.
pub fn verify(token: &str, headers: &SignedHeaders<'_>, data: &str) -> bool {
    let expected = signature(token, headers.timestamp, headers.nonce, data);
    // Hex digits are not secret: accept either case, as hex readers do.
    let given = headers.signature.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Tk25charsWemeetArchiver01";
    /// `check_str` of the envelope module's vector.
    const DATA: &str = "oCcDiyjQx1CzgrOXfSr047IpIXX76fwnbYgTpfXyzgA=";

    /// Computed outside this crate: `sha1(''.join(sorted([token, ts, nonce, data])))` in
    /// Python's hashlib.
    #[test]
    fn matches_a_vector_computed_with_python_hashlib() {
        assert_eq!(TOKEN.len(), TOKEN_LEN);
        let sig = signature(TOKEN, "1700000000", "12345", DATA);
        assert_eq!(sig, "10dcae067b2589583e99c4d3b6eb2488ab4380c0");
        let headers = SignedHeaders {
            timestamp: "1700000000",
            nonce: "12345",
            signature: &sig,
        };
        assert!(verify(TOKEN, &headers, DATA));
        let upper = sig.to_ascii_uppercase();
        assert!(verify(
            TOKEN,
            &SignedHeaders {
                signature: &upper,
                ..headers
            },
            DATA
        ));
    }

    #[test]
    fn any_change_to_a_signed_part_is_refused() {
        let sig = signature(TOKEN, "1700000000", "12345", DATA);
        let headers = SignedHeaders {
            timestamp: "1700000000",
            nonce: "12345",
            signature: &sig,
        };
        assert!(!verify("Tk25charsWemeetArchiver02", &headers, DATA));
        assert!(!verify(
            TOKEN,
            &headers,
            "oCcDiyjQx1CzgrOXfSr047IpIXX76fwnbYgTpfXyzgB="
        ));
        let changed = [
            SignedHeaders {
                timestamp: "1700000001",
                ..headers
            },
            SignedHeaders {
                nonce: "12346",
                ..headers
            },
            SignedHeaders {
                signature: &sig[..39],
                ..headers
            },
            SignedHeaders {
                signature: "",
                ..headers
            },
        ];
        for h in changed {
            assert!(!verify(TOKEN, &h, DATA), "{h:?}");
        }
    }
}
