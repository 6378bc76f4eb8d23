//! The queue in front of a shard writer: a mutex-protected deque with a condition variable.
//!
//! Not a channel, on purpose. Channels spin and `sched_yield` before they park, and on a small virtual machine every
//! syscall is expensive: profiles showed the yields of an idle consumer costing more than the work. Here a producer
//! takes the lock for a push and wakes the consumer only when it is actually asleep.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub(super) struct WorkQueue<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    /// Set by [`WorkQueue::nudge`]: the consumer should look at something other than the items.
    nudged: bool,
    consumer_asleep: bool,
    /// Set when the consumer is gone: pushes are refused from then on.
    closed: bool,
}

impl<T> WorkQueue<T> {
    pub fn new() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                nudged: false,
                consumer_asleep: false,
                closed: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Queues `item`, or hands it back when the consumer has closed the queue.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            return Err(item);
        }
        state.items.push_back(item);
        self.wake(state);
        Ok(())
    }

    /// Refuses further pushes and returns what is still queued, for the departing consumer to answer.
    pub fn close(&self) -> Vec<T> {
        let mut state = self.lock();
        state.closed = true;
        state.items.drain(..).collect()
    }

    /// Wakes the consumer without an item, so it re-checks its other conditions.
    pub fn nudge(&self) {
        let mut state = self.lock();
        state.nudged = true;
        self.wake(state);
    }

    /// Moves up to `max` items into `into`. With `wait`, and nothing to take (nothing queued, or `max` is 0), sleeps
    /// until an item or a nudge arrives or `until` passes (`None`: no time limit).
    pub fn take(&self, into: &mut Vec<T>, max: usize, wait: bool, until: Option<Instant>) {
        let mut state = self.lock();
        while wait && (state.items.is_empty() || max == 0) && !state.nudged {
            state.consumer_asleep = true;
            state = match until {
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(until) => {
                    let Some(left) = until.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
            state.consumer_asleep = false;
        }
        state.consumer_asleep = false;
        state.nudged = false;
        let count = state.items.len().min(max);
        into.extend(state.items.drain(..count));
    }

    fn wake(&self, state: MutexGuard<'_, State<T>>) {
        let asleep = state.consumer_asleep;
        drop(state);
        if asleep {
            self.changed.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the deque half-changed; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn items_arrive_in_order_and_a_nudge_or_deadline_ends_a_wait() {
        let queue = Arc::new(WorkQueue::new());
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || (0..1000).for_each(|i| queue.push(i).expect("open")))
        };
        let mut seen = Vec::new();
        while seen.len() < 1000 {
            queue.take(&mut seen, 64, true, None);
        }
        producer.join().expect("producer");
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());

        queue.nudge();
        let mut none: Vec<i32> = Vec::new();
        queue.take(&mut none, 64, true, None);
        assert!(none.is_empty(), "a nudge wakes without items");

        let started = Instant::now();
        queue.take(&mut none, 64, true, Some(started + Duration::from_millis(5)));
        assert!(none.is_empty());
        assert!(
            started.elapsed() >= Duration::from_millis(5),
            "the wait lasts until the deadline"
        );

        queue.push(7).expect("open");
        assert_eq!(queue.close(), vec![7]);
        assert_eq!(queue.push(8), Err(8));
    }
}
