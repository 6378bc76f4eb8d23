//! Artifacts at run time: jailed .NET workers in the executor's pool, keyed by scope (the caller's isolation unit,
//! e.g. a tenant) and artifact, so one tenant's workers never run another's code. Every new worker is set up by
//! loading its artifact; the server verifies the signature before it sends the bytes, and the worker again before it
//! loads them. Failures come back typed.

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
    ApplyBatchRequest, ApplyRequest, EncodedRows, KeyResponse, KeysResponse, LoadRequest, ResolveKeyRequest,
    ResolveKeysRequest, StateResponse, StatesResponse, WorkerEvent,
};

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
    pool: Pool<WorkerKey>,
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

    async fn call<T: DeserializeOwned>(
        &self,
        key: &WorkerKey,
        request: &(impl Serialize + Sync),
    ) -> Result<T, Failure> {
        if !self
            .artifacts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&key.artifact)
        {
            return Err(Failure::NotRegistered(key.artifact.clone()));
        }
        // Serialized by the worker straight into its frame buffer: a batch is not copied on the way.
        let answer = self.pool.call(key, request).await.map_err(from_pool)?;
        let ok = answer.map_err(from_user_error)?;
        serde_json::from_str(ok.get()).map_err(|e| Failure::Protocol(format!("an answer that cannot be read: {e}")))
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

fn from_pool(error: PoolError) -> Failure {
    match error {
        PoolError::Exhausted(waited) => Failure::Unavailable(format!("every worker stayed busy for {waited:?}")),
        PoolError::Worker(worker) => from_worker(worker),
    }
}

fn from_worker(error: WorkerError) -> Failure {
    match error {
        WorkerError::Timeout(limit) => Failure::Timeout(limit),
        WorkerError::OutOfMemory => Failure::OutOfMemory,
        WorkerError::Crashed { outcome, stderr } => Failure::Crashed(crash_reason(&outcome, &stderr)),
        WorkerError::Setup(refused) => from_user_error(refused),
        WorkerError::Start(error) => Failure::Unavailable(format!("start a worker: {error}")),
        WorkerError::Protocol(violation) => Failure::Protocol(violation.to_string()),
        WorkerError::Broken => Failure::Protocol("the worker is broken".into()),
    }
}

fn from_user_error(error: UserError) -> Failure {
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
