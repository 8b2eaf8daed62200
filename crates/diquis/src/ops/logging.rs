//! tracing subscriber: human-readable or JSON lines on stderr, filtered by `RUST_LOG` or
//! `Logging:LogLevel:Default`; and the few lines the process prints on stdout, in the same format.
//!
//! Lines go through a bounded queue to a writer thread: a stderr that nobody reads (a full pipe)
//! costs dropped lines, never a stalled runtime, so signals and shutdown still work. In text
//! lines, control characters in messages and field values (a newline or ESC in a sign-in email,
//! say) are written as escapes (`\n`, `\u{1b}`), so one event is one line and no value can forge
//! another line or drive the terminal; JSON lines are escaped by JSON itself.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing::field::Field;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

use crate::config::LogFormat;

/// Lines queued for stderr before new ones are dropped (a reader that stopped reading).
const QUEUED_LINES: usize = 8_192;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber (once; later calls are ignored). Keep the returned guard until
/// the process ends: dropping it flushes what is queued (waiting at most about a second).
pub fn init(format: LogFormat, default_filter: &str) -> Option<WorkerGuard> {
    let _ = FORMAT.set(format);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},sqlx=warn,tower_http=warn")));
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(true).buffered_lines_limit(QUEUED_LINES).thread_name("diquis-log").finish(std::io::stderr());
    // Colour codes only for a person at a terminal, never into a file or a pipe.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.fmt_fields(escaped_fields()).try_init(),
    };
    installed.ok().map(|()| guard)
}

/// Prints one line for the operator on stdout (the lines .NET's host prints, such as
/// `Now listening on: …`): as it is in text mode, as a JSON object with `fields` in JSON mode.
/// A closed or unread stdout never stops the process: errors are ignored.
pub fn announce(level: &str, message: &str, fields: &[(&str, &str)]) {
    let line = match FORMAT.get() {
        Some(LogFormat::Json) => announcement_json(level, message, fields),
        _ => message.to_string(),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The JSON line of [`announce`], shaped like the subscriber's (flattened) JSON events.
fn announcement_json(level: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let mut object = serde_json::Map::new();
    object.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
    object.insert("level".into(), level.into());
    object.insert("message".into(), message.into());
    for (key, value) in fields {
        object.insert((*key).into(), (*value).into());
    }
    object.insert("target".into(), "Microsoft.Hosting.Lifetime".into());
    serde_json::Value::Object(object).to_string()
}

/// The text field formatter: the message as is, other fields as `name=value`, separated by
/// spaces like tracing's default, with control characters escaped.
pub fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(write_escaped_field).delimited(" ")
}

fn write_escaped_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let text = format!("{value:?}");
    if field.name() != "message" {
        write!(writer, "{}=", field.name())?;
    }
    writer.write_str(&escape_controls(&text))
}

/// `text` with every control character (and the Unicode line and paragraph separators)
/// written as an escape; everything else unchanged.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(needs) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_one_json_object_per_line() {
        let line = announcement_json("INFO", "Now listening on: http://127.0.0.1:5000\nforged", &[("address", "http://127.0.0.1:5000")]);
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "Now listening on: http://127.0.0.1:5000\nforged");
        assert_eq!(v["address"], "http://127.0.0.1:5000");
        assert_eq!(v["target"], "Microsoft.Hosting.Lifetime");
    }

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("plain é"), "plain é");
        assert_eq!(escape_controls("a\nb\r\tc\u{1b}[31m\u{7f}\u{85}\u{2028}"), "a\\nb\\r\\tc\\u{1b}[31m\\u{7f}\\u{85}\\u{2028}");
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_text_event_stays_one_line() {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).fmt_fields(escaped_fields()).finish();
        let email = "x@y.z\n2026-12-05T00:00:00Z  INFO forged line\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(%email, other = ?email, "refused {}", email);
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("email=x@y.z\\n2026-12-05T00:00:00Z  INFO forged line\\u{1b}[2J"), "{text}");
        assert!(text.contains("refused x@y.z\\n"), "{text}");
    }
}
