//! A shard's single writer: one thread that owns the shard's only write connection and commits appends in groups.
//!
//! Requests queue on a channel. The thread takes everything waiting (up to a cap), writes each request inside its own
//! savepoint, commits once, and only then answers every request of the group. While one group's fsync runs, the next
//! group queues up, so the cost of a durable commit is shared by all concurrent writers.
//!
//! Global positions are handed out here, in commit order, by the only writer of the tenant's shard; a group commits
//! atomically, so every position below a visible one is visible too: the log is gapless for readers.

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::schema::{event_key, position_of};
use crate::catalog::TenantId;
use crate::metrics::StoreMetrics;
use crate::store::{AppendError, AppendOutcome, AppendRequest, AppendedEvent, MAX_POSITION, NewEvent, StoreError};
use crate::time_util::unix_micros;

/// Requests waiting beyond this make senders wait: backpressure instead of unbounded memory.
const QUEUE_CAPACITY: usize = 8192;
/// Caps one transaction so a burst cannot make a single commit (and every answer in it) arbitrarily late.
const MAX_GROUP_REQUESTS: usize = 1024;
const MAX_GROUP_EVENTS: usize = 20_000;

pub(super) type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

pub(super) enum Command {
    Append {
        tenant: TenantId,
        request: AppendRequest,
        reply: Reply,
    },
    /// Everything queued before this is committed and answered, then the thread ends.
    Stop,
}

/// The sending side, held by the store.
pub(super) struct WriterHandle {
    pub sender: mpsc::Sender<Command>,
    pub queue_depth: Gauge,
    pub thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    pub fn spawn(shard: usize, conn: Connection, metrics: StoreMetrics, queue_depth: Gauge) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            conn,
            receiver,
            heads: HashMap::new(),
            metrics,
            queue_depth: queue_depth.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("shard-{shard}-writer"))
            .spawn(move || writer.run())?;
        Ok(WriterHandle {
            sender,
            queue_depth,
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }
}

struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Command>,
    /// Each tenant's last committed position. Only this thread writes the shard, so the cache cannot go stale; it is
    /// dropped whenever a commit fails.
    heads: HashMap<TenantId, u64>,
    metrics: StoreMetrics,
    queue_depth: Gauge,
}

struct Pending {
    tenant: TenantId,
    request: AppendRequest,
    reply: Reply,
}

/// Failures of savepoint bookkeeping or the commit itself: they doom the whole group.
struct GroupFailed(rusqlite::Error);

impl Writer {
    fn run(mut self) {
        let mut group = Vec::new();
        let mut stopping = false;
        while !stopping {
            let Some(first) = self.receiver.blocking_recv() else {
                break;
            };
            let mut events = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                self.queue_depth.dec();
                match command {
                    Command::Stop => stopping = true,
                    Command::Append { tenant, request, reply } => {
                        events += request.events.len();
                        group.push(Pending { tenant, request, reply });
                    }
                }
                if stopping || group.len() >= MAX_GROUP_REQUESTS || events >= MAX_GROUP_EVENTS {
                    break;
                }
                next = self.receiver.try_recv().ok();
            }
            if !group.is_empty() {
                self.commit_group(&mut group, events);
            }
        }
        tracing::debug!("shard writer stopped");
    }

    fn commit_group(&mut self, group: &mut Vec<Pending>, event_count: usize) {
        let started = Instant::now();
        let mut heads = HashMap::new();
        let result = self.write_group(group, &mut heads);
        let results = match result {
            Ok(results) => {
                self.heads.extend(heads);
                self.metrics.group_commit_requests.observe(group.len() as f64);
                self.metrics.group_commit_events.observe(event_count as f64);
                results
            }
            Err(GroupFailed(error)) => {
                tracing::error!(%error, requests = group.len(), "group commit failed; no request of the group was stored");
                // The transaction may or may not still be open; a failed ROLLBACK just means it is not.
                let _ = self.conn.execute_batch("ROLLBACK");
                self.heads.clear();
                let message = error.to_string();
                group
                    .iter()
                    .map(|_| Err(AppendError::Storage(StoreError::CommitFailed(message.clone()))))
                    .collect()
            }
        };
        self.metrics
            .group_commit_duration
            .observe(started.elapsed().as_secs_f64());
        for (pending, result) in group.drain(..).zip(results) {
            // The client may have gone away; the events are stored either way.
            let _ = pending.reply.send(result);
        }
    }

    fn write_group(
        &mut self,
        group: &[Pending],
        heads: &mut HashMap<TenantId, u64>,
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, GroupFailed> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(GroupFailed)?;
        let recorded_at = unix_micros(OffsetDateTime::now_utc());
        let mut results = Vec::with_capacity(group.len());
        for pending in group {
            conn.prepare_cached("SAVEPOINT request")
                .and_then(|mut s| s.execute([]))
                .map_err(GroupFailed)?;
            let mut staged_head = None;
            let result = append_one(
                conn,
                &self.heads,
                heads,
                pending.tenant,
                &pending.request,
                recorded_at,
                &mut staged_head,
            );
            if result.is_err() {
                conn.prepare_cached("ROLLBACK TO request")
                    .and_then(|mut s| s.execute([]))
                    .map_err(GroupFailed)?;
            }
            conn.prepare_cached("RELEASE request")
                .and_then(|mut s| s.execute([]))
                .map_err(GroupFailed)?;
            if let (Ok(_), Some(head)) = (&result, staged_head) {
                heads.insert(pending.tenant, head);
            }
            if let Err(AppendError::Storage(error)) = &result {
                tracing::error!(%error, aggregate = %pending.request.aggregate_id, "append failed in storage");
            }
            results.push(result);
        }
        conn.execute_batch("COMMIT").map_err(GroupFailed)?;
        Ok(results)
    }
}

struct StreamRow {
    stream_id: i64,
    aggregate_type: String,
    version: u64,
}

/// Checks and writes one request inside the current savepoint. On success `staged_head` is the tenant's new head; it
/// becomes visible to later requests of the group only once the savepoint is released.
fn append_one(
    conn: &Connection,
    committed_heads: &HashMap<TenantId, u64>,
    group_heads: &HashMap<TenantId, u64>,
    tenant: TenantId,
    request: &AppendRequest,
    recorded_at: i64,
    staged_head: &mut Option<u64>,
) -> Result<AppendOutcome, AppendError> {
    let stream = load_stream(conn, tenant, &request.aggregate_id)?;

    if let Some(stream) = &stream
        && request.events.iter().any(|e| e.client_event_id)
        && let Some(original) = match_retry(conn, stream, &request.events)?
    {
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

    let head = match group_heads.get(&tenant).or_else(|| committed_heads.get(&tenant)) {
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
    *staged_head = Some(head + count);
    Ok(AppendOutcome {
        aggregate_type,
        events: appended,
        duplicate: false,
    })
}

fn load_stream(conn: &Connection, tenant: TenantId, aggregate_id: &str) -> Result<Option<StreamRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT stream_id, aggregate_type, version FROM streams WHERE tenant_id = ?1 AND aggregate_id = ?2",
        )?
        .query_row(params![tenant.0, aggregate_id], |row| {
            Ok(StreamRow {
                stream_id: row.get(0)?,
                aggregate_type: row.get(1)?,
                version: row.get::<_, i64>(2)?.unsigned_abs(),
            })
        })
        .optional()?)
}

/// The tenant's last position, from the table itself: one seek to the end of the tenant's key range.
pub(super) fn load_head(conn: &Connection, tenant: TenantId) -> Result<u64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(event_key) FROM events WHERE event_key BETWEEN ?1 AND ?2")?
        .query_row(params![event_key(tenant, 0), event_key(tenant, MAX_POSITION)], |row| {
            row.get(0)
        })?;
    Ok(last.map_or(0, position_of))
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
