//! Keeps a busy shard's WAL from growing for as long as the load lasts.
//!
//! SQLite starts the WAL over from its first frame only when a write transaction begins while every committed frame
//! has been copied into the database file. The shard writer begins its next group right after each commit, so under
//! steady load the background checkpointer never catches up with it: the WAL would grow by the whole write rate
//! (gigabytes an hour), and every fsync of a growing file must also journal its new size, which makes it slower.
//!
//! So the checkpointer, once it has caught up to within a few milliseconds of writes, asks the writer to rewind; the
//! writer checkpoints that small remainder itself between two groups (a `PASSIVE` checkpoint, which never waits for
//! readers), and the transaction it begins next starts the WAL over. The file keeps its size and is overwritten in
//! place from then on, so a later fsync has only data to write. A reader still using old frames at that moment makes
//! SQLite skip the rewind, and the next request tries again.

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

/// Frames (pages of 4 KiB) a WAL may hold before the checkpointer asks for a rewind: 16 MiB.
pub const DEFAULT_WAL_REWIND_FRAMES: i64 = 4096;

/// What one `PRAGMA wal_checkpoint` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointResult {
    /// A reader or writer kept the checkpoint from finishing.
    pub busy: bool,
    /// Frames in the WAL.
    pub log_frames: i64,
    /// Of those, frames now copied into the database file.
    pub checkpointed_frames: i64,
}

impl CheckpointResult {
    pub fn is_complete(&self) -> bool {
        !self.busy && self.checkpointed_frames == self.log_frames
    }
}

/// Runs a checkpoint in `mode` (`PASSIVE`, `TRUNCATE`, ...) on `conn`, which must have no transaction open.
pub fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<CheckpointResult> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(CheckpointResult {
            busy: row.get::<_, i64>(0)? != 0,
            log_frames: row.get(1)?,
            checkpointed_frames: row.get(2)?,
        })
    })
}

/// The checkpointer's request to a shard's writer. Public for the append benchmark's baseline, which rewinds its WAL
/// exactly as the server does.
#[derive(Debug, Default)]
pub struct WalRewind {
    wanted: AtomicBool,
}

impl WalRewind {
    /// Asks the writer to rewind the WAL between its next two transactions.
    pub fn request(&self) {
        self.wanted.store(true, Ordering::Release);
    }

    /// The writer's side: when a rewind was asked for, checkpoints what is left so that the next write transaction
    /// starts the WAL over. `conn` must have no transaction open. Returns whether the checkpoint was complete.
    pub fn run_if_wanted(&self, conn: &Connection) -> rusqlite::Result<bool> {
        if !self.wanted.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        Ok(checkpoint(conn, "PASSIVE")?.is_complete())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, Access, Durability};

    #[test]
    fn a_rewind_makes_the_next_transaction_write_the_wal_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rewind.db");
        let wal = dir.path().join("rewind.db-wal");
        let writer = db::open(&path, Access::ReadWrite, Durability::Normal).expect("open");
        writer.pragma_update(None, "wal_autocheckpoint", 0).expect("pragma");
        writer
            .execute_batch("CREATE TABLE t (x BLOB)")
            .expect("create the table");
        let insert = |rows: usize| {
            writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for _ in 0..rows {
                writer
                    .execute("INSERT INTO t VALUES (randomblob(3000))", [])
                    .expect("insert");
            }
            writer.execute_batch("COMMIT").expect("commit");
        };
        let wal_bytes = || std::fs::metadata(&wal).expect("the WAL exists").len();
        insert(100);

        // Not asked: nothing is checkpointed, and new frames go after the old ones.
        let rewind = WalRewind::default();
        assert!(!rewind.run_if_wanted(&writer).expect("nothing asked"));
        let before = wal_bytes();
        insert(1);
        assert!(wal_bytes() > before, "without a rewind the WAL grows");

        // Asked: the remainder is checkpointed and the next transaction overwrites the WAL from its start.
        rewind.request();
        assert!(
            rewind.run_if_wanted(&writer).expect("rewind"),
            "nothing keeps the checkpoint from finishing"
        );
        let before = wal_bytes();
        insert(1);
        assert_eq!(wal_bytes(), before, "after a rewind the WAL is overwritten in place");
        let frames = checkpoint(&writer, "PASSIVE").expect("checkpoint").log_frames;
        assert!(frames < 10, "the WAL started over: {frames} frames");
        assert!(
            !rewind.run_if_wanted(&writer).expect("asked once"),
            "a request is used up"
        );
    }
}
