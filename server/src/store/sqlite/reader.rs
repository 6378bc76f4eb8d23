//! Reads. Each shard keeps a few read-only connections; a read takes one, runs in one read transaction (a consistent
//! snapshot even while the writer commits), and gives it back. Reads run on tokio's blocking pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::durable::DurableHeads;
use super::schema::{StreamRow, event_key, load_head, load_snapshot, load_stream, position_of};
use crate::catalog::TenantId;
use crate::db::{self, Access, Durability};
use crate::store::log_slab::{LogSlab, NewSlabEvent, TextRef};
use crate::store::{AggregateHead, LogPage, RecordedEvent, StoreError, StreamPage};
use crate::time_util::from_unix_micros;

/// How much of a shard file a reader maps.
const READER_MMAP_BYTES: i64 = 1 << 30;

/// Connections kept for reuse; more may be open at once under load, the extras are closed after use.
const IDLE_READERS: usize = 8;

pub(super) struct ReaderPool {
    path: PathBuf,
    durable: Arc<DurableHeads>,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub fn new(path: PathBuf, durable: Arc<DurableHeads>) -> Self {
        ReaderPool {
            path,
            durable,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with_snapshot<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = match self.idle.lock().pop() {
            Some(conn) => conn,
            None => {
                let conn = db::open(&self.path, Access::ReadOnly, Durability::Normal)?;
                // Pages read through a mapping instead of a read(2) and a copy each: a catch-up reads the whole log,
                // far more than the page cache holds. Readers never write, so the mapping is never written through.
                conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
                conn
            }
        };
        conn.prepare_cached("BEGIN")?.execute([])?;
        let result = read(&conn);
        let ended = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        if ended.is_ok() {
            let mut idle = self.idle.lock();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }

    /// The tenant's head as far as it is durable, in the read transaction `conn` is in.
    fn durable_head(&self, conn: &Connection, tenant: TenantId) -> Result<u64, StoreError> {
        let stored_head = load_head(conn, tenant)?;
        // The query above took this transaction's snapshot; only now may the cap be read (see durable.rs).
        Ok(self.durable.cap(tenant).map_or(stored_head, |cap| cap.min(stored_head)))
    }

    pub fn read_stream(
        &self,
        tenant: TenantId,
        aggregate_id: &str,
        from_version: u64,
        limit: u32,
    ) -> Result<Option<StreamPage>, StoreError> {
        self.with_snapshot(|conn| {
            let Some(StreamRow {
                stream_id,
                aggregate_type,
                version,
            }) = load_stream(conn, tenant, aggregate_id)?
            else {
                return Ok(None);
            };
            let Some(version) = self.durable_version(conn, tenant, stream_id, version)? else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT event_key, version, event_id, recorded_at, event_type, correlation_id, causation_id, metadata, data
                 FROM events WHERE stream_id = ?1 AND version >= ?2 AND version <= ?3 ORDER BY version LIMIT ?4",
            )?;
            let mut rows = stmt.query(params![stream_id, clamp_i64(from_version), clamp_i64(version), limit])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                events.push(recorded_event(row, aggregate_id.to_owned(), aggregate_type.clone())?);
            }
            Ok(Some(StreamPage {
                aggregate_type,
                version,
                events,
            }))
        })
    }

    pub fn read_head(&self, tenant: TenantId, aggregate_id: &str) -> Result<Option<AggregateHead>, StoreError> {
        self.with_snapshot(|conn| {
            let Some(StreamRow {
                stream_id,
                aggregate_type,
                version,
            }) = load_stream(conn, tenant, aggregate_id)?
            else {
                return Ok(None);
            };
            let Some(version) = self.durable_version(conn, tenant, stream_id, version)? else {
                return Ok(None);
            };
            // A snapshot of events that are not durable yet is not shown: it could still be taken back.
            let snapshot = load_snapshot(conn, stream_id)?.filter(|snapshot| snapshot.version <= version);
            Ok(Some(AggregateHead {
                aggregate_type,
                version,
                snapshot,
            }))
        })
    }

    /// The stream's last durable version (`version` is the stored one); `None` when none of its events is durable
    /// yet, so that the aggregate does not exist for readers.
    fn durable_version(
        &self,
        conn: &Connection,
        tenant: TenantId,
        stream_id: i64,
        version: u64,
    ) -> Result<Option<u64>, StoreError> {
        // The caller's query took this transaction's snapshot; only now may the cap be read (see durable.rs).
        let Some(cap) = self.durable.cap(tenant) else {
            return Ok(Some(version));
        };
        let durable_version: Option<i64> = conn
            .prepare_cached(
                "SELECT version FROM events WHERE stream_id = ?1 AND event_key <= ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![stream_id, event_key(tenant, cap)], |row| row.get(0))
            .optional()?;
        Ok(durable_version.map(i64::unsigned_abs))
    }

    pub fn read_log(&self, tenant: TenantId, after: u64, limit: u32) -> Result<LogPage, StoreError> {
        self.with_snapshot(|conn| {
            let head_position = self.durable_head(conn, tenant)?;
            let mut stmt = conn.prepare_cached(
                "SELECT e.event_key, e.version, e.event_id, e.recorded_at, e.event_type, e.correlation_id,
                        e.causation_id, e.metadata, e.data, s.aggregate_id, s.aggregate_type
                 FROM events e JOIN streams s ON s.stream_id = e.stream_id
                 WHERE e.event_key > ?1 AND e.event_key <= ?2 ORDER BY e.event_key LIMIT ?3",
            )?;
            let after = after.min(head_position);
            let mut rows = stmt.query(params![
                event_key(tenant, after),
                event_key(tenant, head_position),
                limit
            ])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                events.push(recorded_event(row, row.get(9)?, row.get(10)?)?);
            }
            Ok(LogPage { head_position, events })
        })
    }
}

impl ReaderPool {
    /// [`ReaderPool::read_log`] into one buffer: the columns are copied straight from SQLite's row, and each
    /// aggregate's id and type are looked up once per page instead of joined to every event.
    pub fn read_log_slab(&self, tenant: TenantId, after: u64, limit: u32) -> Result<LogSlab, StoreError> {
        self.with_snapshot(|conn| {
            let head_position = self.durable_head(conn, tenant)?;
            let mut stmt = conn.prepare_cached(
                "SELECT event_key, version, event_id, recorded_at, event_type, correlation_id, causation_id, metadata,
                        data, stream_id
                 FROM events WHERE event_key > ?1 AND event_key <= ?2 ORDER BY event_key LIMIT ?3",
            )?;
            let mut streams =
                conn.prepare_cached("SELECT aggregate_id, aggregate_type FROM streams WHERE stream_id = ?1")?;
            let after = after.min(head_position);
            let mut rows = stmt.query(params![
                event_key(tenant, after),
                event_key(tenant, head_position),
                limit
            ])?;
            let mut slab = LogSlab::with_capacity(limit.min(4096) as usize, limit.min(4096) as usize * 160);
            slab.head_position = head_position;
            let mut known: HashMap<i64, (TextRef, TextRef)> = HashMap::new();
            while let Some(row) = rows.next()? {
                let stream_id: i64 = row.get(9)?;
                let aggregate = match known.get(&stream_id) {
                    Some(aggregate) => *aggregate,
                    None => {
                        let (id, kind): (String, String) =
                            streams.query_row(params![stream_id], |s| Ok((s.get(0)?, s.get(1)?)))?;
                        let aggregate = (slab.push_text(&id), slab.push_text(&kind));
                        known.insert(stream_id, aggregate);
                        aggregate
                    }
                };
                let id_bytes = row.get_ref(2)?.as_blob().map_err(corrupt)?;
                let event_id: [u8; 16] = id_bytes
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("event id of {} bytes", id_bytes.len())))?;
                let text = |index: usize| -> Result<Option<&str>, StoreError> {
                    row.get_ref(index)?.as_str_or_null().map_err(corrupt)
                };
                slab.push(NewSlabEvent {
                    event_id,
                    version: row.get::<_, i64>(1)?.unsigned_abs(),
                    global_position: position_of(row.get(0)?),
                    recorded_at_micros: row.get(3)?,
                    aggregate,
                    event_type: row.get_ref(4)?.as_str().map_err(corrupt)?,
                    correlation_id: text(5)?,
                    causation_id: text(6)?,
                    metadata: text(7)?,
                    data: row.get_ref(8)?.as_str().map_err(corrupt)?,
                });
            }
            Ok(slab)
        })
    }
}

fn corrupt(error: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("an event column: {error}"))
}

/// Builds an event from the first nine columns selected above.
fn recorded_event(row: &Row<'_>, aggregate_id: String, aggregate_type: String) -> Result<RecordedEvent, StoreError> {
    let id_bytes: Vec<u8> = row.get(2)?;
    let event_id = Uuid::from_slice(&id_bytes)
        .map_err(|_| StoreError::Corrupt(format!("event id of {} bytes", id_bytes.len())))?;
    Ok(RecordedEvent {
        event_id,
        aggregate_id,
        aggregate_type,
        global_position: position_of(row.get(0)?),
        version: row.get::<_, i64>(1)?.unsigned_abs(),
        recorded_at: from_unix_micros(row.get(3)?),
        event_type: row.get(4)?,
        correlation_id: row.get(5)?,
        causation_id: row.get(6)?,
        metadata: row.get(7)?,
        data: row.get(8)?,
    })
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
