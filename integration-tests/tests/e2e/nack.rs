//! The control plane's side of ACK/NACK: a rejected snapshot is recorded and
//! never resent, not even to the same data plane reconnecting; an up-to-date
//! Hello gets no resend. Both are proven by what
//! the stream delivers *next*, not by waiting for silence.

use std::time::Duration;

use meridian_integration_tests::fake_data_plane::{FakeDataPlane, version_of};
use meridian_integration_tests::harness::*;
use meridian_proto::v1::AddUpstreamRequest;
use meridian_test_kit::evm::MockEvmNode;

const NET: &str = "eth-nack";
const BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_snapshot_is_recorded_and_not_resent_after_a_reconnect() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET).upstream("a", &a.url(), "eu")],
    ))
    .await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    eventually("a first publication", SETTLE, || async {
        !cp.current_version().is_none()
    })
    .await;

    let mut fake = FakeDataPlane::connect(&control_plane_url(&cp), "fake-eu-1", "eu", None).await;
    let rejected = fake.next_snapshot(BOUND).await;
    assert!(!rejected.nonce.is_empty(), "every push carries a nonce");
    fake.nack(&rejected, "scripted rejection for the test")
        .await;
    let rejected_version = version_of(&rejected);

    eventually("ListDataPlanes shows the NACK", SETTLE, || {
        let mut admin = admin.clone();
        async move {
            list_data_planes(&mut admin).await.iter().any(|d| {
                d.dataplane_id == "fake-eu-1"
                    && d.region == "eu"
                    && d.nacked_version == Some(rejected_version.into())
                    && d.nack_error.contains("scripted rejection")
            })
        }
    })
    .await;

    // On one stream a version is never offered twice anyway: the parking
    // shows when the same data plane comes back. It reconnects holding
    // nothing, which would normally earn it the current version at once.
    // (Waiting for the control plane to see it go and come back proves the
    // new Hello was taken before the change below.)
    let connected = |want: bool| {
        let admin = admin.clone();
        move || {
            let mut admin = admin.clone();
            async move {
                list_data_planes(&mut admin)
                    .await
                    .iter()
                    .any(|d| d.dataplane_id == "fake-eu-1" && d.connected == want)
            }
        }
    };
    drop(fake);
    eventually("the stream end is noticed", SETTLE, connected(false)).await;
    let mut fake = FakeDataPlane::connect(&control_plane_url(&cp), "fake-eu-1", "eu", None).await;
    eventually("the reconnect is registered", SETTLE, connected(true)).await;

    // A change makes a newer version; the next message on the new stream
    // must be newer than the rejected one (a resend would arrive first).
    let b = MockEvmNode::start().await;
    admin
        .add_upstream(AddUpstreamRequest {
            network_id: NET.into(),
            upstream_id: "b".into(),
            url: b.url(),
            region: "us".into(),
            weight: 1,
            roles: vec![],
        })
        .await
        .expect("AddUpstream");
    let next = fake.next_snapshot(BOUND).await;
    assert!(
        version_of(&next) > rejected_version,
        "after a NACK of {rejected_version} the control plane sent {}",
        version_of(&next)
    );
    assert_ne!(next.nonce, rejected.nonce, "a fresh nonce per push");
    fake.ack(&next).await;
    let acked = version_of(&next);
    eventually("ListDataPlanes shows the ACK", SETTLE, || {
        let mut admin = admin.clone();
        async move {
            list_data_planes(&mut admin)
                .await
                .iter()
                .any(|d| d.dataplane_id == "fake-eu-1" && d.acked_version == Some(acked.into()))
        }
    })
    .await;

    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_holding_the_current_version_gets_no_resend() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET).upstream("a", &a.url(), "eu")],
    ))
    .await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    let url = control_plane_url(&cp);

    // Learn the current version and hash the way a data plane would.
    let mut first = FakeDataPlane::connect(&url, "fake-eu-2", "eu", None).await;
    let mut current = first.next_snapshot(BOUND).await;
    first.ack(&current).await;
    // Healthy states may still be settling: take the latest publication.
    while version_of(&current) < cp.current_version() {
        current = first.next_snapshot(BOUND).await;
        first.ack(&current).await;
    }
    drop(first);

    let held = (version_of(&current), current.content_hash.clone());
    let mut again = FakeDataPlane::connect(&url, "fake-eu-2", "eu", Some(held)).await;
    let b = MockEvmNode::start().await;
    admin
        .add_upstream(AddUpstreamRequest {
            network_id: NET.into(),
            upstream_id: "b".into(),
            url: b.url(),
            region: "us".into(),
            weight: 1,
            roles: vec![],
        })
        .await
        .expect("AddUpstream");
    let next = again.next_snapshot(BOUND).await;
    assert!(
        version_of(&next) > version_of(&current),
        "a Hello holding {} ({}) was answered with {} ({})",
        version_of(&current),
        current.content_hash,
        version_of(&next),
        next.content_hash
    );

    cp.shutdown().await;
}
