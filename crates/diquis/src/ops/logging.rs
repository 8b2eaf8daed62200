//! tracing subscriber: human-readable or JSON lines on stderr, filtered by `RUST_LOG` or
//! `Logging:LogLevel:Default`. In text lines, control characters in messages and field values
//! (a newline or ESC in a sign-in email, say) are written as escapes (`\n`, `\u{1b}`), so one
//! event is one line and no value can forge another line or drive the terminal; JSON lines are
//! escaped by JSON itself.

use std::fmt::{self, Write as _};

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},sqlx=warn,tower_http=warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.fmt_fields(escaped_fields()).try_init(),
    };
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
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .fmt_fields(escaped_fields())
            .finish();
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
