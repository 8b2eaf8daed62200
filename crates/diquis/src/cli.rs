//! The command line: `diquis [web|jobs] [--Key=Value …]`.

use crate::state::ProcessRole;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a process with these configuration flags.
    Run {
        /// Which parts.
        role: ProcessRole,
        /// The remaining arguments, read as configuration (`--Key=Value`, `--urls …`).
        flags: Vec<String>,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// `diquis users reset-password EMAIL [--tenant T] [--url U]`: print a one-time reset link.
    ResetPassword {
        /// The user's email.
        email: String,
        /// The user's tenant (default `root`).
        tenant: String,
        /// The site's address the link starts with (default: from `Urls`).
        url: Option<String>,
        /// The remaining arguments, read as configuration.
        flags: Vec<String>,
    },
    /// The arguments make no sense: this message, then the usage (exit status 2).
    Invalid(String),
}

/// The usage text.
pub const USAGE: &str = "\
Diquis: tenants provisioned by background jobs, notified live over SignalR.

Usage:
  diquis [web|jobs] [--Key=Value ...]
  diquis users reset-password EMAIL [--tenant T] [--url URL] [--Key=Value ...]

  diquis         the web part and the jobs part in one process (default: SQLite file
                 ./diquis.db, in-process backplane, http://127.0.0.1:5000)
  diquis web     REST API, web UI and the hub at /hubs/notifications (port 5000)
  diquis jobs    job workers, the outbox publisher, the dashboard at /jobs and the hub (port 5001)
  diquis users reset-password
                 prints a one-time link (valid 1 hour) that sets a new password for the user
                 EMAIL of tenant T (default root); exit status 1 if there is no such user

Configuration, later sources winning (keys are case-insensitive, ':' separates sections):
  appsettings.json, appsettings.{Environment}.json (DOTNET_ENVIRONMENT / ASPNETCORE_ENVIRONMENT),
  environment variables (ConnectionStrings__RedisConnection=...), then flags:
  --ConnectionStrings:DefaultConnection=\"Host=...;Database=...;Username=...;Password=...\"
  --ConnectionStrings:RedisConnection=localhost:6379  --urls http://0.0.0.0:8080
See docs/operations.md for every key.
";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Command {
    let mut role = ProcessRole::All;
    let mut rest = args;
    if let Some(first) = args.first() {
        match first.to_ascii_lowercase().as_str() {
            "web" => {
                role = ProcessRole::Web;
                rest = &args[1..];
            }
            "jobs" => {
                role = ProcessRole::Jobs;
                rest = &args[1..];
            }
            "users" => return parse_users(&args[1..]),
            "-h" | "--help" | "help" => return Command::Help,
            "-v" | "--version" | "version" => return Command::Version,
            _ => {}
        }
    }
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        return Command::Help;
    }
    Command::Run { role, flags: rest.to_vec() }
}

/// `diquis users …`.
fn parse_users(args: &[String]) -> Command {
    match args.first().map(String::as_str) {
        Some("reset-password") => {}
        Some("-h" | "--help") => return Command::Help,
        Some(other) => return Command::Invalid(format!("unknown users command '{other}' (known: reset-password)")),
        None => return Command::Invalid("'diquis users' needs a command: reset-password".into()),
    }
    // EMAIL comes first, so that a `--Key Value` configuration flag's value is never taken for it.
    let email = match args.get(1) {
        Some(e) if !e.starts_with('-') => e.clone(),
        _ => return Command::Invalid("reset-password needs the user's EMAIL first".into()),
    };
    let mut tenant = crate::auth::ROOT_TENANT.to_string();
    let mut url = None;
    let mut flags = Vec::new();
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        match name {
            "--tenant" | "--url" => {
                let Some(value) = inline.or_else(|| rest.next().cloned()) else {
                    return Command::Invalid(format!("{name} needs a value"));
                };
                if name == "--tenant" {
                    tenant = value;
                } else {
                    url = Some(value);
                }
            }
            "-h" | "--help" => return Command::Help,
            _ => flags.push(arg.clone()),
        }
    }
    Command::ResetPassword { email, tenant, url, flags }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn roles_and_flags() {
        assert_eq!(parse(&[]), Command::Run { role: ProcessRole::All, flags: vec![] });
        assert_eq!(parse(&s(&["WEB", "--urls", "x"])), Command::Run { role: ProcessRole::Web, flags: s(&["--urls", "x"]) });
        assert_eq!(parse(&s(&["jobs"])), Command::Run { role: ProcessRole::Jobs, flags: vec![] });
        assert_eq!(parse(&s(&["--urls=x"])), Command::Run { role: ProcessRole::All, flags: s(&["--urls=x"]) });
        assert_eq!(parse(&s(&["--help"])), Command::Help);
        assert_eq!(parse(&s(&["web", "-h"])), Command::Help);
    }

    #[test]
    fn users_reset_password() {
        assert_eq!(
            parse(&s(&["users", "reset-password", "a@b.c", "--tenant", "acme", "--url=http://x", "--Urls=http://y"])),
            Command::ResetPassword {
                email: "a@b.c".into(),
                tenant: "acme".into(),
                url: Some("http://x".into()),
                flags: s(&["--Urls=http://y"])
            }
        );
        assert_eq!(
            parse(&s(&["users", "reset-password", "a@b.c"])),
            Command::ResetPassword { email: "a@b.c".into(), tenant: "root".into(), url: None, flags: vec![] }
        );
        assert!(matches!(parse(&s(&["users", "reset-password"])), Command::Invalid(_)));
        assert!(matches!(parse(&s(&["users", "frobnicate"])), Command::Invalid(_)));
        assert!(matches!(parse(&s(&["users", "reset-password", "a@b.c", "--tenant"])), Command::Invalid(_)));
    }
}
