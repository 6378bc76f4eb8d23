//! `GET /aggregates/{aggregateId}/state`: the aggregate's state through the reducer bound to its type.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::value::RawValue;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use super::validate;
use crate::code::StateLookup;
use crate::time_util::rfc3339;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateBody {
    aggregate_id: String,
    aggregate_type: String,
    version: u64,
    state: Box<RawValue>,
    last_modified: Option<String>,
    reducer_id: String,
}

pub async fn read_state(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StateBody>, ApiError> {
    let Path(aggregate_id) = path.map_err(|e| ApiError::bad_request("invalid_aggregate_id", e.body_text()))?;
    validate::aggregate_id(&aggregate_id)?;
    match state.reducers.state(tenant.id, &aggregate_id).await? {
        StateLookup::NoAggregate => Err(ApiError::not_found(
            "aggregate_not_found",
            format!("aggregate {aggregate_id:?} does not exist"),
        )),
        StateLookup::NoReducer { aggregate_type } => Err(ApiError::not_found(
            "no_reducer",
            format!(
                "no reducer is bound to aggregate type {aggregate_type:?}; bind one with \
                 PUT /aggregate-types/{aggregate_type}/reducer"
            ),
        )),
        StateLookup::State(view) => Ok(Json(StateBody {
            aggregate_id,
            aggregate_type: view.aggregate_type,
            version: view.version,
            state: view.state,
            last_modified: view.last_modified.map(rfc3339),
            reducer_id: view.reducer_id,
        })),
    }
}
