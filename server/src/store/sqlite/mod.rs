//! The embedded SQLite event store: tenants spread over a fixed number of shard files, each with one group-commit
//! writer thread and a pool of read connections.
//!
//! A tenant lives in shard `tenant_id % shard_count`. The shard count is fixed when a data dir is created (it is
//! recorded in the catalog), so a tenant never moves.

mod answers;
mod checkpoint;
mod durable;
mod queue;
mod reader;
pub mod schema;
mod syncer;
mod wal_rewind;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::answers::AnswerSender;
pub use self::checkpoint::{CheckpointedShard, Checkpointer};
use self::durable::DurableHeads;
use self::queue::WorkQueue;
use self::reader::ReaderPool;
use self::syncer::Syncer;
pub use self::wal_rewind::{DEFAULT_WAL_REWIND_FRAMES, WalRewind};
use self::writer::{Command, WriterHandle, WriterParts};
use crate::catalog::TenantId;
use crate::db::{self, Access, Durability};
use crate::metrics::{ShardLabel, StoreMetrics};
use crate::store::log_watch::LogWatch;
use crate::store::{
    AggregateHead, AppendError, AppendOutcome, AppendRequest, EventStore, LogPage, StoreError, StreamPage,
};

/// The folder of shard files inside the data dir.
pub const SHARDS_DIR: &str = "shards";

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub data_dir: PathBuf,
    pub shard_count: usize,
    pub durability: Durability,
    /// Frames a shard's WAL may hold before it is started over (see wal_rewind.rs); [`DEFAULT_WAL_REWIND_FRAMES`].
    pub wal_rewind_frames: i64,
}

pub struct SqliteStore {
    shards: Vec<Shard>,
    accepting: AtomicBool,
    checkpointer: parking_lot::Mutex<Option<Checkpointer>>,
    log_watch: Arc<LogWatch>,
}

struct Shard {
    writer: WriterHandle,
    readers: Arc<ReaderPool>,
    /// Set when an fsync of the shard failed: it then refuses writes until restarted (see syncer.rs).
    failed: Arc<AtomicBool>,
}

/// The file of shard `index`.
pub fn shard_path(data_dir: &Path, index: usize) -> PathBuf {
    data_dir.join(SHARDS_DIR).join(format!("shard-{index:03}.db"))
}

/// Opens a shard's write connection and brings its schema up to date. With `Durability::Full` every commit on it
/// fsyncs the WAL; the store itself instead opens it with `Normal` and fsyncs from its syncer, off the writer thread.
pub fn open_shard_writer(path: &Path, durability: Durability) -> Result<rusqlite::Connection, StoreError> {
    let mut conn = db::open(path, Access::ReadWrite, durability)?;
    db::migrate(&mut conn, schema::MIGRATIONS)?;
    // Checkpoints run on their own thread (see checkpoint.rs), not inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a checkpoint resets the WAL, shrink it back to this size instead of keeping its peak.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(conn)
}

/// SQLite's write-ahead log beside a database file.
fn wal_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl SqliteStore {
    pub fn open(config: &SqliteConfig, metrics: &StoreMetrics) -> Result<Self, StoreError> {
        std::fs::create_dir_all(config.data_dir.join(SHARDS_DIR))?;
        let mut shards = Vec::with_capacity(config.shard_count);
        let paths: Vec<PathBuf> = (0..config.shard_count.max(1))
            .map(|index| shard_path(&config.data_dir, index))
            .collect();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| std::io::Error::other("the store must be opened inside a tokio runtime"))?;
        let answers = AnswerSender::spawn(&runtime);
        let mut checkpointed = Vec::with_capacity(paths.len());
        let log_watch = Arc::new(LogWatch::default());
        for (index, path) in paths.into_iter().enumerate() {
            let conn = open_shard_writer(&path, Durability::Normal)?;
            let rewind = Arc::new(WalRewind::default());
            checkpointed.push(CheckpointedShard {
                path: path.clone(),
                rewind: rewind.clone(),
                rewind_after_frames: config.wal_rewind_frames,
            });
            let durable = Arc::new(DurableHeads::new(log_watch.clone()));
            let failed = Arc::new(AtomicBool::new(false));
            let queue = Arc::new(WorkQueue::new());
            let syncer = match config.durability {
                Durability::Full => {
                    let wal = wal_path(&path);
                    syncer::sync_existing_wal(&wal)?;
                    Some(Syncer::spawn(
                        index,
                        wal,
                        durable.clone(),
                        failed.clone(),
                        metrics.clone(),
                        queue.clone(),
                        answers.clone(),
                    )?)
                }
                Durability::Normal => None,
            };
            let queue_depth = metrics
                .queue_depth
                .get_or_create(&ShardLabel {
                    shard: index.to_string(),
                })
                .clone();
            let parts = WriterParts {
                shard: index,
                queue,
                metrics: metrics.clone(),
                queue_depth,
                syncer,
                durable: durable.clone(),
                rewind,
                answers: answers.clone(),
            };
            shards.push(Shard {
                writer: WriterHandle::spawn(conn, parts)?,
                readers: Arc::new(ReaderPool::new(path, durable)),
                failed,
            });
        }
        let checkpointer = Checkpointer::spawn(checkpointed, config.durability)?;
        Ok(SqliteStore {
            shards,
            accepting: AtomicBool::new(true),
            checkpointer: parking_lot::Mutex::new(Some(checkpointer)),
            log_watch,
        })
    }

    fn shard(&self, tenant: TenantId) -> &Shard {
        &self.shards[tenant.0 as usize % self.shards.len()]
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, tenant: TenantId, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(AppendError::Unavailable);
        }
        let shard = self.shard(tenant);
        if shard.failed.load(Ordering::Acquire) {
            return Err(AppendError::Storage(StoreError::NotDurable));
        }
        let writer = &shard.writer;
        let permit = Arc::clone(&writer.permits)
            .acquire_owned()
            .await
            .map_err(|_| AppendError::Unavailable)?;
        let (reply, answer) = oneshot::channel();
        writer.queue_depth.inc();
        let command = Command::Append {
            tenant,
            request: Box::new(request),
            reply,
            permit,
        };
        if writer.queue.push(command).is_err() {
            writer.queue_depth.dec();
            return Err(AppendError::Unavailable);
        }
        // A dropped reply means the writer stopped before reaching this request: nothing was stored.
        answer.await.unwrap_or(Err(AppendError::Unavailable))
    }

    async fn read_stream(
        &self,
        tenant: TenantId,
        aggregate_id: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Option<StreamPage>, StoreError> {
        let readers = Arc::clone(&self.shard(tenant).readers);
        let aggregate_id = aggregate_id.to_owned();
        run_blocking(move || readers.read_stream(tenant, &aggregate_id, from_version, limit)).await
    }

    async fn read_head(&self, tenant: TenantId, aggregate_id: &str) -> Result<Option<AggregateHead>, StoreError> {
        let readers = Arc::clone(&self.shard(tenant).readers);
        let aggregate_id = aggregate_id.to_owned();
        run_blocking(move || readers.read_head(tenant, &aggregate_id)).await
    }

    async fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<LogPage, StoreError> {
        let readers = Arc::clone(&self.shard(tenant).readers);
        run_blocking(move || readers.read_log(tenant, after, limit)).await
    }

    async fn read_log_slab(
        &self,
        tenant: TenantId,
        after: u64,
        limit: u32,
    ) -> Result<crate::store::log_slab::LogSlab, StoreError> {
        let readers = Arc::clone(&self.shard(tenant).readers);
        run_blocking(move || readers.read_log_slab(tenant, after, limit)).await
    }

    fn watch_log(&self, tenant: TenantId) -> tokio::sync::watch::Receiver<u64> {
        self.log_watch.subscribe(tenant)
    }

    fn is_ready(&self) -> bool {
        self.accepting.load(Ordering::Acquire) && !self.shards.iter().any(|s| s.failed.load(Ordering::Acquire))
    }

    async fn shutdown(&self) {
        self.accepting.store(false, Ordering::Release);
        for shard in &self.shards {
            shard.writer.queue_depth.inc();
            if shard.writer.queue.push(Command::Stop).is_err() {
                shard.writer.queue_depth.dec();
            }
        }
        for shard in &self.shards {
            let thread = shard.writer.thread.lock().take();
            if let Some(thread) = thread {
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!("a shard writer thread panicked during shutdown");
                }
            }
        }
        let checkpointer = self.checkpointer.lock().take();
        if let Some(checkpointer) = checkpointer {
            let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .unwrap_or(Err(StoreError::ShuttingDown))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::metrics::Metrics;
    use crate::store::NewEvent;

    fn request(aggregate: usize) -> AppendRequest {
        AppendRequest {
            aggregate_id: format!("order_{aggregate}"),
            explicit_type: None,
            inferred_type: Some("order".into()),
            expected_version: None,
            events: vec![NewEvent {
                event_id: uuid::Uuid::new_v4(),
                client_event_id: false,
                event_type: "OrderPlaced".into(),
                data: format!(r#"{{"padding":"{}"}}"#, "x".repeat(2000)),
                metadata: None,
                correlation_id: None,
                causation_id: None,
            }],
            snapshot: None,
            recorded_at: None,
        }
    }

    fn one_shard_store(
        dir: &Path,
        durability: Durability,
        wal_rewind_frames: i64,
        metrics: &Metrics,
    ) -> Arc<SqliteStore> {
        let config = SqliteConfig {
            data_dir: dir.to_owned(),
            shard_count: 1,
            durability,
            wal_rewind_frames,
        };
        Arc::new(SqliteStore::open(&config, &metrics.store).expect("open the store"))
    }

    /// Under load that never pauses, the WAL is started over again and again instead of growing with every append.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_unbroken_load() {
        const REWIND_FRAMES: i64 = 64;
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Metrics::new();
        let store = one_shard_store(dir.path(), Durability::Normal, REWIND_FRAMES, &metrics);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut appended = 0_usize;
        // Eight writers keep the writer busy; stop once the WAL has been started over a few times.
        while metrics.store.wal_rewinds.get() < 3 {
            assert!(Instant::now() < deadline, "no WAL rewind within a minute of load");
            let batch: Vec<_> = (0..8)
                .map(|writer| {
                    let store = store.clone();
                    tokio::spawn(async move { store.append(TenantId(1), request(writer)).await })
                })
                .collect();
            for append in batch {
                append.await.expect("task").expect("append");
                appended += 1;
            }
        }
        // The file keeps the size it grew to before the first rewind (it is overwritten in place); what matters is
        // how many frames it holds now, which a checkpoint reports.
        let probe = db::open(&shard_path(dir.path(), 0), Access::ReadWrite, Durability::Normal).expect("open");
        let now = wal_rewind::checkpoint(&probe, "PASSIVE").expect("checkpoint");
        assert!(
            (now.log_frames as usize) < appended / 2,
            "the WAL holds {} frames after {appended} appends of a 4 KiB frame each at least",
            now.log_frames
        );
        // Every append is readable after the rewinds, at the positions they were given, page after page.
        let mut read = 0_u64;
        loop {
            let page = store.read_log(TenantId(1), read, 1000).await.expect("read the log");
            let Some(last) = page.events.last() else { break };
            for (offset, event) in page.events.iter().enumerate() {
                assert_eq!(event.global_position, read + 1 + offset as u64, "gapless");
            }
            read = last.global_position;
        }
        assert_eq!(read, appended as u64, "every append is readable after the rewinds");
        store.shutdown().await;
    }

    /// A storage error in the middle of one request's writes (here a trigger refusing its event, after its stream
    /// row was written) fails that request alone: the group is written again with a savepoint per request, the
    /// others are stored with gapless positions, and nothing of the failed one remains.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storage_error_in_the_middle_of_a_group_fails_only_its_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Metrics::new();
        // Groups stay open while the previous one is synced, so concurrent requests share them.
        let store = one_shard_store(dir.path(), Durability::Full, DEFAULT_WAL_REWIND_FRAMES, &metrics);
        let shard = db::open(&shard_path(dir.path(), 0), Access::ReadWrite, Durability::Normal).expect("open");
        shard
            .execute_batch(
                "CREATE TRIGGER refuse_explosions BEFORE INSERT ON events WHEN NEW.event_type = 'Explode'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END",
            )
            .expect("create the trigger");
        drop(shard);

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stored = 0_u64;
        let mut round = 0;
        while metrics.store.group_rewrites.get() == 0 {
            assert!(
                Instant::now() < deadline,
                "no group mixed a failing request with others within a minute"
            );
            round += 1;
            let appends: Vec<_> = (0..16)
                .map(|n| {
                    let store = store.clone();
                    let mut request = request(round * 100 + n);
                    let explodes = n % 5 == 2;
                    if explodes {
                        request.events[0].event_type = "Explode".into();
                    }
                    let aggregate = request.aggregate_id.clone();
                    tokio::spawn(async move { (explodes, aggregate, store.append(TenantId(1), request).await) })
                })
                .collect();
            for append in appends {
                let (explodes, aggregate, result) = append.await.expect("task");
                if explodes {
                    assert!(
                        matches!(result, Err(AppendError::Storage(_))),
                        "{aggregate}: {result:?}"
                    );
                    // Nothing of it is left, not even its stream row: a good event afterwards is its version 1.
                    let mut retry = request(0);
                    retry.aggregate_id = aggregate.clone();
                    let outcome = store
                        .append(TenantId(1), retry)
                        .await
                        .expect("append after the failure");
                    assert_eq!(outcome.events[0].version, 1, "{aggregate} starts at version 1");
                    stored += 1;
                } else {
                    let outcome = result.unwrap_or_else(|e| panic!("{aggregate}: {e}"));
                    assert_eq!(outcome.events[0].version, 1, "{aggregate}");
                    stored += 1;
                }
            }
        }
        let page = store.read_log(TenantId(1), 0, 10_000).await.expect("read the log");
        let positions: Vec<u64> = page.events.iter().map(|e| e.global_position).collect();
        assert_eq!(
            positions,
            (1..=stored).collect::<Vec<_>>(),
            "gapless, and only the stored requests"
        );
        assert!(page.events.iter().all(|e| e.event_type == "OrderPlaced"));
        store.shutdown().await;
    }
}
