//! Prometheus metrics. One [`Metrics`] per server, shared by the API and the store; `/metrics` renders it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The store's share of the metrics: what the group-commit writers see.
#[derive(Clone)]
pub struct StoreMetrics {
    pub group_commit_requests: Histogram,
    pub group_commit_events: Histogram,
    pub group_commit_duration: Histogram,
    pub wal_sync_duration: Histogram,
    pub wal_sync_requests: Histogram,
    pub wal_rewinds: Counter,
    /// Groups written again after a storage error struck in the middle of a request.
    pub group_rewrites: Counter,
    pub queue_depth: Family<ShardLabel, Gauge>,
}

/// Which projection version a sample is of.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub tenant: String,
    pub projection: String,
    pub version: String,
}

/// The projections engine's share.
#[derive(Clone)]
pub struct ProjectionMetrics {
    pub events: Family<ProjectionLabel, Counter>,
    pub lag: Family<ProjectionLabel, Gauge>,
    pub events_per_second: Family<ProjectionLabel, Gauge>,
    pub failures: Counter,
}

/// User code's share: reducer runs on the write path and uploads.
#[derive(Clone)]
pub struct CodeMetrics {
    pub reducer_runs: Family<OutcomeLabel, Counter>,
    pub reducer_duration: Histogram,
    pub reducer_retries: Counter,
    /// Appends per worker round trip (see `code::apply_queue`).
    pub reducer_batch_appends: Histogram,
    pub uploads: Family<OutcomeLabel, Counter>,
}

pub struct Metrics {
    registry: Registry,
    pub code: CodeMetrics,
    pub projections: ProjectionMetrics,
    pub append_requests: Family<OutcomeLabel, Counter>,
    pub appended_events: Counter,
    pub append_duration: Histogram,
    pub store: StoreMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let append_requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "hapnd_append_requests",
            "Append requests by outcome (created, duplicate, rejected, failed)",
            append_requests.clone(),
        );
        let appended_events = Counter::default();
        registry.register("hapnd_appended_events", "Events stored", appended_events.clone());
        // 50 µs .. ~1.6 s
        let append_duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "hapnd_append_duration_seconds",
            "Time from a parsed append request to its answer, commit included",
            append_duration.clone(),
        );
        let store = StoreMetrics {
            group_commit_requests: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            group_commit_events: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            group_commit_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            wal_sync_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            wal_sync_requests: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            wal_rewinds: Counter::default(),
            group_rewrites: Counter::default(),
            queue_depth: Family::default(),
        };
        registry.register(
            "hapnd_group_commit_requests",
            "Append requests per group commit (one transaction)",
            store.group_commit_requests.clone(),
        );
        registry.register(
            "hapnd_group_commit_events",
            "Events per group commit (one transaction)",
            store.group_commit_events.clone(),
        );
        registry.register(
            "hapnd_group_commit_duration_seconds",
            "Time to write and commit one group",
            store.group_commit_duration.clone(),
        );
        registry.register(
            "hapnd_wal_sync_duration_seconds",
            "Time of one fsync of a shard's WAL (durability full), which makes the groups committed before it durable",
            store.wal_sync_duration.clone(),
        );
        registry.register(
            "hapnd_wal_sync_requests",
            "Append requests made durable by one WAL fsync",
            store.wal_sync_requests.clone(),
        );
        registry.register(
            "hapnd_wal_rewinds",
            "Times a shard's writer checkpointed its WAL completely so that its next group starts the WAL over",
            store.wal_rewinds.clone(),
        );
        registry.register(
            "hapnd_group_rewrites",
            "Groups a shard's writer rolled back and wrote again, a savepoint per request, after a storage error in \
             the middle of a request",
            store.group_rewrites.clone(),
        );
        registry.register(
            "hapnd_shard_queue_depth",
            "Append requests waiting for a shard's writer",
            store.queue_depth.clone(),
        );
        let projections = ProjectionMetrics {
            events: Family::default(),
            lag: Family::default(),
            events_per_second: Family::default(),
            failures: Counter::default(),
        };
        registry.register(
            "hapnd_projection_events",
            "Events a projection version ran through (skipped ones included)",
            projections.events.clone(),
        );
        registry.register(
            "hapnd_projection_lag_events",
            "Events of the tenant's log after a projection version's checkpoint (head minus position)",
            projections.lag.clone(),
        );
        registry.register(
            "hapnd_projection_events_per_second",
            "Events a projection version ran through per second, over its last seconds",
            projections.events_per_second.clone(),
        );
        registry.register(
            "hapnd_projection_failures",
            "Projection versions stopped at a failing event",
            projections.failures.clone(),
        );
        let code = CodeMetrics {
            reducer_runs: Family::default(),
            reducer_duration: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            reducer_retries: Counter::default(),
            reducer_batch_appends: Histogram::new(exponential_buckets(1.0, 2.0, 7)),
            uploads: Family::default(),
        };
        registry.register(
            "hapnd_reducer_runs",
            "Reducer runs on the append and state paths by outcome (ok, failed, timeout, unavailable)",
            code.reducer_runs.clone(),
        );
        registry.register(
            "hapnd_reducer_duration_seconds",
            "Time from handing an append's events to its reducer to having the state: the wait for a worker, the round trip and the run",
            code.reducer_duration.clone(),
        );
        registry.register(
            "hapnd_reducer_retries",
            "Appends whose aggregate moved while the reducer ran, so the state was computed again",
            code.reducer_retries.clone(),
        );
        registry.register(
            "hapnd_reducer_batch_appends",
            "Appends whose reducer runs shared one round trip to a worker",
            code.reducer_batch_appends.clone(),
        );
        registry.register(
            "hapnd_uploads",
            "Finished compiles of uploads by outcome (ready, failed)",
            code.uploads.clone(),
        );
        Metrics {
            registry,
            code,
            projections,
            append_requests,
            appended_events,
            append_duration,
            store,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
