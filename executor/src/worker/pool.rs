//! The warm pool: jailed workers kept running between requests, keyed by an opaque key (for the server: tenant and
//! artifact), so the common path is a pipe round trip rather than a process start.
//!
//! - A key's workers only ever serve that key: they live under it and nowhere else.
//! - After a key is used, up to `ready_per_key` idle workers are kept ready for it, started in the background.
//! - A worker that failed (timeout, crash, protocol violation) is dropped, not returned; the top-up replaces it.
//! - Cancel-safe: a caller whose future is dropped mid-request (a `tokio::time::timeout` around [`Pool::call`] or
//!   [`PooledWorker::call`]) leaves its worker with a request in flight, whose answer would reach the next caller.
//!   Such a worker is not healthy: it is discarded (killed and reaped in the background), never parked. So is a
//!   worker given back with pipelined requests ([`PooledWorker::send`]) whose answers were not all received, and one
//!   its caller [`discard`](PooledWorker::discard)s because it left state in it. A start dropped half-way gives its
//!   slot back.
//! - Idle workers unused for `idle_timeout` are stopped.
//! - A key may have a setup request (for the server: load this artifact) that every new worker of the key answers
//!   before it joins the pool; a worker whose setup fails is stopped and the start fails with the worker's answer.
//! - At most `max_total` workers run; when a new key needs one at the cap, the least recently used idle worker of any
//!   key is stopped for it. When every worker is busy, callers wait (up to `acquire_timeout`).

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{Notify, oneshot};

use super::process::{Answer, RequestId, Worker, WorkerConfig, WorkerError};
use crate::sandbox::Sandbox;
use crate::spec::SandboxSpec;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Idle workers kept ready for a key once it has been used.
    pub ready_per_key: usize,
    /// Most workers of one key (busy, idle and starting).
    pub max_per_key: usize,
    /// Most workers in all.
    pub max_total: usize,
    /// An idle worker unused this long is stopped.
    pub idle_timeout: Duration,
    /// How long a caller waits for a worker when the pool is at its caps.
    pub acquire_timeout: Duration,
    pub worker: WorkerConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            ready_per_key: 1,
            max_per_key: 4,
            max_total: 64,
            idle_timeout: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(10),
            worker: WorkerConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no worker became free within {0:?}")]
    Exhausted(Duration),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// Counts for one key and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub idle: usize,
    pub live: usize,
    pub total: usize,
    /// Callers queued for a worker of the key (some may have given up since).
    pub waiting: usize,
}

/// What a pool can be keyed by.
pub trait PoolKey: Eq + Hash + Clone + Send + Sync + Debug + 'static {}

impl<K: Eq + Hash + Clone + Send + Sync + Debug + 'static> PoolKey for K {}

/// Cheap to clone; clones share the pool.
pub struct Pool<K: PoolKey> {
    inner: Arc<Inner<K>>,
}

impl<K: PoolKey> Clone for Pool<K> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

type SpecFor<K> = dyn Fn(&K) -> SandboxSpec + Send + Sync;
type SetupFor<K> = dyn Fn(&K) -> Option<Box<RawValue>> + Send + Sync;

struct Inner<K: PoolKey> {
    sandbox: Arc<Sandbox>,
    config: PoolConfig,
    spec_for: Box<SpecFor<K>>,
    setup_for: Box<SetupFor<K>>,
    state: Mutex<State<K>>,
    freed: Notify,
}

struct State<K: PoolKey> {
    idle: HashMap<K, Vec<Idle>>,
    /// Live workers per key: busy, idle and starting.
    live: HashMap<K, usize>,
    starting: HashMap<K, usize>,
    /// Callers waiting for a worker of a key that has its most: a worker coming back goes straight to the oldest
    /// (one wake, in order). Dropped (so they look again) whenever the key's live count goes down.
    waiting: HashMap<K, VecDeque<oneshot::Sender<PooledWorker<K>>>>,
    total: usize,
    /// Advances on every release: the least recently used idle worker has the smallest tick.
    clock: u64,
}

struct Idle {
    worker: Worker,
    since: Instant,
    tick: u64,
}

/// A worker taken from the pool; it goes back when dropped, unless it failed.
pub struct PooledWorker<K: PoolKey> {
    worker: Option<Worker>,
    key: K,
    pool: Arc<Inner<K>>,
}

impl<K: PoolKey> Pool<K> {
    /// A pool starting workers of `spec_for(key)` in `sandbox`. Spawns the idle-eviction task on the current runtime.
    pub fn new(
        sandbox: Arc<Sandbox>,
        config: PoolConfig,
        spec_for: impl Fn(&K) -> SandboxSpec + Send + Sync + 'static,
    ) -> Self {
        Self::with_setup(sandbox, config, spec_for, |_| None)
    }

    /// A pool whose new workers of a key first answer `setup_for(key)` (when it is `Some`): a worker joins the pool
    /// only once its setup succeeded.
    pub fn with_setup(
        sandbox: Arc<Sandbox>,
        config: PoolConfig,
        spec_for: impl Fn(&K) -> SandboxSpec + Send + Sync + 'static,
        setup_for: impl Fn(&K) -> Option<Box<RawValue>> + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(Inner {
            sandbox,
            config,
            spec_for: Box::new(spec_for),
            setup_for: Box::new(setup_for),
            state: Mutex::new(State {
                idle: HashMap::new(),
                live: HashMap::new(),
                starting: HashMap::new(),
                waiting: HashMap::new(),
                total: 0,
                clock: 0,
            }),
            freed: Notify::new(),
        });
        tokio::spawn(evict_idle_forever(Arc::downgrade(&inner)));
        Pool { inner }
    }

    /// Sends `body` to a worker of `key` and returns its answer. A failed worker is replaced in the background.
    pub async fn call(&self, key: &K, body: &(impl Serialize + ?Sized + Sync)) -> Result<Answer, PoolError> {
        let mut worker = self.acquire(key).await?;
        Ok(worker.call(body).await?)
    }

    /// Takes an idle worker of `key`, or starts one.
    pub async fn acquire(&self, key: &K) -> Result<PooledWorker<K>, PoolError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.acquire_timeout;
        loop {
            let freed = inner.freed.notified();
            let next = {
                let mut state = inner.lock();
                if let Some(idle) = state.idle.get_mut(key).and_then(Vec::pop) {
                    drop(state);
                    inner.top_up(key);
                    return Ok(inner.hand_out(key, idle.worker));
                }
                let live = state.live.get(key).copied().unwrap_or(0);
                if live < inner.config.max_per_key && state.total < inner.config.max_total {
                    state.reserve(key);
                    Next::Start
                } else if live < inner.config.max_per_key {
                    // At the global cap: make room by stopping the least recently used idle worker of any key.
                    match state.evict_least_recently_used() {
                        Some(Some(worker)) => Next::Evicted(Box::new(worker)),
                        _ => Next::WaitForAnyKey,
                    }
                } else {
                    let (handoff, handed) = oneshot::channel();
                    state.waiting.entry(key.clone()).or_default().push_back(handoff);
                    Next::WaitForThisKey(handed)
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match next {
                Next::Start => {
                    let started = inner.start(key).await;
                    inner.top_up(key);
                    return Ok(inner.hand_out(key, started?));
                }
                Next::Evicted(worker) => {
                    tokio::spawn(worker.shutdown());
                }
                // Every worker of the key is busy: the next one given back comes here, unless the key loses a
                // worker first (then the handoff is dropped and this caller looks again).
                Next::WaitForThisKey(handed) => match tokio::time::timeout(left, handed).await {
                    Ok(Ok(worker)) => return Ok(worker),
                    Ok(Err(_)) => {}
                    Err(_) => return Err(PoolError::Exhausted(inner.config.acquire_timeout)),
                },
                Next::WaitForAnyKey => {
                    if left.is_zero() || tokio::time::timeout(left, freed).await.is_err() {
                        return Err(PoolError::Exhausted(inner.config.acquire_timeout));
                    }
                }
            }
        }
    }

    /// Starts workers of `key` until `ready_per_key` are ready, and waits for them.
    pub async fn prewarm(&self, key: &K) {
        self.inner.fill(key).await;
    }

    /// Stops idle workers unused for longer than `age`; the background task does this with `idle_timeout`.
    pub fn evict_idle_older_than(&self, age: Duration) {
        self.inner.evict_idle_older_than(age);
    }

    pub fn stats(&self, key: &K) -> PoolStats {
        let state = self.inner.lock();
        PoolStats {
            idle: state.idle.get(key).map_or(0, Vec::len),
            live: state.live.get(key).copied().unwrap_or(0),
            total: state.total,
            waiting: state.waiting.get(key).map_or(0, VecDeque::len),
        }
    }
}

impl<K: PoolKey> Inner<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hand_out(self: &Arc<Self>, key: &K, worker: Worker) -> PooledWorker<K> {
        PooledWorker {
            worker: Some(worker),
            key: key.clone(),
            pool: self.clone(),
        }
    }

    /// Starts a worker for a slot already reserved; gives the slot back if the start fails or is cancelled.
    async fn start(&self, key: &K) -> Result<Worker, WorkerError> {
        let reservation = Reservation {
            inner: self,
            key,
            kept: false,
        };
        let spec = (self.spec_for)(key);
        let started = match Worker::start(&self.sandbox, spec, self.config.worker.clone()).await {
            Ok(worker) => self.set_up(key, worker).await,
            Err(error) => Err(error),
        };
        match started {
            Ok(worker) => {
                reservation.keep();
                Ok(worker)
            }
            Err(error) => {
                tracing::warn!(%error, ?key, "start a pooled worker");
                Err(error)
            }
        }
    }

    /// Sends the key's setup request, if it has one, to a new worker.
    async fn set_up(&self, key: &K, mut worker: Worker) -> Result<Worker, WorkerError> {
        let Some(setup) = (self.setup_for)(key) else {
            return Ok(worker);
        };
        match worker.call(&setup).await {
            Ok(Ok(_)) => Ok(worker),
            Ok(Err(refused)) => {
                worker.shutdown().await;
                Err(WorkerError::Setup(refused))
            }
            Err(error) => Err(error),
        }
    }

    /// Starts, in the background, the workers `key` is short of being ready.
    fn top_up(self: &Arc<Self>, key: &K) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(?key, "no runtime to top the pool up on");
            return;
        };
        let inner = self.clone();
        let key = key.clone();
        runtime.spawn(async move { inner.fill(&key).await });
    }

    /// Starts the workers `key` is short of being ready and waits until they are idle (or failed to start).
    async fn fill(self: &Arc<Self>, key: &K) {
        let wanted = {
            let mut state = self.lock();
            let ready = state.idle.get(key).map_or(0, Vec::len) + state.starting.get(key).copied().unwrap_or(0);
            let live = state.live.get(key).copied().unwrap_or(0);
            let room =
                (self.config.max_per_key.saturating_sub(live)).min(self.config.max_total.saturating_sub(state.total));
            let wanted = self.config.ready_per_key.saturating_sub(ready).min(room);
            for _ in 0..wanted {
                state.reserve(key);
                *state.starting.entry(key.clone()).or_default() += 1;
            }
            wanted
        };
        let starts = (0..wanted).map(|_| async {
            let starting = Starting {
                inner: self,
                key,
                done: false,
            };
            let started = self.start(key).await;
            starting.finish(started.ok());
        });
        futures_util::future::join_all(starts).await;
    }

    /// A worker coming back from a caller: handed to the oldest caller waiting for its key, or parked, if it can
    /// serve again; else discarded and replaced.
    fn release(self: &Arc<Self>, key: &K, worker: Worker) {
        if worker.is_healthy() {
            let parked = self.settle(&mut self.lock(), key, worker);
            if parked {
                self.freed.notify_waiters();
            }
        } else {
            self.lock().forget(key);
            discard(worker);
            self.top_up(key);
            self.freed.notify_waiters();
        }
    }

    /// Gives a free `worker` to the oldest caller still waiting for `key`, or parks it when none is; true when
    /// parked. Done under the caller's lock, so that no caller can start waiting in between and miss it.
    fn settle(self: &Arc<Self>, state: &mut State<K>, key: &K, worker: Worker) -> bool {
        let mut offered = self.hand_out(key, worker);
        while let Some(handoff) = state.waiting.get_mut(key).and_then(VecDeque::pop_front) {
            match handoff.send(offered) {
                Ok(()) => {
                    state.drop_empty_queue(key);
                    return false;
                }
                // That caller gave up (timed out or was cancelled): the next one.
                Err(refused) => offered = refused,
            }
        }
        state.drop_empty_queue(key);
        // Taken out, the handle's drop does nothing (it would release, and take the lock held here).
        match offered.worker.take() {
            Some(worker) => {
                state.park(key, worker);
                true
            }
            None => false,
        }
    }

    fn evict_idle_older_than(&self, age: Duration) {
        let now = Instant::now();
        let stale: Vec<Worker> = {
            let mut state = self.lock();
            let mut stale = Vec::new();
            let keys: Vec<K> = state.idle.keys().cloned().collect();
            for key in keys {
                let idle = state.idle.remove(&key).unwrap_or_default();
                let (old, fresh): (Vec<Idle>, Vec<Idle>) =
                    idle.into_iter().partition(|i| now.duration_since(i.since) > age);
                for _ in &old {
                    state.forget(&key);
                }
                stale.extend(old.into_iter().map(|i| i.worker));
                if !fresh.is_empty() {
                    state.idle.insert(key, fresh);
                }
            }
            stale
        };
        if !stale.is_empty() {
            tracing::debug!(workers = stale.len(), "stop idle workers");
            self.freed.notify_waiters();
        }
        for worker in stale {
            tokio::spawn(worker.shutdown());
        }
    }
}

/// What a caller of [`Pool::acquire`] does next, decided under the lock.
enum Next<K: PoolKey> {
    Start,
    Evicted(Box<Worker>),
    WaitForThisKey(oneshot::Receiver<PooledWorker<K>>),
    WaitForAnyKey,
}

/// A slot reserved in `live` and `total` for a worker being started: given back when dropped, unless kept.
struct Reservation<'a, K: PoolKey> {
    inner: &'a Inner<K>,
    key: &'a K,
    kept: bool,
}

impl<K: PoolKey> Reservation<'_, K> {
    /// The worker started: its slot stays taken.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl<K: PoolKey> Drop for Reservation<'_, K> {
    fn drop(&mut self) {
        if !self.kept {
            self.inner.lock().forget(self.key);
            self.inner.freed.notify_waiters();
        }
    }
}

/// One background start counted in `starting`: the count goes down when it finishes or is cancelled.
struct Starting<'a, K: PoolKey> {
    inner: &'a Arc<Inner<K>>,
    key: &'a K,
    done: bool,
}

impl<K: PoolKey> Starting<'_, K> {
    /// Parks the started worker (if the start succeeded) in the same step as the count goes down, so the key is
    /// never seen short of ready workers it has.
    fn finish(mut self, worker: Option<Worker>) {
        self.done = true;
        let mut state = self.inner.lock();
        state.finish_starting(self.key);
        if let Some(worker) = worker {
            // A caller may be waiting for this very worker (it came while the worker started).
            self.inner.settle(&mut state, self.key, worker);
        }
        drop(state);
        self.inner.freed.notify_waiters();
    }
}

impl<K: PoolKey> Drop for Starting<'_, K> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.lock().finish_starting(self.key);
        }
    }
}

/// Stops a worker that must not serve again: killed and reaped in the background, so the caller never waits.
fn discard(worker: Worker) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(worker.shutdown());
        }
        // Outside a runtime, dropping the worker kills and reaps its jail (bounded by the sandbox's kill wait).
        Err(_) => drop(worker),
    }
}

impl<K: PoolKey> State<K> {
    fn finish_starting(&mut self, key: &K) {
        if let Some(starting) = self.starting.get_mut(key) {
            *starting = starting.saturating_sub(1);
            if *starting == 0 {
                self.starting.remove(key);
            }
        }
    }

    fn drop_empty_queue(&mut self, key: &K) {
        if self.waiting.get(key).is_some_and(VecDeque::is_empty) {
            self.waiting.remove(key);
        }
    }

    fn reserve(&mut self, key: &K) {
        *self.live.entry(key.clone()).or_default() += 1;
        self.total += 1;
    }

    fn forget(&mut self, key: &K) {
        // A slot of the key is free: whoever waits for one of its workers may now start one.
        self.waiting.remove(key);
        if let Some(live) = self.live.get_mut(key) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                self.live.remove(key);
            }
        }
        self.total = self.total.saturating_sub(1);
    }

    fn park(&mut self, key: &K, worker: Worker) {
        self.clock += 1;
        let tick = self.clock;
        self.idle.entry(key.clone()).or_default().push(Idle {
            worker,
            since: Instant::now(),
            tick,
        });
    }

    /// Removes the least recently used idle worker of any key: `Some(Some(worker))`, or `Some(None)` when every
    /// worker is busy.
    fn evict_least_recently_used(&mut self) -> Option<Option<Worker>> {
        let oldest = self
            .idle
            .iter()
            .filter_map(|(key, idle)| idle.iter().map(|i| i.tick).min().map(|tick| (tick, key.clone())))
            .min_by_key(|(tick, _)| *tick);
        let Some((tick, key)) = oldest else {
            return Some(None);
        };
        let idle = self.idle.get_mut(&key)?;
        let position = idle.iter().position(|i| i.tick == tick)?;
        let evicted = idle.remove(position);
        if idle.is_empty() {
            self.idle.remove(&key);
        }
        self.forget(&key);
        Some(Some(evicted.worker))
    }
}

impl<K: PoolKey> PooledWorker<K> {
    /// One request and its answer (see [`Worker::call`]).
    pub async fn call(&mut self, body: &(impl Serialize + ?Sized + Sync)) -> Result<Answer, WorkerError> {
        match self.worker.as_mut() {
            Some(worker) => worker.call(body).await,
            None => Err(WorkerError::Broken),
        }
    }

    /// Writes a request without waiting for its answer (see [`Worker::send`]). Until every answer is received, the
    /// worker does not go back to the pool: dropped with requests in flight, it is discarded.
    pub async fn send(&mut self, body: &(impl Serialize + ?Sized + Sync)) -> Result<RequestId, WorkerError> {
        match self.worker.as_mut() {
            Some(worker) => worker.send(body).await,
            None => Err(WorkerError::Broken),
        }
    }

    /// The answer to the oldest request sent and not yet answered (see [`Worker::receive`]).
    pub async fn receive(&mut self) -> Result<(RequestId, Answer), WorkerError> {
        match self.worker.as_mut() {
            Some(worker) => worker.receive().await,
            None => Err(WorkerError::Broken),
        }
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.worker.as_ref().map_or(0, Worker::in_flight)
    }

    /// Stops the worker instead of giving it back, for a caller that left state in it that the next caller must
    /// not meet (e.g. an unfinished session). It is killed and reaped in the background and replaced.
    pub fn discard(mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.lock().forget(&self.key);
            discard(worker);
            self.pool.top_up(&self.key);
            self.pool.freed.notify_waiters();
        }
    }

    pub fn pid(&self) -> i32 {
        self.worker.as_ref().map_or(0, Worker::pid)
    }

    /// The worker's cgroup directories, while it runs.
    pub fn cgroup_dirs(&self) -> Vec<std::path::PathBuf> {
        self.worker.as_ref().map(Worker::cgroup_dirs).unwrap_or_default()
    }

    /// Whether the worker can serve again (see [`Worker::is_healthy`]).
    pub fn is_healthy(&self) -> bool {
        self.worker.as_ref().is_some_and(Worker::is_healthy)
    }
}

impl<K: PoolKey> Drop for PooledWorker<K> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.release(&self.key, worker);
        }
    }
}

async fn evict_idle_forever<K: PoolKey>(pool: Weak<Inner<K>>) {
    loop {
        let period = match pool.upgrade() {
            Some(inner) => (inner.config.idle_timeout / 4).max(Duration::from_millis(100)),
            None => return,
        };
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(inner) => inner.evict_idle_older_than(inner.config.idle_timeout),
            None => return,
        }
    }
}
