//! Domain values to and from their admin-API wire form.

use meridian_common::proto;
use meridian_common::snapshot::{Role, UpstreamState, decode_role, encode_role, encode_state};
use tonic::Status;

use crate::inventory::UpstreamEntry;

/// A role from the wire; unset or unknown values are refused.
pub fn role_from_wire(value: i32) -> Result<Role, Status> {
    decode_role(value).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown role {value} (expected read, write or archive)"
        ))
    })
}

/// The live view of an upstream (latest probe), for `ListUpstreams`.
pub fn live_upstream(u: &UpstreamEntry) -> proto::Upstream {
    let live = u.live();
    // While failing, the latest error says more than the reason of the flip.
    let reason = match (u.state(), u.last_error()) {
        (UpstreamState::Failing, Some(e)) => e.to_owned(),
        _ => u.reason().to_owned(),
    };
    proto::Upstream {
        id: u.spec.id.clone(),
        url: u.spec.url.clone(),
        region: u.spec.region.clone(),
        weight: u.spec.weight,
        state: encode_state(u.state()).into(),
        head_height: live.head_height,
        lag: live.lag,
        latency_ewma_us: live.latency_ewma_us,
        score: live.score,
        reason,
        roles: u
            .spec
            .roles
            .iter()
            .map(|r| encode_role(*r).into())
            .collect(),
    }
}
