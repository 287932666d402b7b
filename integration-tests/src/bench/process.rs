//! Processes the harness starts: pinned, logged, and always stopped.
//!
//! Every process is wrapped in a [`Managed`] whose `Drop` stops it (SIGTERM,
//! then SIGKILL after a grace period), so an error anywhere in a run — or a
//! panic in the quick test — leaves nothing behind. Output goes to a log file
//! whose tail is quoted when the process misbehaves.

use std::ffi::OsString;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::BenchError;

/// How long a stopped process gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Name used in logs and errors, also the log file's stem.
    pub name: String,
    /// CPU list for `taskset -c` (e.g. `"1"`); `None` runs unpinned.
    pub cpus: Option<String>,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Spawn {
    /// A spawn of `program` named `name`, unpinned, without arguments.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            cpus: None,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Pins the process to `cpus` (taskset syntax).
    pub fn pinned(mut self, cpus: Option<&str>) -> Self {
        self.cpus = cpus.map(str::to_owned);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Starts it, with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn start(&self, log_dir: &Path) -> Result<Managed, BenchError> {
        let log = log_dir.join(format!("{}.log", self.name));
        let out =
            File::create(&log).map_err(BenchError::io(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(BenchError::io(format!("open {}", log.display())))?;
        let mut cmd = match &self.cpus {
            Some(cpus) => {
                // taskset execs the program, so the pid we get is the program's.
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| BenchError::Spawn {
            what: self.name.clone(),
            program: self.program.display().to_string(),
            source,
        })?;
        Ok(Managed {
            name: self.name.clone(),
            child: Some(child),
            log,
            extra_pids: Vec::new(),
        })
    }
}

/// A running process that is stopped when dropped.
#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    /// Processes it forked that must also go (nginx workers).
    extra_pids: Vec<u32>,
}

impl Managed {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Records a process it forked, stopped together with it.
    pub fn adopt(&mut self, pid: u32) {
        self.extra_pids.push(pid);
    }

    /// An error about this process, quoting its log's tail.
    pub fn failure(&self, problem: impl Into<String>) -> BenchError {
        BenchError::Process {
            what: self.name.clone(),
            problem: problem.into(),
            log: self.log.clone(),
            tail: log_tail(&self.log, 20),
        }
    }

    /// Errors if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        let status = match self.child.as_mut() {
            Some(child) => child.try_wait(),
            None => return Err(self.failure("already stopped")),
        };
        match status {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(format!("exited early ({status})"))),
            Err(e) => Err(self.failure(format!("cannot check whether it runs: {e}"))),
        }
    }

    /// Polls the log until a line starts with `prefix`; returns the rest of
    /// that line. Fails if the process exits or `timeout` passes.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.log)
                && let Some(rest) = text.lines().find_map(|l| l.strip_prefix(prefix))
            {
                return Ok(rest.trim().to_owned());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                return Err(self.failure(format!("did not print {prefix:?} within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it now (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        if matches!(child.try_wait(), Ok(None)) {
            signal("TERM", pid);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
        for extra in self.extra_pids.drain(..) {
            if Path::new(&format!("/proc/{extra}")).exists() {
                signal("KILL", extra);
            }
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Sends a signal with `kill(1)` (no unsafe code for `kill(2)`).
fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a log file (or why it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}

/// A free 127.0.0.1 port, found by binding port 0 and releasing it. Another
/// process could take it in between; on this otherwise idle machine that is
/// unlikely, and the start of the variant would fail loudly.
pub fn free_addr() -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("find a free port"))?;
    listener
        .local_addr()
        .map_err(BenchError::io("find a free port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managed_process_is_stopped_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Spawn::new("sleeper", "sh")
            .args(["-c", "echo ready-now; exec sleep 60"])
            .start(dir.path())
            .expect("start");
        assert_eq!(
            p.wait_for_line("ready-", Duration::from_secs(10))
                .expect("line"),
            "now"
        );
        let pid = p.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(p);
        // `stop` reaps the child, so not even a zombie entry is left.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn an_early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Spawn::new("failing", "sh")
            .args(["-c", "echo something broke; exit 3"])
            .start(dir.path())
            .expect("start");
        let err = p
            .wait_for_line("never", Duration::from_secs(10))
            .expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("exited early"), "{text}");
        assert!(text.contains("something broke"), "{text}");
    }
}
