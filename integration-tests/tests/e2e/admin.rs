//! The admin API: upstreams added or removed at runtime go live in every
//! data plane, and bad input is refused with nothing stored.
//!
//! How fast a change is live (the product target is 1 s) is a benchmark
//! figure: `meridian-bench` measures admin call → ACK of 1,000 data planes
//! (docs/BENCHMARKS.md). Here each data plane gets its own generous bound,
//! so a loaded machine cannot fail a change that is right.

use meridian_control_plane::inventory::UpstreamSpec;
use meridian_control_plane::store::{SledStore, Store as _};
use meridian_integration_tests::harness::*;
use meridian_proto::v1::admin_service_client::AdminServiceClient;
use meridian_proto::v1::{AddUpstreamRequest, RemoveUpstreamRequest};
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::RpcClient;
use tonic::Code;
use tonic::transport::Channel;

const NET: &str = "eth-admin";

fn add(upstream: &str, url: &str, region: &str) -> AddUpstreamRequest {
    AddUpstreamRequest {
        network_id: NET.into(),
        upstream_id: upstream.into(),
        url: url.into(),
        region: region.into(),
        weight: 1,
        roles: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_added_and_removed_through_the_admin_api_go_live_in_every_data_plane() {
    init_test_logs();
    let far = MockEvmNode::start().await;
    let near = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        // healthy_after = 1 and fast probes: a new upstream takes traffic
        // after one passing probe.
        &[NetworkSpec::new(NET)
            .probe_interval_ms(50)
            .healthy_after(1)
            .upstream("far", &far.url(), "us")],
    ))
    .await;
    let cp_url = control_plane_url(&cp);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let eu = start_data_plane(&cp_url, "eu", dirs[0].path()).await;
    let eu2 = start_data_plane(&cp_url, "eu", dirs[1].path()).await;
    let mut admin = admin_client(&cp).await;
    let client = RpcClient::new();
    wait_healthy(&mut admin, NET, &["far"]).await;
    wait_handled_by(&client, &eu, NET, "far", SETTLE).await;
    wait_handled_by(&client, &eu2, NET, "far", SETTLE).await;

    // Added: an eu node, preferred by eu data planes once live.
    admin
        .add_upstream(add("near", &near.url(), "eu"))
        .await
        .expect("AddUpstream");
    for dp in [&eu, &eu2] {
        wait_handled_by(&client, dp, NET, "near", SETTLE).await;
    }
    assert!(near.client_requests() >= 2, "the new node really served");
    let listed = list_upstreams(&mut admin, NET).await;
    let near_status = listed
        .iter()
        .find(|s| s.upstream.as_ref().is_some_and(|u| u.id == "near"))
        .expect("ListUpstreams shows the added upstream");
    assert_eq!(near_status.origin, "admin");

    // Removed: back to the only remaining node.
    admin
        .remove_upstream(RemoveUpstreamRequest {
            network_id: NET.into(),
            upstream_id: "near".into(),
        })
        .await
        .expect("RemoveUpstream");
    for dp in [&eu, &eu2] {
        wait_handled_by(&client, dp, NET, "far", SETTLE).await;
    }
    let served = near.client_requests();
    for dp in [&eu, &eu2] {
        for _ in 0..5 {
            let r = read_through(&client, dp, NET).await;
            assert_result(&r);
            assert_eq!(r.handled_by(), Some("far"));
        }
    }
    assert_eq!(
        near.client_requests(),
        served,
        "a removed node takes no traffic"
    );
    assert!(
        list_upstreams(&mut admin, NET)
            .await
            .iter()
            .all(|s| s.upstream.as_ref().is_some_and(|u| u.id != "near")),
        "ListUpstreams no longer shows it"
    );

    eu.shutdown().await;
    eu2.shutdown().await;
    cp.shutdown().await;
}

/// What the control plane holds of every upstream of every network, as the
/// operator defined it (the live fields that probes move are left out).
async fn definitions(admin: &mut AdminServiceClient<Channel>) -> Vec<String> {
    let mut all: Vec<String> = list_upstreams(admin, "")
        .await
        .into_iter()
        .map(|s| {
            let u = s.upstream.expect("ListUpstreams carries the upstream");
            format!(
                "{}/{} {} region={} weight={} roles={:?} origin={}",
                s.network_id, u.id, u.url, u.region, u.weight, u.roles, s.origin
            )
        })
        .collect();
    all.sort();
    all
}

/// What the sled store holds of upstreams: the runtime-added ones and the
/// tombstones of removed config upstreams, each under its network.
type Stored = (Vec<(String, UpstreamSpec)>, Vec<(String, String)>);

/// The stored upstreams under `dir` (the control plane using it must have
/// stopped).
fn stored(dir: &std::path::Path) -> Stored {
    let store = SledStore::open(dir).expect("the store opens after shutdown");
    let state = (
        store.runtime_upstreams().expect("runtime upstreams"),
        store.tombstones().expect("tombstones"),
    );
    store.close().expect("the store closes");
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_and_nothing_is_stored() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let networks = [NetworkSpec::new(NET).upstream("alpha", &a.url(), "eu")];
    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    // One upstream the store holds, so that an overwrite would show.
    admin
        .add_upstream(add("beta", "http://127.0.0.1:2", "us"))
        .await
        .expect("AddUpstream beta");
    cp.shutdown().await;
    let (runtime, tombstones) = stored(cp_dir.path());
    assert_eq!(runtime.len(), 1, "{runtime:?}");
    assert!(tombstones.is_empty(), "{tombstones:?}");

    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    let before = definitions(&mut admin).await;
    assert_eq!(before.len(), 2, "{before:?}");

    let mut unknown_network = add("x", "http://127.0.0.1:1", "eu");
    unknown_network.network_id = "no-such-network".into();
    let cases = [
        ("unknown network", unknown_network, "no-such-network"),
        (
            "duplicate config id",
            add("alpha", "http://127.0.0.1:1", "eu"),
            "alpha",
        ),
        (
            "duplicate admin id",
            add("beta", "http://127.0.0.1:3", "eu"),
            "beta",
        ),
        ("malformed URL", add("y", "not a url", "eu"), "not a url"),
        (
            "unsupported scheme",
            add("z", "ftp://127.0.0.1:1", "eu"),
            "ftp",
        ),
    ];
    for (what, request, named) in cases {
        let status = admin
            .add_upstream(request)
            .await
            .expect_err(&format!("{what} must be refused"));
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().to_lowercase().contains(named),
            "{what}: the message names the problem: {:?}",
            status.message()
        );
    }
    let status = admin
        .remove_upstream(RemoveUpstreamRequest {
            network_id: NET.into(),
            upstream_id: "never-added".into(),
        })
        .await
        .expect_err("removing an unknown upstream must fail");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = admin
        .remove_upstream(RemoveUpstreamRequest {
            network_id: "no-such-network".into(),
            upstream_id: "beta".into(),
        })
        .await
        .expect_err("removing from an unknown network must fail");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(definitions(&mut admin).await, before, "nothing changed");

    // Nothing half-written either: the store holds exactly what it held,
    // and a restart on it sees the same upstreams.
    cp.shutdown().await;
    assert_eq!(stored(cp_dir.path()), (runtime, tombstones));
    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    assert_eq!(definitions(&mut admin).await, before);
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_added_at_runtime_survive_a_restart() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let b = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let networks = [NetworkSpec::new(NET).upstream("a", &a.url(), "eu")];
    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    admin
        .add_upstream(add("b", &b.url(), "us"))
        .await
        .expect("AddUpstream");
    cp.shutdown().await;

    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a", "b"]).await;
    cp.shutdown().await;
}
