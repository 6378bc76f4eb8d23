//! SQLite plumbing shared by the catalog and the event shards: opening connections with the pragmas we rely on, and
//! versioned schema migrations.

pub mod page_cache;
pub mod wal_vfs;
mod write_coalescer;

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How hard a commit tries to survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at every commit; an acknowledged write survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash, but the last commits can be lost on power loss.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// What a connection is for; readers never write and so never take the write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// Opens (creating when `ReadWrite`) a database in WAL mode with the given durability.
pub fn open(path: &Path, access: Access, durability: Durability) -> rusqlite::Result<Connection> {
    // Every connection of the process opens here, so this runs before SQLite initializes (on the first open). The
    // page cache must be configured before SQLite initializes, and registering the VFS initializes it.
    static WRAPPERS: Once = Once::new();
    WRAPPERS.call_once(|| {
        if let Err(error) = page_cache::install() {
            tracing::warn!(%error, "sqlite page cache wrapper not installed; commits may scan the whole page cache");
        }
        if let Err(error) = wal_vfs::install() {
            tracing::warn!(%error, "sqlite wal vfs not installed; commits write each WAL frame with two calls");
        }
    });
    let flags = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if wal_vfs::installed() {
        Connection::open_with_flags_and_vfs(path, flags, wal_vfs::VFS_NAME)?
    } else {
        Connection::open_with_flags(path, flags)?
    };
    // Another process (the `hapnd tenant` command, a second reader) may hold the lock briefly; wait rather than fail.
    conn.busy_timeout(Duration::from_secs(5))?;
    if access == Access::ReadWrite {
        // WAL lets readers proceed while the single writer commits; it is persistent, so setting it once is enough,
        // but setting it again is cheap and makes an old database right.
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 64 MiB of page cache per connection (negative = KiB).
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings a database's schema up to date: applies each migration after the one recorded in `user_version`, each in
/// its own transaction together with the version bump, so a crash leaves the schema at a known version.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), MigrationError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > migrations.len() {
        return Err(MigrationError::TooNew {
            found: current,
            known: migrations.len(),
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("database schema version {found} is newer than this hapnd knows ({known}); upgrade hapnd")]
    TooNew { found: usize, known: usize },
    #[error("migrate schema: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let mut conn = open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        let v1 = ["CREATE TABLE a (x INTEGER);"];
        migrate(&mut conn, &v1).expect("first");
        migrate(&mut conn, &v1).expect("again is a no-op");
        let v2 = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER);"];
        migrate(&mut conn, &v2).expect("second");
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type='table'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(tables, 2);
        let err = migrate(&mut conn, &v1).expect_err("older binary");
        assert!(matches!(err, MigrationError::TooNew { found: 2, known: 1 }));
    }
}
