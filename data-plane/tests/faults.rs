//! Fault injection on mock nodes: each fault shows the retry, hedge,
//! ejection or recovery behaviour of the request path, and writes are
//! counted on the nodes to prove they are never sent twice by a retry.
//!
//! Upstream `a` is in the data plane's region and `b` in another, so `a` is
//! always tried first and `b` is the retry: the tests are deterministic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use meridian_common::proto;
use meridian_data_plane::app::DataPlane;
use meridian_data_plane::balance::EjectionTimes;
use support::*;

fn remote(mut u: proto::Upstream) -> proto::Upstream {
    u.region = "us".into();
    u
}

fn policy() -> proto::NetworkPolicy {
    proto::NetworkPolicy {
        hedge_after_ms: 600_000,
        eject_after_failures: 1_000,
        ..Default::default()
    }
}

async fn pair(policy: proto::NetworkPolicy) -> (DataPlane, tempfile::TempDir, Node, Node) {
    let (a, b) = (Node::named("a").await, Node::named("b").await);
    let (dp, dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url()), remote(upstream("b", &b.url()))],
            None,
            policy,
        ),
        |c| {
            c.ejection = EjectionTimes {
                base: Duration::from_millis(300),
                max: Duration::from_millis(1_200),
            }
        },
    )
    .await;
    (dp, dir, a, b)
}

const SEND: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x00"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_on_another_upstream_after_every_upstream_fault() {
    let (dp, _dir, a, b) = pair(policy()).await;
    let faults = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(429),
        Fault::Status(403),
        Fault::ResetMidBody,
        Fault::Truncated,
        Fault::WrongId,
        Fault::Html,
    ];
    for (i, fault) in faults.iter().enumerate() {
        a.script([*fault]);
        let r = rpc(&dp, "eth_getBalance").await;
        assert_eq!(r.status, StatusCode::OK, "{fault:?}: {}", r.body);
        assert_eq!(
            r.body, r#"{"jsonrpc":"2.0","id":7,"result":"b"}"#,
            "{fault:?}"
        );
        assert_eq!(r.header("x-handled-by"), "b", "{fault:?}");
        assert_eq!(r.header("x-meridian-tries"), "2", "{fault:?}");
        assert_eq!(
            (a.total_requests(), b.total_requests()),
            (i as u64 + 1, i as u64 + 1),
            "{fault:?}"
        );
    }
    assert_eq!(
        metric(&dp, "meridian_retries_total{network=\"eth\"}").await,
        faults.len() as f64
    );
    // Nothing wrong: one try.
    let r = rpc(&dp, "eth_getBalance").await;
    assert_eq!(r.header("x-handled-by"), "a");
    assert_eq!(r.header("x-meridian-tries"), "1");
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_hangs_forever_times_out_and_the_read_is_retried() {
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        request_timeout_ms: 3_000,
        max_tries: 2,
        ..policy()
    })
    .await;
    a.set_fault(Fault::Hang);
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "b");
    assert_eq!(r.header("x-meridian-tries"), "2");
    // Both hang: the deadline answers, 504.
    b.set_fault(Fault::Hang);
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.json()["id"], 7);
    assert_eq!(r.json()["error"]["code"], -32002);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_is_hedged_and_the_first_answer_wins() {
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        hedge_after_ms: 100,
        ..policy()
    })
    .await;
    a.set_fault(Fault::Delay(Duration::from_secs(30)));
    let r = rpc(&dp, "eth_getLogs").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "b");
    assert_eq!(r.header("x-meridian-tries"), "2");
    assert_eq!((a.total_requests(), b.total_requests()), (1, 1));
    assert_eq!(
        metric(&dp, "meridian_hedges_fired_total{network=\"eth\"}").await,
        1.0
    );
    assert_eq!(
        metric(&dp, "meridian_hedges_won_total{network=\"eth\"}").await,
        1.0
    );
    // The loser was cancelled: its slot on `a` is free again.
    eventually("the slow try to be cancelled", || async {
        metric(
            &dp,
            "meridian_upstream_in_flight{network=\"eth\",upstream=\"a\"}",
        )
        .await
            == 0.0
    })
    .await;
    // A write is never hedged.
    a.set_fault(Fault::Delay(Duration::from_millis(500)));
    let r = post(&dp, "/eth", SEND, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "a");
    assert_eq!(b.total_requests(), 1, "a write was hedged");
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hedge_delay_can_follow_the_observed_p95() {
    // hedge_after_ms is huge: only the p95 of `a` (a few ms) can hedge.
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        hedge_after_ms: 600_000,
        hedge_from_p95: true,
        request_timeout_ms: 600_000,
        ..policy()
    })
    .await;
    // While `a` builds its p95, one call in twenty is slower than it by
    // definition and may be hedged: `b` is made too slow to win those.
    b.set_fault(Fault::Delay(Duration::from_secs(300)));
    for _ in 0..30 {
        assert_eq!(rpc(&dp, "eth_call").await.header("x-handled-by"), "a");
    }
    assert_eq!(
        metric(&dp, "meridian_hedges_won_total{network=\"eth\"}").await,
        0.0
    );
    b.set_fault(Fault::None);
    a.set_fault(Fault::Delay(Duration::from_secs(300)));
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.header("x-handled-by"), "b", "{}", r.body);
    assert_eq!(
        metric(&dp, "meridian_hedges_won_total{network=\"eth\"}").await,
        1.0
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_never_sent_twice_by_a_retry() {
    let (dp, _dir, a, b) = pair(policy()).await;
    for (fault, status) in [
        (Fault::Status(500), StatusCode::BAD_GATEWAY),
        (Fault::Status(503), StatusCode::BAD_GATEWAY),
        (Fault::Status(429), StatusCode::BAD_GATEWAY),
        (Fault::Status(403), StatusCode::BAD_GATEWAY),
        (Fault::Html, StatusCode::BAD_GATEWAY),
        (Fault::ResetMidBody, StatusCode::BAD_GATEWAY),
        (Fault::Truncated, StatusCode::BAD_GATEWAY),
        (Fault::WrongId, StatusCode::BAD_GATEWAY),
    ] {
        let (ha, hb) = (a.total_requests(), b.total_requests());
        a.script([fault]);
        let r = post(&dp, "/eth", SEND, &[]).await;
        assert_eq!(r.status, status, "{fault:?}: {}", r.body);
        assert_eq!(r.header("x-meridian-tries"), "1", "{fault:?}");
        assert_eq!(
            (a.total_requests(), b.total_requests()),
            (ha + 1, hb),
            "{fault:?}: the write was sent twice"
        );
        holds_for(
            &format!("{fault:?}: no late copy of the write"),
            STRAY_COPY_WAIT,
            || async { (a.total_requests(), b.total_requests()) == (ha + 1, hb) },
        )
        .await;
    }
    // Inside a batch too: the reads are retried, the write is not.
    a.script([Fault::Status(500), Fault::Status(500)]);
    let batch = format!(
        r#"[{{"jsonrpc":"2.0","id":"r","method":"eth_call"}},{}]"#,
        SEND.replace(r#""id":1"#, r#""id":"w""#)
    );
    let (ha, hb) = (a.total_requests(), b.total_requests());
    let r = post(&dp, "/eth", &batch, &[]).await;
    let answers = r.json();
    assert_eq!(answers[0]["result"], "b", "{}", r.body);
    assert_eq!(answers[1]["error"]["code"], -32002, "{}", r.body);
    assert_eq!(answers[1]["id"], "w");
    assert_eq!(
        a.total_requests() + b.total_requests(),
        ha + hb + 3,
        "read twice, write once"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_never_left_goes_elsewhere_and_a_hung_write_is_not_retried() {
    let b = Node::named("b").await;
    let refused = refusing_url().await;
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("dead", &refused), remote(upstream("b", &b.url()))],
            None,
            proto::NetworkPolicy {
                request_timeout_ms: 1_000,
                ..policy()
            },
        ),
        |_| {},
    )
    .await;
    let r = post(&dp, "/eth", SEND, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "b");
    assert_eq!(r.header("x-meridian-tries"), "2");
    assert_eq!(b.total_requests(), 1);
    dp.shutdown().await;

    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        request_timeout_ms: 1_000,
        ..policy()
    })
    .await;
    a.set_fault(Fault::Hang);
    let r = post(&dp, "/eth", SEND, &[]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!((a.total_requests(), b.total_requests()), (1, 0));
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_writes_reach_each_write_upstream_once_and_already_known_is_success() {
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        write_broadcast: 2,
        ..policy()
    })
    .await;
    let r = post(&dp, "/eth", SEND, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.json()["result"].is_string(), "{}", r.body);
    eventually("both upstreams to get the write", || async {
        a.total_requests() == 1 && b.total_requests() == 1
    })
    .await;

    // One node already has it, the other answers 500: "already known" answers.
    a.set_fault(ALREADY_KNOWN);
    b.set_fault(Fault::Status(500));
    let r = post(&dp, "/eth", SEND, &[]).await;
    assert_eq!(r.json()["error"]["message"], "already known", "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "a");
    eventually("each to get it once more", || async {
        a.total_requests() == 2 && b.total_requests() == 2
    })
    .await;
    // Reads are not broadcast: one node gets the read, and no copy reaches
    // the other (copies are sent in the background, so watch for a while).
    a.set_fault(Fault::None);
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(a.total_requests() + b.total_requests(), 5);
    holds_for("no copy of the read", STRAY_COPY_WAIT, || async {
        a.total_requests() + b.total_requests() == 5
    })
    .await;
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_failures_eject_locally_and_a_trial_brings_the_upstream_back() {
    let (dp, _dir, a, _b) = pair(proto::NetworkPolicy {
        eject_after_failures: 3,
        ..policy()
    })
    .await;
    a.set_fault(Fault::Status(502));
    for _ in 0..3 {
        let r = rpc(&dp, "eth_call").await;
        assert_eq!(r.header("x-handled-by"), "b");
        assert_eq!(r.header("x-meridian-tries"), "2");
    }
    assert_eq!(a.total_requests(), 3);
    let ejections = "meridian_upstream_ejections_total{network=\"eth\",upstream=\"a\"}";
    assert_eq!(metric(&dp, ejections).await, 1.0);
    assert_eq!(
        metric(
            &dp,
            "meridian_upstream_ejected{network=\"eth\",upstream=\"a\"}"
        )
        .await,
        1.0
    );
    // Ejected: reads go straight to b.
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.header("x-meridian-tries"), "1");
    assert_eq!(a.total_requests(), 3);

    // After the cool-down one trial goes to a; it fails: ejected again
    // (for twice as long).
    eventually("a failed trial", || async {
        rpc(&dp, "eth_call").await;
        metric(&dp, ejections).await == 2.0
    })
    .await;
    assert_eq!(a.total_requests(), 4, "exactly one trial");

    // a recovers: the next trial succeeds and a is back in rotation.
    a.set_fault(Fault::None);
    eventually("a to be back", || async {
        rpc(&dp, "eth_call").await.header("x-handled-by") == "a"
    })
    .await;
    assert_eq!(
        metric(
            &dp,
            "meridian_upstream_ejected{network=\"eth\",upstream=\"a\"}"
        )
        .await,
        0.0
    );
    for _ in 0..5 {
        assert_eq!(rpc(&dp, "eth_call").await.header("x-handled-by"), "a");
    }
    // The control plane's view is untouched: the snapshot never changed.
    assert_eq!(dp.snapshot_version().seq, 1);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_everything_ejected_the_leader_serves_then_the_ejected_as_a_last_resort() {
    let (a, leader) = (Node::named("a").await, Node::named("leader").await);
    let p = proto::NetworkPolicy {
        eject_after_failures: 1,
        ..policy()
    };
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url())],
            Some(&leader.url()),
            p.clone(),
        ),
        |_| {},
    )
    .await;
    a.set_fault(Fault::Status(500));
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.header("x-handled-by"), "leader");
    assert_eq!(r.header("x-meridian-tries"), "2");
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.header("x-handled-by"), "leader");
    assert_eq!(r.header("x-meridian-tries"), "1");
    assert_eq!(a.total_requests(), 1);
    dp.shutdown().await;

    // No leader: the ejected upstream is tried rather than failing.
    let a = Node::named("a").await;
    let (dp, _dir) = data_plane(snapshot(vec![upstream("a", &a.url())], None, p), |_| {}).await;
    a.script([Fault::Status(500)]);
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "a");
    assert_eq!(
        metric(
            &dp,
            "meridian_upstream_ejected{network=\"eth\",upstream=\"a\"}"
        )
        .await,
        0.0
    );
    dp.shutdown().await;
}
