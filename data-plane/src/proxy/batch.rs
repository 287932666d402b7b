//! Splitting a batch into upstream jobs, and putting the answers back.
//!
//! Each call is routed on its own ([`super::classify`]): the reads of one
//! route travel together as one sub-batch, each write travels alone (so a
//! write is never resent with a read, and may be broadcast), and calls
//! Meridian answers itself (invalid elements, denied methods) travel
//! nowhere. Each job is written with Meridian's ids ([`super::outbound`]),
//! its answers are matched back by those ([`super::validate`]) and written
//! out in the request's order with the client's own id bytes;
//! notifications get no entry.

use bytes::Bytes;
use meridian_common::jsonrpc;
use serde::Serialize;
use serde_json::value::RawValue;

use super::classify::Route;

/// Calls sent to upstreams together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub route: Route,
    /// Indices of the request's elements, in request order.
    pub members: Vec<usize>,
}

/// Groups the elements that go upstream: one group per read route, one per
/// write. `routes[i]` is `None` for elements answered locally.
pub fn plan(routes: &[Option<Route>]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let Some(route) = *route else { continue };
        let shared = (!route.is_write())
            .then(|| groups.iter_mut().find(|g| g.route == route))
            .flatten();
        match shared {
            Some(group) => group.members.push(i),
            None => groups.push(Group {
                route,
                members: vec![i],
            }),
        }
    }
    groups
}

/// Which member of a JSON-RPC response carries the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    Result,
    Error,
}

/// An upstream's answer to one call: the raw JSON of its `result` or
/// `error` member (a slice of the upstream's body, not a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub kind: MemberKind,
    pub value: Bytes,
}

/// How one element of the request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No entry (a notification).
    Silent,
    /// An upstream's answer.
    Answer(Member),
    /// Meridian's own error.
    Error { code: i64, message: String },
}

/// The answer body of a batch: `outcomes[i]` answers the element with id
/// `ids[i]` (`None`: `null`). `None` when every outcome is silent (the
/// client gets HTTP 204 and no body).
pub fn reassemble(ids: &[Option<&RawValue>], outcomes: &[Outcome]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64 * outcomes.len());
    out.push(b'[');
    let mut any = false;
    for (id, outcome) in ids.iter().zip(outcomes) {
        if *outcome == Outcome::Silent {
            continue;
        }
        if any {
            out.push(b',');
        }
        any = true;
        write_response(&mut out, *id, outcome);
    }
    out.push(b']');
    any.then_some(out)
}

/// One response object for `id` (`None`: `null`).
pub fn write_response(out: &mut Vec<u8>, id: Option<&RawValue>, outcome: &Outcome) {
    let id = id.unwrap_or_else(|| jsonrpc::null_id());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.get().as_bytes());
    match outcome {
        Outcome::Silent => {}
        Outcome::Answer(m) => {
            out.extend_from_slice(match m.kind {
                MemberKind::Result => br#","result":"#,
                MemberKind::Error => br#","error":"#,
            });
            out.extend_from_slice(&m.value);
        }
        Outcome::Error { code, message } => {
            #[derive(Serialize)]
            struct ErrorObject<'a> {
                code: i64,
                message: &'a str,
            }
            out.extend_from_slice(br#","error":"#);
            // Serialising a number and a string into a Vec cannot fail.
            let _ = serde_json::to_writer(
                &mut *out,
                &ErrorObject {
                    code: *code,
                    message,
                },
            );
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Option<Route> = Some(Route::Read);
    const A: Option<Route> = Some(Route::Archive);
    const W: Option<Route> = Some(Route::Write { broadcast: true });

    #[test]
    fn reads_share_a_group_writes_go_alone() {
        let groups = plan(&[R, W, None, A, R, W, A]);
        let members: Vec<(Route, Vec<usize>)> =
            groups.into_iter().map(|g| (g.route, g.members)).collect();
        assert_eq!(
            members,
            vec![
                (Route::Read, vec![0, 4]),
                (Route::Write { broadcast: true }, vec![1]),
                (Route::Archive, vec![3, 6]),
                (Route::Write { broadcast: true }, vec![5]),
            ]
        );
    }

    #[test]
    fn reassembles_in_order_with_the_clients_ids() {
        let id1 = RawValue::from_string("1".into()).unwrap();
        let idq = RawValue::from_string(r#""q""#.into()).unwrap();
        let out = reassemble(
            &[Some(&id1), None, Some(&idq), None],
            &[
                Outcome::Answer(Member {
                    kind: MemberKind::Result,
                    value: Bytes::from_static(b"\"0x1\""),
                }),
                Outcome::Silent,
                Outcome::Answer(Member {
                    kind: MemberKind::Error,
                    value: Bytes::from_static(br#"{"code":3,"message":"reverted"}"#),
                }),
                Outcome::Error {
                    code: -32600,
                    message: "bad \"x\"".into(),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"jsonrpc":"2.0","id":1,"result":"0x1"},{"jsonrpc":"2.0","id":"q","error":{"code":3,"message":"reverted"}},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad \"x\""}}]"#
        );
        assert_eq!(
            reassemble(&[None, None], &[Outcome::Silent, Outcome::Silent]),
            None
        );
    }
}
