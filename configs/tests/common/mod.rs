//! What the config tests share.

use baton_config::{ConfigError, parse};

/// The error `text` is refused with: its line, column, key path and
/// message (a panic, failing the test, if it is accepted or refused
/// otherwise).
pub fn error(text: &str) -> (usize, usize, String, String) {
    match parse("bad.toml", text) {
        Err(ConfigError::Invalid {
            line,
            column,
            path,
            message,
            ..
        }) => (line, column, path, message),
        other => panic!("expected an Invalid error for {text:?}, got {other:?}"),
    }
}
