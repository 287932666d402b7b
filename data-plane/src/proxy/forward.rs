//! Phase: one try on one upstream, and the order upstreams are tried in.
//!
//! A try takes a concurrency slot on its upstream (queuing by priority when
//! the upstream is saturated), posts the body on a pooled keep-alive
//! connection ([`crate::upstream`]) within its time budget, buffers the answer whole (capped, so a
//! failure mid-body is a failed try, not a truncated answer), checks it is
//! a JSON-RPC answer to what was asked ([`super::validate`]) and gives the
//! upstream's ejection state its verdict.
//!
//! Upstreams are tried in this order ([`next_target`]): healthy ones that
//! this data plane has not ejected (a free slot preferred; this region's
//! first, weighted by score), then the network's leader, then, as a last
//! resort rather than failing outright, the ejected ones. Never twice the
//! same within one request. How many tries, and whether two run at once,
//! is decided by [`super::hedge`] (reads) and [`super::write`] (writes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use meridian_common::jsonrpc;
use meridian_common::snapshot::Role;

use super::batch::Member;
use super::classify::Route;
use super::outbound::{self, Expected};
use super::parse::Call;
use super::reply::ErrorReply;
use super::validate::validate;
use crate::balance::{Admission, Ejection, Priority, QueueError, TryKind, clock};
use crate::metrics::NetworkStats;
use crate::routing::{RoutedNetwork, RoutedUpstream, Tried, select_where};
use crate::state::Shared;
use crate::upstream::{ExchangeError, RequestLine};
use meridian_common::error_chain::error_chain;

/// Everything the tries of one request share.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub network: Arc<RoutedNetwork>,
    pub priority: Priority,
    /// End of the request's `request_timeout_ms`.
    pub deadline: Instant,
    /// The verb and path sent upstream: a POST to the upstream's URL for
    /// JSON-RPC, the client's path where the chain forwards it (ICON's
    /// `/api/v3/<channel>`, Antelope's routes).
    pub line: RequestLine,
}

impl Ctx {
    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What is sent upstream: one call, or a batch of calls of one route,
/// written with Meridian's ids ([`super::outbound`]).
#[derive(Debug, Clone)]
pub struct Job {
    pub route: Route,
    pub body: Bytes,
    /// The body is a JSON array.
    pub batch: bool,
    /// Which of its calls expect an answer.
    pub expected: Expected,
}

impl Job {
    /// `call` as a job of its own, sent on `route`.
    pub fn single(route: Route, call: &Call<'_>) -> Job {
        let (body, expected) = outbound::single(call);
        Job {
            route,
            body,
            batch: false,
            expected,
        }
    }

    /// `calls` as one batch, sent on `route`.
    pub fn batch(route: Route, calls: &[&Call<'_>]) -> Job {
        let (body, expected) = outbound::batch(calls);
        Job {
            route,
            body,
            batch: true,
            expected,
        }
    }
}

/// Why one try failed.
#[derive(Debug, thiserror::Error)]
pub enum TryError {
    /// The connection could not be opened: the request never left.
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An HTTP status that says the upstream cannot serve now (5xx, 429,
    /// 403).
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    /// Sent, but the exchange broke (reset, closed mid-body, …).
    #[error("{0}")]
    Transport(String),
    #[error("answer is over {0} bytes")]
    TooLarge(usize),
    /// An answer that is not a JSON-RPC answer to what was asked.
    #[error("invalid answer: {0}")]
    Invalid(String),
    /// No slot on the upstream (its queue is full or the wait ran out).
    #[error("{0}")]
    Queue(QueueError),
}

impl TryError {
    /// Whether this failure says something about the upstream's health
    /// (counts towards ejection). An oversized answer is the request's
    /// doing; a full queue is this data plane's.
    pub fn blames_upstream(&self) -> bool {
        !matches!(self, Self::TooLarge(_) | Self::Queue(_))
    }
}

impl From<ExchangeError> for TryError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::Connect(e) => Self::Connect(error_chain(&e)),
            ExchangeError::Transport(text) => Self::Transport(text),
            ExchangeError::Protocol(e) => Self::Transport(e.to_string()),
            ExchangeError::TooLarge(max) => Self::TooLarge(max),
        }
    }
}

/// An upstream's answer that passed validation.
#[derive(Debug)]
pub struct Validated {
    pub status: StatusCode,
    /// One per call of the job (`None` for notifications), each a slice of
    /// the upstream's body.
    pub members: Vec<Option<Member>>,
    /// `x-handled-by` of the upstream that answered.
    pub handled_by: HeaderValue,
}

/// An upstream chosen for a try.
#[derive(Debug, Clone, Copy)]
pub struct Target<'n> {
    pub upstream: &'n RoutedUpstream,
    pub kind: TryKind,
    /// Where it is in the network (to find it again from another task).
    pub at: At,
}

/// Where a target lives in its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Upstream(usize),
    Leader,
}

impl At {
    /// The upstream this names in `network`.
    pub fn resolve(self, network: &RoutedNetwork) -> Option<&RoutedUpstream> {
        match self {
            Self::Upstream(i) => network.upstreams.get(i),
            Self::Leader => network.leader.as_ref(),
        }
    }
}

/// Most selection rounds spent on half-open upstreams whose trial another
/// request took first.
const TRIAL_RACES: usize = 4;

/// The next upstream for a try of `role`, or `None` when every candidate
/// was tried. `need_room`: only an upstream with a free slot (hedges never
/// queue).
pub fn next_target<'n>(
    network: &'n RoutedNetwork,
    role: Role,
    tried: &mut Tried,
    need_room: bool,
) -> Option<Target<'n>> {
    // Read once, and only if an ejected upstream needs it.
    let read = std::cell::OnceCell::new();
    let now = || *read.get_or_init(clock::now_ms);
    // The thread-local rng is not `Send`: use it and drop it before any await.
    let mut rng = rand::rng();
    let admitted = |u: &RoutedUpstream| u.runtime.ejection.admission(now) != Admission::Ejected;
    for _ in 0..TRIAL_RACES {
        let picked = select_where(network, role, tried, &mut rng, |u| {
            admitted(u) && u.runtime.limiter.has_room()
        })
        .or_else(|| {
            (!need_room)
                .then(|| select_where(network, role, tried, &mut rng, admitted))
                .flatten()
        });
        let Some(c) = picked else { break };
        tried.insert(c.index);
        let kind = match c.upstream.runtime.ejection.admission(now) {
            Admission::Open => TryKind::Normal,
            Admission::Trial if c.upstream.runtime.ejection.claim_trial() => TryKind::Trial,
            // Another request took the trial (or it re-ejected) meanwhile.
            _ => continue,
        };
        return Some(Target {
            upstream: c.upstream,
            kind,
            at: At::Upstream(c.index),
        });
    }
    if !tried.leader
        && let Some(leader) = &network.leader
        && (!need_room || leader.runtime.limiter.has_room())
    {
        tried.leader = true;
        return Some(Target {
            upstream: leader,
            kind: TryKind::Normal,
            at: At::Leader,
        });
    }
    let c = select_where(network, role, tried, &mut rng, |u| {
        u.runtime.ejection.is_ejected() && (!need_room || u.runtime.limiter.has_room())
    })?;
    tried.insert(c.index);
    Some(Target {
        upstream: c.upstream,
        kind: TryKind::LastResort,
        at: At::Upstream(c.index),
    })
}

/// Gives a try's verdict to its upstream's ejection state exactly once; a
/// try dropped before its verdict (a hedge that lost, a client that left)
/// hands a trial back.
struct Verdict<'a> {
    ejection: &'a Ejection,
    kind: TryKind,
    given: bool,
}

impl Verdict<'_> {
    fn give(&mut self, ctx: &Ctx, upstream: &RoutedUpstream, ok: bool) {
        self.given = true;
        if ok {
            self.ejection.success(self.kind);
            return;
        }
        let times = ctx.shared.ejection_times;
        let threshold = ctx.network.policy.eject_after_failures;
        if self
            .ejection
            .failure(self.kind, clock::now_ms(), threshold, times)
        {
            tracing::warn!(
                network = %ctx.network.id,
                upstream = %upstream.id,
                "upstream ejected by this data plane after consecutive failures"
            );
        }
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if !self.given {
            self.ejection.abandon(self.kind);
        }
    }
}

/// The result of one try, with how long it queued.
pub struct TryOutcome {
    pub result: Result<Validated, TryError>,
    pub queue_wait: Duration,
}

/// One try of `job` on `target`, taking at most `budget` once it has a
/// slot. `hedge`: take a slot only if one is free now.
pub async fn attempt(
    ctx: &Ctx,
    target: Target<'_>,
    job: &Job,
    budget: Duration,
    hedge: bool,
) -> TryOutcome {
    let upstream = target.upstream;
    let mut verdict = Verdict {
        ejection: &upstream.runtime.ejection,
        kind: target.kind,
        given: false,
    };
    let limiter = &upstream.runtime.limiter;
    // A free slot (the common case) takes no clock read.
    let (permit, queue_wait) = if let Some(permit) = limiter.try_acquire() {
        (permit, Duration::ZERO)
    } else if hedge {
        let e = QueueError::Timeout(Duration::ZERO);
        return TryOutcome {
            result: Err(TryError::Queue(e)),
            queue_wait: Duration::ZERO,
        };
    } else {
        let policy = &ctx.network.policy;
        let wait = Duration::from_millis(u64::from(policy.max_queue_wait_ms)).min(ctx.remaining());
        match limiter.acquire(ctx.priority, policy.max_queue, wait).await {
            Ok(acquired) => acquired,
            Err(e) => {
                NetworkStats::bump(&ctx.network.stats.queue_rejected);
                return TryOutcome {
                    result: Err(TryError::Queue(e)),
                    queue_wait: wait,
                };
            }
        }
    };
    if !queue_wait.is_zero() {
        ctx.network
            .stats
            .queue_wait
            .observe_us(u64::try_from(queue_wait.as_micros()).unwrap_or(u64::MAX));
    }
    // The budget was cut from the time left a moment ago; only a wait in
    // the queue can have eaten into it.
    let budget = if queue_wait.is_zero() {
        budget
    } else {
        budget.min(ctx.remaining())
    };
    let result = exchange(ctx, upstream, job, budget).await;
    drop(permit);
    match &result {
        Ok(_) => verdict.give(ctx, upstream, true),
        Err(e) if e.blames_upstream() => verdict.give(ctx, upstream, false),
        Err(_) => {}
    }
    TryOutcome { result, queue_wait }
}

async fn exchange(
    ctx: &Ctx,
    upstream: &RoutedUpstream,
    job: &Job,
    budget: Duration,
) -> Result<Validated, TryError> {
    let shared = &ctx.shared;
    let started = Instant::now();
    // Only writes must not be sent twice; every read may be.
    let idempotent = job.route.role() != Role::Write;
    let post = shared.upstreams.send(
        &upstream.endpoint,
        &ctx.line,
        &job.body,
        shared.max_response_bytes,
        idempotent,
        started,
    );
    let until = tokio::time::Instant::from_std(started + budget);
    let (answer, finished) = match tokio::time::timeout_at(until, post).await {
        Ok(answer) => answer?,
        Err(_) => return Err(TryError::Timeout(budget)),
    };
    let us =
        u64::try_from(finished.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
    upstream.latency.observe_us(us);
    upstream.runtime.quantiles.observe_us(us);
    let status = answer.status;
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::FORBIDDEN
    {
        return Err(TryError::Status(status));
    }
    let members = validate(&answer.body, job.batch, &job.expected).map_err(TryError::Invalid)?;
    Ok(Validated {
        status,
        members,
        handled_by: upstream.handled_by.clone(),
    })
}

/// The reply after the last try failed (or none could be made).
pub fn give_up(
    network: &RoutedNetwork,
    last: Option<(HeaderValue, TryError)>,
    tries: u32,
) -> ErrorReply {
    let Some((handled_by, error)) = last else {
        return ErrorReply::rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::RESOURCE_UNAVAILABLE,
            "unavailable",
            format!(
                "network {:?} has no upstream for this call and no leader to fall back to",
                network.id
            ),
        );
    };
    if let TryError::Queue(e) = &error {
        let mut reply = ErrorReply::rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::LIMIT_EXCEEDED,
            "queue",
            format!("upstreams of network {:?} are saturated: {e}", network.id),
        );
        reply.tries = tries;
        return reply;
    }
    let status = match &error {
        TryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    let who = handled_by.to_str().unwrap_or("upstream").to_owned();
    ErrorReply {
        status,
        code: jsonrpc::RESOURCE_UNAVAILABLE,
        message: format!("upstream {who} failed after {tries} tries: {error}"),
        id: None,
        rejected_by: None,
        handled_by: Some(handled_by),
        tries,
        body_unread: false,
    }
}
