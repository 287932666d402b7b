//! Phase: from a parsed request to its answer, call by call.
//!
//! A single call is checked against the method policy, routed and sent
//! with Meridian's id ([`super::outbound`]); its answer is written out with
//! the client's id bytes. A batch is split ([`super::batch`]): invalid
//! elements and denied methods are answered by Meridian, the rest travel in
//! jobs (all at once), and the answers are put back in the request's order.
//! Notifications get no answer: a request of only notifications ends in
//! HTTP 204 with no body.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderValue, StatusCode};
use meridian_common::jsonrpc;

use super::batch::{self, Outcome, plan};
use super::cached;
use super::classify::{Route, route};
use super::forward::{Ctx, Job, Validated};
use super::hedge::{self, Report};
use super::parse::{Call, Element, Parsed};
use super::policy;
use super::reply::{Answer, ErrorReply};
use super::respond::HANDLED_BY_MERIDIAN;
use super::write;
use crate::cache::ResponseCache;

pub(super) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What serving a request did, for headers, the log line and metrics.
#[derive(Debug)]
pub struct Served {
    pub reply: Result<Answer, ErrorReply>,
    /// A backup try was sent for some call.
    pub hedged: bool,
    /// Longest wait for an upstream slot.
    pub queue_wait: Duration,
}

/// Serves `parsed`; `archive_path` when it was posted to
/// `/<network>/archive`.
pub async fn serve(ctx: &Ctx, parsed: &Parsed<'_>, archive_path: bool) -> Served {
    match parsed {
        Parsed::Single(call) => single(ctx, call, archive_path).await,
        Parsed::Batch(elements) => batch(ctx, elements, archive_path).await,
    }
}

pub(super) async fn run(ctx: &Ctx, job: &Job) -> (Result<Validated, ErrorReply>, Report) {
    match job.route {
        Route::Write { broadcast } => write::write(ctx, job, broadcast).await,
        Route::Read | Route::Archive => hedge::read(ctx, job).await,
    }
}

async fn single(ctx: &Ctx, call: &Call<'_>, archive_path: bool) -> Served {
    let network = &ctx.network;
    if !policy::allows(&network.policy, &call.method) {
        let reply = if call.is_notification() {
            Ok(no_content(
                HANDLED_BY_MERIDIAN,
                0,
                Some(policy::REJECTED_BY),
            ))
        } else {
            Err(policy::refusal(&call.method, &network.id).with_id(call.id))
        };
        return Served {
            reply,
            hedged: false,
            queue_wait: Duration::ZERO,
        };
    }
    let route = route(network, archive_path, call);
    if let Some(cache) = &ctx.shared.cache
        && let Some(key) = ResponseCache::cacheable(network, call)
    {
        return cached::serve(ctx, call, route, cache, key).await;
    }
    let (result, report) = run(ctx, &Job::single(route, call)).await;
    let reply = match result {
        Ok(answer) => Ok(single_answer(call, &answer, report.tries)),
        Err(mut reply) => {
            reply.tries = report.tries;
            if call.is_notification() {
                // No JSON-RPC response for a notification, but the status
                // still tells the client it was not delivered.
                Ok(Answer {
                    status: reply.status,
                    content_type: None,
                    body: Bytes::new(),
                    handled_by: reply.handled_by.unwrap_or(HANDLED_BY_MERIDIAN),
                    tries: report.tries,
                    rejected_by: reply.rejected_by.map(HeaderValue::from_static),
                    cache: None,
                })
            } else {
                Err(reply.with_id(call.id))
            }
        }
    };
    Served {
        reply,
        hedged: report.hedged,
        queue_wait: report.queue_wait,
    }
}

/// The client's answer to `call` from an upstream's `answer`, with the
/// client's own id.
pub(super) fn single_answer(call: &Call<'_>, answer: &Validated, tries: u32) -> Answer {
    let (Some(id), Some(Some(member))) = (call.id, answer.members.first()) else {
        return no_content(answer.handled_by.clone(), tries, None);
    };
    // The upstream answered Meridian's id: write the answer anew around the
    // client's id bytes.
    let mut out = Vec::with_capacity(member.value.len() + id.get().len() + 40);
    batch::write_response(&mut out, Some(id), &Outcome::Answer(member.clone()));
    Answer {
        status: answer.status,
        content_type: Some(APPLICATION_JSON),
        body: super::outbound::frozen(out),
        handled_by: answer.handled_by.clone(),
        tries,
        rejected_by: None,
        cache: None,
    }
}

fn no_content(handled_by: HeaderValue, tries: u32, rejected_by: Option<&'static str>) -> Answer {
    Answer {
        status: StatusCode::NO_CONTENT,
        content_type: None,
        body: Bytes::new(),
        handled_by,
        tries,
        rejected_by: rejected_by.map(HeaderValue::from_static),
        cache: None,
    }
}

/// Checks that refused some element of a batch (`x-rejected-by`).
#[derive(Debug, Default)]
struct Refusals {
    json: bool,
    method: bool,
    queue: bool,
}

impl Refusals {
    fn header(&self) -> Option<HeaderValue> {
        let names: Vec<&str> = [
            ("json", self.json),
            ("method", self.method),
            ("queue", self.queue),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        (!names.is_empty())
            .then(|| HeaderValue::from_str(&names.join(",")).ok())
            .flatten()
    }
}

async fn batch(ctx: &Ctx, elements: &[Element<'_>], archive_path: bool) -> Served {
    let network = &ctx.network;
    let mut refusals = Refusals::default();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(elements.len());
    let mut routes: Vec<Option<Route>> = Vec::with_capacity(elements.len());
    let mut cache = ctx
        .shared
        .cache
        .as_ref()
        .map(|c| cached::BatchCache::new(c, elements.len()));
    for (i, element) in elements.iter().enumerate() {
        let (outcome, r) = match element {
            Element::Invalid(invalid) => {
                refusals.json = true;
                let message = invalid.message.clone();
                (
                    Outcome::Error {
                        code: jsonrpc::INVALID_REQUEST,
                        message,
                    },
                    None,
                )
            }
            Element::Call(call) if !policy::allows(&network.policy, &call.method) => {
                refusals.method = true;
                let outcome = if call.is_notification() {
                    Outcome::Silent
                } else {
                    Outcome::Error {
                        code: jsonrpc::METHOD_NOT_FOUND,
                        message: policy::refusal_message(&call.method, &network.id),
                    }
                };
                (outcome, None)
            }
            Element::Call(call) => match cache.as_mut().and_then(|c| c.lookup(network, i, call)) {
                Some(hit) => (hit, None),
                None => (Outcome::Silent, Some(route(network, archive_path, call))),
            },
        };
        outcomes.push(outcome);
        routes.push(r);
    }
    if let Some(cache) = cache.as_mut() {
        cache
            .lookup_shared(network, &mut outcomes, &mut routes)
            .await;
    }
    let groups = plan(&routes);
    let calls = |members: &[usize]| -> Vec<&Call<'_>> {
        members
            .iter()
            .filter_map(|i| elements.get(*i).and_then(Element::call))
            .collect()
    };
    let jobs: Vec<(Vec<usize>, Job)> = groups
        .into_iter()
        .map(|g| {
            let members = calls(&g.members);
            let job = match members.as_slice() {
                // One write travels as a plain call.
                [one] if g.route.is_write() => Job::single(g.route, one),
                _ => Job::batch(g.route, &members),
            };
            (g.members, job)
        })
        .collect();

    let results = join_all(jobs.iter().map(|(_, job)| run(ctx, job))).await;

    let mut served = Served {
        reply: Err(ErrorReply::rejected(
            StatusCode::INTERNAL_SERVER_ERROR,
            jsonrpc::INTERNAL_ERROR,
            "internal",
            "unreachable",
        )),
        hedged: false,
        queue_wait: Duration::ZERO,
    };
    let mut tries = 0;
    let mut handled_by: Vec<HeaderValue> = Vec::new();
    for ((members, job), (result, report)) in jobs.iter().zip(results) {
        tries += report.tries;
        served.hedged |= report.hedged;
        served.queue_wait = served.queue_wait.max(report.queue_wait);
        if let Some(h) = report.handled_by
            && !handled_by.contains(&h)
        {
            handled_by.push(h);
        }
        match result {
            Ok(answer) => {
                for (i, member) in members.iter().zip(answer.members) {
                    if let (Some(cache), Some(member)) = (cache.as_mut(), &member) {
                        cache.keep(network, *i, member);
                    }
                    if let (Some(slot), Some(member)) = (outcomes.get_mut(*i), member) {
                        *slot = Outcome::Answer(member);
                    }
                }
            }
            Err(reply) => {
                refusals.queue |= reply.rejected_by == Some("queue");
                for (i, id) in members.iter().zip(job.expected.ids()) {
                    if let (Some(slot), Some(_)) = (outcomes.get_mut(*i), id) {
                        *slot = Outcome::Error {
                            code: reply.code,
                            message: reply.message.clone(),
                        };
                    }
                }
            }
        }
    }
    let ids: Vec<_> = elements
        .iter()
        .map(|e| match e {
            Element::Call(c) => c.id,
            Element::Invalid(i) => i.id,
        })
        .collect();
    let handled_by = match handled_by.as_slice() {
        [] => HANDLED_BY_MERIDIAN,
        [one] => one.clone(),
        many => {
            let names: Vec<&str> = many.iter().filter_map(|h| h.to_str().ok()).collect();
            HeaderValue::from_str(&names.join(",")).unwrap_or(HANDLED_BY_MERIDIAN)
        }
    };
    let rejected_by = refusals.header();
    let cache = cache.and_then(|c| c.header());
    served.reply = Ok(match batch::reassemble(&ids, &outcomes) {
        Some(out) => Answer {
            status: StatusCode::OK,
            content_type: Some(APPLICATION_JSON),
            body: Bytes::from(out),
            handled_by,
            tries,
            rejected_by,
            cache,
        },
        None => Answer {
            status: StatusCode::NO_CONTENT,
            content_type: None,
            body: Bytes::new(),
            handled_by,
            tries,
            rejected_by,
            cache,
        },
    });
    served
}
