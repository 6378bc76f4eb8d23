//! Appends waiting for the same reducer share a worker round trip. Each tenant-and-artifact key has a queue, drained
//! one batch at a time, each batch one `applyBatch` request with the aggregates as its keys. An idle server runs
//! every append alone; under load a round trip carries what queued up meanwhile, so the worker's fixed cost per
//! request (two process wake-ups, framing) is paid once per batch. One task drains the queue while its batches go
//! quickly; a second (of at most [`DISPATCHERS`]) is called in when a batch has run [`SLOW_BATCH`].
//!
//! User code may misbehave, and the rule stands that one aggregate's reducer must not hold up another's:
//! - an exception fails only the append whose event threw; the others are run again at once, without it;
//! - a batch that times out, crashes or runs out of memory is run again one append at a time, so only the culprit
//!   fails, and its aggregate is quarantined: for [`QUARANTINE`] its appends always run alone. Appends that shared
//!   the culprit's first batch waited for it once.
//!
//! The queue only batches appends to different aggregates: two appends to one aggregate are computed from the same
//! snapshot and only one can commit, so the second waits for the next batch.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::runtime::protocol::{BatchStep, EncodedRows, WorkerEvent};
use crate::runtime::workers::WorkerKey;
use crate::runtime::{ArtifactWorkers, Failure};

/// Tasks draining one key's queue at once, at most: as many as the key's workers. One drains it while its batches
/// go quickly, so that appends wait together and share round trips; a second is called in when a batch has run for
/// [`SLOW_BATCH`], so that one aggregate's slow reducer never holds up the others for longer than that.
pub const DISPATCHERS: usize = 2;
/// How long a batch runs before the queue stops waiting for it.
pub const SLOW_BATCH: Duration = Duration::from_millis(5);
/// Appends in one batch at most.
const MAX_BATCH: usize = 64;
/// How long an aggregate whose reducer timed out, crashed or ran out of memory runs alone.
pub const QUARANTINE: Duration = Duration::from_secs(600);
/// Aggregates remembered as quarantined, at most.
const QUARANTINE_CAPACITY: usize = 10_000;

/// An event of an append, as the worker will see it.
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub event_id: String,
    pub event_type: String,
    pub version: u64,
    pub timestamp: OffsetDateTime,
    pub data: Box<RawValue>,
    pub metadata: Option<Box<RawValue>>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// One append's fold: its events applied in order to its aggregate's state.
#[derive(Debug)]
pub struct Job {
    pub aggregate_id: String,
    pub aggregate_type: String,
    pub state: Option<Box<RawValue>>,
    pub events: Vec<JobEvent>,
}

/// The new state, or why user code gave none (an exception's `event_index` counts within the job's events).
pub type JobResult = Result<Box<RawValue>, Failure>;

struct Queued {
    job: Job,
    /// Run alone: it failed a batch, or its aggregate is quarantined.
    alone: bool,
    reply: oneshot::Sender<JobResult>,
}

#[derive(Default)]
struct KeyQueue {
    waiting: VecDeque<Queued>,
    dispatchers: usize,
    /// Dispatchers whose batch has run longer than [`SLOW_BATCH`]: the queue does not wait for them.
    slow: usize,
}

impl KeyQueue {
    /// Counts one more dispatcher when every running one is slow (or none runs) and there is room for one: the
    /// caller then starts it.
    fn claim_dispatcher(&mut self) -> bool {
        let claimed = self.dispatchers == self.slow && self.dispatchers < DISPATCHERS;
        if claimed {
            self.dispatchers += 1;
        }
        claimed
    }
}

pub struct ApplyQueues {
    workers: Arc<dyn BatchRunner>,
    batch_sizes: Histogram,
    queues: Mutex<HashMap<WorkerKey, KeyQueue>>,
    quarantined: Mutex<LruCache<(WorkerKey, String), Instant>>,
}

/// What runs a batch: the jailed workers, or a stand-in in unit tests.
#[async_trait::async_trait]
pub trait BatchRunner: Send + Sync + 'static {
    /// `steps` folded in order into the keyed `states`; every key's final state.
    async fn run(
        &self,
        key: &WorkerKey,
        states: BTreeMap<&str, Option<&RawValue>>,
        steps: &[BatchStep<'_>],
    ) -> Result<BTreeMap<String, Box<RawValue>>, Failure>;
}

#[async_trait::async_trait]
impl BatchRunner for ArtifactWorkers {
    async fn run(
        &self,
        key: &WorkerKey,
        states: BTreeMap<&str, Option<&RawValue>>,
        steps: &[BatchStep<'_>],
    ) -> Result<BTreeMap<String, Box<RawValue>>, Failure> {
        if let ([step], Some((name, state))) = (steps, states.first_key_value())
            && states.len() == 1
        {
            let state = self.apply(key, *state, step.event).await?;
            return Ok(BTreeMap::from([((*name).to_owned(), state)]));
        }
        let rows = EncodedRows::encode(steps).map_err(|e| Failure::Protocol(e.to_string()))?;
        Ok(self.apply_batch(key, states, &rows).await?.states)
    }
}

impl ApplyQueues {
    /// Queues running batches on `workers`; `batch_sizes` observes the appends of each batch.
    pub fn new(workers: Arc<dyn BatchRunner>, batch_sizes: Histogram) -> Arc<Self> {
        Arc::new(ApplyQueues {
            workers,
            batch_sizes,
            queues: Mutex::default(),
            quarantined: Mutex::new(LruCache::unbounded()),
        })
    }

    /// Runs `job` in a worker of `key`, batched with whatever else waits for that key.
    pub async fn apply(self: &Arc<Self>, key: &WorkerKey, job: Job) -> JobResult {
        let alone = self.is_quarantined(key, &job.aggregate_id);
        let (reply, answer) = oneshot::channel();
        self.enqueue(key, Queued { job, alone, reply }, false);
        answer
            .await
            .unwrap_or_else(|_| Err(Failure::Unavailable("the reducer's queue was dropped".into())))
    }

    fn enqueue(self: &Arc<Self>, key: &WorkerKey, queued: Queued, front: bool) {
        let start = {
            let mut queues = self.queues.lock();
            let queue = queues.entry(key.clone()).or_default();
            if front {
                queue.waiting.push_front(queued);
            } else {
                queue.waiting.push_back(queued);
            }
            queue.claim_dispatcher()
        };
        if start {
            tokio::spawn(self.clone().dispatch(key.clone()));
        }
    }

    /// Drains `key`'s queue, a batch at a time, until it is empty.
    async fn dispatch(self: Arc<Self>, key: WorkerKey) {
        loop {
            let batch = {
                let mut queues = self.queues.lock();
                let Some(queue) = queues.get_mut(&key) else { return };
                let batch = take_batch(&mut queue.waiting);
                if batch.is_empty() {
                    // Decided under the lock, so an append queued from now on starts a dispatcher of its own.
                    queue.dispatchers -= 1;
                    if queue.dispatchers == 0 {
                        queues.remove(&key);
                    }
                    return;
                }
                batch
            };
            let run = self.run_batch(&key, batch);
            tokio::pin!(run);
            tokio::select! {
                () = &mut run => {}
                () = tokio::time::sleep(SLOW_BATCH) => {
                    self.mark_slow(&key, true);
                    run.await;
                    self.mark_slow(&key, false);
                }
            }
        }
    }

    /// Counts a dispatcher's batch as slow (or no longer), calling in another dispatcher for what waits meanwhile.
    fn mark_slow(self: &Arc<Self>, key: &WorkerKey, slow: bool) {
        let start = {
            let mut queues = self.queues.lock();
            let Some(queue) = queues.get_mut(key) else { return };
            if !slow {
                queue.slow -= 1;
                return;
            }
            queue.slow += 1;
            !queue.waiting.is_empty() && queue.claim_dispatcher()
        };
        if start {
            tokio::spawn(self.clone().dispatch(key.clone()));
        }
    }

    async fn run_batch(self: &Arc<Self>, key: &WorkerKey, batch: Vec<Queued>) {
        self.batch_sizes.observe(batch.len() as f64);
        let result = {
            let events: Vec<Vec<WorkerEvent<'_>>> = batch
                .iter()
                .map(|queued| queued.job.events.iter().map(|e| worker_event(&queued.job, e)).collect())
                .collect();
            let steps: Vec<BatchStep<'_>> = batch
                .iter()
                .zip(&events)
                .flat_map(|(queued, events)| {
                    events.iter().map(|event| BatchStep {
                        key: &queued.job.aggregate_id,
                        event,
                    })
                })
                .collect();
            let states: BTreeMap<&str, Option<&RawValue>> = batch
                .iter()
                .map(|queued| (queued.job.aggregate_id.as_str(), queued.job.state.as_deref()))
                .collect();
            self.workers.run(key, states, &steps).await
        };
        match result {
            Ok(mut states) => {
                for queued in batch {
                    let state = states
                        .remove(&queued.job.aggregate_id)
                        .ok_or_else(|| Failure::Protocol("a batch answer without an aggregate's state".into()));
                    let _ = queued.reply.send(state);
                }
            }
            Err(Failure::UserException {
                exception_type,
                message,
                event_index: Some(index),
            }) if batch.len() > 1 => {
                // Only the append whose event threw fails; the others go again, first in line.
                let mut offset = 0;
                let mut again = Vec::new();
                for queued in batch {
                    let count = queued.job.events.len() as u64;
                    if (offset..offset + count).contains(&index) {
                        let _ = queued.reply.send(Err(Failure::UserException {
                            exception_type: exception_type.clone(),
                            message: message.clone(),
                            event_index: Some(index - offset),
                        }));
                    } else {
                        again.push(queued);
                    }
                    offset += count;
                }
                for queued in again.into_iter().rev() {
                    self.enqueue(key, queued, true);
                }
            }
            Err(
                Failure::Timeout(_)
                | Failure::Crashed(_)
                | Failure::OutOfMemory
                | Failure::UserException { event_index: None, .. },
            ) if batch.len() > 1 => {
                // Which append did it is not known: each goes again alone, so only the culprit fails.
                for mut queued in batch.into_iter().rev() {
                    queued.alone = true;
                    self.enqueue(key, queued, true);
                }
            }
            Err(failure) => {
                if matches!(
                    failure,
                    Failure::Timeout(_) | Failure::Crashed(_) | Failure::OutOfMemory
                ) && let Some(queued) = batch.first()
                {
                    self.quarantine(key, &queued.job.aggregate_id);
                }
                for queued in batch {
                    let _ = queued.reply.send(Err(failure.clone()));
                }
            }
        }
    }

    fn is_quarantined(&self, key: &WorkerKey, aggregate_id: &str) -> bool {
        let mut quarantined = self.quarantined.lock();
        let entry = (key.clone(), aggregate_id.to_owned());
        match quarantined.get(&entry) {
            Some(since) if since.elapsed() < QUARANTINE => true,
            Some(_) => {
                quarantined.pop(&entry);
                false
            }
            None => false,
        }
    }

    fn quarantine(&self, key: &WorkerKey, aggregate_id: &str) {
        let mut quarantined = self.quarantined.lock();
        quarantined.put((key.clone(), aggregate_id.to_owned()), Instant::now());
        while quarantined.len() > QUARANTINE_CAPACITY {
            quarantined.pop_lru();
        }
    }
}

/// The next batch: the first append alone if it must run alone, else the appends from the front that may share a
/// round trip (different aggregates, none that must run alone), up to [`MAX_BATCH`].
fn take_batch(waiting: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut batch = Vec::new();
    let Some(first) = waiting.pop_front() else {
        return batch;
    };
    let alone = first.alone;
    batch.push(first);
    if alone {
        return batch;
    }
    let mut aggregates: HashSet<String> = HashSet::from([batch[0].job.aggregate_id.clone()]);
    let mut kept = VecDeque::new();
    while batch.len() < MAX_BATCH
        && let Some(next) = waiting.pop_front()
    {
        if next.alone || aggregates.contains(&next.job.aggregate_id) {
            kept.push_back(next);
            continue;
        }
        aggregates.insert(next.job.aggregate_id.clone());
        batch.push(next);
    }
    // What was passed over keeps its place, ahead of what was not looked at.
    while let Some(queued) = kept.pop_back() {
        waiting.push_front(queued);
    }
    batch
}

fn worker_event<'a>(job: &'a Job, event: &'a JobEvent) -> WorkerEvent<'a> {
    WorkerEvent {
        event_id: &event.event_id,
        aggregate_id: &job.aggregate_id,
        aggregate_type: &job.aggregate_type,
        event_type: &event.event_type,
        version: event.version,
        global_position: 0,
        timestamp: event.timestamp,
        data: &event.data,
        metadata: event.metadata.as_deref(),
        correlation_id: event.correlation_id.as_deref(),
        causation_id: event.causation_id.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Folds `{"add": n}` into a number; `{"throw": true}` throws, `{"hang": true}` times out the whole batch. The
    /// first batch waits for a permit, so that the test can make others queue up behind it.
    struct Adder {
        gate: Semaphore,
        /// Jobs inside the runner (at the gate or past it).
        entered: std::sync::atomic::AtomicUsize,
        batches: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl BatchRunner for Adder {
        async fn run(
            &self,
            _key: &WorkerKey,
            states: BTreeMap<&str, Option<&RawValue>>,
            steps: &[BatchStep<'_>],
        ) -> Result<BTreeMap<String, Box<RawValue>>, Failure> {
            self.entered
                .fetch_add(states.len(), std::sync::atomic::Ordering::SeqCst);
            let _permit = self.gate.acquire().await.expect("gate");
            self.batches.lock().push(states.keys().map(|k| k.to_string()).collect());
            let mut values: BTreeMap<String, i64> = states
                .iter()
                .map(|(k, v)| (k.to_string(), v.map_or(0, |v| v.get().parse().expect("a number"))))
                .collect();
            for (index, step) in steps.iter().enumerate() {
                let data: serde_json::Value = serde_json::from_str(step.event.data.get()).expect("json");
                if data["hang"] == true {
                    return Err(Failure::Timeout(Duration::from_secs(5)));
                }
                if data["throw"] == true {
                    return Err(Failure::UserException {
                        exception_type: "System.Exception".into(),
                        message: "no".into(),
                        event_index: Some(index as u64),
                    });
                }
                *values.entry(step.key.to_owned()).or_default() += data["add"].as_i64().expect("add");
            }
            Ok(values
                .into_iter()
                .map(|(k, v)| (k, RawValue::from_string(v.to_string()).expect("json")))
                .collect())
        }
    }

    fn key() -> WorkerKey {
        WorkerKey {
            scope: "tenant-1".into(),
            artifact: "a".into(),
        }
    }

    fn job(aggregate: &str, data: &[&str]) -> Job {
        Job {
            aggregate_id: aggregate.into(),
            aggregate_type: "order".into(),
            state: Some(RawValue::from_string("10".into()).expect("json")),
            events: data
                .iter()
                .enumerate()
                .map(|(i, d)| JobEvent {
                    event_id: format!("e{i}"),
                    event_type: "Added".into(),
                    version: i as u64 + 1,
                    timestamp: OffsetDateTime::UNIX_EPOCH,
                    data: RawValue::from_string((*d).to_owned()).expect("json"),
                    metadata: None,
                    correlation_id: None,
                    causation_id: None,
                })
                .collect(),
        }
    }

    /// Starts `jobs` while the runner is held, lets it go, and gives their results in order.
    async fn run_held(adder: &Arc<Adder>, jobs: Vec<Job>) -> Vec<JobResult> {
        let queues = ApplyQueues::new(adder.clone(), Histogram::new([1.0]));
        let mut pending = Vec::new();
        for job in jobs {
            let queues = queues.clone();
            pending.push(tokio::spawn(async move { queues.apply(&key(), job).await }));
            tokio::task::yield_now().await;
        }
        // Every job is queued (or held in the runner) before the runner may go on.
        let queued = || queues.queues.lock().get(&key()).map_or(0, |q| q.waiting.len());
        while queued() + adder.entered.load(std::sync::atomic::Ordering::SeqCst) < pending.len() {
            tokio::task::yield_now().await;
        }
        adder.gate.add_permits(1000);
        let mut results = Vec::new();
        for job in pending {
            results.push(job.await.expect("a job"));
        }
        results
    }

    impl Adder {
        fn new() -> Arc<Adder> {
            Arc::new(Adder {
                gate: Semaphore::new(0),
                entered: Default::default(),
                batches: Mutex::default(),
            })
        }
    }

    fn value(result: &JobResult) -> i64 {
        result.as_ref().expect("a state").get().parse().expect("a number")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn appends_that_wait_together_share_a_batch_and_get_their_own_states() {
        let adder = Adder::new();
        let jobs = (0..6)
            .map(|n| job(&format!("order_{n}"), &[r#"{"add":1}"#, r#"{"add":2}"#]))
            .collect();
        let results = run_held(&adder, jobs).await;
        assert!(results.iter().all(|r| value(r) == 13), "{results:?}");
        let batches = adder.batches.lock();
        assert!(batches.len() < 6, "some appends shared a round trip: {batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 6);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_aggregate_appears_once_per_batch() {
        let adder = Adder::new();
        let jobs = vec![
            job("order_1", &[r#"{"add":1}"#]),
            job("order_2", &[r#"{"add":1}"#]),
            job("order_2", &[r#"{"add":5}"#]),
            job("order_3", &[r#"{"add":1}"#]),
        ];
        let results = run_held(&adder, jobs).await;
        assert_eq!(results.iter().map(value).collect::<Vec<_>>(), [11, 11, 15, 11]);
        for batch in adder.batches.lock().iter() {
            let distinct: HashSet<&String> = batch.iter().collect();
            assert_eq!(distinct.len(), batch.len(), "{batch:?}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_exception_fails_only_the_append_that_threw() {
        let adder = Adder::new();
        let jobs = vec![
            job("order_1", &[r#"{"add":1}"#]),
            job("order_2", &[r#"{"add":1}"#]),
            job("order_3", &[r#"{"add":1}"#, r#"{"throw":true}"#]),
            job("order_4", &[r#"{"add":1}"#]),
        ];
        let results = run_held(&adder, jobs).await;
        assert_eq!(value(&results[0]), 11);
        assert_eq!(value(&results[1]), 11);
        assert_eq!(value(&results[3]), 11);
        match &results[2] {
            Err(Failure::UserException { event_index, .. }) => {
                assert_eq!(*event_index, Some(1), "counted within the append's own events")
            }
            other => panic!("the throwing append: {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_that_times_out_is_run_again_alone_and_the_culprit_is_quarantined() {
        let adder = Adder::new();
        let jobs = vec![
            job("order_1", &[r#"{"add":1}"#]),
            job("order_2", &[r#"{"add":1}"#]),
            job("order_3", &[r#"{"hang":true}"#]),
            job("order_4", &[r#"{"add":1}"#]),
        ];
        let queues_results = run_held(&adder, jobs).await;
        assert_eq!(value(&queues_results[0]), 11);
        assert_eq!(value(&queues_results[1]), 11);
        assert_eq!(value(&queues_results[3]), 11);
        assert!(
            matches!(queues_results[2], Err(Failure::Timeout(_))),
            "{:?}",
            queues_results[2]
        );
        let batches = adder.batches.lock().clone();
        let alone: Vec<&Vec<String>> = batches.iter().filter(|b| b == &&vec!["order_3".to_string()]).collect();
        assert!(!alone.is_empty(), "the culprit ran alone: {batches:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_quarantined_aggregate_runs_alone() {
        let adder = Adder::new();
        adder.gate.add_permits(1000);
        let queues = ApplyQueues::new(adder.clone(), Histogram::new([1.0]));
        let failed = queues.apply(&key(), job("order_9", &[r#"{"hang":true}"#])).await;
        assert!(matches!(failed, Err(Failure::Timeout(_))));
        assert!(queues.is_quarantined(&key(), "order_9"));
        assert!(!queues.is_quarantined(&key(), "order_1"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_batch_calls_in_a_second_dispatcher_for_the_others() {
        let adder = Adder::new();
        let queues = ApplyQueues::new(adder.clone(), Histogram::new([1.0]));
        let entered = || adder.entered.load(std::sync::atomic::Ordering::SeqCst);
        let slow = {
            let queues = queues.clone();
            tokio::spawn(async move { queues.apply(&key(), job("order_1", &[r#"{"add":1}"#])).await })
        };
        while entered() < 1 {
            tokio::task::yield_now().await;
        }
        let other = {
            let queues = queues.clone();
            tokio::spawn(async move { queues.apply(&key(), job("order_2", &[r#"{"add":2}"#])).await })
        };
        // The first batch is held in the runner; the second append gets a runner of its own once that one is slow.
        tokio::time::timeout(Duration::from_secs(5), async {
            while entered() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the other append ran beside the slow batch");
        adder.gate.add_permits(10);
        assert_eq!(value(&slow.await.expect("the slow append")), 11);
        assert_eq!(value(&other.await.expect("the other append")), 12);
    }
}
