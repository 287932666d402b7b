//! stderr for log lines, written in blocks instead of one `write` per line.
//!
//! The data plane logs one access line per request; a `write(2)` for each
//! cost several microseconds of its CPU per request. Lines are gathered in
//! a buffer and written when it holds [`FLUSH_AT`] bytes, every
//! [`FLUSH_EVERY`] by a small background thread, at once for warnings and
//! errors (so what matters is never held back), and when the
//! [`LogFlusher`] is dropped at exit.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Buffered bytes that trigger a write.
pub const FLUSH_AT: usize = 32 * 1024;
/// Longest time an info line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves whole lines at worst.
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) {
        let mut buf = self.lock();
        write_out(&mut buf);
    }
}

fn write_out(buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        // Nowhere to report a failing stderr; the lines are dropped.
        let _ = io::stderr().lock().write_all(buf);
        buf.clear();
    }
}

/// A [`MakeWriter`] for the fmt layer that writes stderr in blocks.
#[derive(Debug, Clone)]
pub struct BlockStderr {
    shared: Arc<Shared>,
}

/// Writes what is still buffered when dropped, and stops the flusher.
#[derive(Debug)]
pub struct LogFlusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.flush();
    }
}

/// The writer and its flusher (which owns the background thread).
pub fn block_stderr() -> (BlockStderr, LogFlusher) {
    let shared = Arc::new(Shared::default());
    let background = shared.clone();
    let thread = std::thread::Builder::new()
        .name("meridian-log-flush".into())
        .spawn(move || {
            while !background.stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(FLUSH_EVERY);
                background.flush();
            }
        })
        // Without the thread, lines still go out at FLUSH_AT and at exit;
        // warnings and errors at once.
        .ok();
    (
        BlockStderr {
            shared: shared.clone(),
        },
        LogFlusher { shared, thread },
    )
}

/// One line's writer.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut buf = self.shared.lock();
        buf.extend_from_slice(data);
        if self.urgent || buf.len() >= FLUSH_AT {
            write_out(&mut buf);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.shared.flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BlockStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_wait_urgent_lines_and_drop_flush() {
        let (writer, flusher) = block_stderr();
        let quiet = |data: &[u8]| {
            LineWriter {
                shared: &writer.shared,
                urgent: false,
            }
            .write_all(data)
            .unwrap();
        };
        quiet(b"meridian log_writer test: info\n");
        assert_eq!(writer.shared.lock().len(), 31);
        writer
            .make_writer()
            .write_all(b"meridian log_writer test: warn\n")
            .unwrap();
        assert!(writer.shared.lock().is_empty());
        quiet(b"meridian log_writer test: last\n");
        drop(flusher);
        assert!(writer.shared.lock().is_empty());
    }
}
