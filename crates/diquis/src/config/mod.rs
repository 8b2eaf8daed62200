//! Configuration: ASP.NET Core-style layered sources ([`source`]), database connection strings
//! ([`connection_string`]) and the validated [`Settings`] ([`settings`]).

pub mod connection_string;
pub mod hub_limits;
pub mod kestrel;
pub mod settings;
pub mod source;
pub mod time_span;

use std::path::Path;

pub use connection_string::{DatabaseTarget, PostgresTarget};
pub use settings::{ConfigError, HubTimeouts, LogFormat, Settings};
pub use source::Configuration;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A source could not be read.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// A value is missing or wrong.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Builds the configuration the way `WebApplication.CreateBuilder(args)` does: the JSON files in
/// `content_root`, then `env`, then `args` (flags only; the subcommand is already removed).
pub fn load(
    content_root: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    args: &[String],
) -> Result<(Configuration, Settings), LoadError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    // The environment name decides which second file is read, so find it first.
    let mut early = Configuration::new();
    for (k, v) in &env {
        let lk = k.to_ascii_lowercase();
        if lk == "dotnet_environment" {
            early.set("Environment", v.clone(), "environment");
        }
    }
    for (k, v) in &env {
        if k.eq_ignore_ascii_case("aspnetcore_environment") {
            early.set("Environment", v.clone(), "environment");
        }
    }
    let mut flags = Configuration::new();
    flags.add_command_line(args)?;
    if let Some(e) = flags.get("Environment") {
        early.set("Environment", e.to_string(), "command line");
    }
    let environment = early.get("Environment").unwrap_or("Production").to_string();

    let mut c = Configuration::new();
    c.add_json_file(&content_root.join("appsettings.json"))?;
    c.add_json_file(&content_root.join(format!("appsettings.{environment}.json")))?;
    // Like the .NET host: DOTNET_* and ASPNETCORE_* variables apply without their prefix
    // (ASPNETCORE_URLS is Urls), and plain variables override them.
    for prefix in ["DOTNET_", "ASPNETCORE_"] {
        c.add_environment(env.iter().filter_map(|(k, v)| {
            let stripped = k.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &k[prefix.len()..]);
            stripped.map(|s| (s.to_string(), v.clone()))
        }));
    }
    c.add_environment(env);
    c.add_command_line(args)?;
    c.set("Environment", environment, "host");
    let settings = Settings::from_configuration(&c)?;
    Ok((c, settings))
}
