//! The schema of one shard file, and how a tenant's events are keyed in it.

use rusqlite::{Connection, OptionalExtension, params};

use crate::catalog::TenantId;
use crate::store::{MAX_POSITION, Snapshot, StoreError};
use crate::time_util::from_unix_micros;

/// Applied in order by [`crate::db::migrate`]; append new entries, never edit old ones.
pub const MIGRATIONS: &[&str] = &[
    r#"
-- One row per aggregate. The writer reads and bumps `version` in the same transaction as the events it appends.
CREATE TABLE streams (
    stream_id      INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL,
    aggregate_id   TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    version        INTEGER NOT NULL,
    UNIQUE (tenant_id, aggregate_id)
);
-- event_key = tenant_id << 40 | global_position (see event_key below): the table's own b-tree is ordered by tenant,
-- then position, so a tenant's log is one range scan and a tenant's head is one seek.
CREATE TABLE events (
    event_key      INTEGER PRIMARY KEY,
    stream_id      INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB NOT NULL,
    recorded_at    INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    correlation_id TEXT,
    causation_id   TEXT,
    metadata       TEXT,
    data           TEXT NOT NULL
);
CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version);
CREATE UNIQUE INDEX events_by_event_id ON events (stream_id, event_id);
"#,
    r#"
-- A reducer's latest state of an aggregate, written by the shard writer in the same transaction as the events it
-- folds, so state and events never disagree. `version` may trail the stream's (events appended while no reducer was
-- bound) and `reducer_id` may name other code (a rebind): readers fold the difference.
CREATE TABLE snapshots (
    stream_id  INTEGER PRIMARY KEY,
    reducer_id TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    state      TEXT NOT NULL
);
"#,
];

const POSITION_BITS: u32 = 40;

/// The row key of a tenant's event at `position`.
pub fn event_key(tenant: TenantId, position: u64) -> i64 {
    debug_assert!(position <= MAX_POSITION);
    // tenant < 2^23 and position < 2^40, so the key fits in 63 bits and stays positive.
    ((i64::from(tenant.0)) << POSITION_BITS) | (position as i64)
}

/// The position part of a row key.
pub fn position_of(event_key: i64) -> u64 {
    (event_key as u64) & MAX_POSITION
}

/// An aggregate's row in `streams`.
pub(super) struct StreamRow {
    pub stream_id: i64,
    pub aggregate_type: String,
    pub version: u64,
}

/// Finds an aggregate's row; shared by the writer's checks and the readers.
pub(super) fn load_stream(
    conn: &Connection,
    tenant: TenantId,
    aggregate_id: &str,
) -> Result<Option<StreamRow>, StoreError> {
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

/// A stream's snapshot, as far as this connection sees.
pub(super) fn load_snapshot(conn: &Connection, stream_id: i64) -> Result<Option<Snapshot>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT reducer_id, version, updated_at, state FROM snapshots WHERE stream_id = ?1")?
        .query_row(params![stream_id], |row| {
            Ok(Snapshot {
                reducer_id: row.get(0)?,
                version: row.get::<_, i64>(1)?.unsigned_abs(),
                updated_at: from_unix_micros(row.get(2)?),
                state: row.get(3)?,
            })
        })
        .optional()?)
}

/// Writes a stream's snapshot over the previous one.
pub(super) fn store_snapshot(
    conn: &Connection,
    stream_id: i64,
    reducer_id: &str,
    version: u64,
    updated_at: i64,
    state: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO snapshots (stream_id, reducer_id, version, updated_at, state) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (stream_id) DO UPDATE SET reducer_id = excluded.reducer_id, version = excluded.version,
             updated_at = excluded.updated_at, state = excluded.state",
    )?
    .execute(params![stream_id, reducer_id, version as i64, updated_at, state])?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MAX_TENANT_ID;

    #[test]
    fn keys_order_by_tenant_then_position() {
        let t1 = TenantId(1);
        let t2 = TenantId(2);
        assert!(event_key(t1, MAX_POSITION) < event_key(t2, 0));
        assert!(event_key(t1, 5) < event_key(t1, 6));
        assert_eq!(position_of(event_key(t2, 12345)), 12345);
        let top = event_key(TenantId(MAX_TENANT_ID), MAX_POSITION);
        assert!(top > 0);
        assert_eq!(position_of(top), MAX_POSITION);
    }
}
