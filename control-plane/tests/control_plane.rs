//! End-to-end tests of the control plane: real sled, real gRPC streams,
//! real HTTP probes against in-test mock nodes on 127.0.0.1:0.

mod support;

use clap::Parser as _;
use meridian_common::proto;
use meridian_common::snapshot::Version;
use meridian_control_plane::app::ControlPlane;
use meridian_control_plane::config::ControlConfig;
use meridian_control_plane::ctl;
use meridian_control_plane::store::{SledStore, Store};
use proto::UpstreamState as S;
use support::*;
use tonic::Code;

fn version(s: &proto::Snapshot) -> Version {
    s.version.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_publish_and_a_stream_delivers_and_records_acks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, leader) = (
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 1).await,
    );
    let text = config_text(
        dir.path(),
        Some(&leader),
        &[("a", &a, "eu"), ("b", &b, "us")],
    );
    // `a` cannot pass a probe until the first push has been read, so that
    // push shows it unproven however slowly the test runs.
    a.set_fault(Fault::Status(500));
    let plane = ControlPlane::start(config(&text)).await.unwrap();
    assert_eq!(http_get(plane.http_addr(), "/health").await.0, 200);
    assert_eq!(http_get(plane.http_addr(), "/ready").await.0, 200);

    let mut stream = Stream::open(&plane, "eu-1", None).await;
    let first = stream.next().await;
    let a_first = upstream_of(&first, "a").unwrap();
    assert_eq!(
        (a_first.state(), a_first.reason.as_str()),
        (S::Failing, "not yet proven healthy"),
        "new upstreams start unproven (a failing probe does not relabel them)"
    );
    stream.ack(&first).await;
    a.set_fault(Fault::None);
    let healthy = loop {
        let s = stream.next().await;
        stream.ack(&s).await;
        if state_of(&s, "a") == Some(S::Healthy) && state_of(&s, "b") == Some(S::Healthy) {
            break s;
        }
    };
    assert!(version(&healthy) > version(&first));
    assert!(!healthy.nonce.is_empty() && healthy.nonce != first.nonce);
    let table = healthy.table.as_ref().unwrap();
    assert_eq!(table.networks[0].leader_url, leader.url());
    let ids: Vec<_> = table.networks[0]
        .upstreams
        .iter()
        .map(|u| u.id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"], "sorted by id");
    assert!(
        table.networks[0]
            .upstreams
            .iter()
            .all(|u| u.score > 0 && u.head_height == 100)
    );

    let mut admin = admin(&plane).await;
    let want = version(&healthy);
    eventually("the ack is recorded", || {
        let admin = admin.clone();
        async move {
            let dp = data_plane_status(&admin, "eu-1").await?;
            (dp.connected && Version::from(dp.acked_version) == want).then_some(())
        }
    })
    .await;
    assert_eq!(
        version(&snapshot(&mut admin).await),
        plane.current_version()
    );

    let (status, metrics) = http_get(plane.http_addr(), "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "meridian_snapshot_version_epoch 1",
        "meridian_dataplanes_connected 1",
        "meridian_probes_total{network=\"eth-local\",upstream=\"a\",result=\"ok\"}",
        "meridian_upstream_state{network=\"eth-local\",upstream=\"b\",state=\"healthy\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }

    drop(stream);
    eventually("the stream end is noticed", || {
        let mut admin = admin.clone();
        async move {
            let list = admin
                .list_data_planes(proto::ListDataPlanesRequest {})
                .await
                .unwrap()
                .into_inner();
            (!list.dataplanes[0].connected).then_some(())
        }
    })
    .await;
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_wrong_chain_and_recovery_change_states() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 5).await,
    );
    let leader = MockEvmNode::start_with(100, 1).await;
    let text = config_text(
        dir.path(),
        Some(&leader),
        &[("a", &a, "eu"), ("b", &b, "eu"), ("c", &c, "eu")],
    );
    let plane = ControlPlane::start(config(&text)).await.unwrap();
    let mut admin = admin(&plane).await;
    let s = snapshot_with(
        &admin,
        &[("a", S::Healthy), ("b", S::Healthy), ("c", S::Quarantined)],
    )
    .await;
    let c_entry = s.table.unwrap().networks[0]
        .upstreams
        .iter()
        .find(|u| u.id == "c")
        .cloned()
        .unwrap();
    assert_eq!(c_entry.reason, "serves chain id 5, network expects 1");

    // The leader and a move on; b stays behind by more than max_lag_blocks.
    leader.set_height(150);
    a.set_height(150);
    let s = snapshot_with(&admin, &[("b", S::Lagging)]).await;
    let b_entry = s.table.unwrap().networks[0]
        .upstreams
        .iter()
        .find(|u| u.id == "b")
        .cloned()
        .unwrap();
    assert_eq!(b_entry.lag, 50);
    assert!(
        b_entry.reason.contains("10 blocks behind"),
        "{}",
        b_entry.reason
    );
    assert_eq!(state_of(&snapshot(&mut admin).await, "a"), Some(S::Healthy));

    b.set_height(150);
    a.set_fault(Fault::Status(500));
    snapshot_with(&admin, &[("b", S::Healthy), ("a", S::Failing)]).await;
    let list = admin
        .list_upstreams(proto::ListUpstreamsRequest {
            network_id: "eth-local".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let a_live = list
        .upstreams
        .iter()
        .find(|u| u.upstream.as_ref().unwrap().id == "a")
        .unwrap();
    assert!(
        a_live
            .upstream
            .as_ref()
            .unwrap()
            .reason
            .contains("HTTP 500"),
        "{a_live:?}"
    );
    assert_eq!(a_live.origin, "config");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_that_accepts_table_gzip_gets_the_same_table_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        MockEvmNode::start_with(7, 1).await,
        MockEvmNode::start_with(7, 1).await,
    );
    let text = config_text(dir.path(), None, &[("a", &a, "eu"), ("b", &b, "us")]);
    let plane = ControlPlane::start(config(&text)).await.unwrap();
    let admin = admin(&plane).await;
    snapshot_with(&admin, &[("a", S::Healthy), ("b", S::Healthy)]).await;
    let mut plain = Stream::open(&plane, "eu-plain", None).await;
    let mut gzip = Stream::open_with(&plane, "eu-gzip", None, true).await;
    // Both streams get the current version at once; should a publication
    // fall between the two opens, compare the first version both hold.
    let (mut p, mut g) = (plain.next().await, gzip.next().await);
    while version(&p) != version(&g) {
        if version(&p) < version(&g) {
            p = plain.next().await;
        } else {
            g = gzip.next().await;
        }
    }
    assert!(p.table.is_some() && p.table_gzip.is_empty());
    assert!(g.table.is_none() && !g.table_gzip.is_empty());
    assert_eq!(g.content_hash, p.content_hash);
    let mut inflated = g.clone();
    meridian_common::snapshot::inflate_table(&mut inflated, 1 << 20).unwrap();
    assert_eq!(inflated.table, p.table);
    // The data plane checks the hash over the inflated table.
    let table = inflated.table.as_ref().unwrap();
    assert_eq!(
        meridian_common::snapshot::content_hash(table),
        g.content_hash
    );
    gzip.ack(&g).await;
    plain.ack(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_gets_only_the_networks_of_the_chain_kinds_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let a = MockEvmNode::start_with(7, 1).await;
    // An ICON network rolls out beside the EVM one; its node need not
    // answer for the network to be in the table.
    let mut text = config_text(dir.path(), None, &[("a", &a, "eu")]);
    text.push_str(
        "\n[[networks]]\nid = \"icon-main\"\nchain = \"icon\"\n\n\
         [[networks.upstreams]]\nid = \"i\"\nurl = \"http://127.0.0.1:9/api/v3\"\n",
    );
    let plane = ControlPlane::start(config(&text)).await.unwrap();
    let admin = admin(&plane).await;
    snapshot_with(&admin, &[("a", S::Healthy)]).await;
    let networks = |s: &proto::Snapshot| -> Vec<String> {
        let table = s.table.as_ref().unwrap();
        table.networks.iter().map(|n| n.id.clone()).collect()
    };

    // A data plane from before Hello listed chain kinds (EVM only) and one
    // of this build, serving both.
    let mut old = Stream::open(&plane, "dp-old", None).await;
    let mut new = Stream::open_hello(
        &plane,
        proto::Hello {
            dataplane_id: "dp-new".into(),
            region: "eu".into(),
            chain_kinds: vec!["evm".into(), "icon".into()],
            ..Default::default()
        },
    )
    .await;
    let (mut o, mut n) = (old.next().await, new.next().await);
    while version(&o) != version(&n) {
        if version(&o) < version(&n) {
            o = old.next().await;
        } else {
            n = new.next().await;
        }
    }
    assert_eq!(networks(&o), ["eth-local"], "the ICON network is left out");
    assert_eq!(networks(&n), ["eth-local", "icon-main"]);
    // The narrower table's hash is its own, so the old data plane's check
    // passes and it ACKs instead of NACKing every version from now on.
    assert_eq!(
        meridian_common::snapshot::content_hash(o.table.as_ref().unwrap()),
        o.content_hash
    );
    assert_ne!(o.content_hash, n.content_hash);
    old.ack(&o).await;
    new.ack(&n).await;
    let status = eventually("both ACKs are recorded", || {
        let admin = admin.clone();
        let want = version(&o);
        async move {
            let old = data_plane_status(&admin, "dp-old").await?;
            let new = data_plane_status(&admin, "dp-new").await?;
            let acked = |d: &proto::DataPlaneStatus| Version::from(d.acked_version) >= want;
            (acked(&old) && acked(&new)).then_some((old, new))
        }
    })
    .await;
    assert_eq!(status.0.chain_kinds, ["evm"]);
    assert_eq!(status.0.left_out_networks, ["icon-main"]);
    assert_eq!(status.1.chain_kinds, ["evm", "icon"]);
    assert!(status.1.left_out_networks.is_empty());

    // Reconnecting with the narrower table it holds, the old data plane is
    // up to date: the next push it sees is a newer version.
    drop(old);
    let mut again = Stream::open(
        &plane,
        "dp-old",
        Some((o.version.unwrap(), o.content_hash.clone())),
    )
    .await;
    let mut admin_w = admin.clone();
    admin_w
        .add_upstream(proto::AddUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "extra".into(),
            url: "http://127.0.0.1:9".into(),
            region: "eu".into(),
            weight: 0,
            roles: vec![],
        })
        .await
        .unwrap();
    let pushed = again.next().await;
    assert!(version(&pushed) > version(&o), "{:?}", pushed.version);
    assert_eq!(networks(&pushed), ["eth-local"]);
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_date_hello_gets_nothing_and_a_nack_parks_until_newer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, n) = (
        MockEvmNode::start_with(7, 1).await,
        MockEvmNode::start_with(7, 1).await,
    );
    // `n` cannot pass a probe until the test lets it, so every version
    // before that shows it unproven, whenever the streams read them.
    n.set_fault(Fault::Status(500));
    let plane = ControlPlane::start(config(&config_text(dir.path(), None, &[("a", &a, "eu")])))
        .await
        .unwrap();
    let mut admin = admin(&plane).await;
    let current = snapshot_with(&admin, &[("a", S::Healthy)]).await;

    // Up to date: the first push this stream sees is a newer version.
    let mut fresh = Stream::open(
        &plane,
        "eu-fresh",
        Some((current.version.unwrap(), current.content_hash.clone())),
    )
    .await;
    // Another stream that holds nothing gets the latest version at once
    // (`current`, or a newer one should a score move have published
    // meanwhile) and NACKs it.
    let mut rejecting = Stream::open(&plane, "eu-reject", None).await;
    let rejected = rejecting.next().await;
    assert!(version(&rejected) >= version(&current));
    assert!(version(&rejected) <= plane.current_version());
    rejecting
        .nack(&rejected, "simulated validation failure")
        .await;
    let rejected_version = version(&rejected);
    eventually("the nack is recorded", || {
        let admin = admin.clone();
        async move {
            let dp = data_plane_status(&admin, "eu-reject").await?;
            (dp.nack_error == "simulated validation failure"
                && Version::from(dp.nacked_version) == rejected_version)
                .then_some(())
        }
    })
    .await;

    // Reconnecting does not fetch the rejected version again either.
    drop(rejecting);
    let mut rejecting = Stream::open(&plane, "eu-reject", None).await;

    // A change: published before the admin call returns.
    admin
        .add_upstream(proto::AddUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "n".into(),
            url: n.url(),
            region: "us".into(),
            weight: 0,
            roles: vec![],
        })
        .await
        .unwrap();
    let added = plane.current_version();
    assert!(added > version(&current));

    let pushed = fresh.next().await;
    assert!(
        version(&pushed) > version(&current),
        "an up-to-date Hello got a resend"
    );
    let mut pushed = pushed;
    while version(&pushed) < added {
        fresh.ack(&pushed).await;
        pushed = fresh.next().await;
    }
    assert_eq!(
        state_of(&pushed, "n"),
        Some(S::Failing),
        "n is live but not yet proven"
    );
    fresh.ack(&pushed).await;
    let after_nack = rejecting.next().await;
    assert!(
        version(&after_nack) > rejected_version,
        "the rejected version was resent"
    );
    rejecting.ack(&after_nack).await;
    eventually("the ack clears the nack", || {
        let admin = admin.clone();
        async move {
            let dp = data_plane_status(&admin, "eu-reject").await?;
            (dp.nacked_version.is_none() && dp.nack_error.is_empty()).then_some(())
        }
    })
    .await;

    // A freshly added upstream proves itself and enters rotation.
    n.set_fault(Fault::None);
    loop {
        let s = fresh.next().await;
        fresh.ack(&s).await;
        if state_of(&s, "n") == Some(S::Healthy) {
            break;
        }
    }
    let before = plane.current_version();
    admin
        .remove_upstream(proto::RemoveUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "n".into(),
        })
        .await
        .unwrap();
    // Versions published between n's entry and `before` may still be on
    // their way; the removal is the first one after `before`.
    let s = loop {
        let s = fresh.next().await;
        fresh.ack(&s).await;
        if version(&s) > before {
            break s;
        }
    };
    assert_eq!(state_of(&s, "n"), None, "removal is live");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    // `a` never passes a probe, so it stays unproven and nothing but an
    // admin call could publish while the bad calls below run.
    let a = MockEvmNode::start_with(1, 1).await;
    a.set_fault(Fault::Status(500));
    let plane = ControlPlane::start(config(&config_text(dir.path(), None, &[("a", &a, "eu")])))
        .await
        .unwrap();
    let mut admin = admin(&plane).await;
    let before = plane.current_version();
    let good = proto::AddUpstreamRequest {
        network_id: "eth-local".into(),
        upstream_id: "x".into(),
        url: "http://127.0.0.1:1".into(),
        region: "eu".into(),
        weight: 1,
        roles: vec![],
    };
    let cases = [
        (
            proto::AddUpstreamRequest {
                network_id: "nope".into(),
                ..good.clone()
            },
            "unknown network",
        ),
        (
            proto::AddUpstreamRequest {
                upstream_id: "a".into(),
                ..good.clone()
            },
            "already has an upstream",
        ),
        (
            proto::AddUpstreamRequest {
                url: "not a url".into(),
                ..good.clone()
            },
            "malformed URL",
        ),
        (
            proto::AddUpstreamRequest {
                url: "ftp://x".into(),
                ..good.clone()
            },
            "http or https",
        ),
        (
            proto::AddUpstreamRequest {
                upstream_id: "a b".into(),
                ..good.clone()
            },
            "upstream id",
        ),
        (
            proto::AddUpstreamRequest {
                upstream_id: String::new(),
                ..good.clone()
            },
            "upstream id",
        ),
        (
            proto::AddUpstreamRequest {
                roles: vec![9],
                ..good.clone()
            },
            "unknown role",
        ),
    ];
    for (request, message) in cases {
        let e = admin.add_upstream(request.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{request:?}: {e:?}");
        assert!(
            e.message().contains(message),
            "{request:?}: {}",
            e.message()
        );
    }
    let e = admin
        .remove_upstream(proto::RemoveUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = admin
        .remove_upstream(proto::RemoveUpstreamRequest {
            network_id: "nope".into(),
            upstream_id: "a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = admin
        .list_upstreams(proto::ListUpstreamsRequest {
            network_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A stream must open with a Hello.
    let mut client = proto::snapshot_service_client::SnapshotServiceClient::connect(format!(
        "http://{}",
        plane.grpc_addr()
    ))
    .await
    .unwrap();
    let ack = proto::DataPlaneMessage {
        message: Some(proto::data_plane_message::Message::Ack(
            proto::Ack::default(),
        )),
    };
    let mut inbound = client
        .stream(tokio_stream::iter([ack]))
        .await
        .unwrap()
        .into_inner();
    let e = inbound.message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("Hello"), "{e:?}");

    assert_eq!(plane.current_version(), before, "nothing was published");
    let list = admin
        .list_upstreams(proto::ListUpstreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.upstreams.len(), 1);
    plane.shutdown().await;

    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.runtime_upstreams().unwrap().is_empty());
    assert!(store.tombstones().unwrap().is_empty());
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_versions_increasing_and_admin_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        MockEvmNode::start_with(1, 1).await,
        MockEvmNode::start_with(1, 1).await,
        MockEvmNode::start_with(1, 1).await,
    );
    let text = config_text(dir.path(), None, &[("a", &a, "eu"), ("b", &b, "eu")]);
    let plane = ControlPlane::start(config(&text)).await.unwrap();
    let mut admin = admin(&plane).await;
    admin
        .add_upstream(proto::AddUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "c".into(),
            url: c.url(),
            region: "ap".into(),
            weight: 3,
            roles: vec![proto::Role::Read as i32, proto::Role::Archive as i32],
        })
        .await
        .unwrap();
    admin
        .remove_upstream(proto::RemoveUpstreamRequest {
            network_id: "eth-local".into(),
            upstream_id: "b".into(),
        })
        .await
        .unwrap();
    snapshot_with(&admin, &[("a", S::Healthy)]).await;
    let last = plane.current_version();
    plane.shutdown().await;

    // Same data_dir, same process, right away: the file lock was released.
    // The nodes hold their answers (and the probes wait for them), so the
    // restarted plane learns nothing new until the test has read what it
    // resumed from: no probe can publish in between.
    let frozen = text.replace(
        "unhealthy_after = 2\n",
        "unhealthy_after = 2\nprobe_timeout_ms = 60000\n",
    );
    for node in [&a, &c] {
        node.hold();
    }
    let plane = ControlPlane::start(config(&frozen)).await.unwrap();
    let first = plane.current_version();
    assert!(first > last, "{first} after {last}");
    assert_eq!(first.epoch, last.epoch + 1);
    let mut admin = support::admin(&plane).await;
    let s = snapshot(&mut admin).await;
    assert_eq!(version(&s), first, "nothing could publish since the start");
    assert_eq!(
        state_of(&s, "a"),
        Some(S::Healthy),
        "health resumes from the last snapshot"
    );
    for node in [&a, &c] {
        node.release();
    }
    assert_eq!(
        state_of(&s, "b"),
        None,
        "a removed config upstream stays removed"
    );
    let list = admin
        .list_upstreams(proto::ListUpstreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let c_status = list
        .upstreams
        .iter()
        .find(|u| u.upstream.as_ref().unwrap().id == "c")
        .unwrap();
    assert_eq!(c_status.origin, "admin");
    let c_up = c_status.upstream.as_ref().unwrap();
    assert_eq!((c_up.weight, c_up.region.as_str()), (3, "ap"));
    assert_eq!(
        c_up.roles,
        vec![proto::Role::Read as i32, proto::Role::Archive as i32]
    );

    // meridianctl against the restarted plane.
    let url = format!("http://{}", plane.grpc_addr());
    let cli = ctl::Cli::parse_from(["meridianctl", "--control-plane", &url, "upstream", "list"]);
    let out = ctl::run(&cli).await.unwrap();
    assert!(out.starts_with("NETWORK"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("eth-local") && l.contains(" c ") && l.contains("admin")),
        "{out}"
    );
    let cli = ctl::Cli::parse_from(["meridianctl", "--control-plane", &url, "--json", "snapshot"]);
    let json: serde_json::Value = serde_json::from_str(&ctl::run(&cli).await.unwrap()).unwrap();
    assert_eq!(json["version"]["epoch"], first.epoch);
    let cli = ctl::Cli::parse_from([
        "meridianctl",
        "--control-plane",
        &url,
        "upstream",
        "add",
        "--network",
        "eth-local",
        "--id",
        "a",
        "--url",
        "http://127.0.0.1:9",
    ]);
    let e = ctl::run(&cli).await.unwrap_err();
    assert!(e.to_string().contains("already has an upstream"), "{e}");
    let cli = ctl::Cli::parse_from([
        "meridianctl",
        "--control-plane",
        &url,
        "upstream",
        "remove",
        "--network",
        "eth-local",
        "--id",
        "c",
    ]);
    ctl::run(&cli).await.unwrap();
    plane.shutdown().await;

    let plane = ControlPlane::start(config(&text)).await.unwrap();
    let mut admin = support::admin(&plane).await;
    let list = admin
        .list_upstreams(proto::ListUpstreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = list
        .upstreams
        .iter()
        .map(|u| u.upstream.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, ["a"]);
    plane.shutdown().await;
}

#[test]
fn a_broken_config_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.toml");
    std::fs::write(
        &path,
        "[[networks]]\nid = \"eth\"\nchain = \"evm\"\n\n[[networks.upstreams]]\nid = \"a\"\nurl = \"localhost:8545\"\n",
    )
    .unwrap();
    let e = ControlConfig::load(&path).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}:7:", path.display())),
        "{shown}"
    );
    assert!(shown.contains("networks[0].upstreams[0].url"), "{shown}");
}

/// Rule 8 of snapshot.proto: a steady chain moves the heights on the
/// stream, not the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heights_follow_the_chain_without_a_new_snapshot() {
    use meridian_control_plane::inventory::SCORE_STEP;
    use proto::control_plane_message::Message as M;

    let dir = tempfile::tempdir().unwrap();
    let a = MockEvmNode::start_with(100, 1).await;
    let plane = ControlPlane::start(config(&config_text(dir.path(), None, &[("a", &a, "eu")])))
        .await
        .unwrap();
    let mut stream = Stream::open_heights(&plane, "eu-1").await;
    fn heights_of(h: &proto::Heights) -> Vec<(&str, u64, u64)> {
        h.networks
            .iter()
            .map(|n| (n.network.as_str(), n.head, n.finalized))
            .collect()
    }
    // The snapshot comes first (heights name its networks); then the stream
    // settles once `a` is healthy and the heights say 100.
    let first = stream.next_message().await;
    assert!(matches!(first, M::Snapshot(_)), "snapshot first: {first:?}");
    let (mut routed, mut seen_100) = (None, false);
    let mut pending = Some(first);
    while routed.is_none() || !seen_100 {
        let message = match pending.take() {
            Some(m) => m,
            None => stream.next_message().await,
        };
        match message {
            M::Snapshot(s) => {
                stream.ack(&s).await;
                let u = upstream_of(&s, "a").unwrap().clone();
                routed = (u.state() == S::Healthy).then_some(u);
            }
            M::Heights(h) => {
                // No node reports finality: 100 - 64 (EVM's depth), once
                // a few rounds have shown none will.
                match heights_of(&h).as_slice() {
                    [("eth-local", 100, 36)] => seen_100 = true,
                    [("eth-local", 100, 0)] => {}
                    other => panic!("unexpected heights {other:?}"),
                }
            }
        }
    }
    let routed = routed.unwrap();
    assert_eq!(routed.head_height, 100);

    a.set_height(105);
    loop {
        match stream.next_message().await {
            M::Heights(h) if heights_of(&h) == [("eth-local", 105, 41)] => break,
            // Re-sent after a snapshot: unchanged.
            M::Heights(h) => assert_eq!(heights_of(&h), [("eth-local", 100, 36)]),
            // A snapshot now must have another reason than the height: a
            // state change or a score step (latency on a loaded machine).
            M::Snapshot(s) => {
                let u = upstream_of(&s, "a").unwrap();
                assert!(
                    u.state() != routed.state() || u.score.abs_diff(routed.score) >= SCORE_STEP,
                    "a snapshot was republished for a height alone: {u:?} after {routed:?}"
                );
                stream.ack(&s).await;
            }
        }
    }
    let (_, metrics) = http_get(plane.http_addr(), "/metrics").await;
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_heights_sent_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no meridian_heights_sent_total in\n{metrics}"));
    assert!(sent >= 2, "{sent} heights sent");
    plane.shutdown().await;
}

/// Reads the stream (ACKing snapshots) until Heights say `want` is
/// finalized; the finalized heights seen before.
async fn finalized_until(stream: &mut Stream, want: u64) -> Vec<u64> {
    use proto::control_plane_message::Message as M;
    let mut seen = Vec::new();
    loop {
        match stream.next_message().await {
            M::Heights(h) if h.networks[0].finalized == want => return seen,
            M::Heights(h) => seen.push(h.networks[0].finalized),
            M::Snapshot(s) => stream.ack(&s).await,
        }
    }
}

/// Finality: the lower median of what the nodes report reaches the data
/// planes in Heights, and never goes backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalized_height_is_the_nodes_median_and_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 1).await,
        MockEvmNode::start_with(100, 1).await,
    );
    // A liar far above the others cannot lift the median.
    for (node, finalized) in [(&a, 60), (&b, 70), (&c, 99)] {
        node.set_finalized(finalized);
    }
    let plane = ControlPlane::start(config(&config_text(
        dir.path(),
        None,
        &[("a", &a, "eu"), ("b", &b, "eu"), ("c", &c, "eu")],
    )))
    .await
    .unwrap();
    let mut stream = Stream::open_heights(&plane, "eu-1").await;
    let before = finalized_until(&mut stream, 70).await;
    assert!(before.iter().all(|f| *f <= 70), "{before:?}");
    // Two nodes drop (say, restarted on a fresh database): the median
    // falls to 20, which is ignored; then all move past 70.
    a.set_finalized(10);
    b.set_finalized(20);
    let from = [&a, &b].map(|n| n.requests(FINALIZED_PROBE));
    // Two more answered calls to each: at least one whole round saw 10
    // and 20 (a call in flight at the store may still have said 60 or 70).
    eventually("two more rounds", || async {
        (a.requests(FINALIZED_PROBE) >= from[0] + 2 && b.requests(FINALIZED_PROBE) >= from[1] + 2)
            .then_some(())
    })
    .await;
    let (_, metrics) = http_get(plane.http_addr(), "/metrics").await;
    assert!(
        metrics.contains("meridian_network_finalized_height{network=\"eth-local\"} 70\n"),
        "{metrics}"
    );
    for node in [&a, &b, &c] {
        node.set_finalized(80);
    }
    let between = finalized_until(&mut stream, 80).await;
    assert!(
        between.iter().all(|f| *f == 70),
        "what was final stayed final: {between:?}"
    );
    plane.shutdown().await;
}
