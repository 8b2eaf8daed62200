//! `ConnectionStrings:*` for databases: Npgsql key/value strings, `postgres://` URLs, or SQLite.

use std::fmt;
use std::path::PathBuf;

/// Why a database connection string was refused. The texts complete "`<key>` …" in the
/// configuration error that names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionStringError {
    /// Nothing but white space.
    #[error("is empty")]
    Empty,
    /// `sqlite:` without a file, or an in-memory database.
    #[error("an SQLite URL needs a file path (in-memory databases cannot be shared by the web and jobs parts)")]
    SqliteWithoutFile,
    /// A URL whose scheme is neither `postgres` nor `sqlite` (the value is shown redacted).
    #[error("unsupported URL scheme in '{0}': use postgres://, sqlite: or a file path")]
    UnsupportedScheme(String),
    /// A `postgres://` URL that sqlx cannot read.
    #[error("is not a valid PostgreSQL URL: {0}")]
    InvalidPostgresUrl(#[source] sqlx::Error),
    /// A part of a key/value string without `=`.
    #[error("'{0}' is not of the form Keyword=Value")]
    NotKeyValue(String),
    /// `Port=` that is not a port number.
    #[error("Port '{0}' is not a port number")]
    InvalidPort(String),
    /// An SSL mode Npgsql does not know.
    #[error("SSL Mode '{0}' is not one of Disable, Allow, Prefer, Require, VerifyCA, VerifyFull")]
    InvalidSslMode(String),
    /// A keyword that is neither used nor a harmless Npgsql option.
    #[error("unknown keyword '{0}'")]
    UnknownKeyword(String),
    /// `Data Source=` empty or in memory.
    #[error("Data Source must name a file")]
    DataSourceWithoutFile,
    /// A PostgreSQL key/value string without one of its required parts.
    #[error("has no {0}{hint}", hint = if *.0 == "Host" { " (expected Host=…;Database=…;Username=…;Password=…)" } else { "" })]
    Missing(&'static str),
}

/// Where a database lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A PostgreSQL database.
    Postgres(PostgresTarget),
    /// An SQLite file (created when missing).
    Sqlite {
        /// The file path.
        path: PathBuf,
    },
}

/// The parts of a PostgreSQL connection Diquis uses.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// Host name or address (or a Unix socket directory).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub username: String,
    /// Password, if any.
    pub password: Option<String>,
    /// `disable`, `prefer`, `require`, … (libpq names).
    pub ssl_mode: Option<String>,
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseTarget {
    /// Shows where the database is, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Postgres(p) => write!(f, "postgres://{}@{}:{}/{}", p.username, p.host, p.port, p.database),
            DatabaseTarget::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
        }
    }
}

impl PostgresTarget {
    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self { database: database.to_string(), ..self.clone() }
    }

    /// sqlx connect options.
    pub fn connect_options(&self) -> sqlx::postgres::PgConnectOptions {
        let mut o = sqlx::postgres::PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.username)
            .application_name("diquis");
        if let Some(p) = &self.password {
            o = o.password(p);
        }
        if let Some(mode) = &self.ssl_mode
            && let Ok(mode) = mode.parse()
        {
            o = o.ssl_mode(mode);
        }
        o
    }
}

/// Parses a database connection string; the error says what is wrong (the caller adds the key
/// name).
pub fn parse_database(value: &str) -> Result<DatabaseTarget, ConnectionStringError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConnectionStringError::Empty);
    }
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return parse_postgres_url(value);
    }
    if let Some(rest) = lower.strip_prefix("sqlite:") {
        let rest = &value[value.len() - rest.len()..];
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or("");
        if path.is_empty() || path == ":memory:" {
            return Err(ConnectionStringError::SqliteWithoutFile);
        }
        return Ok(DatabaseTarget::Sqlite { path: PathBuf::from(path) });
    }
    if value.contains('=') {
        return parse_key_values(value);
    }
    if value.contains("://") {
        return Err(ConnectionStringError::UnsupportedScheme(redact(value)));
    }
    Ok(DatabaseTarget::Sqlite { path: PathBuf::from(value) })
}

fn parse_postgres_url(value: &str) -> Result<DatabaseTarget, ConnectionStringError> {
    let options: sqlx::postgres::PgConnectOptions = value.parse().map_err(ConnectionStringError::InvalidPostgresUrl)?;
    let database = options.get_database().map(str::to_string).unwrap_or_else(|| options.get_username().to_string());
    // Keep what we need; PgConnectOptions hides the password, so take it from the URL text.
    let password = value
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
    let ssl_mode = value.split_once('?').and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("sslmode=").map(str::to_string)));
    Ok(DatabaseTarget::Postgres(PostgresTarget {
        host: options.get_host().to_string(),
        port: options.get_port(),
        database,
        username: options.get_username().to_string(),
        password,
        ssl_mode,
    }))
}

fn parse_key_values(value: &str) -> Result<DatabaseTarget, ConnectionStringError> {
    let mut pg = PostgresTarget {
        host: String::new(),
        port: 5432,
        database: String::new(),
        username: String::new(),
        password: None,
        ssl_mode: None,
    };
    let mut sqlite: Option<PathBuf> = None;
    for part in split_unquoted(value).iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(ConnectionStringError::NotKeyValue(part.to_owned()));
        };
        let key: String = k.trim().to_ascii_lowercase().chars().filter(|c| *c != ' ').collect();
        let v = unquote(v.trim());
        match key.as_str() {
            "host" | "server" => pg.host = v,
            "port" => pg.port = v.parse().map_err(|_| ConnectionStringError::InvalidPort(v.clone()))?,
            "database" | "initialcatalog" => pg.database = v,
            "username" | "userid" | "user" | "uid" => pg.username = v,
            "password" | "pwd" => pg.password = Some(v),
            "sslmode" => pg.ssl_mode = Some(normalize_ssl_mode(&v)?),
            "datasource" | "filename" => sqlite = Some(PathBuf::from(v)),
            // Npgsql options that change nothing for us are accepted, so .NET strings work as they are.
            "pooling"
            | "minimumpoolsize"
            | "maximumpoolsize"
            | "maxpoolsize"
            | "timeout"
            | "commandtimeout"
            | "includeerrordetail"
            | "trustservercertificate"
            | "keepalive"
            | "applicationname"
            | "mode"
            | "cache"
            | "searchpath"
            | "connectionidlelifetime"
            | "multiplexing" => {}
            other => return Err(ConnectionStringError::UnknownKeyword(other.to_owned())),
        }
    }
    if let Some(path) = sqlite {
        if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
            return Err(ConnectionStringError::DataSourceWithoutFile);
        }
        return Ok(DatabaseTarget::Sqlite { path });
    }
    if pg.host.is_empty() {
        return Err(ConnectionStringError::Missing("Host"));
    }
    if pg.database.is_empty() {
        return Err(ConnectionStringError::Missing("Database"));
    }
    if pg.username.is_empty() {
        return Err(ConnectionStringError::Missing("Username"));
    }
    Ok(DatabaseTarget::Postgres(pg))
}

/// Splits on `;` outside single or double quotes (Npgsql quotes values containing `;`).
fn split_unquoted(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match (quote, c) {
            (None, ';') => parts.push(std::mem::take(&mut current)),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn unquote(v: &str) -> String {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn normalize_ssl_mode(v: &str) -> Result<String, ConnectionStringError> {
    let m = v.to_ascii_lowercase().replace([' ', '-'], "");
    Ok(match m.as_str() {
        "disable" => "disable",
        "allow" => "allow",
        "prefer" => "prefer",
        "require" => "require",
        "verifyca" => "verify-ca",
        "verifyfull" => "verify-full",
        _ => return Err(ConnectionStringError::InvalidSslMode(v.to_owned())),
    }
    .to_string())
}

/// The value with any `Password=` or URL password hidden, for messages.
///
/// A URL is a value that starts with a scheme (`postgres://`, …); its user info's password is
/// hidden up to the last `@`, and `password=` query values too. Anything else is read as
/// `Keyword=Value` pairs split as [`parse_database`] splits them (quoted values may hold `;`).
pub fn redact(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://")
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let mut out = match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => format!("{scheme}://{rest}"),
        };
        if let Some(query) = query {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_password_key(k) => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push('?');
            out.push_str(&pairs.join("&"));
        }
        return out;
    }
    let hide = |parts: &mut dyn Iterator<Item = &str>| {
        parts
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_password_key(k) => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";")
    };
    // Split as the parser splits (a quoted password may hold `;`), then once more at every `;`,
    // so that a stray quote that swallowed the rest of the string hides no password either.
    let by_parser = hide(&mut split_unquoted(value).iter().map(String::as_str));
    hide(&mut by_parser.split(';'))
}

/// `Password`, `Pwd` (any case, spaces ignored, as keywords are read).
fn is_password_key(key: &str) -> bool {
    let key: String = key.trim().to_ascii_lowercase().chars().filter(|c| *c != ' ').collect();
    matches!(key.as_str(), "password" | "pwd")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(s: &str) -> PostgresTarget {
        match parse_database(s).unwrap() {
            DatabaseTarget::Postgres(p) => p,
            other => panic!("expected postgres, got {other}"),
        }
    }

    #[test]
    fn npgsql_strings() {
        let p = pg("Host=db.local;Port=5433;Database=diquis;Username=app;Password='s3;cret';Pooling=true");
        assert_eq!(p.host, "db.local");
        assert_eq!(p.port, 5433);
        assert_eq!(p.database, "diquis");
        assert_eq!(p.username, "app");
        assert_eq!(p.password.as_deref(), Some("s3;cret"));
        let p = pg("Server=h; User ID=u; Password=p; Database=d; SSL Mode=Require");
        assert_eq!(p.ssl_mode.as_deref(), Some("require"));
        assert_eq!(p.password.as_deref(), Some("p"));
    }

    #[test]
    fn postgres_urls() {
        let p = pg("postgres://user:p%40ss@127.0.0.1:5432/diquis?sslmode=disable");
        assert_eq!((p.host.as_str(), p.port, p.database.as_str()), ("127.0.0.1", 5432, "diquis"));
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        assert_eq!(p.ssl_mode.as_deref(), Some("disable"));
    }

    #[test]
    fn sqlite_forms() {
        for s in ["./diquis.db", "Data Source=diquis.db", "sqlite://diquis.db", "sqlite:diquis.db"] {
            assert!(matches!(parse_database(s).unwrap(), DatabaseTarget::Sqlite { .. }), "{s}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(parse_database("").unwrap_err().to_string().contains("empty"));
        assert!(parse_database("Host=x;Database=d;Username=u;Port=abc").unwrap_err().to_string().contains("Port 'abc'"));
        assert!(parse_database("Hots=x;Database=d").unwrap_err().to_string().contains("unknown keyword 'hots'"));
        assert!(parse_database("Database=d;Username=u").unwrap_err().to_string().contains("no Host"));
        assert!(parse_database("Host=h;Username=u").unwrap_err().to_string().contains("no Database"));
        assert!(parse_database("mysql://x").unwrap_err().to_string().contains("unsupported URL scheme"));
        assert!(matches!(parse_database("sqlite::memory:"), Err(ConnectionStringError::SqliteWithoutFile)));
        assert!(
            std::error::Error::source(&parse_database("postgres://u@h:notaport/d").unwrap_err()).is_some(),
            "sqlx's error is kept as the source"
        );
        assert!(parse_database("postgres://u@h:notaport/d").unwrap_err().to_string().contains("not a valid PostgreSQL URL"));
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(redact("Host=h;Password=secret"), "Host=h;Password=***");
        assert_eq!(redact("postgres://u:secret@h/d"), "postgres://u:***@h/d");
    }

    /// Found by the connection_strings fuzz target: a `://` inside a keyword string made it
    /// read as a URL and come back whole, password and all; a quoted password holding `;` kept
    /// its second half; a password with `@` kept its end.
    #[test]
    fn redaction_hides_passwords_of_every_shape() {
        let found = "Host=localhost;Port=5ase=diquis://u:e=is;Username=p=skgres;Password=secrt;eSSL Mode=Require";
        assert!(!redact(found).contains("secrt"), "{}", redact(found));
        assert_eq!(redact("Host=h;Password='a;b';Database=d"), "Host=h;Password=***;Database=d");
        let stray_quote = "Host=loca\"host;Port=5432;Dassl=truese=is;Username=poskgres;Password=secrt;eSSL Mode=Require";
        assert!(!redact(stray_quote).contains("secrt"), "{}", redact(stray_quote));
        assert_eq!(redact("Host=h; pwd = x"), "Host=h; pwd =***");
        assert_eq!(redact("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact("postgres://h/d?sslmode=disable&password=s"), "postgres://h/d?sslmode=disable&password=***");
    }

    /// Found while fixing the above: `%` followed by a non-ASCII character in a URL password
    /// sliced the text inside the character (a panic); `%+1` was read as a byte.
    #[test]
    fn url_passwords_decode_without_panicking() {
        for (written, meant) in [("%a\u{e9}x", "%a\u{e9}x"), ("%+1", "%+1"), ("p%40ss%2", "p@ss%2")] {
            let target = pg(&format!("postgres://u:{written}@h/d"));
            assert_eq!(target.password.as_deref(), Some(meant), "{written}");
        }
    }
}
