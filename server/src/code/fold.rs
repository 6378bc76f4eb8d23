//! Folding an aggregate's events through its reducer, outside the shard writer: catch a snapshot up to the stream
//! (or rebuild it when other code made it), apply the request's events, then commit events and state together with a
//! check that the aggregate did not move meanwhile; if it did, start again from where it is now.
//!
//! Reducers see `GlobalPosition = 0`: positions are assigned at commit, after the reducer ran, and a rebuild must see
//! what the first run saw so that it gives the same state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::apply_queue::{ApplyQueues, Job, JobEvent};
use super::reducers::BoundReducer;
use crate::catalog::TenantId;
use crate::metrics::{CodeMetrics, OutcomeLabel};
use crate::runtime::Failure;
use crate::store::{
    AggregateHead, AppendError, AppendOutcome, AppendRequest, EventStore, NewEvent, RecordedEvent, SnapshotWrite,
    StoreError,
};

/// Events read (and folded) per round while catching a snapshot up.
const CATCH_UP_PAGE: u32 = 1000;
/// How long an append may keep losing the race for its aggregate before it gives up.
const MOVED_DEADLINE: Duration = Duration::from_secs(10);
/// The pause before trying again when the events to fold are committed but not durable yet.
const DURABILITY_WAIT: Duration = Duration::from_millis(1);

/// Why a fold gave no state.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// The user's code failed on the event at `version` (when known).
    #[error("reducer {reducer_id} failed: {failure}")]
    Reducer {
        reducer_id: String,
        failure: Failure,
        version: Option<u64>,
    },
    #[error(transparent)]
    Append(AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the aggregate kept moving for {0:?} while its state was computed")]
    Contention(Duration),
    #[error("the stored state of the aggregate is not JSON: {0}")]
    CorruptState(String),
}

/// A state as of a version.
#[derive(Debug, Clone)]
pub struct Folded {
    pub version: u64,
    /// `None` only before the first event.
    pub state: Option<Box<RawValue>>,
    /// When the last folded event was recorded.
    pub last_modified: Option<OffsetDateTime>,
    /// Whether the stored snapshot already is this state.
    pub stored: bool,
}

pub struct Folder<'a> {
    pub store: &'a Arc<dyn EventStore>,
    pub metrics: &'a CodeMetrics,
    pub queues: &'a Arc<ApplyQueues>,
    pub tenant: TenantId,
    pub reducer: &'a BoundReducer,
}

impl Folder<'_> {
    /// Appends `request` with the state its events lead to. `head` is the aggregate as last read (`None`: new).
    pub async fn append(
        &self,
        mut request: AppendRequest,
        mut head: Option<AggregateHead>,
    ) -> Result<(AppendOutcome, Option<Box<RawValue>>), FoldError> {
        let started = Instant::now();
        let recorded_at = request.recorded_at.unwrap_or_else(OffsetDateTime::now_utc);
        request.recorded_at = Some(recorded_at);
        loop {
            let aggregate_type = match &head {
                Some(head) => head.aggregate_type.clone(),
                None => request
                    .explicit_type
                    .clone()
                    .or_else(|| request.inferred_type.clone())
                    .unwrap_or_default(),
            };
            let wanted = head.as_ref().map_or(0, |h| h.version);
            let base = self.catch_up(&request.aggregate_id, head.as_ref()).await?;
            let state = self.apply_new(&request, &aggregate_type, &base, recorded_at).await?;
            request.snapshot = Some(SnapshotWrite {
                base_version: base.version,
                reducer_id: self.reducer.reducer_id.clone(),
                state: state.get().to_owned(),
            });
            match self.store.append(self.tenant, request.clone()).await {
                Ok(outcome) if outcome.duplicate => {
                    let state = outcome.state.clone().and_then(|s| RawValue::from_string(s).ok());
                    return Ok((outcome, state));
                }
                Ok(outcome) => return Ok((outcome, Some(state))),
                Err(AppendError::Moved(now)) => {
                    self.metrics.reducer_retries.inc();
                    if started.elapsed() > MOVED_DEADLINE {
                        return Err(FoldError::Contention(MOVED_DEADLINE));
                    }
                    if base.version < wanted {
                        // The events between were committed but are not durable yet, so readers cannot fold them.
                        tokio::time::sleep(DURABILITY_WAIT).await;
                    }
                    head = Some(*now);
                }
                Err(error) => return Err(FoldError::Append(error)),
            }
        }
    }

    /// The state at `head` (as far as its events are durable), from the snapshot when it is the reducer's.
    pub async fn catch_up(&self, aggregate_id: &str, head: Option<&AggregateHead>) -> Result<Folded, FoldError> {
        let Some(head) = head else {
            return Ok(Folded {
                version: 0,
                state: None,
                last_modified: None,
                stored: true,
            });
        };
        let mut folded = match &head.snapshot {
            Some(snapshot) if snapshot.reducer_id == self.reducer.reducer_id && snapshot.version <= head.version => {
                Folded {
                    version: snapshot.version,
                    state: Some(
                        RawValue::from_string(snapshot.state.clone())
                            .map_err(|e| FoldError::CorruptState(e.to_string()))?,
                    ),
                    last_modified: Some(snapshot.updated_at),
                    stored: true,
                }
            }
            _ => Folded {
                version: 0,
                state: None,
                last_modified: None,
                stored: false,
            },
        };
        while folded.version < head.version {
            let Some(page) = self
                .store
                .read_stream(self.tenant, aggregate_id, folded.version + 1, CATCH_UP_PAGE)
                .await?
            else {
                break;
            };
            let events: Vec<&RecordedEvent> = page.events.iter().filter(|e| e.version <= head.version).collect();
            let Some(last) = events.last() else { break };
            let (version, at) = (last.version, last.recorded_at);
            folded.state = Some(self.apply_recorded(folded.state.as_deref(), &events).await?);
            folded.version = version;
            folded.last_modified = Some(at);
            folded.stored = false;
        }
        Ok(folded)
    }

    async fn apply_recorded(
        &self,
        state: Option<&RawValue>,
        events: &[&RecordedEvent],
    ) -> Result<Box<RawValue>, FoldError> {
        let owned: Vec<JobEvent> = events
            .iter()
            .map(|e| {
                Ok(JobEvent {
                    event_id: e.event_id.to_string(),
                    event_type: e.event_type.clone(),
                    version: e.version,
                    timestamp: e.recorded_at,
                    data: raw(&e.data)?,
                    metadata: e.metadata.as_deref().map(raw).transpose()?,
                    correlation_id: e.correlation_id.clone(),
                    causation_id: e.causation_id.clone(),
                })
            })
            .collect::<Result<_, FoldError>>()?;
        let first = events
            .first()
            .map(|e| (e.aggregate_id.as_str(), e.aggregate_type.as_str()));
        let (aggregate_id, aggregate_type) = first.unwrap_or(("", ""));
        self.run(state, aggregate_id, aggregate_type, owned).await
    }

    async fn apply_new(
        &self,
        request: &AppendRequest,
        aggregate_type: &str,
        base: &Folded,
        recorded_at: OffsetDateTime,
    ) -> Result<Box<RawValue>, FoldError> {
        let owned: Vec<JobEvent> = (base.version + 1..)
            .zip(&request.events)
            .map(|(version, e): (u64, &NewEvent)| {
                Ok(JobEvent {
                    event_id: e.event_id.to_string(),
                    event_type: e.event_type.clone(),
                    version,
                    timestamp: recorded_at,
                    data: raw(&e.data)?,
                    metadata: e.metadata.as_deref().map(raw).transpose()?,
                    correlation_id: e.correlation_id.clone(),
                    causation_id: e.causation_id.clone(),
                })
            })
            .collect::<Result<_, FoldError>>()?;
        self.run(base.state.as_deref(), &request.aggregate_id, aggregate_type, owned)
            .await
    }

    /// `Apply` of `events` in order, from `state`: in a warm worker, sharing its round trip with other appends
    /// that wait for the same reducer.
    async fn run(
        &self,
        state: Option<&RawValue>,
        aggregate_id: &str,
        aggregate_type: &str,
        events: Vec<JobEvent>,
    ) -> Result<Box<RawValue>, FoldError> {
        let first_version = events.first().map_or(0, |e| e.version);
        let job = Job {
            aggregate_id: aggregate_id.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            state: state.map(ToOwned::to_owned),
            events,
        };
        let started = Instant::now();
        let result = self.queues.apply(&self.reducer.worker_key, job).await;
        self.metrics.reducer_duration.observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Failure::Timeout(_)) => "timeout",
            Err(Failure::UserException { .. } | Failure::OutOfMemory | Failure::Crashed(_)) => "failed",
            Err(_) => "unavailable",
        };
        self.metrics.reducer_runs.get_or_create(&OutcomeLabel { outcome }).inc();
        result.map_err(|failure| {
            let version = match &failure {
                Failure::UserException { event_index, .. } => event_index.map(|i| first_version + i),
                _ => None,
            };
            FoldError::Reducer {
                reducer_id: self.reducer.reducer_id.clone(),
                failure,
                version,
            }
        })
    }
}

fn raw(json: &str) -> Result<Box<RawValue>, FoldError> {
    RawValue::from_string(json.to_owned()).map_err(|e| FoldError::CorruptState(format!("an event's JSON: {e}")))
}
