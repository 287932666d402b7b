//! Phase: serving a write, never sending it twice by accident.
//!
//! A write goes to one `write` upstream. It is tried again elsewhere only
//! when the first try provably never left (the connection was refused);
//! after a timeout, a reset, a 5xx or an invalid answer the node may have
//! executed it, so the client gets the failure instead of a duplicate.
//! Writes are never hedged.
//!
//! A method the chain calls broadcastable (EVM: `eth_sendRawTransaction`)
//! goes to up to `write_broadcast` write upstreams at once, for
//! propagation. The first answer with a `result` is returned at once; an
//! "already known" error also counts as success (the node has the
//! transaction) and is returned when no `result` comes; otherwise the first
//! JSON-RPC error answer, otherwise the failure. The other tries are not
//! cancelled: they run to completion in the background, because cutting a
//! broadcast short is exactly what it is there to avoid.

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use http::HeaderValue;

use super::batch::MemberKind;
use super::forward::{Ctx, Job, Target, TryError, Validated, attempt, give_up, next_target};
use super::hedge::Report;
use super::reply::ErrorReply;
use super::retry::{MAX_TRIES, may_retry};
use crate::metrics::NetworkStats;
use crate::routing::Tried;

/// Serves a write `job`; `broadcast` when its method may be broadcast.
pub async fn write(
    ctx: &Ctx,
    job: &Job,
    broadcast: bool,
) -> (Result<Validated, ErrorReply>, Report) {
    let fan_out = if broadcast {
        ctx.network.policy.write_broadcast.clamp(1, MAX_TRIES)
    } else {
        1
    };
    if fan_out > 1 {
        return broadcast_write(ctx, job, fan_out).await;
    }
    let network = &ctx.network;
    let max_tries = network.policy.max_tries.clamp(1, MAX_TRIES);
    let mut tried = Tried::default();
    let mut report = Report::default();
    let mut last: Option<(HeaderValue, TryError)> = None;
    while report.tries < max_tries {
        let Some(target) = next_target(network, job.route.role(), &mut tried, false) else {
            break;
        };
        if report.tries > 0 {
            NetworkStats::bump(&network.stats.retries);
        }
        report.tries += 1;
        report.handled_by = Some(target.upstream.handled_by.clone());
        // A write gets the whole remaining time: it will not be retried
        // after it left, so there is nothing to save time for.
        let outcome = attempt(ctx, target, job, ctx.remaining(), false).await;
        report.queue_wait = report.queue_wait.max(outcome.queue_wait);
        match outcome.result {
            Ok(answer) => return (Ok(answer), report),
            Err(error) => {
                let retry = may_retry(true, &error);
                tracing::debug!(upstream = %target.upstream.id, %error, retry, "write try failed");
                last = Some((target.upstream.handled_by.clone(), error));
                if !retry || ctx.remaining().is_zero() {
                    break;
                }
            }
        }
    }
    let reply = give_up(network, last, report.tries);
    (Err(reply), report)
}

/// How good one broadcast answer is (higher wins).
fn rank(ctx: &Ctx, answer: &Validated) -> u8 {
    match answer.members.first().and_then(Option::as_ref) {
        Some(m) if m.kind == MemberKind::Result => 3,
        Some(m) => {
            let error = serde_json::from_slice::<&serde_json::value::RawValue>(&m.value);
            match error {
                Ok(e) if ctx.network.chain.chain().is_already_known(e) => 2,
                _ => 1,
            }
        }
        // A notification: any valid answer will do.
        None => 3,
    }
}

async fn broadcast_write(
    ctx: &Ctx,
    job: &Job,
    fan_out: u32,
) -> (Result<Validated, ErrorReply>, Report) {
    let network = &ctx.network;
    let mut tried = Tried::default();
    let mut report = Report::default();
    let mut targets: Vec<Target<'_>> = Vec::new();
    while report.tries < fan_out {
        let Some(target) = next_target(network, job.route.role(), &mut tried, false) else {
            break;
        };
        report.tries += 1;
        targets.push(target);
    }
    let mut running: FuturesUnordered<_> = targets
        .iter()
        .map(|t| {
            let (ctx, job, at, kind) = (ctx.clone(), job.clone(), t.at, t.kind);
            let handled_by = t.upstream.handled_by.clone();
            let task = tokio::spawn(async move {
                let network = ctx.network.clone();
                let upstream = at.resolve(&network)?;
                let target = Target { upstream, kind, at };
                Some(attempt(&ctx, target, &job, ctx.remaining(), false).await)
            });
            async move { (handled_by, task.await.ok().flatten()) }
        })
        .collect();
    let mut best: Option<(u8, Validated)> = None;
    let mut last: Option<(HeaderValue, TryError)> = None;
    while let Some((handled_by, outcome)) = running.next().await {
        let Some(outcome) = outcome else { continue };
        report.queue_wait = report.queue_wait.max(outcome.queue_wait);
        match outcome.result {
            Ok(answer) => {
                let r = rank(ctx, &answer);
                if r == 3 {
                    // Dropping the join handles detaches the other tries;
                    // they still finish.
                    report.handled_by = Some(answer.handled_by.clone());
                    return (Ok(answer), report);
                }
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, answer));
                }
            }
            Err(error) => last = Some((handled_by, error)),
        }
    }
    if let Some((_, answer)) = best {
        report.handled_by = Some(answer.handled_by.clone());
        return (Ok(answer), report);
    }
    report.handled_by = last.as_ref().map(|(h, _)| h.clone());
    (Err(give_up(network, last, report.tries)), report)
}
