//! The inventory: every network and upstream known now, with its health.
//!
//! Config-file upstreams (minus those removed at runtime) and runtime
//! upstreams (from the store) merge here. Probers write observations, the
//! admin API adds and removes upstreams, the snapshot builder reads.
//!
//! Each upstream has a *live* view (every probe updates it; `ListUpstreams`
//! and `/metrics` show it) and a *routed* view (what snapshots carry). The
//! routed view only follows the live one on a significant change: a state
//! or reason change, or a score move of at least [`SCORE_STEP`]. Otherwise
//! every new block or latency wobble would publish a new snapshot, and "an
//! unchanged state publishes nothing" would never hold on a live chain.
//!
//! One `std::sync::Mutex` guards it all: the control plane is not on the
//! request path, every critical section is short and never awaits.

mod finality;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meridian_common::chain::Chain;
use meridian_common::metrics::{Histogram, TextEncoder};
use meridian_common::snapshot::{RoutingTable, UpstreamState};

pub use finality::FinalityState;
pub use spec::{Origin, UpstreamSpec};

use crate::config::{ControlConfig, NetworkConfig};
use crate::health::judge::{Round, judge};
use crate::health::{Hysteresis, ProbeOutcome, score};

/// Rounds a lower reference height must last before it is taken.
pub const REFERENCE_DIP_ROUNDS: u32 = 3;

/// A routed score is republished once the live score moved this far.
pub const SCORE_STEP: u32 = 10;

/// Probe-derived values of an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measures {
    pub head_height: u64,
    pub lag: u64,
    pub latency_ewma_us: u64,
    pub score: u32,
}

/// The routed view: what snapshots say about an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub state: UpstreamState,
    pub reason: String,
    pub measures: Measures,
}

/// One upstream and everything known about it.
#[derive(Debug)]
pub struct UpstreamEntry {
    pub spec: UpstreamSpec,
    pub origin: Origin,
    health: Hysteresis,
    live: Measures,
    /// Error of the last probe, if it failed.
    last_error: Option<String>,
    routed: Routed,
    /// Unique per insertion, so a probe of a removed upstream that is added
    /// again (maybe with another URL) is not credited to the new one.
    generation: u64,
    pub probes_ok: u64,
    pub probes_failed: u64,
    pub latency: Arc<Histogram>,
}

impl UpstreamEntry {
    pub fn state(&self) -> UpstreamState {
        self.health.state()
    }

    pub fn reason(&self) -> &str {
        self.health.reason()
    }

    pub fn live(&self) -> Measures {
        self.live
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn routed(&self) -> &Routed {
        &self.routed
    }
}

/// One network and its upstreams.
#[derive(Debug)]
pub struct NetworkState {
    pub config: Arc<NetworkConfig>,
    /// Ids defined in the config file, including removed ones: removing one
    /// of these needs a tombstone so it stays removed after a restart.
    config_ids: BTreeSet<String>,
    /// Sorted by id, which keeps snapshots deterministic.
    pub upstreams: BTreeMap<String, UpstreamEntry>,
    learned_chain_id: Option<String>,
    pub reference_height: Option<u64>,
    /// Consecutive rounds whose reference height was below the held one.
    reference_dips: u32,
    /// The network's finalized height; only ever rises.
    pub finality: FinalityState,
}

impl NetworkState {
    /// The chain id upstreams are held to, if known.
    pub fn expected_chain_id(&self) -> Option<&str> {
        self.config
            .chain_id
            .as_deref()
            .or(self.learned_chain_id.as_deref())
    }
}

/// What a probe round of one network needs to know.
#[derive(Clone)]
pub struct ProbeTargets {
    pub chain: &'static dyn Chain,
    pub timeout: Duration,
    pub interval: Duration,
    pub leader: Option<String>,
    /// `(id, url, generation)`.
    pub upstreams: Vec<(String, String, u64)>,
}

/// The result of probing one upstream in a round.
#[derive(Debug, Clone)]
pub struct UpstreamProbe {
    pub id: String,
    pub generation: u64,
    pub outcome: ProbeOutcome,
}

/// Why an upstream cannot be added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("unknown network {0:?}")]
    UnknownNetwork(String),
    #[error("network {network:?} already has an upstream {id:?}")]
    DuplicateUpstream { network: String, id: String },
    #[error("network {network:?} has no upstream {id:?}")]
    UnknownUpstream { network: String, id: String },
}

/// Every network, behind one lock.
#[derive(Debug)]
pub struct Inventory {
    networks: Mutex<BTreeMap<String, NetworkState>>,
    generations: std::sync::atomic::AtomicU64,
}

impl Inventory {
    /// Merges the config file with the store: config upstreams minus
    /// `tombstones`, plus `runtime` ones. Health resumes from `seed` (the last
    /// published table) for upstreams with the same id and URL, so a restart
    /// of the control plane does not take every upstream out of rotation.
    pub fn new(
        config: &ControlConfig,
        runtime: Vec<(String, UpstreamSpec)>,
        tombstones: &[(String, String)],
        seed: Option<&RoutingTable>,
    ) -> Inventory {
        let inventory = Inventory {
            networks: Mutex::new(BTreeMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
        };
        {
            let mut networks = inventory.lock();
            for n in &config.networks {
                networks.insert(
                    n.id.clone(),
                    NetworkState {
                        config: Arc::new(n.clone()),
                        config_ids: n.upstreams.iter().map(|u| u.id.clone()).collect(),
                        upstreams: BTreeMap::new(),
                        learned_chain_id: None,
                        reference_height: None,
                        reference_dips: 0,
                        finality: FinalityState::default(),
                    },
                );
            }
            let removed: BTreeSet<(&str, &str)> = tombstones
                .iter()
                .map(|(n, i)| (n.as_str(), i.as_str()))
                .collect();
            let config_specs = config.networks.iter().flat_map(|n| {
                n.upstreams
                    .iter()
                    .filter(|u| !removed.contains(&(n.id.as_str(), u.id.as_str())))
                    .map(|u| (n.id.clone(), UpstreamSpec::from(u), Origin::Config))
            });
            let runtime_specs = runtime.into_iter().map(|(n, s)| (n, s, Origin::Admin));
            for (network_id, spec, origin) in config_specs
                .collect::<Vec<_>>()
                .into_iter()
                .chain(runtime_specs)
            {
                let Some(network) = networks.get_mut(&network_id) else {
                    tracing::warn!(network = %network_id, upstream = %spec.id,
                        "runtime upstream of a network no longer in the config file; ignored");
                    continue;
                };
                if network.upstreams.contains_key(&spec.id) {
                    tracing::warn!(network = %network_id, upstream = %spec.id,
                        "runtime upstream has the id of a config-file upstream; the config file wins");
                    continue;
                }
                let seeded = seed
                    .and_then(|t| t.network(&network_id))
                    .and_then(|n| {
                        n.upstreams
                            .iter()
                            .find(|u| u.id == spec.id && u.url == spec.url)
                    })
                    .map(|u| Routed {
                        state: u.state,
                        reason: u.reason.clone(),
                        measures: Measures {
                            head_height: u.head_height,
                            lag: u.lag,
                            latency_ewma_us: u.latency_ewma_us,
                            score: u.score,
                        },
                    });
                let entry = inventory.new_entry(spec, origin, seeded);
                network.upstreams.insert(entry.spec.id.clone(), entry);
            }
        }
        inventory
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NetworkState>> {
        // Poisoning means a panic elsewhere mid-update of plain data; the
        // values are still usable and the control plane must keep going.
        self.networks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_entry(
        &self,
        spec: UpstreamSpec,
        origin: Origin,
        seeded: Option<Routed>,
    ) -> UpstreamEntry {
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (health, routed) = match seeded {
            Some(r) => (Hysteresis::seeded(r.state, r.reason.clone()), r),
            None => {
                let h = Hysteresis::unproven();
                let r = Routed {
                    state: h.state(),
                    reason: h.reason().to_owned(),
                    measures: Measures::default(),
                };
                (h, r)
            }
        };
        UpstreamEntry {
            spec,
            origin,
            live: routed.measures,
            health,
            last_error: None,
            routed,
            generation,
            probes_ok: 0,
            probes_failed: 0,
            latency: Arc::new(Histogram::latency()),
        }
    }

    /// Ids of every network.
    pub fn network_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Runs `f` over every network (sorted by id) under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&BTreeMap<String, NetworkState>) -> R) -> R {
        f(&self.lock())
    }

    /// What the next probe round of `network` must probe.
    pub fn probe_targets(&self, network: &str) -> Option<ProbeTargets> {
        let networks = self.lock();
        let n = networks.get(network)?;
        Some(ProbeTargets {
            chain: n.config.chain.chain(),
            timeout: n.config.probe_timeout(),
            interval: n.config.probe_interval(),
            leader: n.config.leader.clone(),
            upstreams: n
                .upstreams
                .values()
                .map(|u| (u.spec.id.clone(), u.spec.url.clone(), u.generation))
                .collect(),
        })
    }

    /// Applies a probe round; returns whether any routed view changed (so a
    /// new snapshot is due).
    pub fn apply_round(
        &self,
        network: &str,
        leader: Option<&ProbeOutcome>,
        probes: &[UpstreamProbe],
    ) -> bool {
        let mut networks = self.lock();
        let Some(n) = networks.get_mut(network) else {
            return false;
        };
        let outcomes: Vec<ProbeOutcome> = probes.iter().map(|p| p.outcome.clone()).collect();
        let verdict = judge(Round {
            configured_chain_id: n.config.chain_id.as_deref(),
            learned_chain_id: n.learned_chain_id.as_deref(),
            leader,
            upstreams: &outcomes,
            max_lag: n.config.max_lag_blocks,
            finality_depth: n.config.cache.finality_depth_for(n.config.chain.chain()),
        });
        // The best node missing one round must not pull the network's head
        // down (data planes would route old-block reads away from archive
        // nodes for that round): a lower height is taken only once it has
        // held for REFERENCE_DIP_ROUNDS rounds in a row (a chain reset).
        match (verdict.reference_height, n.reference_height) {
            (Some(new), Some(held)) if new < held => {
                n.reference_dips += 1;
                if n.reference_dips >= REFERENCE_DIP_ROUNDS {
                    n.reference_height = Some(new);
                    n.reference_dips = 0;
                }
            }
            (Some(new), _) => {
                n.reference_height = Some(new);
                n.reference_dips = 0;
            }
            (None, _) => {}
        }
        n.finality.observe(network, verdict.finalized);
        if n.config.chain_id.is_none()
            && verdict.expected_chain_id.is_some()
            && n.learned_chain_id != verdict.expected_chain_id
        {
            tracing::info!(network, chain_id = ?verdict.expected_chain_id, "learned the network's chain id");
            if n.learned_chain_id.is_some() {
                // Another chain now: its finality is not the old one's.
                n.finality.reset();
            }
            n.learned_chain_id.clone_from(&verdict.expected_chain_id);
        }
        let (healthy_after, unhealthy_after, max_lag) = (
            n.config.healthy_after,
            n.config.unhealthy_after,
            n.config.max_lag_blocks,
        );
        let mut changed = false;
        for (probe, (observation, lag)) in probes.iter().zip(verdict.observations) {
            let Some(u) = n.upstreams.get_mut(&probe.id) else {
                continue; // removed during the round
            };
            if u.generation != probe.generation {
                continue; // removed and added again during the round
            }
            match &probe.outcome.result {
                Ok(answer) => {
                    u.probes_ok += 1;
                    let us = u64::try_from(probe.outcome.latency.as_micros()).unwrap_or(u64::MAX);
                    u.latency.observe_us(us);
                    u.live.head_height = answer.height;
                    u.live.latency_ewma_us = if u.probes_ok == 1 {
                        us
                    } else {
                        // EWMA with alpha 0.3: recent enough to follow a
                        // slowing node, smooth enough to ignore one hiccup.
                        (us.saturating_mul(3) / 10)
                            .saturating_add(u.live.latency_ewma_us.saturating_mul(7) / 10)
                    };
                    u.last_error = None;
                }
                Err(why) => {
                    u.probes_failed += 1;
                    u.last_error = Some(why.clone());
                }
            }
            u.live.lag = lag;
            let before = u.health.state();
            if u.health
                .observe(&observation, healthy_after, unhealthy_after)
            {
                tracing::info!(network, upstream = %u.spec.id, from = before.as_str(),
                    to = u.health.state().as_str(), reason = u.health.reason(), "upstream state changed");
            }
            u.live.score = if u.health.state() == UpstreamState::Healthy {
                score::score(lag, max_lag, u.live.latency_ewma_us).max(1)
            } else {
                0
            };
            let significant = u.routed.state != u.health.state()
                || u.routed.reason != u.health.reason()
                || u.routed.measures.score.abs_diff(u.live.score) >= SCORE_STEP;
            if significant {
                u.routed = Routed {
                    state: u.health.state(),
                    reason: u.health.reason().to_owned(),
                    measures: u.live,
                };
                changed = true;
            }
        }
        changed
    }

    /// Checks that `spec` could be added to `network`, without adding it.
    pub fn check_add(&self, network: &str, spec: &UpstreamSpec) -> Result<(), InventoryError> {
        let networks = self.lock();
        let n = networks
            .get(network)
            .ok_or_else(|| InventoryError::UnknownNetwork(network.to_owned()))?;
        if n.upstreams.contains_key(&spec.id) {
            return Err(InventoryError::DuplicateUpstream {
                network: network.to_owned(),
                id: spec.id.clone(),
            });
        }
        Ok(())
    }

    /// Adds a runtime upstream (after [`Inventory::check_add`] and the store
    /// write). It starts failing until proven healthy.
    pub fn insert(&self, network: &str, spec: UpstreamSpec) -> Result<(), InventoryError> {
        self.check_add(network, &spec)?;
        let entry = self.new_entry(spec, Origin::Admin, None);
        let mut networks = self.lock();
        let n = networks
            .get_mut(network)
            .ok_or_else(|| InventoryError::UnknownNetwork(network.to_owned()))?;
        n.upstreams.insert(entry.spec.id.clone(), entry);
        Ok(())
    }

    /// How removing `id` from `network` must be stored: `Ok(true)` when a
    /// tombstone is needed (the id is defined in the config file).
    pub fn check_remove(&self, network: &str, id: &str) -> Result<bool, InventoryError> {
        let networks = self.lock();
        let n = networks
            .get(network)
            .ok_or_else(|| InventoryError::UnknownNetwork(network.to_owned()))?;
        if !n.upstreams.contains_key(id) {
            return Err(InventoryError::UnknownUpstream {
                network: network.to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(n.config_ids.contains(id))
    }

    /// Removes an upstream (after the store write).
    pub fn remove(&self, network: &str, id: &str) -> Result<(), InventoryError> {
        let mut networks = self.lock();
        let n = networks
            .get_mut(network)
            .ok_or_else(|| InventoryError::UnknownNetwork(network.to_owned()))?;
        n.upstreams
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| InventoryError::UnknownUpstream {
                network: network.to_owned(),
                id: id.to_owned(),
            })
    }

    /// Probe metrics of every upstream, in Prometheus text.
    pub fn render_metrics(&self, out: &mut TextEncoder) {
        let networks = self.lock();
        let each = |out: &mut TextEncoder, f: &dyn Fn(&mut TextEncoder, &str, &UpstreamEntry)| {
            for (nid, n) in networks.iter() {
                for u in n.upstreams.values() {
                    f(out, nid, u);
                }
            }
        };
        out.family(
            "meridian_probes_total",
            "counter",
            "Upstream probes by result.",
        );
        each(out, &|out, nid, u| {
            for (result, v) in [("ok", u.probes_ok), ("error", u.probes_failed)] {
                out.sample(
                    "meridian_probes_total",
                    &[
                        ("network", nid),
                        ("upstream", &u.spec.id),
                        ("result", result),
                    ],
                    v,
                );
            }
        });
        out.family(
            "meridian_probe_latency_seconds",
            "histogram",
            "Latency of passing upstream probes.",
        );
        each(out, &|out, nid, u| {
            out.histogram(
                "meridian_probe_latency_seconds",
                &[("network", nid), ("upstream", &u.spec.id)],
                &u.latency,
            );
        });
        out.family(
            "meridian_upstream_state",
            "gauge",
            "1 for the upstream's current state.",
        );
        each(out, &|out, nid, u| {
            for s in [
                UpstreamState::Healthy,
                UpstreamState::Lagging,
                UpstreamState::Failing,
                UpstreamState::Quarantined,
            ] {
                let v = u8::from(u.state() == s);
                out.sample(
                    "meridian_upstream_state",
                    &[
                        ("network", nid),
                        ("upstream", &u.spec.id),
                        ("state", s.as_str()),
                    ],
                    v,
                );
            }
        });
        for (name, help, get) in [
            (
                "meridian_upstream_head_height",
                "Last head height the upstream reported.",
                (|m: &Measures| m.head_height) as fn(&Measures) -> u64,
            ),
            (
                "meridian_upstream_lag_blocks",
                "Blocks behind the reference height.",
                |m| m.lag,
            ),
            ("meridian_upstream_score", "Score 0-100.", |m| {
                u64::from(m.score)
            }),
        ] {
            out.family(name, "gauge", help);
            each(out, &|out, nid, u| {
                out.sample(
                    name,
                    &[("network", nid), ("upstream", &u.spec.id)],
                    get(&u.live),
                );
            });
        }
        out.family(
            "meridian_network_reference_height",
            "gauge",
            "Reference height of the network.",
        );
        for (nid, n) in networks.iter() {
            if let Some(h) = n.reference_height {
                out.sample("meridian_network_reference_height", &[("network", nid)], h);
            }
        }
        out.family(
            "meridian_network_finalized_height",
            "gauge",
            "Finalized height of the network (reported by its nodes, else reference height minus finality_depth).",
        );
        for (nid, n) in networks.iter() {
            if let Some(h) = n.finality.height() {
                out.sample("meridian_network_finalized_height", &[("network", nid)], h);
            }
        }
    }
}
