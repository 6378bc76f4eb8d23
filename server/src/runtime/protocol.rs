//! The bodies the server sends to the C# compiler and worker inside the executor's frames (protocol version
//! [`PROTOCOL_VERSION`], checked at every worker's hello). The C# side is `dotnet-host/src/Hapnd.Compiler/CompileService.cs`
//! and `dotnet-host/src/Hapnd.Worker/WorkerService.cs`; a change here changes them in the same commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use hapnd_executor::worker::protocol::PROTOCOL_VERSION;

/// Compiler ← server: compile one upload under the allowlist's text.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "compile")]
pub struct CompileRequest<'a> {
    pub files: &'a BTreeMap<String, String>,
    pub allowlist: &'a str,
}

/// Compiler → server.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompileResponse {
    pub compiled: bool,
    pub policy_hash: String,
    /// Base64 of the DLL, when compiled.
    #[serde(default)]
    pub dll: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub class_name: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default)]
    pub state_type: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
    #[serde(default)]
    pub timings_ms: BTreeMap<String, f64>,
}

/// One compiler diagnostic; file, line and column are 1-based when known.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Diagnostic {
    pub severity: String,
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// Worker ← server: verify and load an artifact (the pool's setup request for the artifact's workers).
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "load", rename_all = "camelCase")]
pub struct LoadRequest<'a> {
    /// Base64.
    pub dll: &'a str,
    /// Base64 of the 64-byte P1363 signature.
    pub signature: &'a str,
    pub class_name: &'a str,
    pub kind: &'a str,
}

/// Worker ← server: one event applied to one state.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "apply")]
pub struct ApplyRequest<'a> {
    pub state: Option<&'a RawValue>,
    pub event: &'a WorkerEvent<'a>,
}

/// Worker ← server: the key of one event (projections).
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "resolveKey")]
pub struct ResolveKeyRequest<'a> {
    pub event: &'a WorkerEvent<'a>,
}

/// Worker ← server: the keys of many events (projections).
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "resolveKeys")]
pub struct ResolveKeysRequest<'a> {
    pub events: &'a [WorkerEvent<'a>],
}

/// Worker ← server: events folded in order into keyed states, each kept as an object in the worker between events.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "applyBatch")]
pub struct ApplyBatchRequest<'a> {
    pub states: BTreeMap<&'a str, Option<&'a RawValue>>,
    pub events: Vec<BatchStep<'a>>,
}

#[derive(Debug, Serialize)]
pub struct BatchStep<'a> {
    pub key: &'a str,
    pub event: &'a WorkerEvent<'a>,
}

#[derive(Debug, Deserialize)]
pub struct StateResponse {
    pub state: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct KeyResponse {
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KeysResponse {
    pub keys: Vec<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatesResponse {
    pub states: BTreeMap<String, Box<RawValue>>,
    /// Where the batch's time went in the worker, in microseconds: `read`, `apply` (user code), `write`.
    #[serde(default)]
    pub timings_us: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadResponse {
    pub artifact: String,
    pub kind: String,
    pub state_type: String,
}

/// An event as the worker reads it: the HTTP API's event shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerEvent<'a> {
    pub event_id: &'a str,
    pub aggregate_id: &'a str,
    pub aggregate_type: &'a str,
    pub event_type: &'a str,
    pub version: u64,
    pub global_position: u64,
    /// RFC 3339.
    pub timestamp: &'a str,
    pub data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<&'a str>,
}
