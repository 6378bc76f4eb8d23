//! The one way the API reports failure: `{"error": code, "message": text, ...}` with the right status. Internal
//! details never reach the client; they are logged here, where the error is handled.

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::store::{AppendError, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra machine-readable fields, e.g. `expectedVersion` and `actualVersion`.
    pub fields: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Map::new(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(field.to_owned(), value.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; nothing was changed unless a success was returned",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server is shutting down; retry against a running server",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::with_capacity(2 + self.fields.len());
        body.insert("error".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        body.extend(self.fields);
        (self.status, Json(Value::Object(body))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ShuttingDown => ApiError::unavailable(),
            StoreError::NotDurable => {
                tracing::error!("append refused: the shard's storage failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_failed",
                    "the server's storage failed and it takes no writes until an operator restarts it",
                )
            }
            error => {
                tracing::error!(%error, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        let message = error.to_string();
        match error {
            AppendError::Concurrency { expected, actual } => {
                ApiError::new(StatusCode::CONFLICT, "concurrency", message)
                    .with("expectedVersion", expected)
                    .with("actualVersion", actual)
            }
            AppendError::EventIdConflict { event_id } | AppendError::PartialDuplicate { event_id } => {
                ApiError::new(StatusCode::CONFLICT, "event_id_conflict", message).with("eventId", event_id.to_string())
            }
            AppendError::AggregateTypeMismatch { existing, requested } => {
                ApiError::new(StatusCode::CONFLICT, "aggregate_type_mismatch", message)
                    .with("aggregateType", existing)
                    .with("requestedType", requested)
            }
            AppendError::AggregateTypeRequired => ApiError::bad_request(
                "aggregate_type_required",
                "the aggregate id has no '_' or '-' to infer the aggregate type from; name the type with \
                 \"aggregateType\" in the body, or use an id like \"order_123\" (type \"order\")",
            ),
            AppendError::LogFull => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "log_full", message),
            AppendError::Unavailable => ApiError::unavailable(),
            AppendError::Storage(error) => error.into(),
        }
    }
}

/// The JSON 404 for routes that do not exist.
pub async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found("not_found", format!("no route for {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
