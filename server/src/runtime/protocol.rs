//! The bodies the server sends to the C# compiler and worker inside the executor's frames (protocol version
//! [`PROTOCOL_VERSION`], checked at every worker's hello). The C# side is `dotnet-host/src/Hapnd.Compiler/CompileService.cs`
//! and `dotnet-host/src/Hapnd.Worker/WorkerService.cs`; a change here changes them in the same commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

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

/// Worker ← server: the keys of many events (projections). Events travel as rows (see [`BatchStep`]).
#[derive(Debug)]
pub struct ResolveKeysRequest<'a> {
    pub events: &'a [WorkerEvent<'a>],
}

impl Serialize for ResolveKeysRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let rows: Vec<BatchStep> = self.events.iter().map(|event| BatchStep { key: "", event }).collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("cmd", "resolveKeys")?;
        map.serialize_entry("events", &rows)?;
        map.end()
    }
}

/// Worker ← server: events folded in order into keyed states, each kept as an object in the worker between events.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "applyBatch")]
pub struct ApplyBatchRequest<'a> {
    pub states: BTreeMap<&'a str, Option<&'a RawValue>>,
    pub events: &'a EncodedRows,
}

/// Worker ← server: opens a replay session, in which the worker keeps the keyed states from one batch to the next
/// (`states` holds the ones that exist); answered `{}`. A session ends with [`ReplayEndRequest`], or with any error
/// answer (the batches sent behind a failed one are answered `noSession`), or a `load`.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "replayBegin")]
pub struct ReplayBeginRequest<'a> {
    pub states: BTreeMap<&'a str, Option<&'a RawValue>>,
}

/// Worker ← server: events folded in order into the open session's states (`{"cmd":"applyBatch","session":true,
/// "events":[ROW...]}`); answered with [`SessionBatchResponse`], no states. Nothing in it depends on the answer
/// before, so the server sends it while the worker still runs the previous batch.
#[derive(Debug)]
pub struct SessionBatchRequest<'a> {
    pub events: &'a EncodedRows,
}

impl Serialize for SessionBatchRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // The rows last: the worker's row scanner reads them from there to the end of the frame.
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("cmd", "applyBatch")?;
        map.serialize_entry("session", &true)?;
        map.serialize_entry("events", self.events)?;
        map.end()
    }
}

/// Worker ← server: closes the session; answered with a [`StatesResponse`]: the final state of every key the
/// session's events touched, as one `applyBatch` of all of them would give (its `timingsUs` has `write`).
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "replayEnd")]
pub struct ReplayEndRequest {}

/// Worker ← server: opens a projection session (`WorkerService.Projections.cs`), replacing any open one; answered
/// `{}`. `fresh`: the projection version has no stored state, so a key the session never held is a new row.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "projectBegin")]
pub struct ProjectBeginRequest {
    pub fresh: bool,
}

/// Worker ← server: the next events of the log, gapless and in order, through `ResolveKey` and `Apply`; answered
/// with a [`ProjectBatchResponse`]. The rows' keys are empty: the projection resolves them. `record`: answer every
/// state change.
#[derive(Debug)]
pub struct ProjectBatchRequest<'a> {
    pub record: bool,
    pub events: &'a EncodedRows,
}

impl Serialize for ProjectBatchRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // The rows last: the worker's row scanner reads them from there to the end of the frame.
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("cmd", "projectBatch")?;
        map.serialize_entry("record", &self.record)?;
        map.serialize_entry("events", self.events)?;
        map.end()
    }
}

/// Worker ← server: the stored states a suspended batch asked for (`None`: the key has none); answered with the
/// batch's [`ProjectBatchResponse`].
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "projectResume")]
pub struct ProjectResumeRequest<'a> {
    pub states: BTreeMap<&'a str, Option<&'a RawValue>>,
}

/// Worker ← server: every state changed since the last flush, to store with the checkpoint; then, when more than
/// `keep` are resident, the worker lets them all go. Answered with a [`ProjectFlushResponse`].
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "projectFlush")]
pub struct ProjectFlushRequest {
    pub keep: usize,
}

/// Worker ← server: closes the projection session; answered `{}`.
#[derive(Debug, Serialize)]
#[serde(tag = "cmd", rename = "projectEnd")]
pub struct ProjectEndRequest {}

/// The answer to a [`ProjectBatchRequest`] or [`ProjectResumeRequest`]: either the keys whose stored states the
/// batch needs first (`need`), or what it did.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBatchResponse {
    #[serde(default)]
    pub need: Option<Vec<String>>,
    #[serde(default)]
    pub applied: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub resident: usize,
    /// With `record`: every state change in order, `[position, key, state]`.
    #[serde(default)]
    pub changes: Vec<(u64, String, Box<RawValue>)>,
    /// Where the batch's time went in the worker, in microseconds: `read`, `resolve` (`ResolveKey`), `apply`,
    /// and before the batch `waitBefore` and `transfer`.
    #[serde(default)]
    pub timings_us: BTreeMap<String, u64>,
}

/// The answer to a [`ProjectFlushRequest`].
#[derive(Debug, Deserialize)]
pub struct ProjectFlushResponse {
    pub states: BTreeMap<String, Box<RawValue>>,
    pub resident: usize,
}

/// A batch's rows, serialized ahead of the request that sends them: a replay encodes the next batch while the
/// worker runs the current one, since only the states (small) depend on the previous answer.
#[derive(Debug)]
pub struct EncodedRows {
    rows: Box<RawValue>,
    count: usize,
}

impl EncodedRows {
    pub fn encode(steps: &[BatchStep<'_>]) -> Result<Self, serde_json::Error> {
        Ok(EncodedRows {
            rows: serde_json::value::to_raw_value(steps)?,
            count: steps.len(),
        })
    }

    /// How many events the rows hold.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Serialize for EncodedRows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.rows.serialize(serializer)
    }
}

/// One event of a batch and the key of the state it applies to. On the wire it is a row, not an object, because a
/// replay sends thousands: `[key, eventId, aggregateId, aggregateType, eventType, version, globalPosition,
/// timestampMicros, data, metadata, correlationId, causationId]` (absent values are `null`; the timestamp is
/// microseconds since the Unix epoch, which is exact for the store's timestamps and cheaper to read than RFC 3339). Field names would be half the
/// bytes, and half the worker's parsing.
#[derive(Debug)]
pub struct BatchStep<'a> {
    pub key: &'a str,
    pub event: &'a WorkerEvent<'a>,
}

impl Serialize for BatchStep<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let event = self.event;
        let mut row = serializer.serialize_tuple(12)?;
        row.serialize_element(self.key)?;
        row.serialize_element(event.event_id)?;
        row.serialize_element(event.aggregate_id)?;
        row.serialize_element(event.aggregate_type)?;
        row.serialize_element(event.event_type)?;
        row.serialize_element(&event.version)?;
        row.serialize_element(&event.global_position)?;
        row.serialize_element(&unix_micros(event.timestamp))?;
        row.serialize_element(event.data)?;
        row.serialize_element(&event.metadata)?;
        row.serialize_element(&event.correlation_id)?;
        row.serialize_element(&event.causation_id)?;
        row.end()
    }
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
    /// Where the batch's time went in the worker, in microseconds: `read`, `apply` (user code), `write`, and before
    /// the batch `waitBefore` (waiting for it) and `transfer` (receiving it).
    #[serde(default)]
    pub timings_us: BTreeMap<String, u64>,
}

/// The answer to a [`SessionBatchRequest`]: how many keys the session holds, and where the batch's time went (as
/// in [`StatesResponse`]; `write` is 0, nothing is written until the session ends).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBatchResponse {
    pub keys: usize,
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

/// An event as the worker reads it: the HTTP API's event shape (in batches, a row: see [`BatchStep`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerEvent<'a> {
    pub event_id: &'a str,
    pub aggregate_id: &'a str,
    pub aggregate_type: &'a str,
    pub event_type: &'a str,
    pub version: u64,
    pub global_position: u64,
    /// Written as RFC 3339 in an event object, as microseconds since the Unix epoch in a batch row.
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<&'a str>,
}

fn rfc3339<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::time_util::rfc3339(*at))
}

/// JSON the store validated when it was appended, passed on as raw JSON without being parsed again (a replay sends
/// millions of events). Text that is not JSON breaks the frame, which the worker then refuses as a bad request.
pub fn stored_json(json: &str) -> &RawValue {
    // SAFETY: serde_json declares `RawValue` `#[repr(transparent)]` over `str` (and converts the same way itself in
    // `RawValue::from_borrowed`), so the pointer cast keeps the layout, the length and the lifetime of `json`.
    unsafe { &*(json as *const str as *const RawValue) }
}

fn unix_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}
