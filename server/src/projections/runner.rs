//! One projection version running through its tenant's log: read the next events after its checkpoint, run them
//! through `ResolveKey` and `Apply` in a worker's projection session, and commit the changed states with the new
//! checkpoint; once at the head, wait for the log to grow. A pending version that reaches the head swaps itself in.
//!
//! - The log is read in position order and is gapless, so a session's `n`th event is at `base + n`: failures that
//!   name an event index name a position.
//! - States and checkpoint commit together (`store.commit`): a restart resumes after the last committed event and
//!   runs the rest again from the stored states, so no event is applied twice to a stored state, none skipped.
//! - A batch that times out, crashes or runs out of memory says nothing about which event did it: the events from
//!   the checkpoint to there are run again one at a time, and the one that fails again is the one reported.
//! - While the worker may need stored states (the session is not fresh, or it let states go), one batch is in
//!   flight at a time; otherwise the next batch is sent while the worker runs the current one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::service::{LiveStats, Shared};
use super::store::{Change, Committed, Swapped, Version, VersionFailure, VersionStatus};
use crate::runtime::Failure;
use crate::runtime::projection_session::{BatchAnswer, SessionAnswer};
use crate::runtime::protocol::{BatchStep, EncodedRows, WorkerEvent, stored_json};
use crate::runtime::workers::WorkerKey;
use crate::store::log_slab::{LogSlab, SlabEvent};

/// Why a session ended.
enum SessionEnd {
    /// The version no longer runs, or the server stops.
    Stopped,
    /// Idle: the worker went back to the pool; a new session starts when the log grows.
    Idle,
    Failed(VersionFailure),
    /// Run again from the checkpoint, one event at a time up to this position.
    Probe(u64),
    /// Not the user's fault (no worker, storage): try again later.
    Retry(String),
}

/// A batch sent and not yet answered.
struct InFlight {
    last: u64,
    events: u64,
}

pub(super) struct Runner {
    shared: Arc<Shared>,
    version: Version,
    key: WorkerKey,
    stats: Arc<LiveStats>,
    stop: watch::Receiver<bool>,
    /// Changes of a pending version near the head, kept for the swap (an active version records its own).
    pending_changes: VecDeque<Change>,
    /// Where the catch-up's time went, logged when the version becomes active.
    timings: Timings,
}

#[derive(Debug)]
struct Timings {
    started: Instant,
    read: Duration,
    encode: Duration,
    wait: Duration,
    commit: Duration,
    /// The worker's own account, summed over batches (µs).
    worker: BTreeMap<String, u64>,
}

impl Runner {
    pub fn new(shared: Arc<Shared>, version: Version, stats: Arc<LiveStats>, stop: watch::Receiver<bool>) -> Self {
        let key = WorkerKey {
            scope: crate::code::reducers::scope_of(version.tenant),
            artifact: version.address.clone(),
        };
        Runner {
            shared,
            version,
            key,
            stats,
            stop,
            pending_changes: VecDeque::new(),
            timings: Timings {
                started: Instant::now(),
                read: Duration::ZERO,
                encode: Duration::ZERO,
                wait: Duration::ZERO,
                commit: Duration::ZERO,
                worker: BTreeMap::new(),
            },
        }
    }

    pub async fn run(mut self) {
        let mut probe: Option<u64> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.stopping() {
                return;
            }
            let end = self.session(&mut probe).await;
            match end {
                SessionEnd::Stopped => return,
                SessionEnd::Idle => {
                    backoff = Duration::from_millis(100);
                    if !self.wait_for_events().await {
                        return;
                    }
                }
                SessionEnd::Probe(until) => probe = Some(until),
                SessionEnd::Failed(failure) => {
                    tracing::warn!(
                        projection = %self.version.projection_id,
                        version = self.version.version_id,
                        position = failure.position,
                        error = %failure.message,
                        "a projection version stopped at a failing event"
                    );
                    self.shared.metrics.failed();
                    let store = self.shared.store.clone();
                    let version_id = self.version.version_id;
                    let recorded = tokio::task::spawn_blocking(move || store.fail(version_id, &failure)).await;
                    if !matches!(recorded, Ok(Ok(()))) {
                        tracing::error!(version = version_id, "recording a projection version's failure failed");
                    }
                    self.shared.forget(version_id);
                    return;
                }
                SessionEnd::Retry(reason) => {
                    tracing::warn!(projection = %self.version.projection_id, version = self.version.version_id,
                        %reason, retry_in = ?backoff, "a projection version cannot run now");
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn is_active(&self) -> bool {
        self.version.status == VersionStatus::Active
    }

    /// Waits until the log has events after the checkpoint; false when the runner should stop instead.
    async fn wait_for_events(&mut self) -> bool {
        let mut heads = self.shared.events.watch_log(self.version.tenant);
        loop {
            heads.borrow_and_update();
            match self
                .shared
                .events
                .read_log(self.version.tenant, self.version.position, 1)
                .await
            {
                Ok(page) if !page.events.is_empty() => return true,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reading a tenant's log for a projection"),
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return false },
                _ = stop.changed() => return false,
            }
        }
    }

    async fn session(&mut self, probe: &mut Option<u64>) -> SessionEnd {
        let settings = self.shared.settings.clone();
        let Some(workers) = self.shared.workers() else {
            return SessionEnd::Retry("user code is disabled on this server".into());
        };
        if let Err(failure) = self.shared.ensure_registered(&self.version) {
            return SessionEnd::Retry(failure);
        }
        let fresh = self.version.position == 0;
        let mut session = match workers.projection_session(&self.key, fresh).await {
            Ok(session) => session,
            Err(failure) => return SessionEnd::Retry(failure.to_string()),
        };
        let base = self.version.position;
        let tenant = self.version.tenant;
        let mut may_need = !fresh;
        let mut sent = base;
        let mut answered = base;
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut flush_owed: Option<u64> = None;
        let mut since_flush = 0u64;
        let mut last_flush = Instant::now();
        let mut resident = 0usize;
        let mut recording = self.is_active();
        let mut changes: Vec<Change> = Vec::new();
        let mut heads = self.shared.events.watch_log(tenant);
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.stopping() {
                return SessionEnd::Stopped;
            }
            if let Some(until) = *probe
                && answered >= until
            {
                *probe = None;
            }
            // Send what the worker can take.
            let depth = if may_need || probe.is_some() {
                1
            } else {
                settings.pipeline
            };
            let mut at_head = false;
            while flush_owed.is_none() && in_flight.len() < depth {
                heads.borrow_and_update();
                let limit = if probe.is_some() { 1 } else { settings.batch_events };
                let reading = Instant::now();
                let page = self.shared.events.read_log_slab(tenant, sent, limit).await;
                self.timings.read += reading.elapsed();
                let page = match page {
                    Ok(page) => page,
                    Err(error) => return SessionEnd::Retry(format!("read the log: {error}")),
                };
                self.stats.set_head(page.head_position);
                if page.is_empty() {
                    at_head = true;
                    break;
                }
                if let Some(gap) = first_gap(sent, page.iter().map(|e| e.global_position)) {
                    return SessionEnd::Retry(format!("the log skips from {sent} to {gap}"));
                }
                if !recording && page.len() < limit as usize {
                    // Near the head: a pending version keeps its changes from here for the swap.
                    recording = true;
                }
                let last = page.last_position().unwrap_or(sent);
                let encoding = Instant::now();
                let rows = encode(&page);
                self.timings.encode += encoding.elapsed();
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(error) => return SessionEnd::Retry(format!("encode events: {error}")),
                };
                if let Err(failure) = session.send_batch(&rows, recording).await {
                    return self.failed(failure, probe, base, answered, sent).await;
                }
                in_flight.push_back(InFlight {
                    last,
                    events: page.len() as u64,
                });
                sent = last;
                idle_since = None;
            }
            if in_flight.is_empty() && flush_owed.is_none() {
                if sent > self.version.position {
                    // At the head with events applied: commit them now, so queries see them.
                    if let Err(failure) = session.send_flush(settings.keep_resident).await {
                        return self.failed(failure, probe, base, answered, sent).await;
                    }
                    flush_owed = Some(sent);
                    continue;
                }
                if at_head && !self.is_active() {
                    match self.swap(&changes).await {
                        Ok(true) => {
                            changes.clear();
                            recording = true;
                            continue;
                        }
                        Ok(false) => {
                            if self.stopping() || !self.version.runs() {
                                return SessionEnd::Stopped;
                            }
                            continue;
                        }
                        Err(reason) => return SessionEnd::Retry(reason),
                    }
                }
                // Everything is committed: wait for the log to grow.
                let idle = *idle_since.get_or_insert_with(Instant::now);
                let remaining = settings.idle.saturating_sub(idle.elapsed());
                if remaining.is_zero() {
                    return match session.end().await {
                        Ok(()) => SessionEnd::Idle,
                        Err(failure) => SessionEnd::Retry(failure.to_string()),
                    };
                }
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = heads.changed() => {}
                    _ = stop.changed() => return SessionEnd::Stopped,
                    () = tokio::time::sleep(remaining) => {}
                }
                continue;
            }
            let waiting = Instant::now();
            // A version replaced while its worker runs a batch stops now: dropping the session kills the worker.
            let mut stop = self.stop.clone();
            let answer = tokio::select! {
                answer = session.receive() => answer,
                _ = stop.changed() => return SessionEnd::Stopped,
            };
            self.timings.wait += waiting.elapsed();
            let answer = match answer {
                Ok(answer) => answer,
                Err(failure) => return self.failed(failure, probe, base, answered, sent).await,
            };
            match answer {
                SessionAnswer::Batch(BatchAnswer::Need(keys)) => {
                    let store = self.shared.store.clone();
                    let version_id = self.version.version_id;
                    let loaded =
                        tokio::task::spawn_blocking(move || store.states(version_id, &keys).map(|s| (keys, s))).await;
                    let (keys, found) = match loaded {
                        Ok(Ok(loaded)) => loaded,
                        Ok(Err(error)) => return SessionEnd::Retry(format!("read stored states: {error}")),
                        Err(_) => return SessionEnd::Stopped,
                    };
                    let states: BTreeMap<&str, Option<&RawValue>> = keys
                        .iter()
                        .map(|key| (key.as_str(), found.get(key).map(|s| &**s)))
                        .collect();
                    if let Err(failure) = session.send_resume(states).await {
                        return self.failed(failure, probe, base, answered, sent).await;
                    }
                }
                SessionAnswer::Batch(BatchAnswer::Done(done)) => {
                    let Some(batch) = in_flight.pop_front() else {
                        return SessionEnd::Retry("the worker answered a batch nobody sent".into());
                    };
                    answered = batch.last;
                    since_flush += batch.events;
                    resident = done.resident;
                    for (part, us) in done.timings_us {
                        *self.timings.worker.entry(part).or_default() += us;
                    }
                    changes.extend(done.changes.into_iter().map(|(position, key, state)| Change {
                        position,
                        key,
                        state,
                    }));
                    self.shared.metrics.events(&self.version, batch.events);
                }
                SessionAnswer::Flushed(flushed) => {
                    let Some(to) = flush_owed.take() else {
                        return SessionEnd::Retry("the worker answered a flush nobody asked for".into());
                    };
                    if flushed.resident == 0 && resident > 0 {
                        // The worker let its states go: from now on it may ask for stored ones.
                        may_need = true;
                    }
                    resident = flushed.resident;
                    match self.commit(to, flushed.states, &mut changes).await {
                        Ok(true) => {}
                        Ok(false) => return SessionEnd::Stopped,
                        Err(reason) => return SessionEnd::Retry(reason),
                    }
                    since_flush = 0;
                    last_flush = Instant::now();
                }
            }
            if flush_owed.is_none()
                && sent > self.version.position
                && (since_flush >= settings.flush_events || last_flush.elapsed() >= settings.flush_interval)
            {
                if let Err(failure) = session.send_flush(settings.keep_resident).await {
                    return self.failed(failure, probe, base, answered, sent).await;
                }
                flush_owed = Some(sent);
            }
        }
    }

    /// Commits the flushed states with the checkpoint `to`; false when the version no longer runs.
    async fn commit(
        &mut self,
        to: u64,
        states: BTreeMap<String, Box<RawValue>>,
        changes: &mut Vec<Change>,
    ) -> Result<bool, String> {
        let from = self.version.position;
        let store = self.shared.store.clone();
        let version_id = self.version.version_id;
        let recorded: Vec<Change> = if self.is_active() {
            std::mem::take(changes)
        } else {
            // A pending version keeps its changes near the head for the swap, a bounded number of them.
            self.pending_changes.extend(changes.drain(..));
            while self.pending_changes.len() > self.shared.settings.pending_changes {
                self.pending_changes.pop_front();
            }
            Vec::new()
        };
        let committing = Instant::now();
        let committed =
            tokio::task::spawn_blocking(move || store.commit(version_id, from, to, &states, &recorded)).await;
        self.timings.commit += committing.elapsed();
        match committed {
            Ok(Ok(Committed::Done)) => {
                self.version.position = to;
                self.stats.committed(to);
                Ok(true)
            }
            Ok(Ok(Committed::Stopped)) => Ok(false),
            Ok(Err(error)) => Err(format!("commit states: {error}")),
            Err(_) => Ok(false),
        }
    }

    /// Tries to become the active version at the checkpoint; true when it did.
    async fn swap(&mut self, changes: &[Change]) -> Result<bool, String> {
        self.pending_changes.extend(changes.iter().cloned());
        let store = self.shared.store.clone();
        let version_id = self.version.version_id;
        let at = self.version.position;
        let kept: Vec<Change> = self.pending_changes.iter().cloned().collect();
        let swapped =
            tokio::task::spawn_blocking(move || store.swap(version_id, at, at, &BTreeMap::new(), &kept)).await;
        match swapped {
            Ok(Ok(Swapped::Done { superseded })) => {
                let timings = &self.timings;
                tracing::info!(projection = %self.version.projection_id, version = version_id, position = at,
                    ?superseded, took = ?timings.started.elapsed(), read = ?timings.read,
                    encode = ?timings.encode, waiting_for_the_worker = ?timings.wait, commit = ?timings.commit,
                    worker_us = ?timings.worker,
                    "a projection version is active");
                self.version.status = VersionStatus::Active;
                self.version.activated_at = Some(OffsetDateTime::now_utc());
                self.pending_changes.clear();
                if let Some(superseded) = superseded {
                    self.shared.retire(superseded);
                }
                Ok(true)
            }
            Ok(Ok(Swapped::Behind { active_position })) => {
                while self
                    .pending_changes
                    .front()
                    .is_some_and(|c| c.position <= active_position)
                {
                    self.pending_changes.pop_front();
                }
                // The active version is further along; another round, once the log has something new.
                let mut heads = self.shared.events.watch_log(self.version.tenant);
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = heads.changed() => {}
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                Ok(false)
            }
            Ok(Ok(Swapped::Stopped)) => {
                self.version.status = VersionStatus::Abandoned;
                Ok(false)
            }
            Ok(Err(error)) => Err(format!("swap versions: {error}")),
            Err(_) => Ok(false),
        }
    }

    /// What a failure of user code or its worker means for the version.
    async fn failed(
        &mut self,
        failure: Failure,
        probe: &Option<u64>,
        base: u64,
        answered: u64,
        sent: u64,
    ) -> SessionEnd {
        let (position, error) = match &failure {
            Failure::UserException {
                event_index: Some(index),
                ..
            } => (base + 1 + index, "user_exception"),
            Failure::UserException { event_index: None, .. }
            | Failure::Timeout(_)
            | Failure::Crashed(_)
            | Failure::OutOfMemory => {
                let unanswered = sent.saturating_sub(answered);
                if probe.is_none() && sent.saturating_sub(self.version.position) > 1 {
                    return SessionEnd::Probe(sent);
                }
                let error = match &failure {
                    Failure::Timeout(_) => "timeout",
                    Failure::OutOfMemory => "out_of_memory",
                    Failure::Crashed(_) => "crashed",
                    _ => "user_exception",
                };
                (if unanswered > 0 { answered + 1 } else { sent.max(1) }, error)
            }
            other => return SessionEnd::Retry(other.to_string()),
        };
        let (event_id, aggregate_id) = match self
            .shared
            .events
            .read_log(self.version.tenant, position.saturating_sub(1), 1)
            .await
        {
            Ok(page) => page
                .events
                .into_iter()
                .next()
                .filter(|e| e.global_position == position)
                .map_or((None, None), |e| (Some(e.event_id.to_string()), Some(e.aggregate_id))),
            Err(_) => (None, None),
        };
        let exception_type = match &failure {
            Failure::UserException { exception_type, .. } => Some(exception_type.clone()),
            _ => None,
        };
        let message = match &failure {
            Failure::UserException { message, .. } => message.clone(),
            other => other.to_string(),
        };
        SessionEnd::Failed(VersionFailure {
            position,
            event_id,
            aggregate_id,
            error: error.to_owned(),
            exception_type,
            message,
            failed_at_micros: crate::time_util::unix_micros(OffsetDateTime::now_utc()),
        })
    }
}

/// The position after `after` that `positions` does not start with, or where it skips one.
fn first_gap(after: u64, positions: impl Iterator<Item = u64>) -> Option<u64> {
    (after + 1..)
        .zip(positions)
        .find(|(expected, position)| position != expected)
        .map(|(_, position)| position)
}

/// The worker's rows for a page of the log (keys empty: the projection resolves them). The events' JSON goes as
/// stored, not parsed again.
fn encode(page: &LogSlab) -> Result<EncodedRows, String> {
    let events: Vec<SlabEvent<'_>> = page.iter().collect();
    let ids: Vec<[u8; 36]> = events
        .iter()
        .map(|e| {
            let mut id = [0u8; 36];
            e.event_id.hyphenated().encode_lower(&mut id);
            id
        })
        .collect();
    let worker_events: Vec<WorkerEvent<'_>> = events
        .iter()
        .zip(&ids)
        .map(|(e, id)| WorkerEvent {
            // A hyphenated UUID is ASCII.
            event_id: std::str::from_utf8(id).unwrap_or_default(),
            aggregate_id: e.aggregate_id,
            aggregate_type: e.aggregate_type,
            event_type: e.event_type,
            version: e.version,
            global_position: e.global_position,
            timestamp: crate::time_util::from_unix_micros(e.recorded_at_micros),
            data: stored_json(e.data),
            metadata: e.metadata.map(stored_json),
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
        })
        .collect();
    let steps: Vec<BatchStep<'_>> = worker_events.iter().map(|event| BatchStep { key: "", event }).collect();
    EncodedRows::encode(&steps).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_must_start_right_after_the_checkpoint_and_skip_nothing() {
        assert_eq!(first_gap(4, [5, 6].into_iter()), None);
        assert_eq!(first_gap(4, [6].into_iter()), Some(6));
        assert_eq!(first_gap(4, [5, 7].into_iter()), Some(7));
    }
}
