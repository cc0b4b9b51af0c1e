//! The AK/SK request signature of Tencent Meeting's REST API.
//!
//! The test vector below comes from the official Python SDK: agreeing with it is what
//! proves a client talks to the real service correctly. A server (or a simulator) checks
//! a request with the same [`signature`].

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signed fields of one request. `request_uri` is path + `?` + query exactly as sent.
pub struct SignInput<'a> {
    pub method: &'a str,
    pub secret_id: &'a str,
    pub nonce: &'a str,
    pub timestamp: &'a str,
    pub request_uri: &'a str,
    pub body: &'a str,
}

/// `base64(lowercase_hex(HMAC-SHA256(secret_key, string_to_sign)))`: note that the base64 is
/// taken of the hex *text*, not of the raw digest, as the official SDKs do.
pub fn signature(secret_key: &str, input: &SignInput<'_>) -> String {
    let string_to_sign = format!(
        "{}\nX-TC-Key={}&X-TC-Nonce={}&X-TC-Timestamp={}\n{}\n{}",
        input.method, input.secret_id, input.nonce, input.timestamp, input.request_uri, input.body
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    let hex = hex::encode(mac.finalize().into_bytes());
    base64::engine::general_purpose::STANDARD.encode(hex)
}

/// Every header of a signed call: `Content-Type`, `X-TC-Key`, `X-TC-Timestamp`,
/// `X-TC-Nonce`, `X-TC-Signature`, `X-TC-Registered`, `AppId` and (only when one was
/// assigned) `SdkId`. `timestamp` is UNIX seconds (more than 5 minutes off the server's
/// clock is refused: 190300); `nonce` must not repeat with the same timestamp within 5
/// minutes (190301), so sign every attempt afresh.
pub fn headers(
    credentials: &crate::Credentials,
    method: &str,
    request_uri: &str,
    body: &str,
    timestamp: i64,
    nonce: u32,
) -> Vec<(&'static str, String)> {
    let (timestamp, nonce) = (timestamp.to_string(), nonce.to_string());
    let signature = signature(
        credentials.secret_key.expose(),
        &SignInput {
            method,
            secret_id: &credentials.secret_id,
            nonce: &nonce,
            timestamp: &timestamp,
            request_uri,
            body,
        },
    );
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("X-TC-Key", credentials.secret_id.clone()),
        ("X-TC-Timestamp", timestamp),
        ("X-TC-Nonce", nonce),
        ("X-TC-Signature", signature),
        ("X-TC-Registered", "1".to_string()),
        ("AppId", credentials.app_id.clone()),
    ];
    if let Some(sdk_id) = credentials.sdk_id.as_ref().filter(|s| !s.is_empty()) {
        headers.push(("SdkId", sdk_id.clone()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_official_sdk_test_vector() {
        let input = SignInput {
            method: "GET",
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            nonce: "12345",
            timestamp: "1700000000",
            request_uri: "/v1/corp/records?start_time=1698000000&end_time=1700000000&page_size=20&page=1&operator_id=admin&operator_id_type=1&query_record_type=0",
            body: "",
        };
        assert_eq!(
            signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", &input),
            "ODM0ODk5ZDFhZGY4ZmMzZGViOGQ3NTMyMTkwZGU0MGU4MTdmMzE0N2FhODUzOGQxNzFhZGM2ZGI0NjE4NzE1ZQ=="
        );
    }
}
