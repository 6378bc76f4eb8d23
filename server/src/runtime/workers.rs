//! Artifacts at run time: jailed .NET workers in the executor's pool, keyed by scope (the caller's isolation unit,
//! e.g. a tenant) and artifact, so one tenant's workers never run another's code. Every new worker is set up by
//! loading its artifact; the server verifies the signature before it sends the bytes, and the worker again before it
//! loads them. Failures come back typed.
//!
//! A replay ([`ArtifactWorkers::replay`]) holds one worker for its whole length: the worker keeps the keyed states
//! between batches (a session), so no state travels until the end, and the next batch is sent while the worker
//! runs the current one ([`REPLAY_DEPTH`] in flight), so the worker finds it waiting instead of waiting for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use hapnd_executor::worker::protocol::UserError;
use hapnd_executor::{Outcome, Pool, PoolConfig, PoolError, Sandbox, WorkerError};
use hapnd_policy::signing::ArtifactPublicKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::artifact::Artifact;
use super::dotnet::DotnetHost;
use super::protocol::{
    ApplyBatchRequest, ApplyRequest, EncodedRows, KeyResponse, KeysResponse, LoadRequest, ReplayBeginRequest,
    ReplayEndRequest, ResolveKeyRequest, ResolveKeysRequest, SessionBatchRequest, SessionBatchResponse, StateResponse,
    StatesResponse, WorkerEvent,
};
use super::session_worker::SessionWorker;

/// Batches of a replay in flight at once: one the worker runs, one waiting in its input. With the end of the
/// replay behind them, a worker holds up to `REPLAY_DEPTH + 1` requests (`WorkerConfig::max_in_flight`, 4 by
/// default).
pub const REPLAY_DEPTH: usize = 2;

/// Which workers serve a call: the caller's scope and the artifact's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerKey {
    pub scope: String,
    pub artifact: String,
}

/// Why running user code gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("the user code threw {exception_type}: {message}")]
    UserException {
        exception_type: String,
        message: String,
        /// The event of the request that threw (0 for a single event).
        event_index: Option<u64>,
    },
    #[error("the user code took longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the user code ran out of memory")]
    OutOfMemory,
    #[error("the worker crashed: {0}")]
    Crashed(String),
    #[error("the artifact {0} is not registered")]
    NotRegistered(String),
    #[error("the artifact's signature does not verify")]
    BadSignature,
    #[error("the worker refused the request ({kind}): {message}")]
    Refused { kind: String, message: String },
    #[error("no worker is available: {0}")]
    Unavailable(String),
    #[error("the worker broke the protocol: {0}")]
    Protocol(String),
}

pub struct ArtifactWorkers {
    pub(super) pool: Pool<WorkerKey>,
    artifacts: Arc<RwLock<HashMap<String, Arc<Artifact>>>>,
    public_key: ArtifactPublicKey,
}

impl ArtifactWorkers {
    pub fn new(sandbox: Arc<Sandbox>, host: &DotnetHost, public_key: ArtifactPublicKey, config: PoolConfig) -> Self {
        let spec = host.worker_spec(&public_key.to_bytes());
        let artifacts: Arc<RwLock<HashMap<String, Arc<Artifact>>>> = Arc::default();
        let known = artifacts.clone();
        let pool = Pool::with_setup(
            sandbox,
            config,
            move |_: &WorkerKey| spec.clone(),
            move |key: &WorkerKey| {
                let artifacts = known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                artifacts.get(&key.artifact).and_then(|artifact| load_request(artifact))
            },
        );
        ArtifactWorkers {
            pool,
            artifacts,
            public_key,
        }
    }

    /// Makes an artifact runnable, once its signature verified.
    pub fn register(&self, artifact: Artifact) -> Result<(), Failure> {
        artifact.verify(&self.public_key).map_err(|_| Failure::BadSignature)?;
        self.artifacts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(artifact.address.clone(), Arc::new(artifact));
        Ok(())
    }

    /// Starts the key's ready workers (loading the artifact) and waits for them.
    pub async fn prewarm(&self, key: &WorkerKey) {
        self.pool.prewarm(key).await;
    }

    /// `Apply` of one event to one state (`None`: no state yet); the new state.
    pub async fn apply(
        &self,
        key: &WorkerKey,
        state: Option<&RawValue>,
        event: &WorkerEvent<'_>,
    ) -> Result<Box<RawValue>, Failure> {
        let response: StateResponse = self.call(key, &ApplyRequest { state, event }).await?;
        Ok(response.state)
    }

    /// A projection's key for one event.
    pub async fn resolve_key(&self, key: &WorkerKey, event: &WorkerEvent<'_>) -> Result<Option<String>, Failure> {
        let response: KeyResponse = self.call(key, &ResolveKeyRequest { event }).await?;
        Ok(response.key)
    }

    /// A projection's keys for many events, in one round trip.
    pub async fn resolve_keys(
        &self,
        key: &WorkerKey,
        events: &[WorkerEvent<'_>],
    ) -> Result<Vec<Option<String>>, Failure> {
        let response: KeysResponse = self.call(key, &ResolveKeysRequest { events }).await?;
        if response.keys.len() != events.len() {
            return Err(Failure::Protocol(format!(
                "{} keys for {} events",
                response.keys.len(),
                events.len()
            )));
        }
        Ok(response.keys)
    }

    /// Events (rows encoded with [`EncodedRows::encode`]) folded in order into keyed states (`states` holds the
    /// ones that exist), in one round trip; the final state of every key the events touched.
    pub async fn apply_batch(
        &self,
        key: &WorkerKey,
        states: BTreeMap<&str, Option<&RawValue>>,
        events: &EncodedRows,
    ) -> Result<StatesResponse, Failure> {
        self.call(key, &ApplyBatchRequest { states, events }).await
    }

    /// Opens a replay of events into keyed states (`states` holds the ones that exist) in one worker of `key`:
    /// batches go in with [`Replay::push`], and [`Replay::finish`] gives the final state of every key the events
    /// touched, as one [`ArtifactWorkers::apply_batch`] of all of them would.
    pub async fn replay(&self, key: &WorkerKey, states: BTreeMap<&str, Option<&RawValue>>) -> Result<Replay, Failure> {
        self.ensure_registered(key)?;
        let worker = self.pool.acquire(key).await.map_err(from_pool)?;
        let mut replay = Replay {
            worker: SessionWorker::new(worker),
            events: 0,
            timings_us: BTreeMap::new(),
        };
        replay.worker.send(&ReplayBeginRequest { states }, Owed::Begin).await?;
        Ok(replay)
    }

    pub(super) fn ensure_registered(&self, key: &WorkerKey) -> Result<(), Failure> {
        if self
            .artifacts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&key.artifact)
        {
            Ok(())
        } else {
            Err(Failure::NotRegistered(key.artifact.clone()))
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        key: &WorkerKey,
        request: &(impl Serialize + Sync),
    ) -> Result<T, Failure> {
        self.ensure_registered(key)?;
        // Serialized by the worker straight into its frame buffer: a batch is not copied on the way.
        let answer = self.pool.call(key, request).await.map_err(from_pool)?;
        let ok = answer.map_err(from_user_error)?;
        serde_json::from_str(ok.get()).map_err(|e| Failure::Protocol(format!("an answer that cannot be read: {e}")))
    }
}

/// A replay in progress: one worker, held until [`Replay::finish`], keeping the keyed states between batches.
///
/// A failure (the user's code threw, a timeout, a crash) fails the replay: that call and every later one return it.
/// A user exception's `event_index` counts from the replay's first event. After a user exception the worker is
/// still good: the answers it owes for the batches sent behind the failed one are read, and it goes back to the
/// pool. A replay dropped before it finished (a cancelled caller) takes its worker with it: the worker is killed,
/// not returned with a session open or answers unread.
pub struct Replay {
    worker: SessionWorker<Owed>,
    events: u64,
    timings_us: BTreeMap<String, u64>,
}

/// How a replay ended: the final state of every key its events touched, and where the worker's time went.
#[derive(Debug)]
pub struct ReplayOutcome {
    pub states: BTreeMap<String, Box<RawValue>>,
    /// Summed over the batches, in microseconds, as in [`StatesResponse::timings_us`]: `read`, `apply`, `write`
    /// (the final states), `waitBefore` (the worker waiting for a batch) and `transfer` (receiving it).
    pub timings_us: BTreeMap<String, u64>,
    /// Events pushed.
    pub events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    Begin,
    Batch,
    End,
}

impl Replay {
    /// Sends one batch (rows encoded with [`EncodedRows::encode`]; a row's key names its state). When
    /// [`REPLAY_DEPTH`] requests are already in flight it first waits for the oldest answer, so the caller can
    /// prepare the next batch while the worker runs this one and the one before.
    pub async fn push(&mut self, events: &EncodedRows) -> Result<(), Failure> {
        self.worker.ensure_not_failed()?;
        while self.worker.in_flight() >= REPLAY_DEPTH {
            self.take_answer().await?;
        }
        self.worker.send(&SessionBatchRequest { events }, Owed::Batch).await?;
        self.events += events.len() as u64;
        Ok(())
    }

    /// Ends the replay: waits for every batch and returns the final states.
    pub async fn finish(mut self) -> Result<ReplayOutcome, Failure> {
        self.worker.send(&ReplayEndRequest {}, Owed::End).await?;
        loop {
            if let Some(states) = self.take_answer().await? {
                return Ok(ReplayOutcome {
                    states,
                    timings_us: std::mem::take(&mut self.timings_us),
                    events: self.events,
                });
            }
        }
    }

    /// Where the worker's time went so far, over the batches answered (see [`ReplayOutcome::timings_us`]).
    pub fn timings_us(&self) -> &BTreeMap<String, u64> {
        &self.timings_us
    }

    /// Reads the oldest answer owed: `Some(states)` for the end's.
    async fn take_answer(&mut self) -> Result<Option<BTreeMap<String, Box<RawValue>>>, Failure> {
        let (owed, ok) = self.worker.receive().await?;
        let unreadable = |e: serde_json::Error| Failure::Protocol(format!("an answer that cannot be read: {e}"));
        match owed {
            Owed::Begin => Ok(None),
            Owed::Batch => {
                let batch: SessionBatchResponse = match serde_json::from_str(ok.get()) {
                    Ok(batch) => batch,
                    Err(e) => return Err(self.worker.fail(unreadable(e))),
                };
                self.add_timings(batch.timings_us);
                Ok(None)
            }
            Owed::End => {
                self.worker.closed();
                let end: StatesResponse = match serde_json::from_str(ok.get()) {
                    Ok(end) => end,
                    Err(e) => return Err(self.worker.fail(unreadable(e))),
                };
                self.add_timings(end.timings_us);
                Ok(Some(end.states))
            }
        }
    }

    fn add_timings(&mut self, timings: BTreeMap<String, u64>) {
        for (part, us) in timings {
            *self.timings_us.entry(part).or_default() += us;
        }
    }
}

fn load_request(artifact: &Artifact) -> Option<Box<RawValue>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let request = LoadRequest {
        dll: &engine.encode(&artifact.dll),
        signature: &engine.encode(artifact.signature),
        class_name: &artifact.class_name,
        kind: artifact.kind.as_str(),
    };
    serde_json::value::to_raw_value(&request).ok()
}

pub(super) fn from_pool(error: PoolError) -> Failure {
    match error {
        PoolError::Exhausted(waited) => Failure::Unavailable(format!("every worker stayed busy for {waited:?}")),
        PoolError::Worker(worker) => from_worker(worker),
    }
}

pub(super) fn from_worker(error: WorkerError) -> Failure {
    match error {
        WorkerError::Timeout(limit) => Failure::Timeout(limit),
        WorkerError::OutOfMemory => Failure::OutOfMemory,
        WorkerError::Crashed { outcome, stderr } => Failure::Crashed(crash_reason(&outcome, &stderr)),
        WorkerError::Setup(refused) => from_user_error(refused),
        WorkerError::Start(error) => Failure::Unavailable(format!("start a worker: {error}")),
        WorkerError::Protocol(violation) => Failure::Protocol(violation.to_string()),
        WorkerError::Broken => Failure::Protocol("the worker is broken".into()),
        WorkerError::TooManyInFlight { .. } | WorkerError::NothingInFlight => Failure::Protocol(error.to_string()),
    }
}

pub(super) fn from_user_error(error: UserError) -> Failure {
    match error.kind.as_str() {
        "userException" => {
            let detail = error.detail.unwrap_or_default();
            Failure::UserException {
                exception_type: detail["exceptionType"]
                    .as_str()
                    .unwrap_or("System.Exception")
                    .to_owned(),
                message: error.message,
                event_index: detail["eventIndex"].as_u64(),
            }
        }
        "outOfMemory" => Failure::OutOfMemory,
        "badSignature" => Failure::BadSignature,
        _ => Failure::Refused {
            kind: error.kind,
            message: error.message,
        },
    }
}

/// One line saying how the worker died: the runtime's own last words (e.g. "Stack overflow.") when it left some.
fn crash_reason(outcome: &Outcome, stderr: &str) -> String {
    let last_words = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no message");
    format!("{outcome:?}: {last_words}")
}
