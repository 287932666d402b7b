//! Phase: what goes upstream, with ids Meridian chose.
//!
//! No id a client chose travels to a node. Each call of an upstream
//! request is written anew from its method and params, with its position
//! in that request as its id (`0`, `1`, `2`, …): small integers that every
//! node keeps exactly (ganache, for one, loses the precision of big
//! numbers), unique within the request, so an answer is matched to its
//! call by position ([`super::validate`]) and the client's own id is put
//! back, byte for byte, only when the answer is written out
//! ([`super::batch::write_response`]). Notifications stay notifications:
//! they get no id. One body serves every try of a job (retries, hedges,
//! broadcast copies): ids need to be unique only within what one node
//! receives.
//!
//! Only `jsonrpc`, `id`, `method` and `params` travel; members a client
//! added beyond JSON-RPC 2.0 do not.

use bytes::Bytes;

use super::parse::Call;

/// Which calls of an upstream request expect an answer. Call `i` carries
/// Meridian's id `i`, unless it is a notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    calls: usize,
    /// Positions of the notifications, ascending (empty, and so not
    /// allocated, for the usual request).
    notifications: Vec<usize>,
}

impl Expected {
    /// Calls in the request.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Calls that expect an answer.
    pub fn answers(&self) -> usize {
        self.calls - self.notifications.len()
    }

    /// Whether the call with Meridian's id `id` expects an answer.
    pub fn expects(&self, id: usize) -> bool {
        id < self.calls && self.notifications.binary_search(&id).is_err()
    }

    /// Meridian's id of each call, `None` for notifications.
    pub fn ids(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        (0..self.calls).map(|i| self.expects(i).then_some(i))
    }
}

/// One call as a request body of its own.
pub fn single(call: &Call<'_>) -> (Bytes, Expected) {
    let mut out = Vec::with_capacity(call.raw.len() + 16);
    let id = (!call.is_notification()).then_some(0);
    write_call(&mut out, id, call);
    let expected = Expected {
        calls: 1,
        notifications: if id.is_none() { vec![0] } else { Vec::new() },
    };
    (frozen(out), expected)
}

/// `out` as `Bytes` without the allocation `Bytes::from(Vec)` makes for a
/// vector with spare capacity (its shared header): the vector is shrunk
/// in place (the allocator keeps the block) and adopted as it is.
pub fn frozen(out: Vec<u8>) -> Bytes {
    Bytes::from(out.into_boxed_slice())
}

/// `calls` as one batch body.
pub fn batch(calls: &[&Call<'_>]) -> (Bytes, Expected) {
    let size: usize = calls.iter().map(|c| c.raw.len() + 17).sum();
    let mut out = Vec::with_capacity(size + 2);
    let mut notifications = Vec::new();
    out.push(b'[');
    for (i, call) in calls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let id = if call.is_notification() {
            notifications.push(i);
            None
        } else {
            Some(i)
        };
        write_call(&mut out, id, call);
    }
    out.push(b']');
    let expected = Expected {
        calls: calls.len(),
        notifications,
    };
    (frozen(out), expected)
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}`, the
/// method and params as the client wrote them; no `id` member for a
/// notification, no `params` when the client sent none.
fn write_call(out: &mut Vec<u8>, id: Option<usize>, call: &Call<'_>) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","#);
    if let Some(id) = id {
        out.extend_from_slice(br#""id":"#);
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(br#""method":"#);
    out.extend_from_slice(call.method_json.get().as_bytes());
    if let Some(params) = call.params {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(params.get().as_bytes());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::parse::{Parsed, parse};

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn a_single_call_gets_id_0_and_keeps_method_and_params_as_written() {
        let body = r#" {"params":[{"to":"0x0"}, "latest"],"id":12345678901234567890,"method":"eth\u005fcall","jsonrpc":"2.0","extra":1} "#;
        let parsed = parse(body.as_bytes(), 10).unwrap();
        let Parsed::Single(call) = &parsed else {
            panic!("a single call")
        };
        let (out, expected) = single(call);
        assert_eq!(
            text(&out),
            r#"{"jsonrpc":"2.0","id":0,"method":"eth\u005fcall","params":[{"to":"0x0"}, "latest"]}"#
        );
        assert_eq!((expected.calls(), expected.answers()), (1, 1));
        assert!(expected.expects(0) && !expected.expects(1));
    }

    #[test]
    fn notifications_stay_notifications() {
        let parsed = parse(br#"{"jsonrpc":"2.0","method":"x"}"#, 10).unwrap();
        let Parsed::Single(call) = &parsed else {
            panic!("a single call")
        };
        let (out, expected) = single(call);
        assert_eq!(text(&out), r#"{"jsonrpc":"2.0","method":"x"}"#);
        assert_eq!(expected.answers(), 0);
        assert!(!expected.expects(0));
    }

    #[test]
    fn a_batch_numbers_its_calls_by_position() {
        let body = r#"[{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":[1]}},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":null,"method":"y"}]"#;
        let parsed = parse(body.as_bytes(), 10).unwrap();
        let calls: Vec<&Call<'_>> = parsed.calls().collect();
        let (out, expected) = batch(&calls);
        assert_eq!(
            text(&out),
            r#"[{"jsonrpc":"2.0","id":0,"method":"x","params":{"k":[1]}},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"method":"y"}]"#
        );
        assert_eq!(expected.ids().collect::<Vec<_>>(), [Some(0), None, Some(2)]);
        assert_eq!(expected.answers(), 2);
        // What Meridian sends is itself a valid request.
        assert_eq!(parse(&out, 10).unwrap().len(), 3);
    }
}
