//! The JWT signing key when `Jwt:Key` is not configured.
//!
//! * SQLite (one machine): a random key in a file beside the database, `<database>.jwt-key`,
//!   created readable and writable by the service's user alone (0600). A key that an older
//!   version kept in the database is moved into the file and deleted from the database.
//! * PostgreSQL (possibly several machines, which must all sign with one key): a random key in
//!   the database's `app_secrets` table, as before, with a warning at start: production must
//!   set `Jwt:Key` (from a secret store), since whoever reads the database can forge tokens.

use std::path::{Path, PathBuf};

use super::tokens::random_token;
use crate::config::DatabaseTarget;
use crate::db::Db;

/// Where the signing key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `Jwt:Key`.
    Configured,
    /// A generated key in this file (mode 0600).
    File(PathBuf),
    /// A generated key in the database.
    Database,
}

/// Why the signing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// Reading or writing `app_secrets` failed.
    #[error("signing key in the database: {0}")]
    Database(#[from] sqlx::Error),
    /// The key file could not be read or created.
    #[error("signing key file {path}: {source} (set Jwt:Key, or let the service write beside its database)")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file exists but holds no key.
    #[error("signing key file {0} is empty: delete it to generate a new key, or set Jwt:Key")]
    Empty(PathBuf),
}

/// Logs where a generated key is; in production a key in the database is warned about.
pub fn report(source: &KeySource, environment: &str) {
    match source {
        KeySource::Configured => {}
        KeySource::File(path) => {
            tracing::info!(file = %path.display(), "JWT signing key generated into a file readable by this user only (set Jwt:Key to choose it)")
        }
        KeySource::Database if environment.eq_ignore_ascii_case("Production") => tracing::warn!(
            "Jwt:Key is not set: the JWT signing key is generated and kept in the database, where whoever can read it can forge \
             tokens. Production must set Jwt:Key (at least 32 bytes, from a secret store) on every node"
        ),
        KeySource::Database => tracing::info!("Jwt:Key is not set: the JWT signing key is generated and kept in the database"),
    }
}

/// The key file of an SQLite database at `database`.
pub fn key_file_of(database: &Path) -> PathBuf {
    let mut name = database.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "diquis.db".into());
    name.push(".jwt-key");
    database.with_file_name(name)
}

/// The signing key and where it came from.
pub async fn signing_key(db: &Db, target: &DatabaseTarget, configured: Option<&str>) -> Result<(Vec<u8>, KeySource), SigningKeyError> {
    if let Some(k) = configured {
        return Ok((k.as_bytes().to_vec(), KeySource::Configured));
    }
    match target {
        DatabaseTarget::Sqlite { path } => {
            let file = key_file_of(path);
            let key = key_from_file(db, &file).await?;
            Ok((key, KeySource::File(file)))
        }
        DatabaseTarget::Postgres(_) => Ok((key_from_database(db).await?.into_bytes(), KeySource::Database)),
    }
}

async fn key_from_database(db: &Db) -> Result<String, sqlx::Error> {
    let candidate = random_token();
    db.query("INSERT INTO app_secrets (name, value) VALUES ('jwt_key', $1) ON CONFLICT (name) DO NOTHING")
        .bind(&candidate)
        .execute()
        .await?;
    db.query_scalar("SELECT value FROM app_secrets WHERE name = 'jwt_key'").fetch_one().await
}

async fn stored_in_database(db: &Db) -> Result<Option<String>, sqlx::Error> {
    db.query_scalar("SELECT value FROM app_secrets WHERE name = 'jwt_key'").fetch_optional().await
}

async fn key_from_file(db: &Db, file: &Path) -> Result<Vec<u8>, SigningKeyError> {
    let io_error = |source| SigningKeyError::File { path: file.to_path_buf(), source };
    if !file.exists() {
        // The key of an older version moves into the file, so its tokens stay valid.
        let key = stored_in_database(db).await?.unwrap_or_else(random_token);
        create_exclusively(file, key.as_bytes()).map_err(io_error)?;
    }
    let key = read_private(file).map_err(io_error)?;
    if key.is_empty() {
        return Err(SigningKeyError::Empty(file.to_path_buf()));
    }
    db.query("DELETE FROM app_secrets WHERE name = 'jwt_key'").execute().await.map(|_| ())?;
    Ok(key)
}

/// Writes `contents` to a new 0600 file at `file` atomically: a concurrent starter of the same
/// database either wins or reads the winner's complete file.
fn create_exclusively(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = file.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    {
        let mut f = private_options().open(&temp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&temp, file);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Options creating a new file readable and writable by its owner alone.
pub fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Reads the key file; one that others may read is made private again (with a warning).
fn read_private(file: &Path) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(file = %file.display(), mode = format!("{:o}", mode & 0o777), "the signing key file was readable by others; made it 0600");
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(std::fs::read_to_string(file)?.trim().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_sits_beside_the_database() {
        assert_eq!(key_file_of(Path::new("/var/lib/diquis/diquis.db")), PathBuf::from("/var/lib/diquis/diquis.db.jwt-key"));
        assert_eq!(key_file_of(Path::new("d.db")), PathBuf::from("d.db.jwt-key"));
    }

    #[cfg(unix)]
    #[test]
    fn created_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let file = dir.join("k");
        create_exclusively(&file, b"first").unwrap();
        create_exclusively(&file, b"second").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"first");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("diquis-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
