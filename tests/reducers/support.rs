//! Shared by the reducer scenarios: a server started with the C# runtime (`--dotnet-host`), uploads polled to their
//! end with a deadline, bindings, state reads, the order state's assertions, and the C# fixtures read from the
//! repository (`tests/legit/order_reducer.cs` is the example; the others are in `tests/reducers/code/`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::harness::*;

/// How long an upload may stay `compiling`: a cold compile is 1-3 s, but the box is small and shared.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(60);
/// How often the upload status is asked again.
const STATUS_POLL: Duration = Duration::from_millis(25);

/// `hapnd serve` on a temp data dir with the C# programs of a Release build of `dotnet-host`.
pub async fn start() -> Server {
    let host = path_arg(crate::dotnet_build::dotnet_host_build());
    Server::start_with(&["--dotnet-host", &host]).await
}

/// A file of the repository's `tests/` folder, e.g. `legit/order_reducer.cs`.
pub fn fixture(path: &str) -> String {
    let path = tests_dir().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `tests/reducers/code/NAME`.
pub fn code(name: &str) -> String {
    fixture(&format!("reducers/code/{name}"))
}

/// The issue's `OrderReducer` (`{customerId, total}`), the file the C# tests run.
pub fn order_reducer() -> String {
    fixture("legit/order_reducer.cs")
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests")
}

/// `POST /reducers` with a JSON body.
pub async fn upload_json(api: &Api, key: &str, body: &Value) -> Reply {
    api.post_json(key, "/reducers", body).await
}

/// `POST /reducers{query}` with raw bytes and a `Content-Type` (archives, and bodies that are not JSON).
pub async fn upload_bytes(api: &Api, key: &str, query: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let request = api
        .request(Method::POST, &format!("/reducers{query}"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body);
    api.send(request).await
}

/// The `uploadId` of an accepted upload: `202 {"uploadId": "<uuid>", "status": "compiling"}`.
#[track_caller]
pub fn accepted(reply: &Reply) -> String {
    let (status, body) = reply;
    assert_eq!(*status, StatusCode::ACCEPTED, "upload: {body}");
    assert_keys(body, &["uploadId", "status"]);
    assert_eq!(body["status"], "compiling", "{body}");
    let id = str_of(&body["uploadId"]).to_string();
    assert_uuid(&id);
    id
}

/// Polls `GET /reducers/{upload}/status` until it is no longer `compiling`; returns that final body.
pub async fn wait_upload(api: &Api, key: &str, upload: &str) -> Value {
    let path = format!("/reducers/{upload}/status");
    let deadline = Instant::now() + UPLOAD_DEADLINE;
    loop {
        let (status, body) = api.get(key, &path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        assert_eq!(body["uploadId"], upload, "GET {path}: {body}");
        match body["status"].as_str() {
            Some("compiling") => {}
            Some("ready" | "failed") => return body,
            _ => panic!("GET {path}: unknown status: {body}"),
        }
        assert!(
            Instant::now() < deadline,
            "upload {upload} still compiling after {UPLOAD_DEADLINE:?}"
        );
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// The final status of an upload that must be ready; checks the documented shape.
pub async fn wait_ready(api: &Api, key: &str, upload: &str) -> Value {
    let body = wait_upload(api, key, upload).await;
    assert_eq!(body["status"], "ready", "upload {upload} must compile: {body}");
    assert_keys(
        &body,
        &[
            "uploadId",
            "status",
            "reducerId",
            "className",
            "stateType",
            "aggregateType",
        ],
    );
    assert!(str_of(&body["reducerId"]).starts_with("red_"), "{body}");
    body
}

/// The final status of an upload that must fail; checks the documented shape.
pub async fn wait_failed(api: &Api, key: &str, upload: &str) -> Value {
    let body = wait_upload(api, key, upload).await;
    assert_eq!(body["status"], "failed", "upload {upload} must not compile: {body}");
    assert_keys(&body, &["uploadId", "status", "message", "diagnostics"]);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let diagnostics = body["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("diagnostics is not a list: {body}"));
    assert!(!diagnostics.is_empty(), "a failed upload says why: {body}");
    body
}

/// Uploads one file as `{"files": {name: source}, "aggregateType"?}` and waits until it is ready; returns its status.
pub async fn upload_ready(api: &Api, key: &str, name: &str, source: &str, aggregate_type: Option<&str>) -> Value {
    let mut body = json!({"files": {name: source}});
    if let Some(aggregate_type) = aggregate_type {
        body["aggregateType"] = json!(aggregate_type);
    }
    let upload = accepted(&upload_json(api, key, &body).await);
    let ready = wait_ready(api, key, &upload).await;
    assert_eq!(ready["aggregateType"], json!(aggregate_type), "{ready}");
    ready
}

/// Uploads the issue's `OrderReducer` bound to `order`; returns its `reducerId`.
pub async fn upload_order_reducer(api: &Api, key: &str) -> String {
    let ready = upload_ready(api, key, "OrderReducer.cs", &order_reducer(), Some("order")).await;
    assert_eq!(ready["className"], "OrderReducer", "{ready}");
    assert_eq!(ready["stateType"], "OrderState", "{ready}");
    str_of(&ready["reducerId"]).to_string()
}

/// `/aggregate-types/{aggregate_type}/reducer`.
pub fn binding_path(aggregate_type: &str) -> String {
    format!("/aggregate-types/{aggregate_type}/reducer")
}

/// `PUT /aggregate-types/{type}/reducer {"reducerId"}`.
pub async fn put_binding(api: &Api, key: &str, aggregate_type: &str, reducer_id: &str) -> Reply {
    let request = api
        .request(Method::PUT, &binding_path(aggregate_type))
        .bearer_auth(key)
        .json(&json!({"reducerId": reducer_id}));
    api.send(request).await
}

/// Binds `reducer_id` to `aggregate_type`, which must succeed with the documented body.
pub async fn bind(api: &Api, key: &str, aggregate_type: &str, reducer_id: &str) -> Value {
    let (status, body) = put_binding(api, key, aggregate_type, reducer_id).await;
    assert_eq!(status, StatusCode::OK, "PUT {}: {body}", binding_path(aggregate_type));
    assert_binding(&body, aggregate_type, reducer_id);
    body
}

/// `GET /aggregate-types/{type}/reducer`.
pub async fn get_binding(api: &Api, key: &str, aggregate_type: &str) -> Reply {
    api.get(key, &binding_path(aggregate_type)).await
}

/// `DELETE /aggregate-types/{type}/reducer`.
pub async fn delete_binding(api: &Api, key: &str, aggregate_type: &str) -> Reply {
    let request = api
        .request(Method::DELETE, &binding_path(aggregate_type))
        .bearer_auth(key);
    api.send(request).await
}

/// Fails unless `body` is `{"aggregateType", "reducerId", "boundAt"}` for this binding.
#[track_caller]
pub fn assert_binding(body: &Value, aggregate_type: &str, reducer_id: &str) {
    assert_keys(body, &["aggregateType", "reducerId", "boundAt"]);
    assert_eq!(body["aggregateType"], aggregate_type, "{body}");
    assert_eq!(body["reducerId"], reducer_id, "{body}");
    assert_timestamp(str_of(&body["boundAt"]));
}

/// `GET /aggregates/{aggregate}/state`.
pub async fn get_state(api: &Api, key: &str, aggregate: &str) -> Reply {
    api.get(key, &format!("/aggregates/{aggregate}/state")).await
}

/// The state read of an aggregate that must have one: checks the documented shape, the version and the reducer;
/// returns `state`.
pub async fn state_at(api: &Api, key: &str, aggregate: &str, version: u64, reducer_id: &str) -> Value {
    let (status, body) = get_state(api, key, aggregate).await;
    assert_eq!(status, StatusCode::OK, "GET state of {aggregate}: {body}");
    assert_keys(
        &body,
        &[
            "aggregateId",
            "aggregateType",
            "version",
            "state",
            "lastModified",
            "reducerId",
        ],
    );
    assert_eq!(body["aggregateId"], aggregate, "{body}");
    assert_eq!(body["version"], version, "{body}");
    assert_eq!(body["reducerId"], reducer_id, "{body}");
    assert_timestamp(str_of(&body["lastModified"]));
    body["state"].clone()
}

/// An append that must be stored (201); returns the reply.
pub async fn append_ok(api: &Api, key: &str, aggregate: &str, body: &Value) -> Value {
    let (status, reply) = api.append(key, aggregate, body).await;
    assert_eq!(status, StatusCode::CREATED, "append to {aggregate} {body}: {reply}");
    reply
}

/// `{"eventType": "OrderPlaced", "data": {"customerId": customer}}`.
pub fn order_placed(customer: &str) -> Value {
    json!({"eventType": "OrderPlaced", "data": {"customerId": customer}})
}

/// `{"eventType": "ItemAdded", "data": {"item": item, "price": price}}`.
pub fn item_added(item: &str, price: f64) -> Value {
    json!({"eventType": "ItemAdded", "data": {"item": item, "price": price}})
}

/// An event of a type the order reducers do not handle specially (the faulty one fails on these).
pub fn event(event_type: &str) -> Value {
    json!({"eventType": event_type, "data": {}})
}

/// Fails unless `state` is the order state `{customerId, total}` with these values. The total is a C# `decimal`,
/// which keeps its scale (`12.50`), so it is compared as a number, not as JSON text.
#[track_caller]
pub fn assert_order(state: &Value, customer: Option<&str>, total: f64) {
    assert_keys(state, &["customerId", "total"]);
    assert_eq!(state["customerId"], json!(customer), "customerId of {state}");
    let got = state["total"]
        .as_f64()
        .unwrap_or_else(|| panic!("total is not a number: {state}"));
    assert!((got - total).abs() < 1e-9, "total of {state}: expected {total}");
}

/// Worker round trips of reducer batches begun so far (`hapnd_reducer_batch_appends_count` in `/metrics`; a batch
/// is counted when it starts).
pub async fn batches_run(api: &Api) -> u64 {
    let (status, metrics) = api.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    sample_sum(&metrics, "hapnd_reducer_batch_appends_count")
        .unwrap_or_else(|| panic!("/metrics has no hapnd_reducer_batch_appends_count:\n{metrics}")) as u64
}
