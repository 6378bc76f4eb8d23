//! Moves WAL pages into the shard files off the write path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL threshold, so one unlucky group of
//! appends would pay for writing and syncing the main database file. Writers disable it (`wal_autocheckpoint=0`) and
//! this thread runs `PASSIVE` checkpoints on its own connections instead: they never block the writer or readers.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::db::{self, Access, Durability};

const INTERVAL: Duration = Duration::from_millis(200);

/// Public so the append benchmark's raw-SQLite baseline pays for checkpoints exactly as the server does.
pub struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub fn spawn(shard_paths: Vec<PathBuf>, durability: Durability) -> std::io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpointer".into())
            .spawn(move || run(&shard_paths, durability, &stopped))?;
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

fn run(shard_paths: &[PathBuf], durability: Durability, stopped: &Receiver<()>) {
    let mut conns: Vec<Option<rusqlite::Connection>> = shard_paths.iter().map(|_| None).collect();
    loop {
        let stop = match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        for (path, conn) in shard_paths.iter().zip(conns.iter_mut()) {
            if conn.is_none() {
                match db::open(path, Access::ReadWrite, durability) {
                    Ok(opened) => *conn = Some(opened),
                    Err(error) => {
                        tracing::warn!(%error, shard = %path.display(), "open shard for checkpointing");
                        continue;
                    }
                }
            }
            let Some(active) = conn.as_ref() else { continue };
            let mode = if stop { "TRUNCATE" } else { "PASSIVE" };
            if let Err(error) = active.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
                tracing::warn!(%error, shard = %path.display(), "WAL checkpoint failed; will retry");
                *conn = None;
            }
        }
        if stop {
            return;
        }
    }
}
