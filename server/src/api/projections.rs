//! `/projections`: deploy (upload), a deploy's status, the tenant's projections, and state queries.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use super::sources::sources_from_request;
use crate::projections::{DeployStatus, Lookup, ProjectionError, Version, VersionFailure, VersionStatus};
use crate::runtime::ArtifactKind;
use crate::time_util::{from_unix_micros, rfc3339};

/// Keys longer than this are refused (a key names a row; the engine stores whatever `ResolveKey` gives).
const MAX_KEY_BYTES: usize = 1024;

pub async fn deploy(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.projections.availability().map_err(ProjectionError::Disabled)?;
    let sources = sources_from_request(&headers, body, state.limits.max_request_bytes)?;
    if sources.aggregate_type.is_some() {
        return Err(ApiError::bad_request(
            "invalid_field",
            "aggregateType binds reducers; a projection reads every event of the tenant",
        ));
    }
    let upload = state
        .reducers
        .upload(tenant.id, ArtifactKind::Projection, None, sources.files)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "uploadId": upload.upload_id.to_string(),
            "projectionId": null,
            "status": "compiling",
        })),
    )
        .into_response())
}

pub async fn status(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("not_found", "no projection upload with this id");
    let Path(id) = path.map_err(|_| not_found())?;
    let upload_id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let status = state
        .projections
        .status(tenant.id, upload_id)
        .await?
        .ok_or_else(not_found)?;
    let mut body = json!({"uploadId": upload_id.to_string(), "projectionId": null});
    match status {
        DeployStatus::Compiling => body["status"] = "compiling".into(),
        DeployStatus::Failed { message, diagnostics } => {
            body["status"] = "failed".into();
            body["message"] = message.into();
            body["diagnostics"] = serde_json::to_value(diagnostics).map_err(|_| ApiError::internal())?;
        }
        DeployStatus::Version(view) => {
            let version = &view.version;
            body["projectionId"] = view.projection_id.clone().into();
            body["status"] = version.status.as_str().into();
            body["version"] = version.version_id.into();
            body["className"] = version.class_name.clone().into();
            body["position"] = version.position.into();
            body["headPosition"] = view.head_position.into();
            body["lag"] = view.head_position.saturating_sub(version.position).into();
            body["eventsPerSecond"] = (view.events_per_second.round() as u64).into();
            body["createdAt"] = rfc3339(version.created_at).into();
            if let Some(at) = version.activated_at {
                body["activatedAt"] = rfc3339(at).into();
            }
            if let Some(at) = version.ended_at {
                body["endedAt"] = rfc3339(at).into();
            }
            if let Some(failure) = &version.failure {
                // A pending version that failed is `failed`; the active one keeps serving, stopped.
                body["error"] = failure_body(failure);
                if version.status == VersionStatus::Active {
                    body["stopped"] = true.into();
                }
            }
        }
    }
    Ok(Json(body))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let views = state.projections.list(tenant.id).await?;
    let projections: Vec<Value> = views
        .into_iter()
        .map(|view| {
            json!({
                "projectionId": view.projection.projection_id,
                "name": view.projection.identity,
                "createdAt": rfc3339(view.projection.created_at),
                "active": view.active.as_ref().map(version_summary),
                "pending": view.pending.as_ref().map(version_summary),
            })
        })
        .collect();
    Ok(Json(json!({ "projections": projections })))
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    Authenticated(tenant): Authenticated,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((projection_id, key)) =
        path.map_err(|_| ApiError::not_found("projection_not_found", "no projection with this id"))?;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("a key is 1 to {MAX_KEY_BYTES} bytes"),
        ));
    }
    let lookup = state.projections.lookup(tenant.id, &projection_id, &key).await?;
    match lookup {
        Lookup::NoProjection => Err(
            ApiError::not_found("projection_not_found", "no projection with this id")
                .with("projectionId", projection_id),
        ),
        Lookup::CatchingUp => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "catching_up",
                "message": "the projection's first version is still catching up with the log; ask again shortly",
            })),
        )
            .into_response()),
        Lookup::NeverActive { failure } => {
            let mut error = ApiError::new(
                StatusCode::CONFLICT,
                "projection_failed",
                "the projection has no active version: its first version stopped at a failing event; fix the code and deploy again",
            );
            if let Some(failure) = failure {
                error = error.with("failure", failure_body(&failure));
            }
            Err(error)
        }
        Lookup::NoKey { position } => Err(ApiError::not_found(
            "key_not_found",
            "the projection has no state for this key",
        )
        .with("key", key)
        .with("position", position)),
        Lookup::State { state, position } => {
            let state: Box<serde_json::value::RawValue> =
                serde_json::value::RawValue::from_string(state).map_err(|error| {
                    tracing::error!(%error, "a stored projection state is not JSON");
                    ApiError::internal()
                })?;
            Ok(Json(json!({"key": key, "state": state, "position": position})).into_response())
        }
    }
}

fn version_summary(version: &Version) -> Value {
    json!({
        "version": version.version_id,
        "uploadId": version.upload_id.to_string(),
        "status": version.status.as_str(),
        "position": version.position,
        "className": version.class_name,
    })
}

fn failure_body(failure: &VersionFailure) -> Value {
    json!({
        "position": failure.position,
        "eventId": failure.event_id,
        "aggregateId": failure.aggregate_id,
        "error": failure.error,
        "exceptionType": failure.exception_type,
        "message": failure.message,
        "failedAt": rfc3339(from_unix_micros(failure.failed_at_micros)),
    })
}

impl From<ProjectionError> for ApiError {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::Disabled(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "code_disabled", error.to_string())
            }
            ProjectionError::Registry(error) => error.into(),
            ProjectionError::Store(error) => {
                tracing::error!(%error, "projection store failure");
                ApiError::internal()
            }
            ProjectionError::Stopped => ApiError::unavailable(),
        }
    }
}
