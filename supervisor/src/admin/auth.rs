//! Who may call the mutating endpoints (the security model is in the
//! module docs of [`crate::admin`]).

/// Which admin address a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `[admin] address`: reads; mutations need the token.
    ReadOnly,
    /// `[admin] control_address`: mutations allowed without the token.
    Control,
}

/// Why a mutating call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error(
        "{path} changes the running proxy: this admin address is read-only and no [admin] token \
         is configured; configure [admin] token (and send `Authorization: Bearer <token>`) \
         or call it on [admin] control_address"
    )]
    NoToken { path: String },
    #[error(
        "{path} changes the running proxy: send `Authorization: Bearer <[admin] token>`, \
         or call it on [admin] control_address"
    )]
    MissingToken { path: String },
    #[error("{path}: the bearer token is wrong")]
    WrongToken { path: String },
}

/// Whether a mutating call to `path` may run: on the control address
/// always; elsewhere with `authorization` = `Bearer <token>`.
pub fn allow_mutation(
    access: Access,
    token: Option<&str>,
    authorization: Option<&str>,
    path: &str,
) -> Result<(), Refusal> {
    if access == Access::Control {
        return Ok(());
    }
    let path = path.to_string();
    let Some(token) = token else {
        return Err(Refusal::NoToken { path });
    };
    let Some(sent) = authorization.and_then(bearer) else {
        return Err(Refusal::MissingToken { path });
    };
    if constant_time_eq(sent.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::WrongToken { path })
    }
}

/// The credentials of `Bearer <credentials>` (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Compares without an early exit, so that the time taken does not tell
/// how many leading bytes of a guess were right. The length is not secret
/// (a token's length is in the config's docs), so a length mismatch may
/// return at once.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    #[test]
    fn the_control_address_needs_no_token() {
        assert_eq!(
            allow_mutation(Access::Control, None, None, "/drain"),
            Ok(())
        );
    }

    #[test]
    fn the_read_only_address_needs_the_right_bearer_token() {
        let ask = |auth| allow_mutation(Access::ReadOnly, Some(TOKEN), auth, "/drain");
        assert_eq!(ask(Some("Bearer 0123456789abcdef")), Ok(()));
        assert_eq!(ask(Some("bearer  0123456789abcdef ")), Ok(()));
        assert!(matches!(ask(None), Err(Refusal::MissingToken { .. })));
        assert!(matches!(
            ask(Some("Basic 0123456789abcdef")),
            Err(Refusal::MissingToken { .. })
        ));
        assert!(matches!(
            ask(Some("Bearer 0123456789abcdeF")),
            Err(Refusal::WrongToken { .. })
        ));
        assert!(matches!(
            ask(Some("Bearer 0123456789abcde")),
            Err(Refusal::WrongToken { .. })
        ));
        let none = allow_mutation(Access::ReadOnly, None, Some("Bearer x"), "/logging");
        assert!(matches!(none, Err(Refusal::NoToken { .. })));
        assert!(none.unwrap_err().to_string().contains("control_address"));
    }

    #[test]
    fn equal_means_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
