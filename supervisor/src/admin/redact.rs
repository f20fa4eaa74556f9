//! Secrets out of the config before `/config_dump` shows it (what counts
//! as a secret is listed in [`crate::admin`]'s docs, *Redaction*).

use toml::Value;

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Key names whose values are credentials.
const SECRET_KEYS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "credentials",
    "authorization",
    "api_key",
];

/// Key name endings whose values are credentials.
const SECRET_SUFFIXES: &[&str] = &["_token", "_password", "_secret", "_api_key"];

/// Redacts `value` in place: every secret replaced with [`REDACTED`].
pub fn redact(value: &mut Value) {
    match value {
        Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                if is_secret_key(key) {
                    *value = Value::String(REDACTED.into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if text.contains("-----BEGIN") {
                *text = REDACTED.into();
            } else if let Some(clean) = url_without_password(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || SECRET_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// `scheme://user:pw@host…` with the password redacted; `None` when
/// `text` is no such URL.
fn url_without_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    let after = &rest[userinfo.len()..];
    Some(format!("{scheme}://{user}:{REDACTED}{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_paths_and_addresses_stay() {
        let mut config: Value = toml::from_str(
            r#"
            [admin]
            address = "127.0.0.1:9901"
            token = "0123456789abcdef"
            [tracing]
            otlp_endpoint = "http://user:hunter2@collector:4317/v1"
            auth_token = "abc"
            [[listeners]]
            name = "front"
            tls = { certificates = [{ cert = "/etc/c.pem", key = "/etc/k.pem" }] }
            inline = "-----BEGIN PRIVATE KEY-----\nMII...\n"
            [[clusters]]
            name = "c"
            endpoints = ["10.0.0.5:9000"]
            Password = "x"
            "#,
        )
        .unwrap();
        redact(&mut config);
        let text = toml::to_string(&config).unwrap();
        for secret in ["0123456789abcdef", "hunter2", "abc\"", "MII", "\"x\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in [
            "127.0.0.1:9901",
            "/etc/k.pem",
            "/etc/c.pem",
            "10.0.0.5:9000",
            "http://user:<redacted>@collector:4317/v1",
        ] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
        assert_eq!(config["admin"]["token"].as_str(), Some(REDACTED));
    }

    #[test]
    fn urls_without_a_password_are_left_alone() {
        assert_eq!(url_without_password("http://collector:4317"), None);
        assert_eq!(url_without_password("http://user@collector:4317"), None);
        assert_eq!(url_without_password("not a url"), None);
        assert_eq!(url_without_password("http://h/p?u=a:b@c"), None);
    }
}
