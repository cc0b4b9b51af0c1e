//! The `[webhook]` table: where `run` listens for Tencent Meeting's events, and the two
//! secrets of the subscription (the Token that signs them, the EncodingAESKey that
//! encrypts them), checked here so that a key pasted short fails at start, not at the
//! first event.

use super::secrets::SecretSource;
use super::{ConfigError, invalid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wemeet_api::Secret;
use wemeet_api::webhook::{EncodingAesKey, TOKEN_LEN};

pub const ENV_WEBHOOK_TOKEN: &str = "WEMEET_WEBHOOK_TOKEN";
pub const ENV_WEBHOOK_AES_KEY: &str = "WEMEET_WEBHOOK_AES_KEY";
/// The names looked up in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`).
pub const CREDENTIAL_WEBHOOK_TOKEN: &str = "wemeet-webhook-token";
pub const CREDENTIAL_WEBHOOK_AES_KEY: &str = "wemeet-webhook-aes-key";

const TOKEN: SecretSource = SecretSource {
    key: "webhook.token",
    file_key: "webhook.token_file",
    env: ENV_WEBHOOK_TOKEN,
    credential: CREDENTIAL_WEBHOOK_TOKEN,
};

const AES_KEY: SecretSource = SecretSource {
    key: "webhook.encoding_aes_key",
    file_key: "webhook.encoding_aes_key_file",
    env: ENV_WEBHOOK_AES_KEY,
    credential: CREDENTIAL_WEBHOOK_AES_KEY,
};

/// The event subscription `run` answers.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    /// The URL's path (the console's URL minus scheme and host), e.g. `/webhook`.
    pub path: String,
    /// The console's Token: every request is signed with it. A secret.
    pub token: Secret,
    /// The console's EncodingAESKey; `None`: payloads come as plain base64.
    pub encoding_aes_key: Option<EncodingAesKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWebhook {
    listen: Option<String>,
    path: String,
    token: Secret,
    token_file: Option<PathBuf>,
    encoding_aes_key: Secret,
    encoding_aes_key_file: Option<PathBuf>,
}

impl Default for RawWebhook {
    fn default() -> Self {
        Self {
            listen: None,
            path: "/webhook".into(),
            token: Secret::default(),
            token_file: None,
            encoding_aes_key: Secret::default(),
            encoding_aes_key_file: None,
        }
    }
}

/// `None` without `listen`: the rest of the table is then not needed (nor checked).
pub(super) fn validate_webhook(
    raw: RawWebhook,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(text) = raw.listen.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let listen = text.parse().map_err(|_| {
        invalid(
            "webhook.listen",
            format!("`{text}` is not an address:port, e.g. \"127.0.0.1:8391\""),
        )
    })?;
    let path = raw.path;
    if !path.starts_with('/') || path.contains(['?', '#']) || path.contains(char::is_whitespace) {
        return Err(invalid(
            "webhook.path",
            format!("`{path}` is not a URL path; use e.g. \"/webhook\""),
        ));
    }
    let token = TOKEN.resolve(raw.token, raw.token_file, base_dir, env)?;
    if token.secret.is_empty() {
        return Err(invalid(
            "webhook.token",
            format!(
                "is empty: the console's Token signs every event; set ${ENV_WEBHOOK_TOKEN}, \
                 webhook.token_file, or a systemd credential named {CREDENTIAL_WEBHOOK_TOKEN}"
            ),
        ));
    }
    let length = token.secret.expose().chars().count();
    let printable = token.secret.expose().chars().all(|c| c.is_ascii_graphic());
    if length != TOKEN_LEN || !printable {
        return Err(token.invalid(format!(
            "must be the console's Token, {TOKEN_LEN} characters without spaces; this one has \
             {length}"
        )));
    }
    let key = AES_KEY.resolve(
        raw.encoding_aes_key,
        raw.encoding_aes_key_file,
        base_dir,
        env,
    )?;
    let encoding_aes_key = match key.secret.is_empty() {
        true => None,
        false => Some(EncodingAesKey::parse(key.secret.expose()).map_err(|e| key.invalid(e))?),
    };
    Ok(Some(WebhookConfig {
        listen,
        path,
        token: token.secret,
        encoding_aes_key,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, key_of, parse};
    use super::super::{Config, ConfigError, ENV_CREDENTIALS_DIRECTORY};
    use super::*;

    const TOKEN_TEXT: &str = "Tk25charsWemeetArchiver01";
    const KEY_TEXT: &str = "WemeetArchiverWebhookVectorKey0123456789abc";

    fn with_webhook(table: &str) -> String {
        format!("{GOOD}\n[webhook]\n{table}\n")
    }

    #[test]
    fn no_listen_no_webhook_whatever_else_the_table_holds() {
        let c = parse(&with_webhook("token = \"short\"")).unwrap();
        assert!(c.webhook.is_none());
        assert!(parse(GOOD).unwrap().webhook.is_none());
    }

    #[test]
    fn a_webhook_gets_its_default_path_and_both_secrets_stay_hidden() {
        let c = parse(&with_webhook(&format!(
            "listen = \"127.0.0.1:8391\"\ntoken = \"{TOKEN_TEXT}\"\nencoding_aes_key = \"{KEY_TEXT}\""
        )))
        .unwrap();
        let w = c.webhook.clone().unwrap();
        assert_eq!(w.listen, "127.0.0.1:8391".parse().unwrap());
        assert_eq!(w.path, "/webhook");
        assert_eq!(w.token.expose(), TOKEN_TEXT);
        assert_eq!(
            w.encoding_aes_key,
            Some(EncodingAesKey::parse(KEY_TEXT).unwrap())
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains(TOKEN_TEXT) && !debug.contains("59e99e"),
            "{debug}"
        );
    }

    #[test]
    fn the_secrets_come_from_the_environment_a_file_or_a_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN_TEXT}\n")).unwrap();
        std::fs::write(dir.path().join(CREDENTIAL_WEBHOOK_AES_KEY), KEY_TEXT).unwrap();
        let text = with_webhook("listen = \"127.0.0.1:8391\"\ntoken_file = \"token\"");
        let credentials = dir.path().to_str().unwrap().to_string();
        let c = Config::parse(&text, &dir.path().join("c.toml"), &|name| match name {
            ENV_CREDENTIALS_DIRECTORY => Some(credentials.clone()),
            _ => None,
        })
        .unwrap();
        let w = c.webhook.unwrap();
        assert_eq!(w.token.expose(), TOKEN_TEXT);
        assert!(w.encoding_aes_key.is_some());
        let c = Config::parse(&text, &dir.path().join("c.toml"), &|name| match name {
            ENV_WEBHOOK_TOKEN => Some("Tk25charsFromTheEnvironmnt".into()),
            _ => None,
        });
        let err = c.unwrap_err().to_string();
        assert!(
            err.contains("webhook.token") && err.contains("has 26"),
            "{err}"
        );
        assert!(
            err.contains(ENV_WEBHOOK_TOKEN) && !err.contains("FromThe"),
            "{err}"
        );
    }

    #[test]
    fn impossible_webhook_values_are_named() {
        let listen = "listen = \"127.0.0.1:8391\"";
        let token = format!("token = \"{TOKEN_TEXT}\"");
        let cases = [
            (format!("listen = \"port 80\"\n{token}"), "webhook.listen"),
            (listen.to_string(), "webhook.token"),
            (format!("{listen}\ntoken = \"too-short\""), "webhook.token"),
            (
                format!("{listen}\ntoken = \"{}\"", "Tk25 chars with spaces 01"),
                "webhook.token",
            ),
            (
                format!(
                    "{listen}\n{token}\nencoding_aes_key = \"{}\"",
                    &KEY_TEXT[..42]
                ),
                "webhook.encoding_aes_key",
            ),
            (
                format!(
                    "{listen}\n{token}\nencoding_aes_key = \"{}\"",
                    KEY_TEXT.replace('W', "!")
                ),
                "webhook.encoding_aes_key",
            ),
            (
                format!("{listen}\n{token}\ntoken_file = \"t\""),
                "webhook.token_file",
            ),
            (
                format!("{listen}\n{token}\npath = \"webhook\""),
                "webhook.path",
            ),
            (format!("{listen}\n{token}\npaht = \"/x\""), "paht"),
        ];
        for (table, key) in cases {
            let err = parse(&with_webhook(&table)).unwrap_err();
            let named = match err {
                ConfigError::Parse { message, .. } if message.contains(key) => key.to_string(),
                other => key_of(other),
            };
            assert_eq!(named, key, "{table}");
        }
        let same_port = format!("{GOOD}\n[metrics]\n{listen}\n[webhook]\n{listen}\n{token}\n");
        assert_eq!(key_of(parse(&same_port).unwrap_err()), "webhook.listen");
    }
}
