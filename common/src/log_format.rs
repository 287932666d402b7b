//! The text log line, formatted without `core::fmt` where it can be.
//!
//! The data plane writes one access line per request, so formatting a line
//! is on the request path. `tracing-subscriber`'s default text format
//! renders every field through `Debug` and the timestamp through
//! `fmt::Write` piece by piece; profiles put that at a quarter of the
//! proxy's user-space time. This format writes the same shape of line —
//! `2026-11-22T01:16:48.123456Z  INFO target: message key=value …` — with
//! integers through `itoa`, strings copied (quoted only when they must be),
//! and the date part of the timestamp computed once per second per thread.
//!
//! Only events are formatted: log lines carry their own fields, and spans
//! are for traces (see [`crate::telemetry`]).

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The lean text event format. No colours: lines go to files and
/// collectors far more often than to a person at a terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeanText;

impl<S, N> FormatEvent<S, N> for LeanText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut head = [0u8; TIMESTAMP_LEN];
        writer.write_str(timestamp(SystemTime::now(), &mut head))?;
        writer.write_str(level_column(*meta.level()))?;
        writer.write_str(meta.target())?;
        writer.write_str(":")?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// `" LEVEL "` padded to one width, as the default format does.
fn level_column(level: Level) -> &'static str {
    match level {
        Level::ERROR => " ERROR ",
        Level::WARN => "  WARN ",
        Level::INFO => "  INFO ",
        Level::DEBUG => " DEBUG ",
        Level::TRACE => " TRACE ",
    }
}

/// Writes an event's fields: the message bare, the others as `key=value`.
struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_char(' ')?;
        if field.name() != "message" {
            self.out.write_str(field.name())?;
            self.out.write_char('=')?;
        }
        Ok(())
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.out));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let bare = field.name() == "message" || !needs_quotes(value);
        self.put(field, |out| {
            if bare {
                out.write_str(value)
            } else {
                write!(out, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |out| write!(out, "{value:?}"));
    }
}

/// Whether a string value must be quoted to stay one `key=value` token.
fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value
            .bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == b'\\' || b >= 0x7f)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const TIMESTAMP_LEN: usize = 27;

/// The date and time to the second, reused while the second lasts.
struct SecondCache {
    second: u64,
    text: [u8; 19],
}

thread_local! {
    static SECOND: RefCell<SecondCache> = const {
        RefCell::new(SecondCache { second: u64::MAX, text: [b'0'; 19] })
    };
}

/// Renders `now` (UTC, microseconds) into `buf`.
fn timestamp(now: SystemTime, buf: &mut [u8; TIMESTAMP_LEN]) -> &str {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            cache.text = date_time(second);
            cache.second = second;
        }
        buf[..19].copy_from_slice(&cache.text);
    });
    buf[19] = b'.';
    let mut micros = since.subsec_micros();
    for slot in buf[20..26].iter_mut().rev() {
        *slot = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    buf[26] = b'Z';
    // Every byte written above is ASCII.
    std::str::from_utf8(buf).unwrap_or("0000-00-00T00:00:00.000000Z")
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (proleptic
/// Gregorian calendar, days-to-civil after Howard Hinnant).
fn date_time(unix_seconds: u64) -> [u8; 19] {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3_600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&date_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&date_time(1_795_310_208), b"2026-11-22T01:16:48");
        assert_eq!(&date_time(4_107_542_399), b"2100-02-28T23:59:59");
    }

    #[test]
    fn timestamps_carry_microseconds() {
        let mut buf = [0; TIMESTAMP_LEN];
        let t = UNIX_EPOCH + Duration::new(1_795_310_208, 7_654_321);
        assert_eq!(timestamp(t, &mut buf), "2026-11-22T01:16:48.007654Z");
        let t = UNIX_EPOCH + Duration::new(1_795_310_209, 999_999_999);
        assert_eq!(timestamp(t, &mut buf), "2026-11-22T01:16:49.999999Z");
    }

    /// A log writer that keeps what is written (also used by telemetry's tests).
    #[derive(Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        /// Everything written so far, as text.
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn lines_have_the_default_shape_with_cheap_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(LeanText)
                .with_writer(capture.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                target: "meridian::test",
                network = "eth",
                note = "two words",
                empty = "",
                count = 42u64,
                delta = -3i64,
                ok = true,
                ratio = 0.5,
                "upstream ejected"
            );
        });
        let text = capture.text();
        let (stamp, rest) = text.split_at(TIMESTAMP_LEN);
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{text}"
        );
        assert_eq!(
            rest,
            "  WARN meridian::test: upstream ejected network=eth note=\"two words\" empty=\"\" \
             count=42 delta=-3 ok=true ratio=0.5\n"
        );
    }
}
