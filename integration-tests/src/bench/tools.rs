//! Finding (or installing) the load generators and nginx.
//!
//! - `wrk` and `nginx`: Debian packages `wrk` and `nginx`, installed with
//!   `apt-get install -y` after one `apt-get update`.
//! - `oha`: `cargo install oha --locked` into `~/.cargo/bin`, built in its own
//!   target directory so it never contends with the workspace's `target/`.
//! - `taskset` (util-linux) must already be there: it is part of every Debian.
//!
//! The quick mode (and so the test suite) only *finds* tools: installing is
//! the job of `.ci/run` and of the full run, so a test never changes the
//! machine behind your back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::error::BenchError;

/// Whether missing tools may be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallPolicy {
    /// Only look for them; a missing one is an error (or, for oha, a note).
    FindOnly,
    /// Install what is missing.
    Install,
}

/// The tools a run uses.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The wrk load generator.
    pub wrk: PathBuf,
    /// nginx.
    pub nginx: PathBuf,
    /// oha; `None` when missing and not installed (latency figures skipped).
    pub oha: Option<PathBuf>,
    /// What was found or installed, one line each (printed with the results).
    pub notes: Vec<String>,
}

/// Finds the tools, installing what is missing when `policy` allows. oha is
/// looked for only when `want_oha`.
pub fn find_or_install(policy: InstallPolicy, want_oha: bool) -> Result<Tools, BenchError> {
    let mut notes = Vec::new();
    if find_program("taskset").is_none() {
        return Err(BenchError::Tool(
            "taskset is missing: install Debian's util-linux".into(),
        ));
    }
    let wrk = debian_tool("wrk", "wrk", policy, &mut notes)?;
    let nginx = debian_tool("nginx", "nginx", policy, &mut notes)?;
    let oha = if want_oha {
        match find_oha() {
            Some(path) => {
                notes.push(format!("oha: found {}", path.display()));
                Some(path)
            }
            None if policy == InstallPolicy::Install => {
                let path = install_oha()?;
                notes.push(format!(
                    "oha: installed {} (cargo install oha --locked)",
                    path.display()
                ));
                Some(path)
            }
            None => {
                notes.push(
                    "oha: not found; fixed-rate latency figures skipped (install: cargo install oha --locked)"
                        .into(),
                );
                None
            }
        }
    } else {
        None
    };
    Ok(Tools {
        wrk,
        nginx,
        oha,
        notes,
    })
}

fn debian_tool(
    program: &str,
    package: &str,
    policy: InstallPolicy,
    notes: &mut Vec<String>,
) -> Result<PathBuf, BenchError> {
    if let Some(path) = find_program(program) {
        notes.push(format!("{program}: found {}", path.display()));
        return Ok(path);
    }
    if policy == InstallPolicy::FindOnly {
        return Err(BenchError::Tool(format!(
            "{program} is missing: install it with `apt-get update && apt-get install -y wrk nginx` \
             (Debian packages `wrk` and `nginx`), or run `meridian-bench --all`, which installs it"
        )));
    }
    apt_update()?;
    run_install(
        "apt-get",
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let path = find_program(program).ok_or_else(|| {
        BenchError::Tool(format!(
            "apt-get installed {package} but {program} is still not on PATH"
        ))
    })?;
    notes.push(format!(
        "{program}: installed {} (apt-get install {package})",
        path.display()
    ));
    Ok(path)
}

/// `apt-get update`, once per process.
fn apt_update() -> Result<(), BenchError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        run_install(
            "apt-get update",
            Command::new("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(BenchError::Tool)
}

fn run_install(what: &str, cmd: &mut Command) -> Result<(), BenchError> {
    eprintln!("meridian-bench: running {cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| BenchError::Tool(format!("cannot run {what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Tool(format!(
            "{what} failed ({status}): {cmd:?}"
        )))
    }
}

fn find_oha() -> Option<PathBuf> {
    find_program("oha").or_else(|| {
        let path = cargo_home()?.join("bin/oha");
        path.is_file().then_some(path)
    })
}

fn install_oha() -> Result<PathBuf, BenchError> {
    // Its own target dir: compiling oha takes minutes and must neither block
    // on nor pollute the workspace's target/.
    let target = std::env::temp_dir().join("meridian-bench-oha-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_install(
        "cargo install oha",
        Command::new(cargo)
            .args(["install", "oha", "--locked"])
            .env("CARGO_TARGET_DIR", &target),
    )?;
    find_oha().ok_or_else(|| BenchError::Tool("cargo installed oha but it cannot be found".into()))
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// `program` on PATH, or in the sbin directories that a non-root PATH lacks.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_every_debian_has() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-meridian").is_none());
    }
}
