//! Upstream URL validation, shared by config loading, the admin API and
//! snapshot validation so that all three accept exactly the same URLs.

use http::Uri;

/// Why a URL was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("malformed URL {url:?}: {reason}")]
    Malformed { url: String, reason: String },
    #[error("URL {url:?} must use http or https")]
    Scheme { url: String },
    #[error("URL {url:?} has no host")]
    NoHost { url: String },
}

/// Parses an upstream node URL: `http` or `https`, with a host.
pub fn parse_node_url(url: &str) -> Result<Uri, UrlError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| UrlError::Malformed {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(UrlError::Scheme {
                url: url.to_owned(),
            });
        }
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(UrlError::NoHost {
            url: url.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https() {
        assert!(parse_node_url("http://127.0.0.1:8545").is_ok());
        assert!(parse_node_url("https://node.example/rpc").is_ok());
    }

    #[test]
    fn refuses_the_rest() {
        assert!(matches!(
            parse_node_url("not a url"),
            Err(UrlError::Malformed { .. })
        ));
        assert!(matches!(
            parse_node_url("ftp://x"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            parse_node_url("/just/a/path"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            parse_node_url("localhost:8545"),
            Err(UrlError::Scheme { .. })
        ));
    }
}
