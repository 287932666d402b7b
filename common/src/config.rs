//! Loading TOML configuration with errors an operator can act on.
//!
//! Every error names the file, the line and column, and the field path
//! (e.g. `networks[0].upstreams[1].url`). Semantic checks that belong to a
//! single value run inside its `Deserialize` (see the `deserialize_with`
//! helpers in the planes' config modules), so they get a position too.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem has no position (e.g. unreadable file).
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the offending field; empty for the whole document.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    /// An error about a field whose position is not known (e.g. a check
    /// across several fields, or an environment override).
    pub fn field(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads and parses `path`.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse_toml(&text, path)
}

/// Parses `text`, reporting errors against `path`.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let located = |e: &toml::de::Error, field: String| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: path.to_owned(),
            line,
            column,
            field,
            message: e.message().trim().to_owned(),
        }
    };
    let de = toml::de::Deserializer::parse(text).map_err(|e| located(&e, String::new()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        located(e.inner(), field)
    })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        server: Server,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Server {
        #[allow(dead_code)]
        port: u16,
    }

    #[test]
    fn names_file_line_and_field() {
        let text = "[server]\nport = \"eighty\"\n";
        let e = parse_toml::<Doc>(text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.field, "server.port");
        let shown = e.to_string();
        assert!(shown.starts_with("c.toml:2:"), "{shown}");
        assert!(shown.contains("server.port"), "{shown}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse_toml::<Doc>("[server]\nport = = 1\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e =
            parse_toml::<Doc>("[server]\nport = 1\nprot = 2\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }
}
