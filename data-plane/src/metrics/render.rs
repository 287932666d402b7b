//! `/metrics`: the Prometheus text of one data plane.

use std::sync::atomic::Ordering;

use meridian_common::metrics::TextEncoder;

use super::Metrics;
use crate::cache::{CacheStats, ResponseCache};
use crate::routing::{ChainHeights, RoutingTable};

/// Renders every metric of the data plane serving `table`, at `now_ms`.
pub fn render(
    metrics: &Metrics,
    table: &RoutingTable,
    cache: Option<&ResponseCache>,
    now_ms: u64,
) -> String {
    let mut out = TextEncoder::new();

    out.family(
        "meridian_requests_total",
        "counter",
        "Client requests (batch elements count one each) by network, method and HTTP status.",
    );
    let mut networks: Vec<_> = table.networks().collect();
    networks.sort_by(|a, b| a.id.cmp(&b.id));
    for n in &networks {
        n.requests.render(&n.id, &mut out);
    }
    metrics.unrouted.render("", &mut out);

    for (name, help, height) in [
        (
            "meridian_network_head_height",
            "The network's head height as this data plane routes by it (snapshot, then Heights).",
            ChainHeights::head as fn(&ChainHeights) -> u64,
        ),
        (
            "meridian_network_finalized_height",
            "The network's finalized height as this data plane knows it (0: not known).",
            ChainHeights::finalized,
        ),
    ] {
        out.family(name, "gauge", help);
        for n in &networks {
            out.sample(name, &[("network", &n.id)], height(&n.heights));
        }
    }

    out.family(
        "meridian_upstream_latency_seconds",
        "histogram",
        "Latency of tries sent to each upstream (leader: the network's fallback).",
    );
    for n in &networks {
        for u in n.upstreams.iter().chain(n.leader.as_ref()) {
            out.histogram(
                "meridian_upstream_latency_seconds",
                &[("network", &n.id), ("upstream", &u.id)],
                &u.latency,
            );
        }
    }

    let stats: Vec<(&str, &super::NetworkStats)> = networks
        .iter()
        .map(|n| (n.id.as_str(), &*n.stats))
        .collect();
    super::NetworkStats::render(&stats, &mut out);

    let cache_stats: Vec<(&str, &CacheStats)> = networks
        .iter()
        .map(|n| (n.id.as_str(), &*n.cache_stats))
        .collect();
    CacheStats::render(&cache_stats, &mut out);
    if let Some(cache) = cache {
        for (name, kind, help, value) in [
            (
                "meridian_cache_bytes",
                "gauge",
                "Bytes the response cache holds (keys, answers, per-entry overhead), all networks.",
                cache.bytes(),
            ),
            (
                "meridian_cache_max_bytes",
                "gauge",
                "The response cache's bound in bytes (--cache-max-bytes).",
                cache.max_bytes(),
            ),
            (
                "meridian_cache_entries",
                "gauge",
                "Answers the response cache holds, all networks.",
                cache.len() as u64,
            ),
            (
                "meridian_cache_evictions_total",
                "counter",
                "Entries evicted to keep the response cache within its bound.",
                cache.evictions(),
            ),
        ] {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
        if let Some(tier) = cache.shared() {
            render_shared(tier, &mut out);
        }
    }

    out.family(
        "meridian_upstream_ejections_total",
        "counter",
        "Times this data plane ejected the upstream after consecutive failures (local only).",
    );
    for n in &networks {
        for u in &n.upstreams {
            out.sample(
                "meridian_upstream_ejections_total",
                &[("network", &n.id), ("upstream", &u.id)],
                u.runtime.ejection.total(),
            );
        }
    }
    out.family(
        "meridian_upstream_ejected",
        "gauge",
        "1 while this data plane has the upstream ejected (cooling down or on trial).",
    );
    for n in &networks {
        for u in &n.upstreams {
            out.sample(
                "meridian_upstream_ejected",
                &[("network", &n.id), ("upstream", &u.id)],
                u8::from(u.runtime.ejection.is_ejected()),
            );
        }
    }
    out.family(
        "meridian_upstream_in_flight",
        "gauge",
        "Tries in flight to the upstream (bounded by max_concurrency).",
    );
    for n in &networks {
        for u in n.upstreams.iter().chain(n.leader.as_ref()) {
            out.sample(
                "meridian_upstream_in_flight",
                &[("network", &n.id), ("upstream", &u.id)],
                u.runtime.limiter.in_flight(),
            );
        }
    }
    out.family(
        "meridian_queue_depth",
        "gauge",
        "Requests waiting for a slot on the upstream, by priority class.",
    );
    for n in &networks {
        for u in n.upstreams.iter().chain(n.leader.as_ref()) {
            for class in crate::balance::Priority::ALL {
                out.sample(
                    "meridian_queue_depth",
                    &[
                        ("network", &n.id),
                        ("upstream", &u.id),
                        ("priority", class.as_str()),
                    ],
                    u.runtime.limiter.depth(class),
                );
            }
        }
    }

    let version = table.meta.version;
    out.family(
        "meridian_snapshot_version_epoch",
        "gauge",
        "Epoch of the snapshot serving (0: none).",
    );
    out.sample("meridian_snapshot_version_epoch", &[], version.epoch);
    out.family(
        "meridian_snapshot_version_seq",
        "gauge",
        "Sequence number of the snapshot serving within its epoch.",
    );
    out.sample("meridian_snapshot_version_seq", &[], version.seq);
    out.family(
        "meridian_snapshot_age_seconds",
        "gauge",
        "Seconds since the control plane built the snapshot serving (-1: none loaded).",
    );
    let age = if table.is_loaded() {
        now_ms.saturating_sub(table.generated_at_unix_ms) as f64 / 1e3
    } else {
        -1.0
    };
    out.sample("meridian_snapshot_age_seconds", &[], age);

    out.family(
        "meridian_control_plane_connected",
        "gauge",
        "1 while the snapshot stream to the control plane is open.",
    );
    out.sample(
        "meridian_control_plane_connected",
        &[],
        u8::from(metrics.control_plane_connected.load(Ordering::Relaxed)),
    );
    for (name, help, value) in [
        (
            "meridian_snapshots_applied_total",
            "Snapshots validated and applied.",
            &metrics.snapshots_applied,
        ),
        (
            "meridian_snapshots_rejected_total",
            "Snapshots rejected (NACKed).",
            &metrics.snapshots_rejected,
        ),
        (
            "meridian_snapshot_persist_failures_total",
            "Applied snapshots that could not be written to the state dir.",
            &metrics.persist_failures,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[], value.load(Ordering::Relaxed));
    }
    out.finish()
}

/// The shared tier's (Redis) own counters and its breaker.
fn render_shared(tier: &crate::cache::SharedTier, out: &mut TextEncoder) {
    let stats = tier.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    for (name, kind, help, value) in [
        (
            "meridian_cache_redis_errors_total",
            "counter",
            "Calls to the shared tier (Redis) that failed: errors of Redis or of the connection.",
            load(&stats.errors),
        ),
        (
            "meridian_cache_redis_timeouts_total",
            "counter",
            "Calls to the shared tier (Redis) not answered within their timeout.",
            load(&stats.timeouts),
        ),
        (
            "meridian_cache_redis_undecodable_total",
            "counter",
            "Values read from the shared tier that did not decode (served as misses).",
            load(&stats.undecodable),
        ),
        (
            "meridian_cache_redis_skipped_total",
            "counter",
            "Keys not looked up in the shared tier because its breaker was open.",
            load(&stats.skipped),
        ),
        (
            "meridian_cache_redis_writes_total",
            "counter",
            "Entries written to the shared tier.",
            load(&stats.written),
        ),
        (
            "meridian_cache_redis_write_drops_total",
            "counter",
            "Writes to the shared tier dropped: queue full, breaker open, or the write failed.",
            load(&stats.write_drops),
        ),
        (
            "meridian_cache_redis_breaker_opened_total",
            "counter",
            "Times the shared tier's breaker opened.",
            tier.breaker().opened(),
        ),
        (
            "meridian_cache_redis_breaker_state",
            "gauge",
            "The shared tier's breaker: 0 closed (Redis asked), 1 open (not asked), 2 half-open (one trial out).",
            tier.breaker().state() as u64,
        ),
    ] {
        out.family(name, kind, help);
        out.sample(name, &[], value);
    }
}
