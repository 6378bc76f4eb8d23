//! The schema of one shard file, and how a tenant's events are keyed in it.

use crate::catalog::TenantId;
use crate::store::MAX_POSITION;

/// Applied in order by [`crate::db::migrate`]; append new entries, never edit old ones.
pub const MIGRATIONS: &[&str] = &[r#"
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
"#];

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
