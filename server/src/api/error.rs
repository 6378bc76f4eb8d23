//! The one way the API reports failure: `{"error": code, "message": text, ...}` with the right status. Internal
//! details never reach the client; they are logged here, where the error is handled.

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::code::CodeError;
use crate::code::fold::FoldError;
use crate::code::registry::RegistryError;
use crate::runtime::Failure;
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
            AppendError::Moved(_) => ApiError::new(
                StatusCode::CONFLICT,
                "concurrency",
                "the aggregate kept moving while its state was computed; retry",
            ),
            AppendError::LogFull => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "log_full", message),
            AppendError::Unavailable => ApiError::unavailable(),
            AppendError::Storage(error) => error.into(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        tracing::error!(%error, "code registry failure");
        ApiError::internal()
    }
}

impl From<CodeError> for ApiError {
    fn from(error: CodeError) -> Self {
        let message = error.to_string();
        match error {
            CodeError::Disabled(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "code_disabled", message),
            CodeError::ReducerNotFound(reducer_id) => {
                ApiError::not_found("reducer_not_found", message).with("reducerId", reducer_id)
            }
            CodeError::Unavailable { reducer_id, .. } => {
                tracing::error!(%message, "a reducer cannot run");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "reducer_unavailable", message)
                    .with("reducerId", reducer_id)
            }
            CodeError::Registry(error) => error.into(),
            CodeError::Fold(error) => error.into(),
        }
    }
}

impl From<FoldError> for ApiError {
    fn from(error: FoldError) -> Self {
        match error {
            FoldError::Reducer {
                reducer_id,
                failure,
                version,
            } => reducer_failure(reducer_id, failure, version),
            FoldError::Append(error) => error.into(),
            FoldError::Store(error) => error.into(),
            FoldError::Contention(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contention",
                format!("{error}; retry, or send fewer concurrent appends to this aggregate"),
            ),
            FoldError::CorruptState(_) => {
                tracing::error!(%error, "stored state");
                ApiError::internal()
            }
        }
    }
}

/// A reducer that failed on the write path: the client's code, so a 422 saying what happened and that nothing was
/// stored; a worker that could not be had is the server's, a 503.
fn reducer_failure(reducer_id: String, failure: Failure, version: Option<u64>) -> ApiError {
    let unprocessable = |code, message: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            format!("{message}; nothing was stored"),
        )
        .with("reducerId", reducer_id.clone())
    };
    match failure {
        Failure::UserException {
            exception_type,
            message,
            ..
        } => {
            let at = version
                .map(|v| format!(" on the event at version {v}"))
                .unwrap_or_default();
            let mut error = unprocessable(
                "reducer_failed",
                format!("the reducer threw {exception_type}{at}: {message}"),
            )
            .with("reason", "exception")
            .with("exceptionType", exception_type)
            .with("exceptionMessage", message);
            if let Some(version) = version {
                error = error.with("version", version);
            }
            error
        }
        Failure::Timeout(limit) => unprocessable(
            "reducer_timeout",
            format!("the reducer ran longer than {} s and was stopped", limit.as_secs_f64()),
        ),
        Failure::OutOfMemory => unprocessable(
            "reducer_failed",
            "the reducer ran out of memory and was stopped".to_owned(),
        )
        .with("reason", "out_of_memory")
        .with("exceptionType", "System.OutOfMemoryException"),
        Failure::Crashed(why) => unprocessable("reducer_failed", format!("the reducer's worker crashed ({why})"))
            .with("reason", "crashed")
            .with("exceptionType", "crash"),
        failure => {
            tracing::error!(%failure, reducer = %reducer_id, "no worker could run a reducer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reducer_unavailable",
                format!("the reducer could not be run: {failure}"),
            )
            .with("reducerId", reducer_id)
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
