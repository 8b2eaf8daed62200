//! appsettings JSON (with comments) overridden by environment variables and command-line flags,
//! then read into every typed setting the server starts from (connection strings, URLs, JWT,
//! TimeSpans, hub and Kestrel limits, security and forwarded-header settings): errors, never a
//! panic.
#![no_main]

use diquis::config::Configuration;
use diquis::config::Settings;
use diquis::config::hub_limits::HubLimits;
use diquis::config::kestrel::http_limits;
use diquis::security::settings::SecuritySettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // JSON, then `KEY=value` environment lines, then flags, separated by NUL bytes.
    let mut parts = text.split('\0');
    let json = parts.next().unwrap_or_default();
    let env: Vec<(String, String)> = parts
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let args: Vec<String> = parts.next().unwrap_or_default().split(' ').filter(|a| !a.is_empty()).map(str::to_owned).collect();

    let mut c = Configuration::new();
    if c.add_json_str(json, "appsettings.json").is_err() {
        return;
    }
    c.add_environment(env);
    let _ = c.add_command_line(&args);
    let _ = c.get_list("AllowedOrigins");
    let _ = Settings::from_configuration(&c);
    let _ = HubLimits::from_configuration(&c);
    let _ = http_limits(&c);
    let _ = SecuritySettings::from_configuration(&c);
});
