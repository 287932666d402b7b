//! Why a benchmark run failed.
//!
//! A benchmark that cannot measure something says so and stops: a missing
//! tool, a process that died (with the tail of its log), a tool's output that
//! cannot be parsed. No figure is ever made up.

use std::path::PathBuf;

/// Every way a benchmark run can fail.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A tool is missing and may not (or could not) be installed.
    #[error("{0}")]
    Tool(String),
    /// A program could not be started.
    #[error("cannot start {what} ({program}): {source}")]
    Spawn {
        /// Which part of the benchmark.
        what: String,
        /// The program run.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A started process ended early or never became ready.
    #[error("{what}: {problem}; log {log}:\n{tail}")]
    Process {
        /// Which process.
        what: String,
        /// What went wrong.
        problem: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A tool ran but failed or printed something unexpected.
    #[error("{what}: {problem}")]
    Measure {
        /// Which measurement.
        what: String,
        /// What went wrong, with the relevant output.
        problem: String,
    },
    /// Building Meridian's binaries failed.
    #[error("building Meridian failed: {0}")]
    Build(String),
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A gRPC call to the control plane failed.
    #[error("{what}: {problem}")]
    Grpc {
        /// Which call.
        what: String,
        /// The status or transport error.
        problem: String,
    },
}

impl BenchError {
    /// An [`BenchError::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }

    /// A [`BenchError::Measure`].
    pub fn measure(what: impl Into<String>, problem: impl Into<String>) -> BenchError {
        BenchError::Measure {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
