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
}

/// The usage text.
pub const USAGE: &str = "\
Diquis: tenants provisioned by background jobs, notified live over SignalR.

Usage:
  diquis [web|jobs] [--Key=Value ...]

  diquis         the web part and the jobs part in one process (default: SQLite file
                 ./diquis.db, in-process backplane, http://127.0.0.1:5000)
  diquis web     REST API, web UI and the hub at /hubs/notifications (port 5000)
  diquis jobs    job workers, the outbox publisher, the dashboard at /jobs and the hub (port 5001)

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
}
