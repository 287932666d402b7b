//! Building Meridian's binaries for the benchmark and finding them.
//!
//! Always runs `cargo build` (a no-op when fresh), so a run never measures a
//! stale binary, and takes the executables' paths from cargo's JSON messages
//! rather than guessing the target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::BenchError;

/// `meridian-control` and `meridian-proxy`, built.
#[derive(Debug, Clone)]
pub struct MeridianBinaries {
    /// The control plane.
    pub control: PathBuf,
    /// The data plane.
    pub proxy: PathBuf,
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The workspace's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds both planes' binaries (`release` or the dev profile) and returns
/// their paths.
pub fn build(release: bool) -> Result<MeridianBinaries, BenchError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args([
            "-p",
            "meridian-control-plane",
            "-p",
            "meridian-data-plane",
            "--bins",
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    eprintln!("meridian-bench: building Meridian: {cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| BenchError::Build(format!("cannot run {cmd:?}: {e}")))?;
    if !output.status.success() {
        return Err(BenchError::Build(format!(
            "{cmd:?} failed ({}); see the compiler output above",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let find = |name: &str| {
        executable(&stdout, name)
            .ok_or_else(|| BenchError::Build(format!("cargo built no executable named {name}")))
    };
    Ok(MeridianBinaries {
        control: find("meridian-control")?,
        proxy: find("meridian-proxy")?,
    })
}

/// The path of executable `name` in cargo's JSON messages.
pub fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_in_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"meridian-proxy","kind":["bin"]},"executable":"/t/release/meridian-proxy","fresh":true}
{"reason":"compiler-artifact","target":{"name":"meridian_data_plane","kind":["lib"]},"executable":null}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable(messages, "meridian-proxy"),
            Some(PathBuf::from("/t/release/meridian-proxy"))
        );
        assert_eq!(executable(messages, "meridian-control"), None);
    }
}
