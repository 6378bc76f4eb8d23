//! Makes committed groups durable and only then answers them (`durability = full`).
//!
//! The writer commits with `synchronous=NORMAL` (the WAL is written, not fsynced) and hands the committed group to
//! this thread, which calls `fdatasync` on the shard's WAL and then answers every request of the group. Every byte a
//! group wrote to the WAL was written before its commit returned, so before the fsync began: an answered append
//! survives power loss. WAL frames carry cumulative checksums, so recovery after a power loss keeps a prefix of the
//! commits, never a later group without an earlier one.
//!
//! While the fsync runs, the writer keeps writing new requests into its next, still open, transaction and commits it
//! when this thread is idle again (see [`SyncSlot::ready_for`]): one fsync per group, groups as large as the
//! concurrency, and hot pages written to the WAL once per group rather than once per request.
//!
//! If an fsync fails, the kernel may have dropped the dirty pages it could not write, so a later fsync proves nothing
//! about them (the PostgreSQL "fsyncgate" lesson). The shard then stops taking writes until hapnd is restarted and
//! recovers from what is really on disk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::answers::{Answer, AnswerSender};
use super::durable::DurableHeads;
use super::queue::WorkQueue;
use super::writer::Command;
use crate::catalog::TenantId;
use crate::metrics::StoreMetrics;
use crate::store::{AppendError, StoreError};

/// One committed group: its answers and the tenants' heads after it.
pub(super) struct CommittedGroup {
    pub answers: Vec<Answer>,
    pub heads: Vec<(TenantId, u64)>,
}

/// The writer's handle on its syncer.
pub(super) struct Syncer {
    slot: Arc<SyncSlot>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer and the syncer share.
struct SyncSlot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

struct SlotState {
    /// The group waiting for its fsync, or being synced.
    group: Option<CommittedGroup>,
    busy: bool,
    stopping: bool,
    /// When the last fsync ended.
    idle_since: Instant,
    /// Requests the last fsync made durable: the concurrency worth waiting for.
    last_requests: usize,
    fsync_average: Duration,
}

/// Longest the writer holds a ready group back to let more requests join it.
const MAX_PACING_DELAY: Duration = Duration::from_millis(2);

impl Syncer {
    pub fn spawn(
        shard: usize,
        wal_path: PathBuf,
        durable: Arc<DurableHeads>,
        failed: Arc<AtomicBool>,
        metrics: StoreMetrics,
        writer_queue: Arc<WorkQueue<Command>>,
        deliver: AnswerSender,
    ) -> std::io::Result<Self> {
        let slot = Arc::new(SyncSlot {
            state: Mutex::new(SlotState {
                group: None,
                busy: false,
                stopping: false,
                idle_since: Instant::now(),
                last_requests: 0,
                fsync_average: Duration::ZERO,
            }),
            changed: Condvar::new(),
        });
        let thread = {
            let slot = slot.clone();
            std::thread::Builder::new()
                .name(format!("shard-{shard}-syncer"))
                .spawn(move || run(&slot, &wal_path, &durable, &failed, &metrics, &writer_queue, &deliver))?
        };
        Ok(Syncer {
            slot,
            thread: Some(thread),
        })
    }

    /// When the writer should commit a group of `requests` requests: `Ok(())` now, `Err(Some(t))` at `t` unless
    /// something changes first, `Err(None)` once the syncer is idle again.
    ///
    /// Committing the moment the syncer is idle would split concurrent clients into two halves that take turns, each
    /// waiting one and a half fsyncs. So, like PostgreSQL's `commit_delay`, when the last fsync carried more requests
    /// than are ready now, the writer waits — for as many, or one fsync at most — so the clients just answered can
    /// join: their answers, the HTTP round trips and their next requests take about as long as an fsync. (Against
    /// half an fsync, in alternating runs, this gave more appends/s and a lower p50 in every pair, with and without
    /// a reducer.) A lone client never waits: its last fsync carried one request.
    pub fn ready_for(&self, requests: usize, stopping: bool) -> Result<(), Option<Instant>> {
        let state = self.slot.lock();
        if state.busy {
            return Err(None);
        }
        if stopping || requests >= state.last_requests {
            return Ok(());
        }
        let until = state.idle_since + state.fsync_average.min(MAX_PACING_DELAY);
        if Instant::now() >= until {
            Ok(())
        } else {
            Err(Some(until))
        }
    }

    /// Hands a committed group over; only call when [`Syncer::ready_for`] said so.
    pub fn hand_over(&self, group: CommittedGroup) {
        let mut state = self.slot.lock();
        debug_assert!(!state.busy && state.group.is_none());
        state.group = Some(group);
        state.busy = true;
        drop(state);
        self.slot.changed.notify_one();
    }

    /// Lets the syncer finish the group it holds, then ends it.
    pub fn stop(mut self) {
        self.slot.lock().stopping = true;
        self.slot.changed.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the shard syncer panicked");
        }
    }
}

impl SyncSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Syncs the WAL of a shard that is about to be opened, so that what a previous process committed is durable
/// before anything is read or answered from it.
pub(super) fn sync_existing_wal(wal_path: &Path) -> std::io::Result<()> {
    match File::open(wal_path) {
        Ok(file) => file.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

fn run(
    slot: &SyncSlot,
    wal_path: &Path,
    durable: &DurableHeads,
    failed: &AtomicBool,
    metrics: &StoreMetrics,
    writer_queue: &WorkQueue<Command>,
    deliver: &AnswerSender,
) {
    let mut wal: Option<File> = None;
    loop {
        let group = {
            let mut state = slot.lock();
            loop {
                if let Some(group) = state.group.take() {
                    break group;
                }
                if state.stopping {
                    return;
                }
                state = slot
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let requests = group.answers.len();
        let started = Instant::now();
        let synced = if failed.load(Ordering::Acquire) {
            Err(std::io::Error::other("an earlier fsync of this shard failed"))
        } else {
            sync(&mut wal, wal_path)
        };
        let took = started.elapsed();
        metrics.wal_sync_duration.observe(took.as_secs_f64());
        metrics.wal_sync_requests.observe(requests as f64);
        let answers = match synced {
            Ok(()) => {
                for (tenant, head) in group.heads {
                    durable.advance(tenant, head);
                }
                group.answers
            }
            Err(error) => {
                if !failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(%error, wal = %wal_path.display(),
                        "fsync of the shard's WAL failed: the shard takes no more writes; restart hapnd after fixing the disk");
                }
                group
                    .answers
                    .into_iter()
                    .map(|(reply, _)| (reply, Err(AppendError::Storage(StoreError::NotDurable))))
                    .collect()
            }
        };
        {
            let mut state = slot.lock();
            state.busy = false;
            state.idle_since = Instant::now();
            state.last_requests = requests;
            state.fsync_average = if state.fsync_average.is_zero() {
                took
            } else {
                (state.fsync_average * 7 + took) / 8
            };
        }
        // The writer first: its next commit overlaps the delivery of these answers.
        writer_queue.nudge();
        deliver.deliver(answers);
    }
}

fn sync(wal: &mut Option<File>, wal_path: &Path) -> std::io::Result<()> {
    if wal.is_none() {
        *wal = Some(File::open(wal_path)?);
    }
    match wal.as_ref() {
        Some(file) => file.sync_data(),
        None => Err(std::io::Error::other("the WAL file is not open")),
    }
}
