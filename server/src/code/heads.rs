//! The last committed head of aggregates appended to by tenants with reducers, so the common append skips reading
//! the aggregate's type and snapshot back from the store. The type is fixed by an aggregate's first event, so it is
//! always right; the rest is only a hint: the writer checks the version an append was computed from and answers with the real head
//! when the hint was stale (another server path appended, or an older answer raced a newer one), so a wrong entry
//! costs one retry, never a wrong state. Bounded by the bytes of the states it holds.

use lru::LruCache;
use parking_lot::Mutex;

use crate::catalog::TenantId;
use crate::store::AggregateHead;

/// What the cache may hold in states, by default.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// What an entry costs beyond its state: the key, the type, the reducer id and the map's own bookkeeping.
const ENTRY_OVERHEAD: usize = 160;

pub struct HeadCache {
    inner: Mutex<Inner>,
    budget: usize,
}

struct Inner {
    entries: LruCache<(TenantId, String), AggregateHead>,
    bytes: usize,
}

impl HeadCache {
    pub fn new(budget: usize) -> Self {
        HeadCache {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    pub fn get(&self, tenant: TenantId, aggregate_id: &str) -> Option<AggregateHead> {
        let mut inner = self.inner.lock();
        inner.entries.get(&(tenant, aggregate_id.to_owned())).cloned()
    }

    /// Records a committed head, unless a newer one is already known.
    pub fn put(&self, tenant: TenantId, aggregate_id: &str, head: AggregateHead) {
        let cost = cost_of_entry(aggregate_id, &head);
        if cost > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        let key = (tenant, aggregate_id.to_owned());
        if let Some(known) = inner.entries.peek(&key)
            && known.version > head.version
        {
            return;
        }
        if let Some(old) = inner.entries.put(key, head) {
            inner.bytes -= cost_of_entry(aggregate_id, &old);
        }
        inner.bytes += cost;
        while inner.bytes > self.budget {
            let Some(((_, evicted_id), evicted)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= cost_of_entry(&evicted_id, &evicted);
        }
    }

    /// Forgets an aggregate (its append failed in a way that says nothing about its head).
    pub fn forget(&self, tenant: TenantId, aggregate_id: &str) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.entries.pop(&(tenant, aggregate_id.to_owned())) {
            inner.bytes -= cost_of_entry(aggregate_id, &old);
        }
    }
}

fn cost_of_entry(aggregate_id: &str, head: &AggregateHead) -> usize {
    ENTRY_OVERHEAD
        + aggregate_id.len()
        + head.aggregate_type.len()
        + head
            .snapshot
            .as_ref()
            .map_or(0, |snapshot| snapshot.state.len() + snapshot.reducer_id.len())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::store::Snapshot;

    fn head(version: u64, state: &str) -> AggregateHead {
        AggregateHead {
            aggregate_type: "order".into(),
            version,
            snapshot: Some(Snapshot {
                reducer_id: "red_1".into(),
                version,
                state: state.into(),
                updated_at: OffsetDateTime::UNIX_EPOCH,
            }),
        }
    }

    #[test]
    fn keeps_the_newest_head_and_stays_within_its_budget() {
        let cache = HeadCache::new(2_000);
        let t = TenantId(1);
        cache.put(t, "order_1", head(2, "{}"));
        cache.put(t, "order_1", head(1, "{\"old\":1}"));
        assert_eq!(
            cache.get(t, "order_1").map(|h| h.version),
            Some(2),
            "an older answer never wins"
        );
        assert!(cache.get(TenantId(2), "order_1").is_none(), "tenants apart");
        for n in 0..100 {
            cache.put(t, &format!("order_{n}"), head(1, &"x".repeat(100)));
        }
        let inner = cache.inner.lock();
        assert!(inner.bytes <= 2_000, "{} bytes held", inner.bytes);
        assert!(inner.entries.len() < 100);
        assert!(
            inner.entries.peek(&(t, "order_99".to_string())).is_some(),
            "the newest stays"
        );
        drop(inner);
        cache.forget(t, "order_99");
        assert!(cache.get(t, "order_99").is_none());
        cache.put(t, "huge", head(1, &"x".repeat(5_000)));
        assert!(cache.get(t, "huge").is_none(), "an entry over the budget is not kept");
    }
}
