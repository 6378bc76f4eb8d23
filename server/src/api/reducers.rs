//! `/reducers` (upload, status, list) and `/aggregate-types/{type}/reducer` (binding).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use super::sources::sources_from_request;
use super::validate;
use crate::code::registry::{Binding, ReducerInfo, UploadStatus};
use crate::runtime::ArtifactKind;
use crate::time_util::rfc3339;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadQuery {
    aggregate_type: Option<String>,
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let sources = sources_from_request(&headers, body, state.limits.max_request_bytes)?;
    let aggregate_type = match (query.aggregate_type, sources.aggregate_type) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "aggregateType in the query and in the body disagree; send one of them",
            ));
        }
        (a, b) => a.or(b),
    };
    if let Some(aggregate_type) = &aggregate_type {
        validate::aggregate_type(aggregate_type, "aggregateType")?;
    }
    let upload = state.reducers.upload(
        tenant.id,
        ArtifactKind::Reducer,
        aggregate_type.as_deref(),
        sources.files,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uploadId": upload.upload_id.to_string(), "status": "compiling"})),
    )
        .into_response())
}

pub async fn status(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("not_found", "no upload with this id");
    let Path(id) = path.map_err(|_| not_found())?;
    let upload_id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let upload = state
        .reducers
        .upload_status(tenant.id, upload_id)?
        .filter(|upload| upload.kind == ArtifactKind::Reducer)
        .ok_or_else(not_found)?;
    let mut body = json!({"uploadId": upload.upload_id.to_string(), "status": upload.status.name()});
    match upload.status {
        UploadStatus::Compiling => {}
        UploadStatus::Failed { message, diagnostics } => {
            body["message"] = message.into();
            body["diagnostics"] = serde_json::to_value(diagnostics).map_err(|_| ApiError::internal())?;
        }
        UploadStatus::Ready { code_id } => {
            let info = state.reducers.reducer(tenant.id, &code_id)?.ok_or_else(|| {
                tracing::error!(reducer = %code_id, "a ready upload's reducer is missing");
                ApiError::internal()
            })?;
            body["reducerId"] = info.reducer_id.into();
            body["className"] = info.class_name.into();
            body["stateType"] = info.state_type.into();
            body["aggregateType"] = upload.aggregate_type.into();
        }
    }
    Ok(Json(body))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReducerBody {
    reducer_id: String,
    class_name: String,
    state_type: String,
    created_at: String,
}

impl From<ReducerInfo> for ReducerBody {
    fn from(info: ReducerInfo) -> Self {
        ReducerBody {
            reducer_id: info.reducer_id,
            class_name: info.class_name,
            state_type: info.state_type,
            created_at: rfc3339(info.created_at),
        }
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let reducers: Vec<ReducerBody> = state.reducers.list(tenant.id)?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "reducers": reducers })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BindBody {
    reducer_id: String,
}

pub async fn bind(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let aggregate_type = aggregate_type_path(path)?;
    let body = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let BindBody { reducer_id } = super::append::parse_json(&body)?;
    let binding = state.reducers.bind(tenant.id, &aggregate_type, &reducer_id)?;
    Ok(Json(binding_body(&binding)))
}

pub async fn binding(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let aggregate_type = aggregate_type_path(path)?;
    let bound = state
        .reducers
        .bound(tenant.id, &aggregate_type)
        .ok_or_else(|| not_bound(&aggregate_type))?;
    Ok(Json(json!({
        "aggregateType": aggregate_type,
        "reducerId": bound.reducer_id,
        "boundAt": rfc3339(bound.bound_at),
    })))
}

pub async fn unbind(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let aggregate_type = aggregate_type_path(path)?;
    if state.reducers.unbind(tenant.id, &aggregate_type)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_bound(&aggregate_type))
    }
}

fn aggregate_type_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(aggregate_type) = path.map_err(|e| ApiError::bad_request("invalid_aggregate_type", e.body_text()))?;
    validate::aggregate_type(&aggregate_type, "aggregateType")?;
    Ok(aggregate_type)
}

fn not_bound(aggregate_type: &str) -> ApiError {
    ApiError::not_found(
        "not_bound",
        format!("no reducer is bound to aggregate type {aggregate_type:?}"),
    )
}

fn binding_body(binding: &Binding) -> Value {
    json!({
        "aggregateType": binding.aggregate_type,
        "reducerId": binding.reducer_id,
        "boundAt": rfc3339(binding.bound_at),
    })
}

/// What an upload request carried.
pub struct UploadSources {
    pub files: BTreeMap<String, String>,
    pub aggregate_type: Option<String>,
}
