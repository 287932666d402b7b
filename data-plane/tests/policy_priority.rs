//! Method policy, read/write/archive routing, and priority classes under
//! saturation, end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use meridian_common::proto::{self, Role};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_methods_never_reach_an_upstream() {
    let a = Node::named("a").await;
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url())],
            None,
            proto::NetworkPolicy {
                deny_methods: vec!["debug_*".into(), "admin_*".into()],
                allow_methods: vec!["eth_*".into(), "debug_*".into(), "net_version".into()],
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    for method in ["debug_traceCall", "admin_peers", "web3_clientVersion"] {
        let r = rpc(&dp, method).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(r.header("x-rejected-by"), "method");
        assert_eq!(r.json()["error"]["code"], -32601);
        assert_eq!(r.json()["id"], 7);
    }
    // A denied notification: no answer, still refused.
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc":"2.0","method":"admin_addPeer"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("x-rejected-by"), "method");
    assert_eq!(a.total_requests(), 0);

    // In a batch only the denied element is refused.
    let r = post(
        &dp,
        "/eth",
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_call"},{"jsonrpc":"2.0","id":2,"method":"debug_traceCall"},{"jsonrpc":"2.0","id":3,"method":"net_version"}]"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-rejected-by"), "method");
    let answers = r.json();
    assert_eq!(answers[0]["result"], "a");
    assert_eq!(answers[1]["error"]["code"], -32601);
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[2]["result"], "a");
    // Upstream, the two calls are a batch of their own with Meridian's ids.
    assert_eq!(a.calls(), ["eth_call:0:-", "net_version:1:-"]);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_split_reads_writes_and_archive_reads() {
    let (reader, writer, archive) = (
        Node::named("reader").await,
        Node::named("writer").await,
        Node::named("archive").await,
    );
    let (dp, _dir) = data_plane(
        snapshot(
            vec![
                with_roles(upstream("reader", &reader.url()), &[Role::Read]),
                with_roles(upstream("writer", &writer.url()), &[Role::Write]),
                with_roles(upstream("archive", &archive.url()), &[Role::Archive]),
            ],
            None,
            proto::NetworkPolicy {
                archive_after_blocks: 100,
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    let balance = |block: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00","{block}"]}}"#
        )
    };
    for _ in 0..10 {
        assert_eq!(rpc(&dp, "eth_call").await.header("x-handled-by"), "reader");
        let r = post(
            &dp,
            "/eth",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x00"]}"#,
            &[],
        )
        .await;
        assert_eq!(r.header("x-handled-by"), "writer");
    }
    assert_eq!(
        writer.total_requests(),
        10,
        "a write-only upstream never gets reads"
    );
    let r = post(&dp, "/eth/archive", &balance("latest"), &[]).await;
    assert_eq!(r.header("x-handled-by"), "archive");
    // Head is 1000: block 0x10 is far behind, 0x3e0 (992) is recent.
    assert_eq!(
        post(&dp, "/eth", &balance("0x10"), &[])
            .await
            .header("x-handled-by"),
        "archive"
    );
    assert_eq!(
        post(&dp, "/eth", &balance("0x3e0"), &[])
            .await
            .header("x-handled-by"),
        "reader"
    );
    // A batch mixing them goes to each by its own route.
    let batch = format!(
        r#"[{},{{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}},{{"jsonrpc":"2.0","id":3,"method":"eth_sendRawTransaction","params":["0x00"]}}]"#,
        balance("0x10")
    );
    let r = post(&dp, "/eth", &batch, &[]).await;
    let answers = r.json();
    assert_eq!(answers[0]["result"], "archive", "{}", r.body);
    assert_eq!(answers[1]["result"], "reader");
    assert_eq!(answers[2]["result"], "writer");
    assert_eq!(r.header("x-meridian-tries"), "3");
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_track_overtakes_a_queue_of_low_when_saturated() {
    let a = Node::named("a").await;
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url())],
            None,
            proto::NetworkPolicy {
                max_concurrency: 1,
                max_queue_wait_ms: 60_000,
                request_timeout_ms: 60_000,
                hedge_after_ms: 600_000,
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    let dp = std::sync::Arc::new(dp);
    let send = |id: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let dp = dp.clone();
        tokio::spawn(async move {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"eth_call","params":["{id}"]}}"#);
            post(&dp, "/eth", &body, headers).await
        })
    };
    a.set_fault(Fault::Hold);
    let held = send("held", &[]);
    eventually("the slot to be taken", || async { a.held() == 1 }).await;
    let mut lows = Vec::new();
    for (i, id) in ["low-1", "low-2", "low-3"].into_iter().enumerate() {
        lows.push(send(id, &[("x-priority", "low")]));
        let depth = "meridian_queue_depth{network=\"eth\",upstream=\"a\",priority=\"low\"}";
        eventually("the low request to queue", || async {
            metric(&dp, depth).await == (i + 1) as f64
        })
        .await;
    }
    let high = send("high", &[("X-High-Priority", "true")]);
    eventually("the high request to queue", || async {
        metric(
            &dp,
            "meridian_queue_depth{network=\"eth\",upstream=\"a\",priority=\"high\"}",
        )
        .await
            == 1.0
    })
    .await;
    let fast = send("fast", &[("X-Fast-Track", "true")]);
    eventually("the fast-track request to queue", || async {
        metric(
            &dp,
            "meridian_queue_depth{network=\"eth\",upstream=\"a\",priority=\"fast-track\"}",
        )
        .await
            == 1.0
    })
    .await;
    a.release();
    for t in std::iter::once(held).chain(lows).chain([high, fast]) {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(
        a.calls(),
        [
            "eth_call:0:[\"held\"]",
            "eth_call:0:[\"fast\"]",
            "eth_call:0:[\"high\"]",
            "eth_call:0:[\"low-1\"]",
            "eth_call:0:[\"low-2\"]",
            "eth_call:0:[\"low-3\"]",
        ]
    );
    let waited = metrics(&dp).await;
    assert!(
        waited.contains("meridian_queue_wait_seconds_count{network=\"eth\"} 5"),
        "{waited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queues_and_long_waits_are_503_from_the_queue() {
    let a = Node::named("a").await;
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url())],
            None,
            proto::NetworkPolicy {
                max_concurrency: 1,
                max_queue: 1,
                max_queue_wait_ms: 60_000,
                request_timeout_ms: 60_000,
                hedge_after_ms: 600_000,
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    let dp = std::sync::Arc::new(dp);
    a.set_fault(Fault::Hold);
    let d = dp.clone();
    let held = tokio::spawn(async move { rpc(&d, "eth_call").await });
    eventually("the slot to be taken", || async { a.held() == 1 }).await;
    let d = dp.clone();
    let queued = tokio::spawn(async move { rpc(&d, "eth_call").await });
    eventually("one queued", || async {
        metric(
            &dp,
            "meridian_queue_depth{network=\"eth\",upstream=\"a\",priority=\"low\"}",
        )
        .await
            == 1.0
    })
    .await;
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.header("x-rejected-by"), "queue");
    assert_eq!(r.json()["error"]["code"], -32005);
    assert_eq!(r.json()["id"], 7);
    // Another class has its own queue.
    let d = dp.clone();
    let fast = tokio::spawn(async move {
        post(
            &d,
            "/eth",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#,
            &[("x-priority", "fast-track")],
        )
        .await
    });
    eventually("the fast-track one queued", || async {
        metric(
            &dp,
            "meridian_queue_depth{network=\"eth\",upstream=\"a\",priority=\"fast-track\"}",
        )
        .await
            == 1.0
    })
    .await;
    a.release();
    for t in [held, queued, fast] {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        metric(&dp, "meridian_queue_rejected_total{network=\"eth\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_in_the_queue_at_most_max_queue_wait_ms() {
    let a = Node::named("a").await;
    let (dp, _dir) = data_plane(
        snapshot(
            vec![upstream("a", &a.url())],
            None,
            proto::NetworkPolicy {
                max_concurrency: 1,
                max_queue_wait_ms: 200,
                request_timeout_ms: 60_000,
                hedge_after_ms: 600_000,
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    let dp = std::sync::Arc::new(dp);
    a.set_fault(Fault::Hold);
    let d = dp.clone();
    let held = tokio::spawn(async move { rpc(&d, "eth_call").await });
    eventually("the slot to be taken", || async { a.held() == 1 }).await;
    let queued_at = std::time::Instant::now();
    let r = rpc(&dp, "eth_call").await;
    let waited = queued_at.elapsed();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.header("x-rejected-by"), "queue");
    assert!(r.body.contains("no free slot within"), "{}", r.body);
    // It did wait for a slot (not refused at once), and gave up at the
    // queue's bound: the slot is held until after the answer, and the
    // request's own deadline is a minute away, so nothing else ended it.
    assert!(
        waited >= Duration::from_millis(200),
        "refused after {waited:?}, before max_queue_wait_ms"
    );
    assert!(
        waited < Duration::from_secs(30),
        "waited {waited:?}: the queue bound did not end the wait"
    );
    a.release();
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
}
