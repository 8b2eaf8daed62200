//! The `diquis` binary: `diquis` (web + jobs), `diquis web`, `diquis jobs`.

use std::process::ExitCode;

use diquis::cli::{self, Command};
use diquis::ops::logging::announce;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, flags) = match cli::parse(&args) {
        Command::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("diquis {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run { role, flags } => (role, flags),
        Command::Invalid(message) => {
            eprintln!("error: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
        Command::ResetPassword { email, tenant, url, flags } => return reset_password(&email, &tenant, url.as_deref(), &flags),
    };
    let content_root = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let settings = match diquis::config::load(&content_root, std::env::vars(), &flags) {
        Ok((_, settings)) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept to the end of `main`: dropping it flushes the queued log lines.
    let _log_guard = diquis::ops::logging::init(settings.log_format, &settings.log_filter);
    diquis::ops::metrics::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let app = match diquis::start(settings, role).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("error: {e}");
                return match e {
                    diquis::StartError::Config(_) => ExitCode::from(2),
                    _ => ExitCode::FAILURE,
                };
            }
        };
        // Before announcing: a SIGTERM sent as soon as the address is printed shuts down gracefully.
        diquis::ops::shutdown::on_signal(app.shutdown_token());
        for addr in &app.addrs {
            let url = format!("http://{addr}");
            announce("INFO", &format!("Now listening on: {url}"), &[("address", &url)]);
        }
        announce("INFO", "Application started. Press Ctrl+C to shut down.", &[]);
        app.wait().await;
        ExitCode::SUCCESS
    })
}

/// `diquis users reset-password`: prints a one-time reset link; status 1 for an unknown user.
fn reset_password(email: &str, tenant: &str, url: Option<&str>, flags: &[String]) -> ExitCode {
    let content_root = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let settings = match diquis::config::load(&content_root, std::env::vars(), flags) {
        Ok((_, settings)) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(diquis::auth::password_reset::reset_link(&settings, email, tenant, url)) {
        Ok(link) => {
            println!("{link}");
            eprintln!("The link sets a new password once, within {} minutes.", diquis::auth::password_reset::TOKEN_LIFETIME_MINUTES);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
