//! What a try asks of its upstream besides the body: the HTTP verb, and
//! where on the node.
//!
//! JSON-RPC is a POST to the upstream's URL. A chain may send the client's
//! own path instead: ICON's `/api/v3/<channel>` replaces the URL's path (the
//! URL names the node's `/api/v3`), an Antelope route such as
//! `/v1/chain/get_info` goes after the URL's path (the URL names the node,
//! or a gateway prefix in front of it), with the client's query string
//! after the URL's own.

use bytes::Bytes;

/// The HTTP method sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verb {
    #[default]
    Post,
    Get,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Get => "GET",
        }
    }
}

/// Where on the upstream a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UpstreamPath {
    /// The URL's own path and query.
    #[default]
    Url,
    /// This path in place of the URL's (already checked by the chain).
    Replace(Bytes),
    /// This path after the URL's path, and this query (without `?`) after
    /// the URL's query.
    Append { path: Bytes, query: Option<Bytes> },
}

/// The verb and the path of a request to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLine {
    pub verb: Verb,
    pub path: UpstreamPath,
}

impl RequestLine {
    /// A POST to the upstream's URL: every JSON-RPC request of EVM.
    pub const URL: RequestLine = RequestLine {
        verb: Verb::Post,
        path: UpstreamPath::Url,
    };
}
