//! Reducers: uploads compiled in the background, reducers bound to aggregate types, and the appends and state reads
//! that run them. Bindings live in the registry and, for the append path, in memory; a bound reducer's artifact is
//! registered with the workers (its signature checked) before anything runs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use super::apply_queue::ApplyQueues;
use super::fold::{FoldError, Folder};
use super::heads::{DEFAULT_BUDGET_BYTES, HeadCache};
use super::registry::{Binding, ReducerInfo, Registry, RegistryError, Upload, UploadStatus};
use crate::catalog::TenantId;
use crate::metrics::{CodeMetrics, OutcomeLabel};
use crate::runtime::protocol::Diagnostic;
use crate::runtime::workers::WorkerKey;
use crate::runtime::{ArtifactKind, ArtifactWorkers, CompileRejection, Compiler};
use crate::store::{AggregateHead, AppendError, AppendOutcome, AppendRequest, EventStore, Snapshot, SnapshotWrite};

/// The diagnostic code of code uploaded to the wrong endpoint.
pub const WRONG_KIND: &str = "HAPND_WRONG_KIND";

/// Where a compiled projection upload goes (the projections engine): it records the version and answers the
/// projection's id, or why it could not.
pub trait ProjectionSink: Send + Sync {
    fn compiled(&self, upload: &Upload, artifact: crate::runtime::Artifact) -> Result<String, String>;
}

/// The jailed C# compiler and workers; absent when the host cannot run them.
pub struct CodeRuntime {
    pub compiler: Compiler,
    pub workers: Arc<ArtifactWorkers>,
    /// Appends waiting for the same reducer, batched into shared round trips.
    pub queues: Arc<ApplyQueues>,
}

impl CodeRuntime {
    pub fn new(compiler: Compiler, workers: ArtifactWorkers, metrics: &CodeMetrics) -> Self {
        let workers = Arc::new(workers);
        let queues = ApplyQueues::new(workers.clone(), metrics.reducer_batch_appends.clone());
        CodeRuntime {
            compiler,
            workers,
            queues,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("user code is disabled on this server: {0}")]
    Disabled(String),
    #[error("the tenant has no reducer {0}")]
    ReducerNotFound(String),
    #[error("reducer {reducer_id} cannot run: {reason}")]
    Unavailable { reducer_id: String, reason: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// A reducer bound to an aggregate type, ready to run.
#[derive(Debug)]
pub struct BoundReducer {
    pub tenant: TenantId,
    pub reducer_id: String,
    pub address: String,
    pub worker_key: WorkerKey,
    pub bound_at: OffsetDateTime,
    /// Set once its artifact is registered with the workers, so the append path asks nothing more.
    runnable: AtomicBool,
}

/// What a state read found.
#[derive(Debug)]
pub enum StateLookup {
    NoAggregate,
    NoReducer { aggregate_type: String },
    State(StateView),
}

#[derive(Debug)]
pub struct StateView {
    pub aggregate_type: String,
    pub version: u64,
    pub state: Box<RawValue>,
    pub last_modified: Option<OffsetDateTime>,
    pub reducer_id: String,
}

pub struct Reducers {
    registry: Arc<Registry>,
    runtime: Result<Arc<CodeRuntime>, String>,
    store: Arc<dyn EventStore>,
    metrics: CodeMetrics,
    heads: HeadCache,
    bindings: RwLock<HashMap<TenantId, HashMap<String, Arc<BoundReducer>>>>,
    /// Artifacts the workers know, per tenant.
    registered: Mutex<HashSet<(TenantId, String)>>,
    projections: Option<Arc<dyn ProjectionSink>>,
}

impl Reducers {
    /// Loads the bindings, makes their artifacts runnable, and compiles the uploads the last run did not finish.
    /// `runtime` is `Err(reason)` when the host cannot run user code.
    pub fn start(
        registry: Arc<Registry>,
        runtime: Result<Arc<CodeRuntime>, String>,
        store: Arc<dyn EventStore>,
        metrics: CodeMetrics,
        projections: Option<Arc<dyn ProjectionSink>>,
    ) -> Result<Arc<Self>, RegistryError> {
        let reducers = Arc::new(Reducers {
            projections,
            registry,
            runtime,
            store,
            metrics,
            heads: HeadCache::new(DEFAULT_BUDGET_BYTES),
            bindings: RwLock::default(),
            registered: Mutex::default(),
        });
        for binding in reducers.registry.bindings()? {
            match reducers.registry.reducer(binding.tenant, &binding.reducer_id)? {
                Some(info) => {
                    reducers.cache_binding(&binding, &info);
                }
                None => tracing::error!(reducer = %binding.reducer_id, "a binding names a reducer the registry lacks"),
            }
        }
        let bound: Vec<Arc<BoundReducer>> = reducers
            .bindings
            .read()
            .values()
            .flat_map(|types| types.values().cloned())
            .collect();
        for reducer in bound {
            if let Err(error) = reducers.ensure_runnable(reducer.tenant, &reducer) {
                tracing::error!(%error, "a bound reducer cannot run");
            }
        }
        for pending in reducers.registry.pending_uploads()? {
            tracing::info!(upload = %pending.upload.upload_id, "compiling an upload the last run did not finish");
            tokio::spawn(reducers.clone().compile(pending.upload, pending.files));
        }
        Ok(reducers)
    }

    /// Whether user code can run here; the reason when not.
    pub fn availability(&self) -> Result<(), String> {
        self.runtime.as_ref().map(drop).map_err(Clone::clone)
    }

    /// Records an upload and compiles it in the background.
    pub fn upload(
        self: &Arc<Self>,
        tenant: TenantId,
        kind: ArtifactKind,
        aggregate_type: Option<&str>,
        files: BTreeMap<String, String>,
    ) -> Result<Upload, CodeError> {
        self.availability().map_err(CodeError::Disabled)?;
        let upload = self.registry.create_upload(tenant, kind, aggregate_type, &files)?;
        tokio::spawn(self.clone().compile(upload.clone(), files));
        Ok(upload)
    }

    pub fn upload_status(&self, tenant: TenantId, upload_id: Uuid) -> Result<Option<Upload>, CodeError> {
        Ok(self.registry.upload(tenant, upload_id)?)
    }

    pub fn reducer(&self, tenant: TenantId, reducer_id: &str) -> Result<Option<ReducerInfo>, CodeError> {
        Ok(self.registry.reducer(tenant, reducer_id)?)
    }

    pub fn list(&self, tenant: TenantId) -> Result<Vec<ReducerInfo>, CodeError> {
        Ok(self.registry.reducers(tenant)?)
    }

    pub fn bind(&self, tenant: TenantId, aggregate_type: &str, reducer_id: &str) -> Result<Binding, CodeError> {
        let info = self
            .registry
            .reducer(tenant, reducer_id)?
            .ok_or_else(|| CodeError::ReducerNotFound(reducer_id.to_owned()))?;
        let binding = self.registry.bind(tenant, aggregate_type, reducer_id)?;
        let bound = self.cache_binding(&binding, &info);
        if let Err(error) = self.ensure_runnable(tenant, &bound) {
            tracing::error!(%error, "a reducer was bound that cannot run");
        }
        Ok(binding)
    }

    /// False when nothing was bound.
    pub fn unbind(&self, tenant: TenantId, aggregate_type: &str) -> Result<bool, CodeError> {
        let removed = self.registry.unbind(tenant, aggregate_type)?;
        if let Some(types) = self.bindings.write().get_mut(&tenant) {
            types.remove(aggregate_type);
        }
        Ok(removed)
    }

    /// The reducer bound to `aggregate_type`, if any; one map lookup, on every append.
    pub fn bound(&self, tenant: TenantId, aggregate_type: &str) -> Option<Arc<BoundReducer>> {
        self.bindings.read().get(&tenant)?.get(aggregate_type).cloned()
    }

    /// Whether the tenant has any reducer bound: appends of tenants without one skip the reducer path entirely.
    pub fn has_bindings(&self, tenant: TenantId) -> bool {
        self.bindings.read().get(&tenant).is_some_and(|types| !types.is_empty())
    }

    /// An append for a tenant with reducers bound (see [`Reducers::has_bindings`]): when the aggregate's type has
    /// one, the events are committed with the state it computes (see `fold`), which the answer carries; otherwise a
    /// plain append.
    pub async fn append(
        &self,
        tenant: TenantId,
        mut request: AppendRequest,
    ) -> Result<(AppendOutcome, Option<Box<RawValue>>), CodeError> {
        let aggregate_id = request.aggregate_id.clone();
        let head = match self.heads.get(tenant, &aggregate_id) {
            Some(head) => Some(head),
            None => self
                .store
                .read_head(tenant, &aggregate_id)
                .await
                .map_err(FoldError::from)?,
        };
        let aggregate_type = match &head {
            // A type that contradicts the stream's gets its 409 from the store.
            Some(head)
                if request
                    .explicit_type
                    .as_ref()
                    .is_some_and(|t| *t != head.aggregate_type) =>
            {
                None
            }
            Some(head) => Some(head.aggregate_type.as_str()),
            None => request.explicit_type.as_deref().or(request.inferred_type.as_deref()),
        };
        let Some(reducer) = aggregate_type.and_then(|t| self.bound(tenant, t)) else {
            let outcome = self.store.append(tenant, request).await.map_err(FoldError::Append)?;
            if let Some(last) = outcome.events.last() {
                // An aggregate's type never changes: the next append to it needs no read to learn it.
                let head = AggregateHead {
                    aggregate_type: outcome.aggregate_type.clone(),
                    version: last.version,
                    snapshot: None,
                };
                self.heads.put(tenant, &aggregate_id, head);
            }
            return Ok((outcome, None));
        };
        let folder = self.folder(tenant, &reducer)?;
        let recorded_at = OffsetDateTime::now_utc();
        request.recorded_at = Some(recorded_at);
        match folder.append(request, head).await {
            Ok((outcome, state)) => {
                if !outcome.duplicate
                    && let (Some(last), Some(state)) = (outcome.events.last(), &state)
                {
                    let head = AggregateHead {
                        aggregate_type: outcome.aggregate_type.clone(),
                        version: last.version,
                        snapshot: Some(Snapshot {
                            reducer_id: reducer.reducer_id.clone(),
                            version: last.version,
                            state: state.get().to_owned(),
                            updated_at: recorded_at,
                        }),
                    };
                    self.heads.put(tenant, &aggregate_id, head);
                }
                Ok((outcome, state))
            }
            Err(error) => {
                self.heads.forget(tenant, &aggregate_id);
                Err(error.into())
            }
        }
    }

    /// The aggregate's state through the bound reducer, caught up from its snapshot (and stored again if it moved).
    pub async fn state(&self, tenant: TenantId, aggregate_id: &str) -> Result<StateLookup, CodeError> {
        let Some(head) = self
            .store
            .read_head(tenant, aggregate_id)
            .await
            .map_err(FoldError::from)?
        else {
            return Ok(StateLookup::NoAggregate);
        };
        let Some(reducer) = self.bound(tenant, &head.aggregate_type) else {
            return Ok(StateLookup::NoReducer {
                aggregate_type: head.aggregate_type,
            });
        };
        let folder = self.folder(tenant, &reducer)?;
        let folded = folder.catch_up(aggregate_id, Some(&head)).await?;
        let Some(state) = folded.state else {
            return Ok(StateLookup::NoAggregate);
        };
        if !folded.stored {
            let snapshot = SnapshotWrite {
                base_version: folded.version,
                reducer_id: reducer.reducer_id.clone(),
                state: state.get().to_owned(),
            };
            match self
                .store
                .save_snapshot(tenant, aggregate_id, snapshot, folded.last_modified)
                .await
            {
                // Someone appended meanwhile and stored a newer state; this one is still right for its version.
                Ok(()) | Err(AppendError::Moved(_)) => {}
                Err(error) => tracing::warn!(%error, aggregate_id, "storing a rebuilt snapshot"),
            }
        }
        Ok(StateLookup::State(StateView {
            aggregate_type: head.aggregate_type,
            version: folded.version,
            state,
            last_modified: folded.last_modified,
            reducer_id: reducer.reducer_id.clone(),
        }))
    }

    /// What runs `reducer` for `tenant`, once its artifact is registered with the workers.
    fn folder<'a>(&'a self, tenant: TenantId, reducer: &'a BoundReducer) -> Result<Folder<'a>, CodeError> {
        let runtime = self.runtime.as_ref().map_err(|reason| CodeError::Unavailable {
            reducer_id: reducer.reducer_id.clone(),
            reason: format!("user code is disabled on this server: {reason}"),
        })?;
        self.ensure_runnable(tenant, reducer)?;
        Ok(Folder {
            store: &self.store,
            metrics: &self.metrics,
            queues: &runtime.queues,
            tenant,
            reducer,
        })
    }

    /// Registers the reducer's artifact with the workers once (checking its signature) and warms a worker for it.
    fn ensure_runnable(&self, tenant: TenantId, reducer: &BoundReducer) -> Result<(), CodeError> {
        let Ok(runtime) = &self.runtime else {
            return Ok(());
        };
        if reducer.runnable.load(Ordering::Acquire) {
            return Ok(());
        }
        let key = (tenant, reducer.address.clone());
        if self.registered.lock().contains(&key) {
            reducer.runnable.store(true, Ordering::Release);
            return Ok(());
        }
        let unavailable = |reason: String| CodeError::Unavailable {
            reducer_id: reducer.reducer_id.clone(),
            reason,
        };
        let artifact = self
            .registry
            .artifact(tenant, &reducer.address)?
            .ok_or_else(|| unavailable("its artifact is missing from the registry".into()))?;
        runtime
            .workers
            .register(artifact)
            .map_err(|failure| unavailable(failure.to_string()))?;
        self.registered.lock().insert(key);
        reducer.runnable.store(true, Ordering::Release);
        let runtime = runtime.clone();
        let worker_key = reducer.worker_key.clone();
        tokio::spawn(async move { runtime.workers.prewarm(&worker_key).await });
        Ok(())
    }

    fn cache_binding(&self, binding: &Binding, info: &ReducerInfo) -> Arc<BoundReducer> {
        let bound = Arc::new(BoundReducer {
            tenant: binding.tenant,
            reducer_id: info.reducer_id.clone(),
            address: info.address.clone(),
            worker_key: WorkerKey {
                scope: scope_of(binding.tenant),
                artifact: info.address.clone(),
            },
            bound_at: binding.bound_at,
            runnable: AtomicBool::new(false),
        });
        self.bindings
            .write()
            .entry(binding.tenant)
            .or_default()
            .insert(binding.aggregate_type.clone(), bound.clone());
        bound
    }

    async fn compile(self: Arc<Self>, upload: Upload, files: BTreeMap<String, String>) {
        let id = upload.upload_id;
        let (recorded, outcome) = match &self.runtime {
            Err(reason) => (
                self.registry
                    .fail_upload(id, &format!("user code is disabled on this server: {reason}"), &[]),
                "failed",
            ),
            Ok(runtime) => match runtime.compiler.compile(&files).await {
                Err(error) => {
                    tracing::error!(%error, upload = %id, "a compile could not run");
                    let message = format!("the compile could not run ({error}); upload again");
                    (self.registry.fail_upload(id, &message, &[]), "failed")
                }
                Ok(Err(rejection)) => (
                    self.registry
                        .fail_upload(id, &rejection_message(&rejection), &rejection.diagnostics),
                    "failed",
                ),
                Ok(Ok(compiled)) if compiled.artifact.kind != upload.kind => {
                    let diagnostic = wrong_kind(&compiled.artifact.class_name, compiled.artifact.kind);
                    let recorded =
                        self.registry
                            .fail_upload(id, &diagnostic.message, std::slice::from_ref(&diagnostic));
                    (recorded, "failed")
                }
                Ok(Ok(compiled)) => match self.finish(&upload, compiled.artifact) {
                    Ok(outcome) => (Ok(()), outcome),
                    Err(error) => (Err(error), "failed"),
                },
            },
        };
        let outcome = if recorded.is_ok() { outcome } else { "failed" };
        self.metrics.uploads.get_or_create(&OutcomeLabel { outcome }).inc();
        if let Err(error) = recorded {
            tracing::error!(%error, upload = %id, "recording an upload's outcome");
        }
    }

    /// Records a compiled upload; the outcome for the uploads metric.
    fn finish(&self, upload: &Upload, artifact: crate::runtime::Artifact) -> Result<&'static str, RegistryError> {
        if upload.kind == ArtifactKind::Projection {
            let outcome = match &self.projections {
                Some(sink) => sink.compiled(upload, artifact),
                None => Err("projections are not available on this server".to_owned()),
            };
            return match outcome {
                Ok(projection_id) => {
                    tracing::info!(upload = %upload.upload_id, projection = %projection_id, "projection version deployed");
                    Ok("ready")
                }
                Err(message) => {
                    tracing::error!(upload = %upload.upload_id, %message, "a compiled projection could not be deployed");
                    self.registry
                        .fail_upload(upload.upload_id, &message, &[])
                        .map(|()| "failed")
                }
            };
        }
        let (info, binding) = self.registry.finish_reducer_upload(upload, &artifact)?;
        tracing::info!(upload = %upload.upload_id, reducer = %info.reducer_id, class = %info.class_name, "reducer ready");
        if let Some(binding) = binding {
            let bound = self.cache_binding(&binding, &info);
            if let Err(error) = self.ensure_runnable(upload.tenant, &bound) {
                tracing::error!(%error, "a reducer was bound that cannot run");
            }
        }
        Ok("ready")
    }
}

/// What a refused upload's status says in one line: how many errors, and the first.
fn rejection_message(rejection: &CompileRejection) -> String {
    let errors: Vec<&Diagnostic> = rejection.diagnostics.iter().filter(|d| d.severity == "error").collect();
    match errors.first() {
        None => "the upload was refused".to_owned(),
        Some(first) => {
            let place = match (&first.file, first.line, first.column) {
                (Some(file), Some(line), Some(column)) => format!("{file}:{line}:{column}: "),
                (Some(file), _, _) => format!("{file}: "),
                _ => String::new(),
            };
            let more = match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            format!("the upload was refused: {place}{}{more}", first.message)
        }
    }
}

fn wrong_kind(class_name: &str, found: ArtifactKind) -> Diagnostic {
    let message = match found {
        ArtifactKind::Projection => {
            format!("{class_name} implements IProjection<T>: upload projections to POST /projections")
        }
        ArtifactKind::Reducer => format!("{class_name} implements IReducer<T>: upload reducers to POST /reducers"),
    };
    Diagnostic {
        severity: "error".into(),
        code: WRONG_KIND.into(),
        message,
        file: None,
        line: None,
        column: None,
    }
}

/// The workers' scope of a tenant: its workers run only its code.
pub fn scope_of(tenant: TenantId) -> String {
    format!("tenant-{}", tenant.0)
}

impl UploadStatus {
    pub fn name(&self) -> &'static str {
        match self {
            UploadStatus::Compiling => "compiling",
            UploadStatus::Failed { .. } => "failed",
            UploadStatus::Ready { .. } => "ready",
        }
    }
}
