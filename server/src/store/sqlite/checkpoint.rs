//! Moves WAL pages into the shard files off the write path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL threshold, so one unlucky group of
//! appends would pay for writing and syncing the main database file. Writers disable it (`wal_autocheckpoint=0`) and
//! this thread runs `PASSIVE` checkpoints on its own connections instead: they never block the writer or readers.
//! Once it has caught up with a large WAL it asks the shard's writer to start the WAL over (see wal_rewind.rs).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::wal_rewind::{WalRewind, checkpoint};
use crate::db::{self, Access, Durability};

const INTERVAL: Duration = Duration::from_millis(200);
/// A pass this short leaves the writer only this long's worth of frames to checkpoint when it rewinds.
const CAUGHT_UP: Duration = Duration::from_millis(5);
/// Passes in a row to approach that; under a write rate faster than checkpoints the writer takes the rest.
const MAX_PASSES: usize = 4;

/// A shard the checkpointer looks after.
pub struct CheckpointedShard {
    pub path: PathBuf,
    pub rewind: Arc<WalRewind>,
    /// Frames the WAL may hold before a rewind is asked for.
    pub rewind_after_frames: i64,
}

/// Public so the append benchmark's raw-SQLite baseline pays for checkpoints exactly as the server does.
pub struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub fn spawn(shards: Vec<CheckpointedShard>, durability: Durability) -> std::io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpointer".into())
            .spawn(move || run(&shards, durability, &stopped))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops the thread after one last round, so a clean shutdown leaves small WAL files.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the WAL checkpointer panicked");
        }
    }
}

fn run(shards: &[CheckpointedShard], durability: Durability, stopped: &Receiver<()>) {
    let mut conns: Vec<Option<rusqlite::Connection>> = shards.iter().map(|_| None).collect();
    loop {
        let stop = match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        for (shard, conn) in shards.iter().zip(conns.iter_mut()) {
            if conn.is_none() {
                match db::open(&shard.path, Access::ReadWrite, durability) {
                    Ok(opened) => *conn = Some(opened),
                    Err(error) => {
                        tracing::warn!(%error, shard = %shard.path.display(), "open shard for checkpointing");
                        continue;
                    }
                }
            }
            let Some(active) = conn.as_ref() else { continue };
            let checkpointed = if stop {
                checkpoint(active, "TRUNCATE").map(|_| ())
            } else {
                catch_up(active, shard)
            };
            if let Err(error) = checkpointed {
                tracing::warn!(%error, shard = %shard.path.display(), "WAL checkpoint failed; will retry");
                *conn = None;
            }
        }
        if stop {
            return;
        }
    }
}

/// Checkpoints a shard; when its WAL is large, repeats until close to the writer and then asks it to rewind.
fn catch_up(conn: &rusqlite::Connection, shard: &CheckpointedShard) -> rusqlite::Result<()> {
    for pass in 1..=MAX_PASSES {
        let started = Instant::now();
        let result = checkpoint(conn, "PASSIVE")?;
        if !result.is_complete() || result.log_frames < shard.rewind_after_frames {
            return Ok(());
        }
        // Everything committed when the pass began is in the database file; what came since is one pass's writes.
        if started.elapsed() <= CAUGHT_UP || pass == MAX_PASSES {
            shard.rewind.request();
            return Ok(());
        }
    }
    Ok(())
}
