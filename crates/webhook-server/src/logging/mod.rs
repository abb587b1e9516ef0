//! Log output: `tracing` lines, text or JSON, to a buffered stdout.
//!
//! Lines are formatted on the thread that logs them and appended to one in-memory buffer;
//! the buffer is written when it fills (64 KiB) and at least every 50 ms by a sleeping
//! flusher thread, and when the server stops. A burst of lines thus costs one `write`
//! instead of one per line, and no thread spins waiting for lines. (The per-line channel
//! and worker of `tracing-appender` cost the benchmark about a tenth of its throughput on
//! two cores; see BENCHMARKS.md.) Text lines not meant for a terminal are formatted by
//! [`text_line`], which writes what tracing-subscriber's default format writes, cheaper.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

mod text_line;

use text_line::{TextFields, TextLine};

const BUFFER_BYTES: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The shared, buffered stdout that every log line goes to.
#[derive(Debug, Clone)]
pub struct LogOutput {
    buffer: Arc<Mutex<BufWriter<Stdout>>>,
}

impl LogOutput {
    fn new() -> Self {
        Self {
            buffer: Arc::new(Mutex::new(BufWriter::with_capacity(
                BUFFER_BYTES,
                io::stdout(),
            ))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<Stdout>> {
        match self.buffer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Write out whatever is buffered.
    pub fn flush(&self) {
        let _ = self.lock().flush();
    }
}

/// One log line being written: holds the buffer for the duration of the line.
#[derive(Debug)]
pub struct LogLine<'a>(MutexGuard<'a, BufWriter<Stdout>>);

impl Write for LogLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing is the flusher thread's job; a line does not force a write.
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(self.lock())
    }
}

/// Install the global subscriber (`RUST_LOG` filter, default `info`) and start the flusher.
/// Call [`LogOutput::flush`] on the returned value before exiting.
pub fn init(format: LogFormat) -> LogOutput {
    let output = LogOutput::new();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output.clone())
        .with_ansi(ansi);
    match format {
        // on a terminal, tracing-subscriber's coloured lines; elsewhere the same text
        // written the cheap way
        LogFormat::Text if ansi => builder.init(),
        LogFormat::Text => builder.event_format(TextLine).fmt_fields(TextFields).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let flusher = output.clone();
    let spawned = std::thread::Builder::new()
        .name("log-flush".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the log flusher; lines are written when the buffer fills");
    }
    output
}
