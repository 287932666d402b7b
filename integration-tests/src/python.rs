//! The chains' Python client libraries for tests (ICON's `iconsdk`), from
//! PyPI, in a virtual environment under `<target>/python-clients/`.
//!
//! [`ensure_installed`] creates the venv and installs
//! `integration-tests/clients/requirements.txt` the first time a test needs
//! it (guarded and atomic, [`crate::install`]), so `cargo test --workspace`
//! works on a fresh machine with Python 3 and its `venv` module. A missing
//! Python is an error with a clear message, never a skip. [`run_client`]
//! runs one of the scripts in `integration-tests/clients/` with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::install::{Lock, take_lock, target_dir};

/// Longest an install may take (pip on a cold cache).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the Python clients cannot be installed or run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PythonError {
    #[error(
        "python3 with its venv module is needed for the client-library tests \
         (CI installs it via .ci/run; locally e.g. `apt-get install python3 python3-venv`): {0}"
    )]
    MissingPython(String),
    #[error("installing the Python clients into {dir} failed: {detail}")]
    Install { dir: PathBuf, detail: String },
}

/// The directory of this crate's client scripts and requirements.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// `<target>/python-clients`
fn cache_dir() -> PathBuf {
    target_dir().join("python-clients")
}

/// The venv's interpreter once installed.
fn python_of(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// A marker written last: its presence means the install is complete.
fn marker_of(venv: &Path) -> PathBuf {
    venv.join("meridian-installed")
}

/// Installs the clients if missing; returns the venv's interpreter. Once per
/// process; across processes serialised by a lock file.
pub fn ensure_installed() -> Result<PathBuf, PythonError> {
    static INSTALLED: OnceLock<Result<PathBuf, PythonError>> = OnceLock::new();
    INSTALLED.get_or_init(install).clone()
}

fn install() -> Result<PathBuf, PythonError> {
    let cache = cache_dir();
    let venv = cache.join("venv");
    let requirements = clients_dir().join("requirements.txt");
    let wanted = fs::read_to_string(&requirements).map_err(|e| PythonError::Install {
        dir: venv.clone(),
        detail: format!("reading {}: {e}", requirements.display()),
    })?;
    // The marker holds the requirements it was made from: a changed pin
    // installs again.
    let done = || fs::read_to_string(marker_of(&venv)).is_ok_and(|m| m == wanted);
    if done() {
        return Ok(python_of(&venv));
    }
    let err = |detail: String| PythonError::Install {
        dir: venv.clone(),
        detail,
    };
    fs::create_dir_all(&cache).map_err(|e| err(format!("creating {}: {e}", cache.display())))?;
    let lock = cache.join("install.lock");
    if take_lock(&lock, done, INSTALL_TIMEOUT).map_err(err)? == Lock::Done {
        return Ok(python_of(&venv));
    }
    let result = if done() {
        Ok(())
    } else {
        venv_install(&cache, &venv, &requirements, &wanted)
    };
    let _ = fs::remove_file(&lock);
    result.map(|()| python_of(&venv))
}

fn venv_install(
    cache: &Path,
    venv: &Path,
    requirements: &Path,
    wanted: &str,
) -> Result<(), PythonError> {
    let tmp = cache.join(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let err = |detail: String| PythonError::Install {
        dir: venv.to_owned(),
        detail,
    };
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PythonError::MissingPython(e.to_string()))?;
    if !made.status.success() {
        return Err(PythonError::MissingPython(
            String::from_utf8_lossy(&made.stderr).trim().to_owned(),
        ));
    }
    eprintln!(
        "installing the Python clients ({}) into {} (first run only)",
        requirements.display(),
        venv.display()
    );
    let pip = Command::new(python_of(&tmp))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("cannot run pip: {e}")))?;
    if !pip.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(err(format!(
            "pip exited with {}: {}",
            pip.status,
            String::from_utf8_lossy(&pip.stderr).trim()
        )));
    }
    fs::write(marker_of(&tmp), wanted).map_err(|e| err(format!("writing the marker: {e}")))?;
    // The interpreter finds the venv from its own path (pyvenv.cfg beside
    // it), so the venv works after the rename.
    let _ = fs::remove_dir_all(venv);
    fs::rename(&tmp, venv).map_err(|e| err(format!("renaming into place: {e}")))
}

/// What a client script printed and how it ended.
#[derive(Debug)]
pub struct ClientRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `integration-tests/clients/<script>` with `args` under the venv's
/// interpreter, on a blocking thread, for at most `timeout`.
pub async fn run_client(
    script: &str,
    args: &[String],
    timeout: Duration,
) -> Result<ClientRun, PythonError> {
    let python = tokio::task::spawn_blocking(ensure_installed)
        .await
        .map_err(|e| PythonError::MissingPython(e.to_string()))??;
    let mut command = tokio::process::Command::new(python);
    command
        .arg(clients_dir().join(script))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| PythonError::Install {
            dir: clients_dir(),
            detail: format!("{script} did not finish within {timeout:?}"),
        })?
        .map_err(|e| PythonError::MissingPython(e.to_string()))?;
    Ok(ClientRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
