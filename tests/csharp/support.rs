//! Shared by the C# tests: `dotnet-host` built once per run, a sandbox whose init is the `hapnd` binary, a compiler
//! and artifact workers over it, and fixtures read from the repository's `tests/` folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hapnd_executor::{PoolConfig, Sandbox, SandboxConfig};
use hapnd_policy::signing::ArtifactSigner;
use hapnd_server::runtime::compiler::Compiled;
use hapnd_server::runtime::protocol::WorkerEvent;
use hapnd_server::runtime::workers::WorkerKey;
use hapnd_server::runtime::{ArtifactWorkers, Compiler, DotnetHost};
use serde_json::value::RawValue;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `dotnet-host` built in Release into the target dir, once per test run.
pub fn dotnet_host() -> DotnetHost {
    DotnetHost::from_build_artifacts(crate::dotnet_build::dotnet_host_build())
        .expect("the built programs are where the jail can reach them")
}

pub fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_hapnd"));
            config.cgroup_parent = "hapnd-test-csharp".into();
            Arc::new(Sandbox::new(config).expect("this host can build jails (the tests run as root)"))
        })
        .clone()
}

pub fn signer() -> Arc<ArtifactSigner> {
    static SIGNER: OnceLock<Arc<ArtifactSigner>> = OnceLock::new();
    SIGNER
        .get_or_init(|| Arc::new(ArtifactSigner::from_secret_bytes(&[0x5a; 32]).expect("a valid test key")))
        .clone()
}

/// A compiler pool of one warm compiler, for the current test's runtime.
pub async fn compiler() -> Compiler {
    let compiler = Compiler::new(sandbox(), &dotnet_host(), signer(), 1);
    compiler.prewarm().await;
    compiler
}

pub fn workers() -> ArtifactWorkers {
    ArtifactWorkers::new(
        sandbox(),
        &dotnet_host(),
        signer().public_key(),
        PoolConfig {
            ready_per_key: 1,
            ..PoolConfig::default()
        },
    )
}

/// The `.cs` files of `tests/FOLDER`, sorted by name.
pub fn fixtures(folder: &str) -> Vec<(String, String)> {
    let dir = repo().join("tests").join(folder);
    let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cs"))
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
            (name, text)
        })
        .collect();
    found.sort();
    found
}

/// The issue's example reducer (`tests/legit/order_reducer.cs`).
pub fn issue_example() -> String {
    let path = repo().join("tests/legit/order_reducer.cs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn upload(name: &str, text: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_owned(), text.to_owned())])
}

/// Compiles an upload that must compile.
pub async fn compile_ok(compiler: &Compiler, name: &str, text: &str) -> Compiled {
    match compiler.compile(&upload(name, text)).await {
        Ok(Ok(compiled)) => compiled,
        Ok(Err(rejected)) => panic!("{name} must compile: {:#?}", rejected.diagnostics),
        Err(error) => panic!("{name}: the compiler failed: {error}"),
    }
}

pub fn key(scope: &str, compiled: &Compiled) -> WorkerKey {
    WorkerKey {
        scope: scope.to_owned(),
        artifact: compiled.artifact.address.clone(),
    }
}

/// Events as stored: ids, versions per aggregate, positions and timestamps filled in.
pub struct StoredEvent {
    pub event_id: String,
    pub aggregate_id: String,
    pub aggregate_type: String,
    pub event_type: String,
    pub version: u64,
    pub global_position: u64,
    pub timestamp: time::OffsetDateTime,
    pub data: Box<RawValue>,
    pub metadata: Option<Box<RawValue>>,
    pub correlation_id: Option<String>,
}

impl StoredEvent {
    pub fn wire(&self) -> WorkerEvent<'_> {
        WorkerEvent {
            event_id: &self.event_id,
            aggregate_id: &self.aggregate_id,
            aggregate_type: &self.aggregate_type,
            event_type: &self.event_type,
            version: self.version,
            global_position: self.global_position,
            timestamp: self.timestamp,
            data: &self.data,
            metadata: self.metadata.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            causation_id: None,
        }
    }
}

/// `[{"aggregateId","eventType","data","metadata"?,"correlationId"?}]` as stored events: version counts per aggregate
/// from 1, positions from 1, timestamps 2026-01-01T00:00:00Z plus the position in seconds.
pub fn stored_events(json: &str) -> Vec<StoredEvent> {
    let written: Vec<serde_json::Value> = serde_json::from_str(json).expect("an events file is a JSON array");
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let start = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    written
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let position = index as u64 + 1;
            let aggregate_id = event["aggregateId"].as_str().expect("aggregateId").to_owned();
            let version = versions.entry(aggregate_id.clone()).or_default();
            *version += 1;
            let raw = |value: &serde_json::Value| RawValue::from_string(value.to_string()).expect("JSON");
            StoredEvent {
                event_id: format!("00000000-0000-4000-8000-{position:012}"),
                aggregate_type: aggregate_id
                    .split(['_', '-'])
                    .next()
                    .expect("an id with a type")
                    .to_owned(),
                aggregate_id,
                event_type: event["eventType"].as_str().expect("eventType").to_owned(),
                version: *version,
                global_position: position,
                timestamp: start + time::Duration::seconds(position as i64),
                data: raw(&event["data"]),
                metadata: event.get("metadata").map(raw),
                correlation_id: event["correlationId"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

/// One event of `eventType`, with empty data.
pub fn one_event(event_type: &str) -> Vec<StoredEvent> {
    stored_events(&format!(
        r#"[{{"aggregateId":"probe_1","eventType":"{event_type}","data":{{}}}}]"#
    ))
}
