//! How far each tenant's log is durable, so readers never see an event that a power loss could still take back.
//!
//! With `durability = full` the writer commits without waiting for the disk and the syncer (syncer.rs) makes the WAL
//! durable afterwards, overlapping the next group's writes with this group's fsync. Between the two, a commit is
//! visible to SQLite readers but not yet durable. Readers therefore cap what they return at the tenant's durable head.
//!
//! A tenant without an entry has had no write since the shard was opened, and everything on disk then was synced at
//! open: it has no cap. The writer inserts an entry (at the head before its group, which is durable by the rule
//! above) *before* it commits a group that touches the tenant, and a reader looks up the cap only *after* its read
//! transaction has taken its snapshot. So a snapshot that contains an unsynced commit always finds a cap.

use std::collections::HashMap;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::catalog::TenantId;
use crate::store::log_watch::LogWatch;

/// The caps, and who to tell when a tenant's durable head moves.
#[derive(Default)]
pub(super) struct DurableHeads {
    heads: RwLock<HashMap<TenantId, u64>>,
    watch: Arc<LogWatch>,
}

impl DurableHeads {
    pub fn new(watch: Arc<LogWatch>) -> Self {
        DurableHeads {
            heads: RwLock::default(),
            watch,
        }
    }

    /// Called once `head` of `tenant` is as durable as the store is configured to make it: by the syncer after its
    /// fsync ([`DurableHeads::advance`] does it), by the writer after its commit when there is no syncer.
    pub fn published(&self, tenant: TenantId, head: u64) {
        self.watch.publish(tenant, head);
    }

    /// The highest position of `tenant` a reader may return; `None` when everything stored is durable.
    pub fn cap(&self, tenant: TenantId) -> Option<u64> {
        self.heads.read().get(&tenant).copied()
    }

    /// Called by the writer before committing a group that moves `tenant` past `durable_head`.
    pub fn reserve(&self, tenant: TenantId, durable_head: u64) {
        self.heads.write().entry(tenant).or_insert(durable_head);
    }

    /// Called by the syncer once `head` is on disk.
    pub fn advance(&self, tenant: TenantId, head: u64) {
        {
            let mut heads = self.heads.write();
            let entry = heads.entry(tenant).or_insert(head);
            *entry = (*entry).max(head);
        }
        self.published(tenant, head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_only_tenants_with_unsynced_writes_and_never_move_back() {
        let heads = DurableHeads::default();
        let t = TenantId(1);
        assert_eq!(heads.cap(t), None);
        heads.reserve(t, 10);
        assert_eq!(heads.cap(t), Some(10));
        heads.reserve(t, 3);
        assert_eq!(heads.cap(t), Some(10), "a reservation never lowers the cap");
        heads.advance(t, 15);
        heads.advance(t, 12);
        assert_eq!(heads.cap(t), Some(15), "durability never moves back");
        assert_eq!(heads.cap(TenantId(2)), None);
    }
}
