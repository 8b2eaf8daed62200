//! Start-up checks of configured paths, made before anything is opened, so a wrong value names
//! its key and ends the process as a configuration error (exit status 2).

use crate::config::{ConfigError, DatabaseTarget};

/// A SQLite database path must name a file (existing or not), not a directory.
pub fn check_sqlite_path(key: &str, target: &DatabaseTarget) -> Result<(), ConfigError> {
    match target {
        DatabaseTarget::Sqlite { path } if path.is_dir() => Err(ConfigError {
            key: key.to_string(),
            problem: format!(
                "names the directory '{}'; give a SQLite database file (like 'diquis.db') or a PostgreSQL connection string (Host=…;Database=…;Username=…)",
                path.display()
            ),
        }),
        _ => Ok(()),
    }
}
