//! Closes idle upstream connections that are past the idle timeout or
//! were closed by their node, also when no request comes to take them.
//!
//! Requests drop such connections when they find them, but an upstream
//! that stops getting traffic would otherwise keep its idle sockets (half
//! closed by the node) until the process ends.

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::Shared;

/// Sweeps every upstream's idle connections a few times per idle timeout
/// until `shutdown` turns true.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let every = (shared.upstreams.idle_timeout() / 3).max(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => sweep(&shared),
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn sweep(shared: &Shared) {
    let table = shared.table.load();
    for network in table.networks() {
        let upstreams = network.upstreams.iter().chain(network.leader.as_ref());
        for upstream in upstreams {
            shared.upstreams.sweep(&upstream.endpoint);
        }
    }
}
