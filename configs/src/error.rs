use std::path::PathBuf;

/// A config that cannot be used, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read config {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The text is not valid TOML, or a key or value is wrong.
    #[error("{source_name}:{line}:{column}: {}{message}", prefix(path))]
    Invalid {
        source_name: String,
        /// 1-based; 0 when the parser could not say where.
        line: usize,
        column: usize,
        /// The key path, e.g. `listeners[1].address`; empty for syntax errors.
        path: String,
        message: String,
    },
}

fn prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConfigError {
    /// An error at byte offset `at` of `text`.
    pub(crate) fn at(
        source_name: &str,
        text: &str,
        at: Option<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = at.map_or((0, 0), |at| line_column(text, at));
        ConfigError::Invalid {
            source_name: source_name.to_string(),
            line,
            column,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 8), (2, 3));
    }
}
