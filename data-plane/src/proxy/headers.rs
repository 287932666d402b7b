//! Header names of Meridian's response contract.

use http::HeaderName;

/// Echoed from the request, or generated.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Id of the upstream that answered (`leader` for the fallback, `meridian`
/// when Meridian answered itself).
pub const X_HANDLED_BY: HeaderName = HeaderName::from_static("x-handled-by");
/// Which check refused the request (`json`, `size`, `network`, …); only on
/// Meridian's own refusals.
pub const X_REJECTED_BY: HeaderName = HeaderName::from_static("x-rejected-by");
/// How many upstream tries the answer took.
/// What the cache did: `HIT`, `MISS` or, for a batch, counts such as
/// `HIT=3, MISS=1` (docs/caching.md). Absent when nothing was cacheable.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub const X_MERIDIAN_TRIES: HeaderName = HeaderName::from_static("x-meridian-tries");
