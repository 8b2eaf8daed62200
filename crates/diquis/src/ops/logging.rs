//! tracing subscriber: human-readable or JSON lines on stderr, filtered by `RUST_LOG` or
//! `Logging:LogLevel:Default`; and the few lines the process prints on stdout, in the same format.
//!
//! Lines go through a bounded queue to a writer thread: a stderr that nobody reads (a full pipe)
//! costs dropped lines, never a stalled runtime, so signals and shutdown still work.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines queued for stderr before new ones are dropped (a reader that stopped reading).
const QUEUED_LINES: usize = 8_192;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber (once; later calls are ignored). Keep the returned guard until
/// the process ends: dropping it flushes what is queued (waiting at most about a second).
pub fn init(format: LogFormat, default_filter: &str) -> Option<WorkerGuard> {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},sqlx=warn,tower_http=warn")));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("diquis-log")
        .finish(std::io::stderr());
    // Colour codes only for a person at a terminal, never into a file or a pipe.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
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

#[cfg(test)]
mod tests {
    use super::announcement_json;

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
}
