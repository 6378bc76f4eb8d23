//! Who waits for a tenant's log to grow: catch-up consumers (projections) subscribe and are woken when the tenant's
//! durable head moves, instead of polling the log.

use std::collections::HashMap;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::catalog::TenantId;

#[derive(Default)]
pub struct LogWatch {
    senders: RwLock<HashMap<TenantId, watch::Sender<u64>>>,
}

impl LogWatch {
    /// Tells `tenant`'s subscribers that its log is durable up to `head`; a no-op when nobody subscribed.
    pub fn publish(&self, tenant: TenantId, head: u64) {
        if let Some(sender) = self.senders.read().get(&tenant) {
            sender.send_if_modified(|known| {
                let moved = head > *known;
                if moved {
                    *known = head;
                }
                moved
            });
        }
    }

    /// A receiver that sees every later [`LogWatch::publish`] for `tenant` as a change. Its value is the last head
    /// published since the first subscription (0 before any): a hint, not the head; read the log for that.
    pub fn subscribe(&self, tenant: TenantId) -> watch::Receiver<u64> {
        if let Some(sender) = self.senders.read().get(&tenant) {
            return sender.subscribe();
        }
        self.senders
            .write()
            .entry(tenant)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_is_woken_by_a_later_head_and_not_by_an_older_one() {
        let watch = LogWatch::default();
        watch.publish(TenantId(1), 5);
        let mut receiver = watch.subscribe(TenantId(1));
        assert!(!receiver.has_changed().expect("open"));
        watch.publish(TenantId(2), 9);
        assert!(!receiver.has_changed().expect("open"), "another tenant's head");
        watch.publish(TenantId(1), 3);
        assert!(receiver.has_changed().expect("open"));
        receiver.changed().await.expect("open");
        assert_eq!(*receiver.borrow_and_update(), 3);
        watch.publish(TenantId(1), 2);
        assert!(!receiver.has_changed().expect("open"), "a head behind the known one");
    }
}
