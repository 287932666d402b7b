//! `meridianctl --json` is promised stable for scripts: each test runs the
//! real binary against a real control plane and pins the whole shape of
//! one command's output (every key, and the type of every value), so a
//! renamed or dropped field fails here before it breaks someone's script.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use meridian_common::proto::UpstreamState as S;
use meridian_common::snapshot::{CacheSettings, NetworkPolicy};
use meridian_control_plane::app::ControlPlane;
use serde_json::{Value, json};
use support::*;

/// What one run of the binary gave.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout as JSON, after checking the command succeeded.
    fn json(&self) -> Value {
        assert!(self.ok, "meridianctl failed: {}", self.stderr);
        assert!(self.stderr.is_empty(), "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Stderr as JSON, after checking the command failed and printed
    /// nothing on stdout.
    fn error(&self) -> Value {
        assert!(!self.ok, "meridianctl succeeded: {}", self.stdout);
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        serde_json::from_str(&self.stderr).unwrap_or_else(|e| panic!("{e}: {}", self.stderr))
    }
}

/// Runs `meridianctl --control-plane <url> --json <args>`.
async fn ctl(url: &str, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meridianctl"));
    command
        .args(["--control-plane", url, "--json"])
        .args(args)
        .env_remove("MERIDIAN_LOG");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("meridianctl runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn url(plane: &ControlPlane) -> String {
    format!("http://{}", plane.grpc_addr())
}

/// The sorted keys of an object.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// A `{"epoch", "seq"}` version.
fn assert_version(v: &Value) {
    assert_eq!(keys(v), ["epoch", "seq"], "{v}");
    assert!(v["epoch"].is_u64() && v["seq"].is_u64(), "{v}");
}

/// One upstream as `upstream list` and `snapshot` show it.
fn assert_upstream(u: &Value, extra: &[&str]) {
    let mut want = vec![
        "head_height",
        "id",
        "lag",
        "latency_ewma_us",
        "reason",
        "region",
        "roles",
        "score",
        "state",
        "url",
        "weight",
    ];
    want.extend_from_slice(extra);
    want.sort_unstable();
    assert_eq!(keys(u), want, "{u}");
    for text in ["id", "url", "region", "reason"] {
        assert!(u[text].is_string(), "{text}: {u}");
    }
    for number in ["weight", "head_height", "lag", "latency_ewma_us", "score"] {
        assert!(u[number].is_u64(), "{number}: {u}");
    }
    assert!(
        ["healthy", "lagging", "failing", "quarantined"].contains(&u["state"].as_str().unwrap()),
        "{u}"
    );
    assert!(
        u["roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| ["read", "write", "archive"].contains(&r.as_str().unwrap())),
        "{u}"
    );
}

async fn plane_with_a() -> (ControlPlane, MockEvmNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let a = MockEvmNode::start_with(42, 1).await;
    let plane = ControlPlane::start(config(&config_text(dir.path(), None, &[("a", &a, "eu")])))
        .await
        .unwrap();
    snapshot_with(&admin(&plane).await, &[("a", S::Healthy)]).await;
    (plane, a, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_list_json_has_a_stable_shape() {
    let (plane, a, _dir) = plane_with_a().await;
    let out = ctl(&url(&plane), &["upstream", "list"]).await.json();
    assert_eq!(keys(&out), ["upstreams"]);
    let list = out["upstreams"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{out}");
    let u = &list[0];
    assert_upstream(u, &["network", "origin"]);
    assert_eq!(
        (&u["network"], &u["id"], &u["url"], &u["region"]),
        (
            &json!("eth-local"),
            &json!("a"),
            &json!(a.url()),
            &json!("eu")
        )
    );
    assert_eq!(
        (&u["origin"], &u["state"], &u["head_height"]),
        (&json!("config"), &json!("healthy"), &json!(42))
    );
    assert_eq!(u["roles"], json!(["read", "write"]));
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_add_and_remove_json_have_a_stable_shape() {
    let (plane, _a, _dir) = plane_with_a().await;
    let url = url(&plane);
    let added = ctl(
        &url,
        &[
            "upstream",
            "add",
            "--network",
            "eth-local",
            "--id",
            "b",
            "--url",
            "http://127.0.0.1:9",
            "--region",
            "us",
            "--role",
            "read",
            "--role",
            "archive",
        ],
    )
    .await
    .json();
    assert_eq!(
        added,
        json!({"ok": true, "message": "added upstream b to network eth-local"})
    );
    let listed = ctl(&url, &["upstream", "list", "--network", "eth-local"])
        .await
        .json();
    let b = listed["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "b")
        .unwrap_or_else(|| panic!("b is listed: {listed}"))
        .clone();
    assert_eq!(
        (&b["origin"], &b["roles"]),
        (&json!("admin"), &json!(["read", "archive"]))
    );
    let removed = ctl(
        &url,
        &["upstream", "remove", "--network", "eth-local", "--id", "b"],
    )
    .await
    .json();
    assert_eq!(
        removed,
        json!({"ok": true, "message": "removed upstream b from network eth-local"})
    );
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplanes_json_has_a_stable_shape() {
    let (plane, _a, _dir) = plane_with_a().await;
    let mut stream = Stream::open(&plane, "eu-1", None).await;
    let pushed = stream.next().await;
    stream.ack(&pushed).await;
    let v = pushed.version.unwrap();
    let acked = json!({"epoch": v.epoch, "seq": v.seq});
    let out = eventually("the ack is listed", || {
        let url = url(&plane);
        let acked = acked.clone();
        async move {
            let out = ctl(&url, &["dataplanes"]).await.json();
            (out["dataplanes"][0]["acked_version"] == acked).then_some(out)
        }
    })
    .await;
    assert_eq!(keys(&out), ["dataplanes"]);
    let list = out["dataplanes"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{out}");
    let d = &list[0];
    assert_eq!(
        keys(d),
        [
            "acked_version",
            "chain_kinds",
            "connected",
            "id",
            "last_seen_unix_ms",
            "left_out_networks",
            "nack_error",
            "nacked_version",
            "region"
        ]
    );
    assert_eq!(
        (&d["chain_kinds"], &d["left_out_networks"]),
        (&json!(["evm"]), &json!([])),
        "a Hello without chain kinds: an EVM-only data plane, nothing left out of an EVM table"
    );
    assert_eq!(
        (&d["id"], &d["region"], &d["connected"]),
        (&json!("eu-1"), &json!("eu"), &json!(true))
    );
    assert_version(&d["acked_version"]);
    assert!(
        d["last_seen_unix_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{d}"
    );
    assert_eq!(
        (&d["nacked_version"], &d["nack_error"]),
        (&Value::Null, &json!("")),
        "no NACK: null and empty"
    );
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_json_has_a_stable_shape() {
    let (plane, _a, _dir) = plane_with_a().await;
    let out = ctl(&url(&plane), &["snapshot"]).await.json();
    assert_eq!(
        keys(&out),
        [
            "content_hash",
            "generated_at_unix_ms",
            "networks",
            "version"
        ]
    );
    assert_version(&out["version"]);
    let hash = out["content_hash"].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    assert!(
        out["generated_at_unix_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    let networks = out["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 1, "{out}");
    let n = &networks[0];
    assert_eq!(
        keys(n),
        ["cache", "chain", "id", "leader_url", "policy", "upstreams"]
    );
    assert_eq!(
        (&n["id"], &n["chain"], &n["leader_url"]),
        (&json!("eth-local"), &json!("evm"), &json!(""))
    );
    let p = &n["policy"];
    let mut fields = NetworkPolicy::FIELDS.to_vec();
    fields.sort_unstable();
    assert_eq!(keys(p), fields, "every policy field, by its TOML name");
    let defaults = serde_json::to_value(NetworkPolicy::default()).unwrap();
    assert_eq!(p, &defaults, "the effective policy, defaults filled in");
    assert_eq!(
        n["cache"],
        serde_json::to_value(CacheSettings::default()).unwrap()
    );
    let upstreams = n["upstreams"].as_array().unwrap();
    assert_eq!(upstreams.len(), 1);
    assert_upstream(&upstreams[0], &[]);
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_json_object_on_stderr_and_a_failing_exit() {
    let (plane, _a, _dir) = plane_with_a().await;
    let url = url(&plane);
    let shape = |e: &Value| {
        assert_eq!(keys(e), ["error", "ok"], "{e}");
        assert_eq!(e["ok"], false);
        assert_eq!(keys(&e["error"]), ["code", "kind", "message"], "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{e}"
        );
    };

    // Refused by the control plane: the gRPC code's name.
    let e = ctl(
        &url,
        &[
            "upstream",
            "add",
            "--network",
            "eth-local",
            "--id",
            "a",
            "--url",
            "http://127.0.0.1:9",
        ],
    )
    .await
    .error();
    shape(&e);
    assert_eq!(
        (&e["error"]["kind"], &e["error"]["code"]),
        (&json!("rpc"), &json!("InvalidArgument"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already has an upstream"),
        "{e}"
    );
    let e = ctl(
        &url,
        &["upstream", "remove", "--network", "eth-local", "--id", "zz"],
    )
    .await
    .error();
    shape(&e);
    assert_eq!(e["error"]["code"], "NotFound", "{e}");

    // Refused before any connection: a bad flag value.
    let e = ctl(
        &url,
        &[
            "upstream",
            "add",
            "--network",
            "eth-local",
            "--id",
            "c",
            "--url",
            "http://127.0.0.1:9",
            "--role",
            "boss",
        ],
    )
    .await
    .error();
    shape(&e);
    assert_eq!(
        (&e["error"]["kind"], &e["error"]["code"]),
        (&json!("usage"), &Value::Null)
    );
    plane.shutdown().await;

    // Nobody listening.
    let e = ctl("http://127.0.0.1:1", &["snapshot"]).await.error();
    shape(&e);
    assert_eq!(
        (&e["error"]["kind"], &e["error"]["code"]),
        (&json!("connect"), &Value::Null)
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{e}"
    );
}
