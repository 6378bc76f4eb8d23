//! The read endpoints: one aggregate's stream, and the tenant's whole log for catch-up consumers.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use super::validate;
use crate::store::{RecordedEvent, StoreError};
use crate::time_util::rfc3339;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    from_version: Option<u64>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
pub struct LogQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

pub async fn read_stream(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(aggregate_id) = path.map_err(|e| ApiError::bad_request("invalid_aggregate_id", e.body_text()))?;
    validate::aggregate_id(&aggregate_id)?;
    let Query(query) = query.map_err(invalid_query)?;
    let limit = limit(query.limit)?;
    let from_version = query.from_version.unwrap_or(1).max(1);
    let page = state
        .store
        .read_stream(tenant.id, &aggregate_id, from_version, limit)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "aggregate_not_found",
                format!("aggregate {aggregate_id:?} does not exist"),
            )
        })?;
    let next_from_version = page
        .events
        .last()
        .map(|e| e.version)
        .filter(|last| *last < page.version)
        .map(|last| last + 1);
    let body = StreamResponse {
        aggregate_id: &aggregate_id,
        aggregate_type: &page.aggregate_type,
        version: page.version,
        events: wire_events(&page.events)?,
        next_from_version,
    };
    Ok(Json(body).into_response())
}

pub async fn read_log(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(invalid_query)?;
    let limit = limit(query.limit)?;
    let after = query.after.unwrap_or(0);
    let page = state.store.read_log(tenant.id, after, limit).await?;
    let body = LogResponse {
        next_after: page.events.last().map_or(after, |e| e.global_position),
        head_position: page.head_position,
        events: wire_events(&page.events)?,
    };
    Ok(Json(body).into_response())
}

fn invalid_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        Some(0) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1-{MAX_LIMIT}"),
        )),
        Some(limit) => Ok(limit.min(MAX_LIMIT)),
        None => Ok(DEFAULT_LIMIT),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamResponse<'a> {
    aggregate_id: &'a str,
    aggregate_type: &'a str,
    version: u64,
    events: Vec<WireEvent<'a>>,
    next_from_version: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogResponse<'a> {
    events: Vec<WireEvent<'a>>,
    head_position: u64,
    next_after: u64,
}

/// An event as clients see it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent<'a> {
    event_id: String,
    aggregate_id: &'a str,
    aggregate_type: &'a str,
    event_type: &'a str,
    version: u64,
    global_position: u64,
    data: &'a RawValue,
    metadata: Option<&'a RawValue>,
    correlation_id: Option<&'a str>,
    causation_id: Option<&'a str>,
    timestamp: String,
}

fn wire_events(events: &[RecordedEvent]) -> Result<Vec<WireEvent<'_>>, StoreError> {
    events.iter().map(wire_event).collect()
}

fn stored_json<'a>(event: &RecordedEvent, text: &'a str) -> Result<&'a RawValue, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("event {} holds invalid JSON: {e}", event.event_id)))
}

fn wire_event(event: &RecordedEvent) -> Result<WireEvent<'_>, StoreError> {
    Ok(WireEvent {
        event_id: event.event_id.to_string(),
        aggregate_id: &event.aggregate_id,
        aggregate_type: &event.aggregate_type,
        event_type: &event.event_type,
        version: event.version,
        global_position: event.global_position,
        data: stored_json(event, &event.data)?,
        metadata: event.metadata.as_deref().map(|m| stored_json(event, m)).transpose()?,
        correlation_id: event.correlation_id.as_deref(),
        causation_id: event.causation_id.as_deref(),
        timestamp: rfc3339(event.recorded_at),
    })
}
