//! Tells whether any process has committed to a SQLite database in WAL mode since the last look, with one `pread`
//! and no lock.
//!
//! Every commit rewrites the wal-index header at the start of the database's `-shm` file, bumping its change counter
//! (`iChange`) and frame count (<https://www.sqlite.org/walformat.html>, "The WAL-Index Header"). `PRAGMA
//! data_version` answers the same question, but it opens a read transaction: two `fcntl` locks and a statement on
//! every request. The header is written by `memcpy` into shared memory, so a read may see it half written; that only
//! ever makes it look changed, which is the safe answer.
//!
//! The `-shm` file keeps its identity as long as one connection to the database stays open (SQLite resets it only
//! when it is opened with no other connection), so the watcher's owner keeps its own connection open beside it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first copy of the wal-index header, which SQLite writes last.
const HEADER_BYTES: usize = 48;

pub(super) type CommitStamp = [u8; HEADER_BYTES];

pub(super) struct CommitWatch {
    shm: File,
}

impl CommitWatch {
    /// Opens the watch on the database at `db_path`; a connection must have opened the database in WAL mode.
    pub fn open(db_path: &Path) -> std::io::Result<Self> {
        Ok(CommitWatch {
            shm: File::open(shm_path(db_path))?,
        })
    }

    /// A value that changes with every commit to the database.
    pub fn stamp(&self) -> std::io::Result<CommitStamp> {
        let mut header = [0; HEADER_BYTES];
        self.shm.read_exact_at(&mut header, 0)?;
        Ok(header)
    }
}

fn shm_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, Access, Durability};

    #[test]
    fn the_stamp_changes_with_each_commit_of_any_connection_and_only_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("watched.db");
        let ours = db::open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        ours.execute_batch("CREATE TABLE t (x INTEGER)").expect("create");
        let watch = CommitWatch::open(&path).expect("watch");
        let first = watch.stamp().expect("stamp");

        let count = || -> i64 {
            ours.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(), 0);
        assert_eq!(watch.stamp().expect("stamp"), first, "a read is not a commit");

        let other = db::open(&path, Access::ReadWrite, Durability::Normal).expect("open a second connection");
        other.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        let second = watch.stamp().expect("stamp");
        assert_ne!(second, first, "another connection's commit shows");

        ours.execute("INSERT INTO t VALUES (2)", []).expect("insert");
        assert_ne!(watch.stamp().expect("stamp"), second, "our own commit shows too");
    }
}
