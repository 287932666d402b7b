//! Phase: a cacheable single call, answered from the cache, by waiting
//! for an identical call already in flight, or by the one request that
//! flies for all of them (docs/caching.md).
//!
//! The flying request runs in a task of its own: the client that started
//! it may hang up without cancelling it for the others, and it fills the
//! cache before it lands, so a call that arrives after the flight finds
//! the answer there. Each waiter waits under its own deadline and gives up
//! alone. An error or a timeout is given to those already waiting and is
//! not cached.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use meridian_common::jsonrpc;

use super::batch::{self, Member, MemberKind, Outcome};
use super::classify::Route;
use super::dispatch::{Served, run, single_answer};
use super::forward::{Ctx, Job, Validated};
use super::parse::Call;
use super::reply::{Answer, ErrorReply};
use super::respond::HANDLED_BY_MERIDIAN;
use crate::cache::flight::Joined;
use crate::cache::{CacheStats, Cacheable, Flown, ResponseCache};
use crate::routing::RoutedNetwork;

const HIT: HeaderValue = HeaderValue::from_static("HIT");
const MISS: HeaderValue = HeaderValue::from_static("MISS");
const COALESCED: HeaderValue = HeaderValue::from_static("COALESCED");
const HIT_REDIS: HeaderValue = HeaderValue::from_static("HIT-REDIS");

/// A flight's outcome found in the shared tier: an answer of no upstream.
fn shared_answer(result: Bytes) -> Flown {
    let answer = Validated {
        status: StatusCode::OK,
        members: vec![Some(Member {
            kind: MemberKind::Result,
            value: result,
        })],
        handled_by: HANDLED_BY_MERIDIAN,
    };
    (Ok(answer), Default::default())
}

/// Serves `call`, whose answers `cache` may keep under `key`.
pub async fn serve(
    ctx: &Ctx,
    call: &Call<'_>,
    route: Route,
    cache: &ResponseCache,
    key: Cacheable,
) -> Served {
    let network = &ctx.network;
    if let Some(result) = cache.get(network, &key, Instant::now()) {
        return Served {
            reply: Ok(hit(call, result)),
            hedged: false,
            queue_wait: Default::default(),
        };
    }
    match cache.flights().join(&key.key) {
        Joined::Leader(leader) => {
            let job = Job::single(route, call);
            let flying = ctx.clone();
            let task = tokio::spawn(async move {
                let network = &flying.network;
                let cache = flying.shared.cache.as_ref();
                if let Some(cache) = cache
                    && let Some(result) = cache.get_shared(network, &key).await
                {
                    return (leader.land(shared_answer(result)), HIT_REDIS);
                }
                CacheStats::bump(&network.cache_stats.of(key.class).misses);
                let flown: Flown = run(&flying, &job).await;
                if let (Some(cache), Ok(answer)) = (cache, &flown.0)
                    && let Some(Some(member)) = answer.members.first()
                    && member.kind == MemberKind::Result
                {
                    cache.put(network, key, &member.value, Instant::now());
                }
                (leader.land(flown), MISS)
            });
            match task.await {
                Ok((flown, header)) => from_flight(call, &flown, header, true),
                Err(_) => lost(call),
            }
        }
        Joined::Waiter(waiter) => {
            CacheStats::bump(&network.cache_stats.of(key.class).coalesced);
            let deadline = tokio::time::Instant::from_std(ctx.deadline);
            match tokio::time::timeout_at(deadline, waiter.outcome()).await {
                Ok(Some(flown)) => from_flight(call, &flown, COALESCED, false),
                Ok(None) => lost(call),
                Err(_) => Served {
                    // Not a refusal (no `x-rejected-by`): the call was
                    // under way, as a timeout of its own would be.
                    reply: Err(ErrorReply {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        code: jsonrpc::RESOURCE_UNAVAILABLE,
                        message: format!(
                            "no answer within request_timeout_ms ({} ms) from the identical call in flight",
                            network.policy.request_timeout_ms
                        ),
                        id: call.id.map(ToOwned::to_owned),
                        rejected_by: None,
                        handled_by: None,
                        tries: 0,
                        body_unread: false,
                    }),
                    hedged: false,
                    queue_wait: Default::default(),
                },
            }
        }
    }
}

/// The answer of a flight to `call`, with `header` as `x-cache`: the
/// leader's with its tries, a waiter's with none of its own.
fn from_flight(call: &Call<'_>, flown: &Arc<Flown>, header: HeaderValue, leader: bool) -> Served {
    let (result, report) = &**flown;
    let tries = if leader { report.tries } else { 0 };
    let reply = match result {
        Ok(answer) => {
            let mut reply = single_answer(call, answer, tries);
            reply.cache = Some(header);
            Ok(reply)
        }
        Err(reply) => {
            let mut reply = reply.clone().with_id(call.id);
            reply.tries = tries;
            Err(reply)
        }
    };
    Served {
        reply,
        hedged: leader && report.hedged,
        queue_wait: if leader {
            report.queue_wait
        } else {
            Default::default()
        },
    }
}

/// The flight's task ended without an outcome (it panicked): a bug, told
/// to the client as an internal error rather than a hang.
fn lost(call: &Call<'_>) -> Served {
    Served {
        reply: Err(ErrorReply::rejected(
            StatusCode::INTERNAL_SERVER_ERROR,
            jsonrpc::INTERNAL_ERROR,
            "internal",
            "the request in flight for this call was lost",
        )
        .with_id(call.id)),
        hedged: false,
        queue_wait: Default::default(),
    }
}

/// A kept `result` as the answer to `call`, with the client's own id.
fn hit(call: &Call<'_>, result: Bytes) -> Answer {
    let mut out = Vec::with_capacity(result.len() + 64);
    let member = Outcome::Answer(Member {
        kind: MemberKind::Result,
        value: result,
    });
    batch::write_response(&mut out, call.id, &member);
    Answer {
        status: StatusCode::OK,
        content_type: Some(super::dispatch::APPLICATION_JSON),
        body: Bytes::from(out),
        handled_by: HANDLED_BY_MERIDIAN,
        tries: 0,
        rejected_by: None,
        cache: Some(HIT),
    }
}

/// The cache's part in a batch: each element looks the cache up by
/// itself, only the misses go upstream (in the batch's usual jobs), and
/// their answers are kept. Batch elements are not coalesced with calls in
/// flight; each miss is one call of an upstream batch.
#[derive(Debug)]
pub struct BatchCache<'c> {
    cache: &'c ResponseCache,
    /// The key of each element that missed, by position.
    keys: Vec<Option<Cacheable>>,
    hits: usize,
    shared_hits: usize,
    misses: usize,
}

impl<'c> BatchCache<'c> {
    /// For a batch of `elements`.
    pub fn new(cache: &'c ResponseCache, elements: usize) -> Self {
        Self {
            cache,
            keys: std::iter::repeat_with(|| None).take(elements).collect(),
            hits: 0,
            shared_hits: 0,
            misses: 0,
        }
    }

    /// The answer of element `i`, `call`, from memory; `None` when it
    /// missed (remembered, for [`BatchCache::lookup_shared`] and to keep
    /// its answer).
    pub fn lookup(
        &mut self,
        network: &RoutedNetwork,
        i: usize,
        call: &Call<'_>,
    ) -> Option<Outcome> {
        let key = ResponseCache::cacheable(network, call)?;
        if let Some(result) = self.cache.get(network, &key, Instant::now()) {
            self.hits += 1;
            return Some(Outcome::Answer(Member {
                kind: MemberKind::Result,
                value: result,
            }));
        }
        if let Some(slot) = self.keys.get_mut(i) {
            *slot = Some(key);
        }
        None
    }

    /// Asks the shared tier, in one round trip, for the elements that
    /// missed in memory: a hit goes into `outcomes` and needs no route.
    /// What is left goes upstream, counted as misses.
    pub async fn lookup_shared(
        &mut self,
        network: &RoutedNetwork,
        outcomes: &mut [Outcome],
        routes: &mut [Option<Route>],
    ) {
        if self.cache.shared().is_some() {
            let (at, calls): (Vec<usize>, Vec<&Cacheable>) = self
                .keys
                .iter()
                .enumerate()
                .filter_map(|(i, key)| Some((i, key.as_ref()?)))
                .unzip();
            let found = if calls.is_empty() {
                Vec::new()
            } else {
                self.cache.get_shared_many(network, &calls).await
            };
            for (i, result) in at.into_iter().zip(found) {
                let Some(result) = result else { continue };
                if let (Some(outcome), Some(route), Some(key)) =
                    (outcomes.get_mut(i), routes.get_mut(i), self.keys.get_mut(i))
                {
                    *outcome = Outcome::Answer(Member {
                        kind: MemberKind::Result,
                        value: result,
                    });
                    *route = None;
                    *key = None;
                    self.shared_hits += 1;
                }
            }
        }
        for key in self.keys.iter().flatten() {
            self.misses += 1;
            CacheStats::bump(&network.cache_stats.of(key.class).misses);
        }
    }

    /// Keeps `member`, the upstream's answer to element `i`, if it missed.
    pub fn keep(&mut self, network: &RoutedNetwork, i: usize, member: &Member) {
        if member.kind != MemberKind::Result {
            return;
        }
        if let Some(key) = self.keys.get_mut(i).and_then(Option::take) {
            self.cache.put(network, key, &member.value, Instant::now());
        }
    }

    /// `x-cache` for the batch: `HIT=<n>, HIT-REDIS=<k>, MISS=<m>`, only
    /// the non-zero counts; `None` when no element was cacheable.
    pub fn header(&self) -> Option<HeaderValue> {
        let parts: Vec<String> = [
            ("HIT", self.hits),
            ("HIT-REDIS", self.shared_hits),
            ("MISS", self.misses),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(word, n)| format!("{word}={n}"))
        .collect();
        (!parts.is_empty())
            .then(|| HeaderValue::from_str(&parts.join(", ")).ok())
            .flatten()
    }
}
