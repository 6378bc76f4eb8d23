//! The event store: the types every storage backend speaks and the trait the API uses.
//!
//! Nothing here knows about SQLite or HTTP. A backend (today [`sqlite`]) implements [`EventStore`]; the API holds an
//! `Arc<dyn EventStore>` and never sees a backend type, so a PostgreSQL-compatible backend can sit beside SQLite.

pub mod log_slab;
pub mod log_watch;
pub mod sqlite;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::TenantId;

/// The highest global position a tenant can reach (2^40 - 1, about 1.1 trillion events).
pub const MAX_POSITION: u64 = (1 << 40) - 1;

/// An event as a client asks to append it; validated by the API before it reaches a store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    /// Whether the client chose `event_id`; only such ids can make a request a retry.
    pub client_event_id: bool,
    pub event_type: String,
    /// Compact JSON text of an object.
    pub data: String,
    /// Compact JSON text of an object, when given.
    pub metadata: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// One atomic append to one aggregate.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub aggregate_id: String,
    /// The type the client named explicitly; it must match an existing aggregate's type.
    pub explicit_type: Option<String>,
    /// The type inferred from the id, used for a new aggregate when no explicit type is given.
    pub inferred_type: Option<String>,
    /// `Some(0)` means the aggregate must not exist yet.
    pub expected_version: Option<u64>,
    /// Empty only for a snapshot-only write ([`EventStore::save_snapshot`]).
    pub events: Vec<NewEvent>,
    /// The state a reducer computed for these events: the append commits only if the aggregate is still at its
    /// `base_version`, and the snapshot is written in the same transaction as the events.
    pub snapshot: Option<SnapshotWrite>,
    /// The events' timestamp when the caller fixed it (a reducer saw it); else the writer's clock.
    pub recorded_at: Option<OffsetDateTime>,
}

/// A reducer's state of an aggregate as of `version`, stored beside the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub reducer_id: String,
    pub version: u64,
    /// Compact JSON text.
    pub state: String,
    pub updated_at: OffsetDateTime,
}

/// Where an aggregate stands: its type, its version and its latest snapshot (which may be older than the version,
/// or made by another reducer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateHead {
    pub aggregate_type: String,
    pub version: u64,
    pub snapshot: Option<Snapshot>,
}

/// A state to store beside a stream, computed from the aggregate at `base_version` plus the request's events.
#[derive(Debug, Clone)]
pub struct SnapshotWrite {
    pub base_version: u64,
    pub reducer_id: String,
    /// Compact JSON text.
    pub state: String,
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub version: u64,
    pub global_position: u64,
}

/// The result of a successful append, or of a retry that matched stored events.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub aggregate_type: String,
    pub events: Vec<AppendedEvent>,
    /// True when every event was already stored with the same content: nothing was written.
    pub duplicate: bool,
    /// For a duplicate of a request with a snapshot: the stored state, when the aggregate did not move since and the
    /// same reducer made it.
    pub state: Option<String>,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub aggregate_id: String,
    pub aggregate_type: String,
    pub event_type: String,
    pub version: u64,
    pub global_position: u64,
    pub data: String,
    pub metadata: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub recorded_at: OffsetDateTime,
}

/// A page of one aggregate's stream.
#[derive(Debug, Clone)]
pub struct StreamPage {
    pub aggregate_type: String,
    /// The aggregate's current version (its last event's version).
    pub version: u64,
    pub events: Vec<RecordedEvent>,
}

/// A page of a tenant's whole log.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub head_position: u64,
    pub events: Vec<RecordedEvent>,
}

/// Why an append was refused. Every variant except [`AppendError::Storage`] and [`AppendError::Unavailable`] is the
/// client's to fix, and nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("expected version {expected} but the aggregate is at version {actual}")]
    Concurrency { expected: u64, actual: u64 },
    #[error("event id {event_id} is already stored in this aggregate with different content")]
    EventIdConflict { event_id: Uuid },
    #[error("the batch repeats some stored event ids (for example {event_id}) but not all of them")]
    PartialDuplicate { event_id: Uuid },
    #[error("aggregate is of type {existing}, not {requested}")]
    AggregateTypeMismatch { existing: String, requested: String },
    #[error("the aggregate does not exist and its type can not be inferred from its id")]
    AggregateTypeRequired,
    /// The aggregate is no longer at the snapshot's `base_version`: compute the state again from this head.
    #[error("the aggregate moved to version {} since its state was computed", .0.version)]
    Moved(Box<AggregateHead>),
    #[error("the tenant's log is full (position limit {MAX_POSITION})")]
    LogFull,
    #[error("the store is shutting down")]
    Unavailable,
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A failure of the storage itself: disk, corruption, a bug. Never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the commit could not be made durable (fsync failed); the shard takes no more writes")]
    NotDurable,
    #[error("group commit failed: {0}")]
    CommitFailed(String),
    #[error(transparent)]
    Migration(#[from] crate::db::MigrationError),
    #[error("store is shutting down")]
    ShuttingDown,
}

/// What the API needs from an event store. Implementations are shared between requests (`Arc<dyn EventStore>`).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `request` atomically after checking idempotency, `expected_version` and the aggregate type, in that
    /// order. Answers only once the events are durable (as durable as the store is configured to be).
    async fn append(&self, tenant: TenantId, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// Reads up to `limit` events of one aggregate from `from_version` on; `None` when the aggregate does not exist.
    async fn read_stream(
        &self,
        tenant: TenantId,
        aggregate_id: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Option<StreamPage>, StoreError>;

    /// An aggregate's durable head and its snapshot (only a durable one); `None` when the aggregate does not exist.
    async fn read_head(&self, tenant: TenantId, aggregate_id: &str) -> Result<Option<AggregateHead>, StoreError>;

    /// Stores a snapshot without events, if the aggregate is still at `snapshot.base_version`
    /// ([`AppendError::Moved`] otherwise); `updated_at` is when its last event was recorded.
    async fn save_snapshot(
        &self,
        tenant: TenantId,
        aggregate_id: &str,
        snapshot: SnapshotWrite,
        updated_at: Option<OffsetDateTime>,
    ) -> Result<(), AppendError> {
        self.append(
            tenant,
            AppendRequest {
                aggregate_id: aggregate_id.to_owned(),
                explicit_type: None,
                inferred_type: None,
                expected_version: None,
                events: Vec::new(),
                snapshot: Some(snapshot),
                recorded_at: updated_at,
            },
        )
        .await
        .map(drop)
    }

    /// Reads up to `limit` events of the tenant's log with a global position above `after`, in position order.
    async fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<LogPage, StoreError>;

    /// Like [`EventStore::read_log`], in one buffer ([`log_slab::LogSlab`]): for consumers that pass every event on.
    async fn read_log_slab(&self, tenant: TenantId, after: u64, limit: u32) -> Result<log_slab::LogSlab, StoreError>;

    /// Wakes the receiver whenever `tenant`'s durable head moves (see [`log_watch::LogWatch::subscribe`]): a
    /// consumer reads the log after marking the receiver seen, and waits on it once the log has nothing new.
    fn watch_log(&self, tenant: TenantId) -> tokio::sync::watch::Receiver<u64>;

    /// Whether the store accepts writes.
    fn is_ready(&self) -> bool;

    /// Stops accepting appends, finishes the queued ones and closes the store.
    async fn shutdown(&self);
}
