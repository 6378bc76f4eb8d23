//! `POST /aggregates/{aggregateId}/events`: parse and validate the request, hand it to the store, shape the answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::auth::Authenticated;
use super::error::ApiError;
use super::{AppState, Limits, validate};
use crate::metrics::OutcomeLabel;
use crate::store::{AppendOutcome, AppendRequest, NewEvent};

pub async fn append(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Path(aggregate_id) = path.map_err(|e| ApiError::bad_request("invalid_aggregate_id", e.body_text()))?;
    let parsed = parse_request(&aggregate_id, &headers, body, &state.limits);
    let (request, batch) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            record(&state, "rejected", started);
            return Err(error);
        }
    };
    let result = if state.reducers.has_bindings(tenant.id) {
        state.reducers.append(tenant.id, request).await.map_err(ApiError::from)
    } else {
        state
            .store
            .append(tenant.id, request)
            .await
            .map(|outcome| (outcome, None))
            .map_err(ApiError::from)
    };
    let (outcome, new_state) = match result {
        Ok(done) => done,
        Err(error) => {
            let label = if error.status.is_server_error() {
                "failed"
            } else {
                "rejected"
            };
            record(&state, label, started);
            return Err(error);
        }
    };
    if outcome.duplicate {
        record(&state, "duplicate", started);
    } else {
        state.metrics.appended_events.inc_by(outcome.events.len() as u64);
        record(&state, "created", started);
    }
    Ok(respond(outcome, new_state.as_deref(), batch))
}

fn record(state: &AppState, outcome: &'static str, started: Instant) {
    state
        .metrics
        .append_requests
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
    state.metrics.append_duration.observe(started.elapsed().as_secs_f64());
}

/// The body: either one event at the top level or `events`, plus request-level options.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppendBody<'a> {
    event_type: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    event_id: Option<String>,
    #[serde(borrow)]
    events: Option<Vec<EventBody<'a>>>,
    expected_version: Option<u64>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    aggregate_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventBody<'a> {
    event_type: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    event_id: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
}

/// Turns the HTTP request into a store request; the flag says whether the client used the batch form.
fn parse_request(
    aggregate_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limits: &Limits,
) -> Result<(AppendRequest, bool), ApiError> {
    validate::aggregate_id(aggregate_id)?;
    check_content_type(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!(
                    "the request body is larger than {} bytes (max_request_bytes)",
                    limits.max_request_bytes
                ),
            )
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })?;
    let body: AppendBody<'_> = parse_json(&body)?;

    let expected_version = merge(
        body.expected_version,
        header_u64(headers, "expected-version")?,
        "expectedVersion",
    )?;
    let correlation_id = merge(
        body.correlation_id,
        header_str(headers, "correlation-id")?,
        "correlationId",
    )?;
    let causation_id = merge(body.causation_id, header_str(headers, "causation-id")?, "causationId")?;
    if let Some(id) = &correlation_id {
        validate::trace_id(id, "correlationId")?;
    }
    if let Some(id) = &causation_id {
        validate::trace_id(id, "causationId")?;
    }
    if let Some(aggregate_type) = &body.aggregate_type {
        validate::aggregate_type(aggregate_type, "aggregateType")?;
    }

    let (bodies, batch) = match body.events {
        Some(events) => {
            if body.event_type.is_some() || body.data.is_some() || body.metadata.is_some() || body.event_id.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_json",
                    "send either one event (eventType, data, metadata, eventId at the top level) or \"events\", not both",
                ));
            }
            (events, true)
        }
        None => {
            let single = EventBody {
                event_type: body.event_type,
                data: body.data,
                metadata: body.metadata,
                event_id: body.event_id,
                correlation_id: None,
                causation_id: None,
            };
            (vec![single], false)
        }
    };
    if bodies.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "\"events\" must hold at least one event",
        ));
    }
    if bodies.len() > limits.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "\"events\" holds {} events; at most {} are allowed per request (max_batch_events)",
                bodies.len(),
                limits.max_batch_events
            ),
        ));
    }

    let mut events = Vec::with_capacity(bodies.len());
    for (index, event) in bodies.into_iter().enumerate() {
        let field = |name: &str| {
            if batch {
                format!("events[{index}].{name}")
            } else {
                name.to_owned()
            }
        };
        events.push(new_event(event, field, &correlation_id, &causation_id, limits)?);
    }
    if batch {
        reject_repeated_ids(&events)?;
    }

    Ok((
        AppendRequest {
            aggregate_id: aggregate_id.to_owned(),
            inferred_type: validate::infer_aggregate_type(aggregate_id).map(str::to_owned),
            explicit_type: body.aggregate_type,
            expected_version,
            events,
            snapshot: None,
            recorded_at: None,
        },
        batch,
    ))
}

fn new_event(
    event: EventBody<'_>,
    field: impl Fn(&str) -> String,
    correlation_id: &Option<String>,
    causation_id: &Option<String>,
    limits: &Limits,
) -> Result<NewEvent, ApiError> {
    let event_type = event
        .event_type
        .ok_or_else(|| ApiError::bad_request("invalid_json", format!("{} is required", field("eventType"))))?;
    validate::event_type(&event_type, &field("eventType"))?;
    let data = event.data.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            format!("{} is required (a JSON object)", field("data")),
        )
    })?;
    require_object(data, &field("data"))?;
    if let Some(metadata) = event.metadata {
        require_object(metadata, &field("metadata"))?;
    }
    let size = data.get().len() + event.metadata.map_or(0, |m| m.get().len());
    if size > limits.max_event_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
            format!(
                "{} and {} take {size} bytes; one event may take at most {} (max_event_bytes)",
                field("data"),
                field("metadata"),
                limits.max_event_bytes
            ),
        ));
    }
    let (event_id, client_event_id) = match event.event_id {
        Some(id) => (
            Uuid::parse_str(&id).map_err(|_| {
                ApiError::bad_request(
                    "invalid_event_id",
                    format!("{} must be a UUID, got {id:?}", field("eventId")),
                )
            })?,
            true,
        ),
        None => (Uuid::new_v4(), false),
    };
    for (value, name) in [
        (&event.correlation_id, "correlationId"),
        (&event.causation_id, "causationId"),
    ] {
        if let Some(value) = value {
            validate::trace_id(value, &field(name))?;
        }
    }
    Ok(NewEvent {
        event_id,
        client_event_id,
        event_type,
        data: validate::compact_json(data.get()),
        metadata: event.metadata.map(|m| validate::compact_json(m.get())),
        correlation_id: event.correlation_id.or_else(|| correlation_id.clone()),
        causation_id: event.causation_id.or_else(|| causation_id.clone()),
    })
}

fn reject_repeated_ids(events: &[NewEvent]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        if event.client_event_id && !seen.insert(event.event_id) {
            return Err(ApiError::bad_request(
                "duplicate_event_id",
                format!(
                    "events[{index}].eventId {} appears more than once in this batch",
                    event.event_id
                ),
            )
            .with("eventId", event.event_id.to_string()));
        }
    }
    Ok(())
}

fn require_object(value: &RawValue, field: &str) -> Result<(), ApiError> {
    if value.get().trim_start().starts_with('{') {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be a JSON object"),
        ))
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(mime) = validate::media_type(headers) else {
        return Ok(());
    };
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be JSON; send Content-Type: application/json (got {mime:?})"),
        ))
    }
}

/// Deserializes JSON, naming the offending field (`events[2].data`) in the error.
pub(super) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request("invalid_json", message)
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request("invalid_json", format!("invalid JSON body: {error}")))?;
    Ok(value)
}

/// A value may come from the body or a header; when both are given they must agree.
fn merge<T: PartialEq>(body: Option<T>, header: Option<T>, field: &str) -> Result<Option<T>, ApiError> {
    match (body, header) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} in the body and its header disagree; send one of them"),
        )),
        (body, header) => Ok(body.or(header)),
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("invalid_field", format!("header {name} must be visible ASCII")))
        })
        .transpose()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header_str(headers, name)?
        .map(|value| {
            value.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_field",
                    format!("header {name} must be a non-negative integer, got {value:?}"),
                )
            })
        })
        .transpose()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SingleResponse<'a> {
    event_id: String,
    version: u64,
    global_position: u64,
    aggregate_type: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse<'a> {
    start_version: u64,
    end_version: u64,
    aggregate_type: &'a str,
    events: Vec<BatchEvent>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchEvent {
    event_id: String,
    version: u64,
    global_position: u64,
}

fn respond(outcome: AppendOutcome, new_state: Option<&RawValue>, batch: bool) -> Response {
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let (Some(first), Some(last)) = (outcome.events.first(), outcome.events.last()) else {
        // A request always holds at least one event, so an outcome always does too.
        return ApiError::internal().into_response();
    };
    if batch {
        let body = BatchResponse {
            start_version: first.version,
            end_version: last.version,
            aggregate_type: &outcome.aggregate_type,
            events: outcome
                .events
                .iter()
                .map(|e| BatchEvent {
                    event_id: e.event_id.to_string(),
                    version: e.version,
                    global_position: e.global_position,
                })
                .collect(),
            duplicate: outcome.duplicate,
            state: new_state,
        };
        (status, Json(body)).into_response()
    } else {
        let body = SingleResponse {
            event_id: first.event_id.to_string(),
            version: first.version,
            global_position: first.global_position,
            aggregate_type: &outcome.aggregate_type,
            duplicate: outcome.duplicate,
            state: new_state,
        };
        (status, Json(body)).into_response()
    }
}
