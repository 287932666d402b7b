//! Tables for people, JSON for scripts.

use meridian_common::proto;
use meridian_common::snapshot::{CacheSettings, NetworkPolicy};
use serde_json::{Value, json};

/// Columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Result of a change.
pub fn done(json: bool, message: &str) -> String {
    if json {
        pretty(&json!({ "ok": true, "message": message }))
    } else {
        format!("{message}\n")
    }
}

/// A failed command: the text for stderr. With `--json`, one object
/// `{"ok": false, "error": {"kind", "code", "message"}}`, where `kind` is
/// `address`, `connect`, `rpc` or `usage` and `code` the gRPC status code's
/// name for `rpc` (null otherwise).
pub fn error(json: bool, e: &super::CtlError) -> String {
    if !json {
        return format!("meridianctl: {e}\n");
    }
    let (kind, code, message) = match e {
        super::CtlError::Address { .. } => ("address", None, e.to_string()),
        super::CtlError::Connect { .. } => ("connect", None, e.to_string()),
        super::CtlError::Rpc(status) => (
            "rpc",
            Some(format!("{:?}", status.code())),
            status.message().to_owned(),
        ),
        super::CtlError::Usage(message) => ("usage", None, message.clone()),
    };
    pretty(&json!({
        "ok": false,
        "error": { "kind": kind, "code": code, "message": message },
    }))
}

fn state_name(v: i32) -> &'static str {
    match proto::UpstreamState::try_from(v) {
        Ok(proto::UpstreamState::Healthy) => "healthy",
        Ok(proto::UpstreamState::Lagging) => "lagging",
        Ok(proto::UpstreamState::Failing) => "failing",
        Ok(proto::UpstreamState::Quarantined) => "quarantined",
        _ => "unknown",
    }
}

fn role_names(roles: &[i32]) -> Vec<&'static str> {
    if roles.is_empty() {
        return vec!["read", "write"];
    }
    roles
        .iter()
        .map(|r| match proto::Role::try_from(*r) {
            Ok(proto::Role::Read) => "read",
            Ok(proto::Role::Write) => "write",
            Ok(proto::Role::Archive) => "archive",
            _ => "unknown",
        })
        .collect()
}

fn version(v: Option<&proto::Version>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{}.{}", v.epoch, v.seq))
}

fn version_json(v: Option<&proto::Version>) -> Value {
    v.map_or(Value::Null, |v| json!({ "epoch": v.epoch, "seq": v.seq }))
}

fn latency(us: u64) -> String {
    if us == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}ms", us as f64 / 1000.0)
    }
}

fn upstream_json(u: &proto::Upstream) -> serde_json::Map<String, Value> {
    let v = json!({
        "id": u.id,
        "url": u.url,
        "region": u.region,
        "weight": u.weight,
        "roles": role_names(&u.roles),
        "state": state_name(u.state),
        "head_height": u.head_height,
        "lag": u.lag,
        "latency_ewma_us": u.latency_ewma_us,
        "score": u.score,
        "reason": u.reason,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// `upstream list`.
pub fn upstreams(json: bool, list: &[proto::UpstreamStatus]) -> String {
    let default = proto::Upstream::default();
    if json {
        let items: Vec<Value> = list
            .iter()
            .map(|s| {
                let mut m = upstream_json(s.upstream.as_ref().unwrap_or(&default));
                m.insert("network".into(), json!(s.network_id));
                m.insert("origin".into(), json!(s.origin));
                Value::Object(m)
            })
            .collect();
        return pretty(&json!({ "upstreams": items }));
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let u = s.upstream.as_ref().unwrap_or(&default);
            vec![
                s.network_id.clone(),
                u.id.clone(),
                state_name(u.state).to_owned(),
                u.score.to_string(),
                u.head_height.to_string(),
                u.lag.to_string(),
                latency(u.latency_ewma_us),
                u.region.clone(),
                u.weight.to_string(),
                role_names(&u.roles).join(","),
                s.origin.clone(),
                u.url.clone(),
                u.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NETWORK", "UPSTREAM", "STATE", "SCORE", "HEIGHT", "LAG", "LATENCY", "REGION",
            "WEIGHT", "ROLES", "ORIGIN", "URL", "REASON",
        ],
        &rows,
    )
}

fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".to_owned();
    }
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// `dataplanes`.
pub fn dataplanes(json: bool, list: &[proto::DataPlaneStatus], now_ms: u64) -> String {
    if json {
        let items: Vec<Value> = list
            .iter()
            .map(|d| {
                json!({
                    "id": d.dataplane_id,
                    "region": d.region,
                    "connected": d.connected,
                    "acked_version": version_json(d.acked_version.as_ref()),
                    "last_seen_unix_ms": d.last_seen_unix_ms,
                    "nacked_version": version_json(d.nacked_version.as_ref()),
                    "nack_error": d.nack_error,
                    "chain_kinds": d.chain_kinds,
                    "left_out_networks": d.left_out_networks,
                })
            })
            .collect();
        return pretty(&json!({ "dataplanes": items }));
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d.dataplane_id.clone(),
                d.region.clone(),
                if d.connected { "yes" } else { "no" }.to_owned(),
                version(d.acked_version.as_ref()),
                ago(now_ms, d.last_seen_unix_ms),
                version(d.nacked_version.as_ref()),
                d.nack_error.clone(),
                d.chain_kinds.join(","),
                d.left_out_networks.join(","),
            ]
        })
        .collect();
    table(
        &[
            "DATAPLANE",
            "REGION",
            "CONNECTED",
            "ACKED",
            "LAST SEEN",
            "NACKED",
            "NACK ERROR",
            "CHAINS",
            "LEFT OUT",
        ],
        &rows,
    )
}

/// A settings block as data planes apply it (defaults filled in), every
/// field; a block data planes would refuse shows why instead.
fn block_json<T: serde::Serialize>(decoded: Result<T, String>) -> Value {
    match decoded {
        Ok(block) => {
            serde_json::to_value(block).unwrap_or_else(|e| json!({ "error": e.to_string() }))
        }
        Err(e) => json!({ "error": e }),
    }
}

/// `snapshot`.
pub fn snapshot(json: bool, s: &proto::Snapshot) -> String {
    let default_table = proto::RoutingTable::default();
    let t = s.table.as_ref().unwrap_or(&default_table);
    if json {
        let networks: Vec<Value> = t
            .networks
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "chain": n.chain,
                    "leader_url": n.leader_url,
                    "policy": block_json(NetworkPolicy::decode(n.policy.clone().unwrap_or_default())),
                    "cache": block_json(CacheSettings::decode(n.cache.unwrap_or_default())),
                    "upstreams": n.upstreams.iter().map(|u| Value::Object(upstream_json(u))).collect::<Vec<_>>(),
                })
            })
            .collect();
        return pretty(&json!({
            "version": version_json(s.version.as_ref()),
            "content_hash": s.content_hash,
            "generated_at_unix_ms": t.generated_at_unix_ms,
            "networks": networks,
        }));
    }
    let mut out = format!(
        "version {}  content hash {}  generated at {} (unix ms)\n\n",
        version(s.version.as_ref()),
        s.content_hash,
        t.generated_at_unix_ms
    );
    let networks: Vec<Vec<String>> = t
        .networks
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.chain.clone(),
                n.upstreams.len().to_string(),
                if n.leader_url.is_empty() {
                    "-".to_owned()
                } else {
                    n.leader_url.clone()
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &["NETWORK", "CHAIN", "UPSTREAMS", "LEADER"],
        &networks,
    ));
    let rows: Vec<Vec<String>> = t
        .networks
        .iter()
        .flat_map(|n| {
            n.upstreams.iter().map(move |u| {
                vec![
                    n.id.clone(),
                    u.id.clone(),
                    state_name(u.state).to_owned(),
                    u.score.to_string(),
                    u.head_height.to_string(),
                    u.lag.to_string(),
                    u.region.clone(),
                    u.weight.to_string(),
                    u.url.clone(),
                    u.reason.clone(),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "NETWORK", "UPSTREAM", "STATE", "SCORE", "HEIGHT", "LAG", "REGION", "WEIGHT",
                "URL", "REASON",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
    }

    #[test]
    fn dataplanes_render_both_ways() {
        let list = [proto::DataPlaneStatus {
            dataplane_id: "eu-1".into(),
            region: "eu".into(),
            acked_version: Some(proto::Version { epoch: 2, seq: 5 }),
            last_seen_unix_ms: 10_000,
            connected: true,
            nacked_version: None,
            nack_error: String::new(),
            chain_kinds: vec!["evm".into()],
            left_out_networks: vec!["icon-main".into()],
        }];
        let t = dataplanes(false, &list, 13_000);
        assert!(
            t.contains("eu-1") && t.contains("2.5") && t.contains("3s ago"),
            "{t}"
        );
        let j: Value = serde_json::from_str(&dataplanes(true, &list, 0)).unwrap();
        assert_eq!(j["dataplanes"][0]["acked_version"]["seq"], 5);
        assert_eq!(j["dataplanes"][0]["nacked_version"], Value::Null);
        assert_eq!(j["dataplanes"][0]["left_out_networks"][0], "icon-main");
        assert!(t.contains("LEFT OUT") && t.contains("icon-main"), "{t}");
    }
}
