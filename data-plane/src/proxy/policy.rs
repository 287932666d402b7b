//! Phase: the network's method policy.
//!
//! `deny_methods` and `allow_methods` (from the snapshot) are lists of
//! patterns where `*` matches any run of characters (`debug_*`, `admin_*`,
//! `*_subscribe`, `*`). A method is refused when it matches a deny pattern,
//! or when an allow list is set and it matches none of it: deny wins. A
//! refused call never reaches an upstream; it is answered with -32601 and
//! `x-rejected-by: method`. Matching walks the pattern without allocating.

use http::StatusCode;
use meridian_common::jsonrpc;
use meridian_common::snapshot::NetworkPolicy;

use super::reply::ErrorReply;

/// The `x-rejected-by` value of policy refusals.
pub const REJECTED_BY: &str = "method";

/// Whether `method` may be served on a network with `policy`.
pub fn allows(policy: &NetworkPolicy, method: &str) -> bool {
    if policy.deny_methods.iter().any(|p| glob(p, method)) {
        return false;
    }
    policy.allow_methods.is_empty() || policy.allow_methods.iter().any(|p| glob(p, method))
}

/// The message of a refusal (also used inside batch answers).
pub fn refusal_message(method: &str, network: &str) -> String {
    let quoted: String = method.chars().take(128).collect();
    format!("method {quoted:?} is not available on network {network:?}")
}

/// The reply refusing a single call of `method`.
pub fn refusal(method: &str, network: &str) -> ErrorReply {
    ErrorReply::rejected(
        StatusCode::FORBIDDEN,
        jsonrpc::METHOD_NOT_FOUND,
        REJECTED_BY,
        refusal_message(method, network),
    )
}

/// `*`-glob match of `text` against `pattern` (no other metacharacters).
///
/// The classic greedy algorithm: remember the last `*` and where the text
/// stood, and on a mismatch let that star swallow one more character.
/// Linear in practice, never worse than O(pattern × text).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t) in [
            ("debug_*", "debug_traceCall"),
            ("debug_*", "debug_"),
            ("*", ""),
            ("*", "anything"),
            ("eth_call", "eth_call"),
            ("*_subscribe", "eth_subscribe"),
            ("a*b*c", "aXXbYYc"),
            ("a*b*c", "abc"),
            ("**x", "x"),
        ] {
            assert!(glob(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("debug_*", "eth_call"),
            ("eth_call", "eth_callX"),
            ("eth_call", "eth_cal"),
            ("a*b*c", "aXXbYY"),
            ("", "x"),
            ("*_subscribe", "eth_subscribeX"),
        ] {
            assert!(!glob(p, t), "{p} should not match {t}");
        }
    }

    #[test]
    fn deny_wins_over_allow_and_an_allow_list_closes_the_rest() {
        let mut p = NetworkPolicy::default();
        assert!(allows(&p, "debug_traceCall"));
        p.deny_methods = vec!["debug_*".into(), "admin_*".into()];
        assert!(!allows(&p, "debug_traceCall"));
        assert!(!allows(&p, "admin_peers"));
        assert!(allows(&p, "eth_call"));
        p.allow_methods = vec!["eth_*".into(), "debug_traceCall".into()];
        assert!(allows(&p, "eth_call"));
        assert!(!allows(&p, "net_version"));
        assert!(!allows(&p, "debug_traceCall"), "deny wins");
        let r = refusal("debug_traceCall", "eth");
        assert_eq!(r.code, jsonrpc::METHOD_NOT_FOUND);
        assert_eq!(r.rejected_by, Some("method"));
    }
}
