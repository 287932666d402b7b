//! Phase: serving a read, with retries and one hedged backup try.
//!
//! The first try goes out; a failure that [`super::retry`] allows is tried
//! again on another upstream, up to `max_tries` tries within the request's
//! deadline. Each try gets an equal share of the time left
//! (`remaining / tries left`), so a hung upstream still leaves time for the
//! next. When the first try has no answer after the hedge delay, one backup
//! try goes to another upstream with a free slot (a hedge never queues, so
//! it never adds load to a saturated upstream); both run, the first good
//! answer wins and the other is dropped, which cancels its HTTP exchange.
//! The hedge counts as one of the `max_tries`.
//!
//! The hedge delay is the policy's `hedge_after_ms`, or with
//! `hedge_from_p95` the p95 of the first upstream's observed latency
//! (at most `hedge_after_ms`; `hedge_after_ms` until 20 tries were seen).

use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use http::HeaderValue;
use tokio::time::Instant;

use super::forward::{
    Ctx, Job, Target, TryError, TryOutcome, Validated, attempt, give_up, next_target,
};
use super::reply::ErrorReply;
use super::retry::{MAX_TRIES, may_retry};
use crate::metrics::NetworkStats;
use crate::routing::{RoutedUpstream, Tried};

/// What happened while serving one job (for headers, log and metrics).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Upstream tries made (hedges included).
    pub tries: u32,
    /// A backup try was sent.
    pub hedged: bool,
    /// Longest time a try waited for a slot.
    pub queue_wait: Duration,
    /// The upstream whose answer was used (or the last one tried).
    pub handled_by: Option<HeaderValue>,
}

/// Floor of a p95-derived hedge delay: hedging on a sub-millisecond p95
/// would double the load for nothing.
const MIN_HEDGE_DELAY: Duration = Duration::from_millis(1);

/// The hedge delay for a first try on `upstream`.
pub fn hedge_delay(ctx: &Ctx, upstream: &RoutedUpstream) -> Duration {
    let policy = &ctx.network.policy;
    let configured = Duration::from_millis(u64::from(policy.hedge_after_ms));
    if !policy.hedge_from_p95 {
        return configured;
    }
    match upstream.runtime.quantiles.quantile_us(0.95) {
        Some(us) => {
            Duration::from_micros(us).clamp(MIN_HEDGE_DELAY, configured.max(MIN_HEDGE_DELAY))
        }
        None => configured,
    }
}

/// One try, tagged with its upstream and whether it is the hedge.
async fn one_try<'a>(
    ctx: &'a Ctx,
    target: Target<'a>,
    job: &'a Job,
    budget: Duration,
    hedge: bool,
) -> (HeaderValue, bool, TryOutcome) {
    let handled_by = target.upstream.handled_by.clone();
    let outcome = attempt(ctx, target, job, budget, hedge).await;
    (handled_by, hedge, outcome)
}

/// Serves a read `job`.
pub async fn read(ctx: &Ctx, job: &Job) -> (Result<Validated, ErrorReply>, Report) {
    let network = &ctx.network;
    let role = job.route.role();
    let max_tries = network.policy.max_tries.clamp(1, MAX_TRIES);
    let mut tried = Tried::default();
    let mut report = Report::default();
    let mut last: Option<(HeaderValue, TryError)> = None;
    // Created on the first retry or hedge: an empty `FuturesUnordered`
    // still allocates, and the common request never needs one.
    let mut running = None;

    let start = |target, tries: u32, hedge| {
        let left = max_tries.saturating_sub(tries).max(1);
        one_try(ctx, target, job, ctx.remaining() / left, hedge)
    };

    let Some(first) = next_target(network, role, &mut tried, false) else {
        return (Err(give_up(network, None, 0)), report);
    };
    let mut may_hedge = max_tries > 1;
    // One clock read for the first try's budget and the hedge moment.
    let now = Instant::now();
    let hedge_at = now + hedge_delay(ctx, first.upstream);
    report.tries = 1;
    report.handled_by = Some(first.upstream.handled_by.clone());
    // The first try runs in place; only retries and the hedge go into
    // `running`, so the common request (one try, answered) allocates no
    // task for it.
    let first_budget = ctx.deadline.saturating_duration_since(now.into_std()) / max_tries;
    let mut first = pin!(one_try(ctx, first, job, first_budget, false));
    let mut first_running = true;
    // One timer for both moments (a timer costs a registration in tokio's
    // wheel): the hedge delay first, then, reset, the request deadline.
    let deadline = Instant::from_std(ctx.deadline);
    let first_alarm = if may_hedge {
        hedge_at.min(deadline)
    } else {
        deadline
    };
    let mut alarm = pin!(tokio::time::sleep_until(first_alarm));

    loop {
        if !first_running && running.as_ref().is_none_or(FuturesUnordered::is_empty) {
            // Everything sent so far failed: retry if allowed.
            let retryable = last.as_ref().is_some_and(|(_, e)| may_retry(false, e));
            let target = (retryable && report.tries < max_tries && !ctx.remaining().is_zero())
                .then(|| next_target(network, role, &mut tried, false))
                .flatten();
            let Some(target) = target else {
                return (Err(give_up(network, last, report.tries)), report);
            };
            NetworkStats::bump(&network.stats.retries);
            report.handled_by = Some(target.upstream.handled_by.clone());
            running
                .get_or_insert_with(FuturesUnordered::new)
                .push(start(target, report.tries, false));
            report.tries += 1;
            continue;
        }
        let (handled_by, hedge, outcome) = tokio::select! {
            done = &mut first, if first_running => {
                first_running = false;
                done
            }
            Some(done) = async {
                match running.as_mut() {
                    Some(running) => running.next().await,
                    None => std::future::pending().await,
                }
            } => done,
            () = &mut alarm => {
                if may_hedge && Instant::now() < deadline {
                    // The hedge moment: at most one backup try, then the
                    // alarm waits for the deadline.
                    may_hedge = false;
                    alarm.as_mut().reset(deadline);
                    if report.tries < max_tries
                        && let Some(target) = next_target(network, role, &mut tried, true)
                    {
                        NetworkStats::bump(&network.stats.hedges_fired);
                        report.hedged = true;
                        running
                            .get_or_insert_with(FuturesUnordered::new)
                            .push(start(target, report.tries, true));
                        report.tries += 1;
                    }
                    continue;
                }
                let timeout = TryError::Timeout(Duration::from_millis(
                    u64::from(network.policy.request_timeout_ms),
                ));
                let who = report.handled_by.clone().unwrap_or(HeaderValue::from_static("meridian"));
                return (Err(give_up(network, Some((who, timeout)), report.tries)), report);
            }
        };
        report.queue_wait = report.queue_wait.max(outcome.queue_wait);
        match outcome.result {
            Ok(answer) => {
                if hedge {
                    NetworkStats::bump(&network.stats.hedges_won);
                }
                report.handled_by = Some(answer.handled_by.clone());
                // Returning drops `first` and `running`, which cancels the
                // other try.
                return (Ok(answer), report);
            }
            Err(error) => {
                tracing::debug!(upstream = ?handled_by, %error, "read try failed");
                last = Some((handled_by, error));
            }
        }
    }
}
