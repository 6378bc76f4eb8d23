//! The projections engine as the API sees it: compiled uploads become versions (the first of an identity creates
//! the projection), each running version has a runner task, queries read the active version, and a janitor deletes
//! the states of versions that were replaced and trims the change log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::runner::Runner;
use super::store::{Lookup, Projection, ProjectionStore, ProjectionStoreError, Version};
use crate::catalog::TenantId;
use crate::code::reducers::{CodeRuntime, ProjectionSink};
use crate::code::registry::{Registry, RegistryError, Upload, UploadStatus, projection_id};
use crate::metrics::{ProjectionLabel, ProjectionMetrics};
use crate::runtime::{Artifact, ArtifactWorkers};
use crate::store::EventStore;

/// How the engine runs versions; [`EngineSettings::default`] is what `serve` uses.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Events read from the log and sent to the worker at once.
    pub batch_events: u32,
    /// Batches in flight to a worker while it cannot need stored states.
    pub pipeline: usize,
    /// While catching up, states and checkpoint are committed after this many events or this long.
    pub flush_events: u64,
    pub flush_interval: Duration,
    /// States a worker keeps after a flush; beyond it, it lets them all go and asks for stored ones again.
    pub keep_resident: usize,
    /// A caught-up version gives its worker back after this long without new events.
    pub idle: Duration,
    /// Changes a pending version keeps for its swap, at most.
    pub pending_changes: usize,
    /// Change log entries kept per projection.
    pub changes_kept: u64,
    /// How often the janitor looks for work when nobody woke it.
    pub janitor_interval: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            batch_events: 4_000,
            pipeline: 2,
            flush_events: 100_000,
            flush_interval: Duration::from_secs(1),
            // A worker has 256 MiB; states are held as objects of unknown size, so the bound is kept modest.
            keep_resident: 20_000,
            idle: Duration::from_secs(30),
            pending_changes: 100_000,
            changes_kept: 100_000,
            janitor_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("user code is disabled on this server: {0}")]
    Disabled(String),
    #[error(transparent)]
    Store(#[from] ProjectionStoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the projection store stopped")]
    Stopped,
}

/// What a runner shows while it runs: the log's head as last seen, the checkpoint, and the recent rate.
#[derive(Default)]
pub struct LiveStats {
    head: AtomicU64,
    position: AtomicU64,
    /// Events per second over the last commits, as `f64` bits.
    rate: AtomicU64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl LiveStats {
    pub fn set_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::Relaxed);
    }

    pub fn committed(&self, position: u64) {
        let now = Instant::now();
        let mut last = self.last.lock();
        if let Some((at, from)) = *last {
            let seconds = now.duration_since(at).as_secs_f64();
            if seconds > 0.0 && position > from {
                let rate = (position - from) as f64 / seconds;
                let previous = f64::from_bits(self.rate.load(Ordering::Relaxed));
                // A moving average over the last few commits, so one quick commit does not read as a spike.
                let smoothed = if previous == 0.0 {
                    rate
                } else {
                    previous * 0.5 + rate * 0.5
                };
                self.rate.store(smoothed.to_bits(), Ordering::Relaxed);
            }
        }
        *last = Some((now, position));
        self.position.store(position, Ordering::Relaxed);
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }
}

struct RunnerEntry {
    stop: watch::Sender<bool>,
    stats: Arc<LiveStats>,
    label: ProjectionLabel,
}

/// What runners share.
pub(super) struct Shared {
    pub store: Arc<ProjectionStore>,
    pub events: Arc<dyn EventStore>,
    pub settings: EngineSettings,
    pub metrics: MetricsHandle,
    registry: Arc<Registry>,
    runtime: Result<Arc<CodeRuntime>, String>,
    runners: Mutex<HashMap<i64, RunnerEntry>>,
    registered: Mutex<HashSet<(TenantId, String)>>,
    janitor: Notify,
    stopping: AtomicBool,
}

/// The engine's metrics, by version.
pub(super) struct MetricsHandle(ProjectionMetrics);

impl MetricsHandle {
    pub fn events(&self, version: &Version, events: u64) {
        self.0.events.get_or_create(&label_of(version)).inc_by(events);
    }

    pub fn failed(&self) {
        self.0.failures.inc();
    }
}

fn label_of(version: &Version) -> ProjectionLabel {
    ProjectionLabel {
        tenant: version.tenant.0.to_string(),
        projection: version.projection_id.clone(),
        version: version.version_id.to_string(),
    }
}

impl Shared {
    pub fn workers(&self) -> Option<Arc<ArtifactWorkers>> {
        self.runtime.as_ref().ok().map(|runtime| runtime.workers.clone())
    }

    /// Registers the version's artifact with the workers once (its signature checked).
    pub fn ensure_registered(&self, version: &Version) -> Result<(), String> {
        let key = (version.tenant, version.address.clone());
        if self.registered.lock().contains(&key) {
            return Ok(());
        }
        let Some(workers) = self.workers() else {
            return Err("user code is disabled on this server".into());
        };
        let artifact = self
            .registry
            .artifact(version.tenant, &version.address)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the artifact {} is missing from the registry", version.address))?;
        workers.register(artifact).map_err(|failure| failure.to_string())?;
        self.registered.lock().insert(key);
        Ok(())
    }

    /// A runner that ended on its own (a failure) leaves the table.
    pub fn forget(&self, version_id: i64) {
        if let Some(entry) = self.runners.lock().remove(&version_id) {
            self.forget_metrics(&entry.label);
        }
        self.janitor.notify_one();
    }

    /// Stops a replaced version's runner; the janitor deletes its states.
    pub fn retire(&self, version_id: i64) {
        if let Some(entry) = self.runners.lock().remove(&version_id) {
            let _ = entry.stop.send(true);
            self.forget_metrics(&entry.label);
        }
        self.janitor.notify_one();
    }

    fn forget_metrics(&self, label: &ProjectionLabel) {
        self.metrics.0.lag.remove(label);
        self.metrics.0.events_per_second.remove(label);
    }
}

/// A deployed upload's status as `GET /projections/{uploadId}/status` shows it.
#[derive(Debug, Clone)]
pub enum DeployStatus {
    Compiling,
    /// The compile failed (or the upload could not be deployed).
    Failed {
        message: String,
        diagnostics: Vec<crate::runtime::protocol::Diagnostic>,
    },
    Version(Box<VersionView>),
}

#[derive(Debug, Clone)]
pub struct VersionView {
    pub projection_id: String,
    pub version: Version,
    /// The tenant's log head.
    pub head_position: u64,
    pub events_per_second: f64,
}

/// A projection as `GET /projections` lists it.
#[derive(Debug, Clone)]
pub struct ProjectionView {
    pub projection: Projection,
    pub active: Option<Version>,
    pub pending: Option<Version>,
}

pub struct Projections {
    shared: Arc<Shared>,
}

impl Projections {
    /// Starts a runner for every version that runs and the janitor. `runtime` is `Err(reason)` when the host cannot
    /// run user code (versions then wait, their status unchanged).
    pub fn start(
        store: Arc<ProjectionStore>,
        events: Arc<dyn EventStore>,
        registry: Arc<Registry>,
        runtime: Result<Arc<CodeRuntime>, String>,
        metrics: ProjectionMetrics,
        settings: EngineSettings,
    ) -> Result<Arc<Self>, ProjectionError> {
        let shared = Arc::new(Shared {
            store,
            events,
            settings,
            metrics: MetricsHandle(metrics),
            registry,
            runtime,
            runners: Mutex::default(),
            registered: Mutex::default(),
            janitor: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let projections = Arc::new(Projections { shared });
        for version in projections.shared.store.runnable()? {
            projections.spawn_runner(version);
        }
        tokio::spawn(janitor(Arc::downgrade(&projections.shared)));
        tokio::spawn(publish_gauges(Arc::downgrade(&projections.shared)));
        Ok(projections)
    }

    /// Whether projections can run here; the reason when not.
    pub fn availability(&self) -> Result<(), String> {
        self.shared.runtime.as_ref().map(drop).map_err(Clone::clone)
    }

    fn spawn_runner(&self, version: Version) {
        if self.shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(LiveStats::default());
        stats.committed(version.position);
        self.shared.runners.lock().insert(
            version.version_id,
            RunnerEntry {
                stop,
                stats: stats.clone(),
                label: label_of(&version),
            },
        );
        tokio::spawn(Runner::new(self.shared.clone(), version, stats, stopped).run());
    }

    /// An upload's status: compiling, failed, or its version's.
    pub async fn status(&self, tenant: TenantId, upload_id: Uuid) -> Result<Option<DeployStatus>, ProjectionError> {
        let shared = self.shared.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<_, ProjectionError> {
            let Some(upload) = shared.registry.upload(tenant, upload_id)? else {
                return Ok(None);
            };
            if upload.kind != crate::runtime::ArtifactKind::Projection {
                return Ok(None);
            }
            let version = shared.store.version_of_upload(tenant, upload_id)?;
            Ok(Some((upload, version)))
        })
        .await
        .map_err(|_| ProjectionError::Stopped)??;
        let Some((upload, version)) = found else {
            return Ok(None);
        };
        let version = match (upload.status, version) {
            (UploadStatus::Failed { message, diagnostics }, _) => {
                return Ok(Some(DeployStatus::Failed { message, diagnostics }));
            }
            (_, Some(version)) => version,
            _ => return Ok(Some(DeployStatus::Compiling)),
        };
        let live = self
            .shared
            .runners
            .lock()
            .get(&version.version_id)
            .map(|entry| entry.stats.clone());
        let head_position = match self.shared.events.read_log(tenant, u64::MAX, 1).await {
            Ok(page) => page.head_position,
            Err(_) => live.as_ref().map_or(0, |live| live.head.load(Ordering::Relaxed)),
        };
        let events_per_second = live.map_or(0.0, |live| live.rate());
        Ok(Some(DeployStatus::Version(Box::new(VersionView {
            projection_id: version.projection_id.clone(),
            version,
            head_position,
            events_per_second,
        }))))
    }

    /// A key's state in the projection's active version.
    pub async fn lookup(&self, tenant: TenantId, projection_id: &str, key: &str) -> Result<Lookup, ProjectionError> {
        let store = self.shared.store.clone();
        let (projection_id, key) = (projection_id.to_owned(), key.to_owned());
        tokio::task::spawn_blocking(move || store.lookup(tenant, &projection_id, &key))
            .await
            .map_err(|_| ProjectionError::Stopped)?
            .map_err(Into::into)
    }

    /// A tenant's projections with their active and pending versions.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<ProjectionView>, ProjectionError> {
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ProjectionError> {
            let mut views = Vec::new();
            for projection in store.projections(tenant)? {
                let active = projection
                    .active_version
                    .map(|id| store.version(id))
                    .transpose()?
                    .flatten();
                let pending = projection
                    .pending_version
                    .map(|id| store.version(id))
                    .transpose()?
                    .flatten();
                views.push(ProjectionView {
                    projection,
                    active,
                    pending,
                });
            }
            Ok(views)
        })
        .await
        .map_err(|_| ProjectionError::Stopped)?
    }

    /// Stops every runner (at shutdown): what they committed stays, the rest runs again at the next start.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        for entry in self.shared.runners.lock().values() {
            let _ = entry.stop.send(true);
        }
        self.shared.janitor.notify_one();
    }
}

impl ProjectionSink for Projections {
    /// Records the artifact, then the version (the pending one from now on), then the upload's outcome: each step
    /// may be done again after a crash (the upload is then compiled again) without a second version.
    fn compiled(&self, upload: &Upload, artifact: Artifact) -> Result<String, String> {
        let tenant = upload.tenant;
        let id = projection_id(tenant, &artifact.identity);
        self.shared
            .registry
            .store_artifact(tenant, &artifact)
            .map_err(|e| e.to_string())?;
        let deployed = self
            .shared
            .store
            .deploy(
                tenant,
                &id,
                &artifact.identity,
                upload.upload_id,
                upload.created_at,
                &artifact.address,
                &artifact.class_name,
            )
            .map_err(|e| e.to_string())?;
        self.shared
            .registry
            .finish_projection_upload(upload.upload_id, &id)
            .map_err(|e| e.to_string())?;
        if let Some(abandoned) = deployed.abandoned {
            tracing::info!(projection = %id, version = abandoned, "a newer upload abandons the pending version");
            self.shared.retire(abandoned);
        }
        if deployed.version.runs() && !self.shared.runners.lock().contains_key(&deployed.version.version_id) {
            self.spawn_runner(deployed.version);
        }
        Ok(id)
    }
}

/// Deletes the states of replaced versions, a slice at a time, and trims the change log.
async fn janitor(shared: std::sync::Weak<Shared>) {
    const SLICE: usize = 5_000;
    loop {
        let Some(alive) = shared.upgrade() else { return };
        if alive.stopping.load(Ordering::Acquire) {
            return;
        }
        let store = alive.store.clone();
        let keep = alive.settings.changes_kept;
        let worked = tokio::task::spawn_blocking(move || -> Result<bool, ProjectionStoreError> {
            let mut worked = false;
            for version in store.retired_with_states()? {
                while store.drop_states(version, SLICE)? > 0 {
                    worked = true;
                }
            }
            worked |= store.prune_changes(keep)? > 0;
            Ok(worked)
        })
        .await;
        match worked {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the projections janitor failed; it tries again later"),
            Err(_) => return,
        }
        let interval = alive.settings.janitor_interval;
        tokio::select! {
            () = alive.janitor.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Keeps the lag and rate gauges of running versions current.
async fn publish_gauges(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(alive) = shared.upgrade() else { return };
        for entry in alive.runners.lock().values() {
            let head = entry.stats.head.load(Ordering::Relaxed);
            let position = entry.stats.position.load(Ordering::Relaxed);
            alive
                .metrics
                .0
                .lag
                .get_or_create(&entry.label)
                .set(i64::try_from(head.saturating_sub(position)).unwrap_or(i64::MAX));
            alive
                .metrics
                .0
                .events_per_second
                .get_or_create(&entry.label)
                .set(entry.stats.rate() as i64);
        }
    }
}
