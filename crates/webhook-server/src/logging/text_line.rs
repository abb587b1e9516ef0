//! The text log line, written without `tracing-subscriber`'s general formatting machinery
//! when no terminal colours are wanted (the server's usual case: output to a file or a
//! collector). The line reads as the default formatter's does:
//!
//! ```text
//! 2026-12-03T15:11:24.123456Z  INFO webhook::log: webhook received webhook=bench bytes=2201 content_type="application/json"
//! ```
//!
//! What makes it cheaper: the date and time up to the second are formatted once per second
//! per thread, strings that need no escaping are copied as they are, and integers are
//! written without `core::fmt`'s padding logic. (It was about a fifth of the gateway's
//! instructions per webhook besides HMAC and the JSON check; BENCHMARKS.md.)

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as described in the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TextLine;

/// Formats fields (of events and spans) as ` name=value`, the message first and bare.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TextFields;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        let metadata = event.metadata();
        writer.write_str(level_text(*metadata.level()))?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
                seen = true;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// The level as the default formatter pads it, between the spaces around it.
fn level_text(level: Level) -> &'static str {
    match level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

thread_local! {
    /// The second last formatted on this thread and its text, `2026-12-03T15:11:24`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-12-03T15:11:24.123456Z`, the part up to the second cached per thread.
fn write_timestamp(writer: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            text.clear();
            let second = i64::try_from(secs)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            write!(text, "{}", second.strftime("%Y-%m-%dT%H:%M:%S"))?;
            *cached = secs;
        }
        writer.write_str(text)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = since.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    writer.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// Writes each field as the default formatter does: the message bare, the others as
/// ` name=value` with strings quoted (`Debug`) and `%`-fields as `Display`.
struct FieldWriter<'writer> {
    writer: Writer<'writer>,
    /// No field written yet (the next one gets no space before it).
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn separate(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.separate()?;
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn integer(&mut self, field: &Field, value: u64, negative: bool) -> fmt::Result {
        self.name(field)?;
        if negative {
            self.writer.write_char('-')?;
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.writer
            .write_str(std::str::from_utf8(&digits[at..]).map_err(|_| fmt::Error)?)
    }

    fn keep(&mut self, written: fmt::Result) {
        if self.result.is_ok() {
            self.result = written;
        }
    }
}

/// Whether `text` reads the same quoted as `Debug` would write it (printable ASCII without
/// a quote or backslash).
fn needs_no_escape(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let written = if field.name() == "message" {
            self.separate().and(self.writer.write_str(value))
        } else if field.name().starts_with("log.") {
            Ok(())
        } else if needs_no_escape(value) {
            self.name(field)
                .and(self.writer.write_char('"'))
                .and(self.writer.write_str(value))
                .and(self.writer.write_char('"'))
        } else {
            self.name(field).and(write!(self.writer, "{value:?}"))
        };
        self.keep(written);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let written = self.integer(field, value, false);
        self.keep(written);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let written = self.integer(field, value.unsigned_abs(), value < 0);
        self.keep(written);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let written =
            self.name(field)
                .and(self.writer.write_str(if value { "true" } else { "false" }));
        self.keep(written);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let written = self.name(field).and(write!(self.writer, "{value}"));
        self.keep(written);
        if let Some(source) = value.source() {
            let written = write!(self.writer, " {}.sources=[{source}", field.name());
            self.keep(written);
            let mut next = source.source();
            while let Some(source) = next {
                let written = write!(self.writer, ", {source}");
                self.keep(written);
                next = source.source();
            }
            let written = self.writer.write_char(']');
            self.keep(written);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let written = if field.name() == "message" {
            self.separate().and(write!(self.writer, "{value:?}"))
        } else if field.name().starts_with("log.") {
            Ok(())
        } else {
            self.name(field).and(write!(self.writer, "{value:?}"))
        };
        self.keep(written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Ok(mut held) = self.0.lock() {
                held.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(log: impl FnOnce(), fast: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone());
        if fast {
            let subscriber = builder
                .event_format(TextLine)
                .fmt_fields(TextFields)
                .finish();
            tracing::subscriber::with_default(subscriber, log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// Everything after the timestamp is what tracing-subscriber's default writes.
    #[test]
    fn reads_as_the_default_formatter_writes() {
        let log = || {
            let id = "018f3c1e-7a2b-7c4d-8e9f-0123456789ab";
            let error = io::Error::other("disk full");
            tracing::info!(target: "webhook::log", webhook = %"bench", request_id = %id, empty = "", bytes = 2201_u64, content_type = "application/json", "webhook received");
            tracing::warn!(
                delta = -42_i64,
                ok = true,
                quoted = "a \"b\"\n",
                error = &error as &(dyn std::error::Error + 'static),
                "two\nlines"
            );
            tracing::error!(r#type = "x", debug = ?Some(3), "");
            tracing::debug!(only = 1_u64);
        };
        let ours = lines_of(log, true);
        let theirs = lines_of(log, false);
        let without_time = |text: &str| -> Vec<String> {
            text.lines()
                .map(|line| {
                    line.split_once(' ')
                        .map(|(_, rest)| rest.to_owned())
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert_eq!(
            without_time(&ours),
            without_time(&theirs),
            "ours:\n{ours}\ntheirs:\n{theirs}"
        );
        // (the message "two\nlines" makes a line without a time)
        for line in ours.lines().filter(|line| !line.starts_with("lines")) {
            let stamp = line.split(' ').next().unwrap_or_default();
            assert_eq!(stamp.len(), 27, "{line}");
            assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{line}");
        }
    }

    #[test]
    fn the_timestamp_is_exact_to_the_microsecond() {
        let mut text = String::new();
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_796_000_000_000_042);
        write_timestamp(&mut Writer::new(&mut text), at).unwrap_or_default();
        assert_eq!(text, "2026-11-30T00:53:20.000042Z");
        text.clear();
        let next = UNIX_EPOCH + std::time::Duration::from_micros(1_796_000_001_999_999);
        write_timestamp(&mut Writer::new(&mut text), next).unwrap_or_default();
        assert_eq!(
            text, "2026-11-30T00:53:21.999999Z",
            "the cached second moves on"
        );
    }
}
