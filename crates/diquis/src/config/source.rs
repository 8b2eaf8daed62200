//! Layered key/value configuration, read the way ASP.NET Core's `IConfiguration` reads it.
//!
//! Sources are applied in order, later ones overriding earlier ones: `appsettings.json`,
//! `appsettings.{Environment}.json`, environment variables (`__` stands for `:`), then
//! command-line flags. Keys are case-insensitive and use `:` between sections; JSON objects
//! are flattened (`{"Jwt":{"Key":"…"}}` is `Jwt:Key`) and arrays get index keys (`Cors:AllowedOrigins:0`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a configuration source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A settings file exists but cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A settings file is not valid JSON or its root is not an object.
    #[error("configuration file {path} is not a JSON object: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong with its text.
        source: JsonTextError,
    },
    /// A command-line argument is neither `--Key=Value`, `--Key Value` nor `Key=Value`.
    #[error("command-line argument '{0}' is not of the form --Key=Value or --Key Value")]
    Argument(String),
}

/// Why JSON configuration text was refused.
#[derive(Debug, thiserror::Error)]
pub enum JsonTextError {
    /// Not JSON (after comments are removed).
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    /// JSON whose root is not an object.
    #[error("the root must be an object")]
    NotAnObject,
}

/// One configured value and where it came from (shown in error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as it was written by the last source that set it.
    pub key: String,
    /// The value.
    pub value: String,
    /// The source: a file path, `environment` or `command line`.
    pub source: String,
}

/// The merged configuration: a case-insensitive map from `Section:Key` to value.
#[derive(Debug, Clone, Default)]
pub struct Configuration {
    entries: BTreeMap<String, Entry>,
}

impl Configuration {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one key, overriding any earlier value (and, like .NET, any children of an
    /// earlier section written as a scalar are left as they are).
    pub fn set(&mut self, key: &str, value: impl Into<String>, source: &str) {
        let key = key.trim_matches(':');
        self.entries.insert(key.to_ascii_lowercase(), Entry { key: key.to_string(), value: value.into(), source: source.to_string() });
    }

    /// The value of `key` (case-insensitive), if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(&key.to_ascii_lowercase()).map(|e| e.value.as_str())
    }

    /// The entry of `key`, with its source.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(&key.to_ascii_lowercase())
    }

    /// The values of an array section (`Section:0`, `Section:1`, …) in index order; a plain
    /// value at `Section` itself is split on `,` and `;` so env vars can carry lists.
    pub fn get_list(&self, key: &str) -> Vec<String> {
        let prefix = format!("{}:", key.to_ascii_lowercase());
        let mut indexed: Vec<(u64, String)> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, e)| k[prefix.len()..].parse::<u64>().ok().map(|i| (i, e.value.clone())))
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        let mut out: Vec<String> = indexed.into_iter().map(|(_, v)| v).collect();
        if let Some(v) = self.get(key) {
            out.extend(v.split([',', ';']).map(str::trim).filter(|s| !s.is_empty()).map(String::from));
        }
        out
    }

    /// Adds a JSON settings file; a missing file is skipped (as `optional: true` in .NET).
    pub fn add_json_file(&mut self, path: &Path) -> Result<(), SourceError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(SourceError::Read { path: path.to_path_buf(), source }),
        };
        self.add_json_str(&text, &path.display().to_string()).map_err(|source| SourceError::Json { path: path.to_path_buf(), source })
    }

    /// Adds JSON text (an object); `source` names it in messages.
    pub fn add_json_str(&mut self, text: &str, source: &str) -> Result<(), JsonTextError> {
        // appsettings.json files often carry comments and trailing commas are rejected by .NET too.
        let value: serde_json::Value = serde_json::from_str(&strip_json_comments(text))?;
        let serde_json::Value::Object(map) = value else {
            return Err(JsonTextError::NotAnObject);
        };
        for (k, v) in map {
            self.flatten(&k, &v, source);
        }
        Ok(())
    }

    fn flatten(&mut self, prefix: &str, value: &serde_json::Value, source: &str) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    self.flatten(&format!("{prefix}:{k}"), v, source);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.flatten(&format!("{prefix}:{i}"), v, source);
                }
            }
            serde_json::Value::Null => self.set(prefix, "", source),
            serde_json::Value::String(s) => self.set(prefix, s.clone(), source),
            other => self.set(prefix, other.to_string(), source),
        }
    }

    /// Adds environment variables: `A__B` sets `A:B`. Every variable is taken, as .NET does
    /// with `AddEnvironmentVariables()`; unknown keys are simply never read.
    pub fn add_environment<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) {
        for (k, v) in vars {
            self.set(&k.replace("__", ":"), v, "environment");
        }
    }

    /// Adds command-line flags: `--Key=Value`, `--Key Value`, `/Key=Value`, `Key=Value`.
    /// `--urls` is `Urls`, as in ASP.NET Core.
    pub fn add_command_line(&mut self, args: &[String]) -> Result<(), SourceError> {
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let (body, dashed) = if let Some(b) = arg.strip_prefix("--") {
                (b, true)
            } else if let Some(b) = arg.strip_prefix('/') {
                (b, true)
            } else if let Some(b) = arg.strip_prefix('-') {
                (b, true)
            } else {
                (arg.as_str(), false)
            };
            if let Some((k, v)) = body.split_once('=') {
                if k.is_empty() {
                    return Err(SourceError::Argument(arg.clone()));
                }
                self.set(&k.replace("__", ":"), v, "command line");
                i += 1;
            } else if dashed && i + 1 < args.len() && !body.is_empty() {
                self.set(&body.replace("__", ":"), args[i + 1].clone(), "command line");
                i += 2;
            } else {
                return Err(SourceError::Argument(arg.clone()));
            }
        }
        Ok(())
    }
}

/// Removes `//` and `/* */` comments outside strings (System.Text.Json's config reader skips them).
fn strip_json_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_override_and_keys_are_case_insensitive() {
        let mut c = Configuration::new();
        c.add_json_str(r#"{"ConnectionStrings":{"RedisConnection":"a:1"}, "Jwt": {"Key": "x"}}"#, "f").unwrap();
        c.add_environment([("CONNECTIONSTRINGS__REDISCONNECTION".to_string(), "b:2".to_string())]);
        assert_eq!(c.get("connectionstrings:redisconnection"), Some("b:2"));
        assert_eq!(c.entry("ConnectionStrings:RedisConnection").unwrap().source, "environment");
        c.add_command_line(&["--ConnectionStrings:RedisConnection=c:3".into(), "--urls".into(), "http://x".into()]).unwrap();
        assert_eq!(c.get("ConnectionStrings:RedisConnection"), Some("c:3"));
        assert_eq!(c.get("Urls"), Some("http://x"));
        assert_eq!(c.get("JWT:KEY"), Some("x"));
    }

    #[test]
    fn arrays_and_lists() {
        let mut c = Configuration::new();
        c.add_json_str(r#"{"Cors":{"AllowedOrigins":["http://a","http://b"]}}"#, "f").unwrap();
        assert_eq!(c.get_list("Cors:AllowedOrigins"), vec!["http://a", "http://b"]);
        let mut c = Configuration::new();
        c.add_environment([("Cors__AllowedOrigins".into(), "http://a; http://b".into())]);
        assert_eq!(c.get_list("cors:allowedorigins"), vec!["http://a", "http://b"]);
    }

    #[test]
    fn comments_are_allowed_and_bad_json_is_reported() {
        let mut c = Configuration::new();
        c.add_json_str("{ // a comment\n \"A\": \"http://x//y\" /* b */ }", "f").unwrap();
        assert_eq!(c.get("a"), Some("http://x//y"));
        assert!(c.add_json_str("{ \"A\": ", "f").is_err());
        assert!(matches!(c.add_json_str("[1]", "f"), Err(JsonTextError::NotAnObject)));
    }

    #[test]
    fn bad_argument_is_named() {
        let mut c = Configuration::new();
        let err = c.add_command_line(&["stray".into()]).unwrap_err();
        assert!(err.to_string().contains("'stray'"));
        let err = c.add_command_line(&["--lonely".into()]).unwrap_err();
        assert!(err.to_string().contains("--lonely"));
    }

    #[test]
    fn missing_file_is_skipped() {
        let mut c = Configuration::new();
        c.add_json_file(Path::new("/nonexistent/appsettings.json")).unwrap();
        assert!(c.get("x").is_none());
    }
}
