//! A shard's single writer: one thread that owns the shard's only write connection and commits appends in groups.
//!
//! Requests queue in a [`WorkQueue`]. The thread opens a transaction, writes each request as it arrives, and commits
//! the group when it is worth it: at once
//! with `durability = normal`; with `full`, when the syncer has finished the previous group's fsync (see syncer.rs),
//! so that while one group is being made durable the next one is already being written. Requests are answered only
//! after their group is committed and, with `full`, synced.
//!
//! A request refused by its checks (a version conflict, a type mismatch, ...) is refused before it writes anything,
//! so requests are written without a savepoint each (which would copy every page they touch first). Only a storage
//! error can strike in the middle of a request's writes; then the transaction is rolled back and the group written
//! again, each request inside a savepoint of its own this time, so that only the failing request fails.
//!
//! Global positions are handed out here, in commit order, by the only writer of the tenant's shard; a group commits
//! atomically, so every position below a visible one is visible too: the log is gapless for readers.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

use super::answers::{Answer, AnswerSender};
use super::durable::DurableHeads;
use super::queue::WorkQueue;
use super::schema::{StreamRow, event_key, load_head, load_snapshot, load_stream, position_of, store_snapshot};
use super::syncer::{CommittedGroup, Syncer};
use super::wal_rewind::WalRewind;
use crate::catalog::TenantId;
use crate::metrics::StoreMetrics;
use crate::store::{
    AggregateHead, AppendError, AppendOutcome, AppendRequest, AppendedEvent, MAX_POSITION, NewEvent, StoreError,
};
use crate::time_util::unix_micros;

/// Requests waiting beyond this make senders wait: backpressure instead of unbounded memory.
pub(super) const QUEUE_CAPACITY: usize = 8192;
/// Caps one transaction so a burst cannot make a single commit (and every answer in it) arbitrarily late.
const MAX_GROUP_REQUESTS: usize = 1024;
const MAX_GROUP_EVENTS: usize = 20_000;

pub(super) type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

pub(super) enum Command {
    Append {
        tenant: TenantId,
        request: Box<AppendRequest>,
        reply: Reply,
        /// Released when the writer takes the request, making room in the queue.
        permit: OwnedSemaphorePermit,
    },
    /// Everything queued before this is committed and answered, then the thread ends.
    Stop,
}

/// The sending side, held by the store.
pub(super) struct WriterHandle {
    pub queue: Arc<WorkQueue<Command>>,
    pub permits: Arc<Semaphore>,
    pub queue_depth: Gauge,
    pub thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

/// What the writer thread owns besides its connection.
pub(super) struct WriterParts {
    pub shard: usize,
    pub queue: Arc<WorkQueue<Command>>,
    pub metrics: StoreMetrics,
    pub queue_depth: Gauge,
    /// Present with `durability = full`: commits are answered by the syncer after an fsync.
    pub syncer: Option<Syncer>,
    pub durable: Arc<DurableHeads>,
    pub rewind: Arc<WalRewind>,
    pub answers: AnswerSender,
}

impl WriterHandle {
    pub fn spawn(conn: Connection, parts: WriterParts) -> std::io::Result<Self> {
        let WriterParts {
            shard,
            queue,
            metrics,
            queue_depth,
            syncer,
            durable,
            rewind,
            answers,
        } = parts;
        let writer = Writer {
            conn,
            queue: queue.clone(),
            heads: HashMap::new(),
            metrics,
            queue_depth: queue_depth.clone(),
            syncer,
            durable,
            rewind,
            answers,
        };
        let thread = std::thread::Builder::new()
            .name(format!("shard-{shard}-writer"))
            .spawn(move || writer.run())?;
        Ok(WriterHandle {
            queue,
            permits: Arc::new(Semaphore::new(QUEUE_CAPACITY)),
            queue_depth,
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }
}

struct Writer {
    conn: Connection,
    queue: Arc<WorkQueue<Command>>,
    /// Each tenant's last committed position. Only this thread writes the shard, so the cache cannot go stale; it is
    /// dropped whenever a commit fails.
    heads: HashMap<TenantId, u64>,
    metrics: StoreMetrics,
    queue_depth: Gauge,
    syncer: Option<Syncer>,
    durable: Arc<DurableHeads>,
    rewind: Arc<WalRewind>,
    answers: AnswerSender,
}

/// The transaction being filled: requests written but not yet committed.
struct OpenGroup {
    started: Instant,
    answers: Vec<Answer>,
    /// The requests written, in order, kept until the commit to be written again if a storage error strikes.
    written: Vec<(TenantId, Box<AppendRequest>)>,
    /// Set once the group was written again after a storage error: from then on each request has a savepoint.
    careful: bool,
    events: usize,
    /// Per tenant written, its head before and after the group.
    heads: HashMap<TenantId, (u64, u64)>,
}

impl OpenGroup {
    fn is_full(&self) -> bool {
        self.answers.len() >= MAX_GROUP_REQUESTS || self.events >= MAX_GROUP_EVENTS
    }
}

/// Failures of transaction or savepoint bookkeeping, or of the commit itself: they doom the whole group.
struct GroupFailed(rusqlite::Error);

impl Writer {
    fn run(mut self) {
        let mut commands = Vec::new();
        let mut open: Option<OpenGroup> = None;
        let mut stopping = false;
        loop {
            // Decide whether to commit what is open, and otherwise how long to wait for more.
            let mut until = None;
            if let Some(group) = &open {
                match self.ready_to_commit(group, stopping) {
                    Ok(()) => {
                        if let Some(group) = open.take() {
                            self.commit(group);
                        }
                        continue;
                    }
                    Err(later) => until = later,
                }
            } else if stopping {
                break;
            }
            let room = match &open {
                Some(group) if group.is_full() => 0,
                Some(group) => MAX_GROUP_REQUESTS - group.answers.len(),
                None => MAX_GROUP_REQUESTS,
            };
            self.queue.take(&mut commands, room, true, until);
            for command in commands.drain(..) {
                self.queue_depth.dec();
                match command {
                    Command::Stop => stopping = true,
                    Command::Append {
                        tenant,
                        request,
                        reply,
                        permit,
                    } => {
                        drop(permit);
                        if stopping {
                            // Sent after Stop was queued (a race with shutdown): refuse rather than lose it silently.
                            let _ = reply.send(Err(AppendError::Unavailable));
                            continue;
                        }
                        self.add(&mut open, tenant, request, reply);
                    }
                }
            }
        }
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
        for command in self.queue.close() {
            if let Command::Append { reply, .. } = command {
                self.queue_depth.dec();
                let _ = reply.send(Err(AppendError::Unavailable));
            }
        }
        tracing::debug!("shard writer stopped");
    }

    fn ready_to_commit(&self, group: &OpenGroup, stopping: bool) -> Result<(), Option<Instant>> {
        match &self.syncer {
            None => Ok(()),
            Some(syncer) => syncer.ready_for(group.answers.len(), stopping || group.is_full()),
        }
    }

    /// Writes one request into the open group, opening one when needed.
    fn add(&mut self, open: &mut Option<OpenGroup>, tenant: TenantId, request: Box<AppendRequest>, reply: Reply) {
        if open.is_none() {
            if let Err(error) = self.conn.execute_batch("BEGIN IMMEDIATE") {
                tracing::error!(%error, "begin a group");
                let _ = reply.send(Err(AppendError::Storage(StoreError::CommitFailed(error.to_string()))));
                return;
            }
            *open = Some(OpenGroup {
                started: Instant::now(),
                answers: Vec::new(),
                written: Vec::new(),
                careful: false,
                events: 0,
                heads: HashMap::new(),
            });
        }
        let Some(group) = open.as_mut() else { return };
        let careful = group.careful;
        let written = match self.write_request(group, tenant, &request, careful) {
            Ok(Err(AppendError::Storage(_))) if !careful => self.write_again(group, tenant, &request),
            written => written,
        };
        match written {
            Ok(answer) => {
                group.events += request.events.len();
                group.answers.push((reply, answer));
                group.written.push((tenant, request));
            }
            Err(GroupFailed(error)) => {
                let group = open.take();
                self.fail(group, error, Some(reply));
            }
        }
    }

    /// After a storage error in the middle of a request written without a savepoint: rolls the transaction back
    /// and writes the group again, each request in a savepoint, then the failed request, whose outcome it returns.
    fn write_again(
        &self,
        group: &mut OpenGroup,
        tenant: TenantId,
        request: &AppendRequest,
    ) -> Result<Result<AppendOutcome, AppendError>, GroupFailed> {
        self.metrics.group_rewrites.inc();
        tracing::warn!(
            requests = group.written.len() + 1,
            "a storage error in the middle of a request: writing its group again, a savepoint per request"
        );
        self.conn
            .execute_batch("ROLLBACK; BEGIN IMMEDIATE")
            .map_err(GroupFailed)?;
        group.careful = true;
        group.heads.clear();
        let written = std::mem::take(&mut group.written);
        let mut answers = std::mem::take(&mut group.answers);
        for ((earlier_tenant, earlier), (_, answer)) in written.iter().zip(answers.iter_mut()) {
            *answer = self.write_request(group, *earlier_tenant, earlier, true)?;
        }
        group.written = written;
        group.answers = answers;
        self.write_request(group, tenant, request, true)
    }

    /// Checks and writes one request; `careful` puts it in a savepoint, so that a storage error in the middle of
    /// its writes leaves nothing of it behind.
    fn write_request(
        &self,
        group: &mut OpenGroup,
        tenant: TenantId,
        request: &AppendRequest,
        careful: bool,
    ) -> Result<Result<AppendOutcome, AppendError>, GroupFailed> {
        let conn = &self.conn;
        let exec = |sql: &str| {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(GroupFailed)
        };
        if careful {
            exec("SAVEPOINT request")?;
        }
        let recorded_at = unix_micros(request.recorded_at.unwrap_or_else(OffsetDateTime::now_utc));
        let result = append_one(conn, &self.heads, &group.heads, tenant, request, recorded_at);
        if careful {
            if result.is_err() {
                exec("ROLLBACK TO request")?;
            }
            exec("RELEASE request")?;
        }
        if let Ok(outcome) = &result
            && !outcome.duplicate
            && let (Some(first), Some(last)) = (outcome.events.first(), outcome.events.last())
        {
            // Positions are consecutive, so the outcome tells the tenant's head before and after this request.
            let before = first.global_position - 1;
            group.heads.entry(tenant).or_insert((before, last.global_position)).1 = last.global_position;
        }
        if careful && let Err(AppendError::Storage(error)) = &result {
            tracing::error!(%error, aggregate = %request.aggregate_id, "append failed in storage");
        }
        Ok(result)
    }

    fn commit(&mut self, group: OpenGroup) {
        if self.syncer.is_some() {
            for (tenant, (before, _)) in &group.heads {
                self.durable.reserve(*tenant, *before);
            }
        }
        if let Err(error) = self.conn.execute_batch("COMMIT") {
            self.fail(Some(group), error, None);
            return;
        }
        self.heads
            .extend(group.heads.iter().map(|(tenant, (_, after))| (*tenant, *after)));
        self.metrics.group_commit_requests.observe(group.answers.len() as f64);
        self.metrics.group_commit_events.observe(group.events as f64);
        self.metrics
            .group_commit_duration
            .observe(group.started.elapsed().as_secs_f64());
        match &self.syncer {
            Some(syncer) => syncer.hand_over(CommittedGroup {
                answers: group.answers,
                heads: group
                    .heads
                    .into_iter()
                    .map(|(tenant, (_, after))| (tenant, after))
                    .collect(),
            }),
            None => {
                for (tenant, (_, after)) in &group.heads {
                    self.durable.published(*tenant, *after);
                }
                self.answers.deliver(group.answers)
            }
        }
        // Between two transactions is the only time the WAL can be started over; with `full` this overlaps the
        // syncer's fsync of the group just committed.
        match self.rewind.run_if_wanted(&self.conn) {
            Ok(true) => {
                self.metrics.wal_rewinds.inc();
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "checkpoint before a WAL rewind failed; the checkpointer will ask again")
            }
        }
    }

    /// Rolls the open transaction back and fails every request in it.
    fn fail(&mut self, group: Option<OpenGroup>, error: rusqlite::Error, extra: Option<Reply>) {
        let requests = group.as_ref().map_or(0, |g| g.answers.len()) + usize::from(extra.is_some());
        tracing::error!(%error, requests, "group commit failed; no request of the group was stored");
        // The transaction may or may not still be open; a failed ROLLBACK just means it is not.
        let _ = self.conn.execute_batch("ROLLBACK");
        self.heads.clear();
        let message = error.to_string();
        let replies = group
            .into_iter()
            .flat_map(|g| g.answers.into_iter().map(|(reply, _)| reply));
        for reply in replies.chain(extra) {
            let _ = reply.send(Err(AppendError::Storage(StoreError::CommitFailed(message.clone()))));
        }
    }
}

/// Checks and writes one request. Every refusal but [`AppendError::Storage`] comes before its first write, so a
/// refused request leaves nothing behind. The caller records the tenant's new head from the outcome.
fn append_one(
    conn: &Connection,
    committed_heads: &HashMap<TenantId, u64>,
    group_heads: &HashMap<TenantId, (u64, u64)>,
    tenant: TenantId,
    request: &AppendRequest,
    recorded_at: i64,
) -> Result<AppendOutcome, AppendError> {
    let stream = load_stream(conn, tenant, &request.aggregate_id)?;

    if let Some(stream) = &stream
        && request.events.iter().any(|e| e.client_event_id)
        && let Some(mut original) = match_retry(conn, stream, &request.events)?
    {
        if let Some(wanted) = &request.snapshot {
            original.state = unmoved_state(conn, stream, &original, &wanted.reducer_id)?;
        }
        return Ok(original);
    }

    let actual = stream.as_ref().map_or(0, |s| s.version);
    if let Some(expected) = request.expected_version
        && expected != actual
    {
        return Err(AppendError::Concurrency { expected, actual });
    }

    let aggregate_type = match &stream {
        Some(stream) => {
            if let Some(requested) = &request.explicit_type
                && *requested != stream.aggregate_type
            {
                return Err(AppendError::AggregateTypeMismatch {
                    existing: stream.aggregate_type.clone(),
                    requested: requested.clone(),
                });
            }
            stream.aggregate_type.clone()
        }
        None => request
            .explicit_type
            .clone()
            .or_else(|| request.inferred_type.clone())
            .ok_or(AppendError::AggregateTypeRequired)?,
    };

    if let Some(snapshot) = &request.snapshot {
        let moved = match &stream {
            Some(stream) => stream.version != snapshot.base_version,
            None => snapshot.base_version != 0 || request.events.is_empty(),
        };
        if moved {
            return Err(AppendError::Moved(Box::new(AggregateHead {
                aggregate_type,
                version: actual,
                snapshot: match &stream {
                    Some(stream) => load_snapshot(conn, stream.stream_id)?,
                    None => None,
                },
            })));
        }
        if request.events.is_empty()
            && let Some(stream) = &stream
        {
            store_snapshot(
                conn,
                stream.stream_id,
                &snapshot.reducer_id,
                actual,
                recorded_at,
                &snapshot.state,
            )?;
            return Ok(AppendOutcome {
                aggregate_type,
                events: Vec::new(),
                duplicate: false,
                state: None,
            });
        }
    }

    let head = match group_heads
        .get(&tenant)
        .map(|(_, after)| after)
        .or_else(|| committed_heads.get(&tenant))
    {
        Some(head) => *head,
        None => load_head(conn, tenant)?,
    };
    let count = request.events.len() as u64;
    if head + count > MAX_POSITION {
        return Err(AppendError::LogFull);
    }
    let new_version = actual + count;

    let stream_id = match &stream {
        Some(stream) => {
            conn.prepare_cached("UPDATE streams SET version = ?1 WHERE stream_id = ?2")
                .map_err(StoreError::from)?
                .execute(params![new_version as i64, stream.stream_id])
                .map_err(StoreError::from)?;
            stream.stream_id
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO streams (tenant_id, aggregate_id, aggregate_type, version) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(StoreError::from)?
            .execute(params![
                tenant.0,
                request.aggregate_id,
                aggregate_type,
                new_version as i64
            ])
            .map_err(StoreError::from)?;
            conn.last_insert_rowid()
        }
    };

    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (event_key, stream_id, version, event_id, recorded_at, event_type, correlation_id,
                                 causation_id, metadata, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(StoreError::from)?;
    let mut appended = Vec::with_capacity(request.events.len());
    for (offset, event) in (1..).zip(&request.events) {
        let position = head + offset;
        let version = actual + offset;
        insert
            .execute(params![
                event_key(tenant, position),
                stream_id,
                version as i64,
                event.event_id.as_bytes(),
                recorded_at,
                event.event_type,
                event.correlation_id,
                event.causation_id,
                event.metadata,
                event.data,
            ])
            .map_err(StoreError::from)?;
        appended.push(AppendedEvent {
            event_id: event.event_id,
            version,
            global_position: position,
        });
    }
    if let Some(snapshot) = &request.snapshot {
        store_snapshot(
            conn,
            stream_id,
            &snapshot.reducer_id,
            new_version,
            recorded_at,
            &snapshot.state,
        )?;
    }
    Ok(AppendOutcome {
        aggregate_type,
        events: appended,
        duplicate: false,
        state: None,
    })
}

/// A retry's state: the stored snapshot, when `reducer_id` made it and nothing was appended after the retried events.
fn unmoved_state(
    conn: &Connection,
    stream: &StreamRow,
    original: &AppendOutcome,
    reducer_id: &str,
) -> Result<Option<String>, AppendError> {
    let last_version = original.events.last().map(|e| e.version);
    if last_version != Some(stream.version) {
        return Ok(None);
    }
    Ok(load_snapshot(conn, stream.stream_id)?
        .filter(|snapshot| snapshot.reducer_id == reducer_id && snapshot.version == stream.version)
        .map(|snapshot| snapshot.state))
}

/// Decides whether `events` is a retry of events already stored in `stream`: `Some` with the original outcome when
/// every event is stored with the same content, `None` when none of their ids is stored, an error otherwise.
fn match_retry(
    conn: &Connection,
    stream: &StreamRow,
    events: &[NewEvent],
) -> Result<Option<AppendOutcome>, AppendError> {
    let mut lookup = conn
        .prepare_cached(
            "SELECT event_key, version, event_type, data, metadata FROM events WHERE stream_id = ?1 AND event_id = ?2",
        )
        .map_err(StoreError::from)?;
    let mut original = Vec::with_capacity(events.len());
    let mut first_missing: Option<Uuid> = None;
    for event in events {
        let stored = lookup
            .query_row(params![stream.stream_id, event.event_id.as_bytes()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .optional()
            .map_err(StoreError::from)?;
        match stored {
            None => {
                first_missing.get_or_insert(event.event_id);
            }
            Some((key, version, event_type, data, metadata)) => {
                if event_type != event.event_type
                    || !same_json(&data, &event.data)
                    || !same_optional_json(metadata.as_deref(), event.metadata.as_deref())
                {
                    return Err(AppendError::EventIdConflict {
                        event_id: event.event_id,
                    });
                }
                original.push(AppendedEvent {
                    event_id: event.event_id,
                    version: version.unsigned_abs(),
                    global_position: position_of(key),
                });
            }
        }
    }
    match (original.first(), first_missing) {
        (None, _) => Ok(None),
        (Some(_), None) => Ok(Some(AppendOutcome {
            aggregate_type: stream.aggregate_type.clone(),
            events: original,
            duplicate: true,
            state: None,
        })),
        (Some(stored), Some(_)) => Err(AppendError::PartialDuplicate {
            event_id: stored.event_id,
        }),
    }
}

/// JSON equality that ignores key order and formatting; the byte comparison settles the common case.
fn same_json(stored: &str, offered: &str) -> bool {
    stored == offered
        || match (
            serde_json::from_str::<serde_json::Value>(stored),
            serde_json::from_str::<serde_json::Value>(offered),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

fn same_optional_json(stored: Option<&str>, offered: Option<&str>) -> bool {
    match (stored, offered) {
        (None, None) => true,
        (Some(a), Some(b)) => same_json(a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_equality_ignores_order_but_not_values() {
        assert!(same_json(r#"{"a":1,"b":[1,2]}"#, r#"{"b":[1,2],"a":1}"#));
        assert!(!same_json(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(!same_json(r#"{"a":[1,2]}"#, r#"{"a":[2,1]}"#));
        assert!(same_optional_json(None, None));
        assert!(!same_optional_json(Some("{}"), None));
    }
}
