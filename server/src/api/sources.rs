//! The sources of an upload, from its body: JSON (`{"files": {...}, "aggregateType"}` or a bare map of file name to
//! source) or an archive of a project folder (`.tar.gz`, `.zip`). Shapes the compiler would refuse are refused here
//! first, with a 4xx naming the file, so that a bad upload never becomes a background compile.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::error::ApiError;
use super::reducers::UploadSources;
use crate::code::archive::{
    ArchiveErrorKind, ArchiveFormat, MAX_SOURCE_PATH_CHARS, SourceLimits, is_valid_source_path, sources_from_archive,
};

enum BodyKind {
    Json,
    Archive(ArchiveFormat),
    /// `application/octet-stream`: told apart by its first bytes.
    Sniff,
}

pub fn sources_from_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    max_request_bytes: usize,
) -> Result<UploadSources, ApiError> {
    let kind = body_kind(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the request body is larger than {max_request_bytes} bytes (max_request_bytes)"),
            )
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })?;
    let limits = SourceLimits::default();
    let kind = match kind {
        BodyKind::Sniff => ArchiveFormat::sniff(&body).map_or(BodyKind::Json, BodyKind::Archive),
        kind => kind,
    };
    let sources = match kind {
        BodyKind::Archive(format) => UploadSources {
            files: sources_from_archive(&body, format, &limits).map_err(|error| {
                let message = error.to_string();
                match error.kind() {
                    ArchiveErrorKind::TooLarge => too_large(message),
                    ArchiveErrorKind::InvalidUpload => invalid(message),
                    ArchiveErrorKind::Unreadable => ApiError::bad_request("invalid_archive", message),
                }
            })?,
            aggregate_type: None,
        },
        _ => sources_from_json(&body)?,
    };
    check_sources(&sources.files, &limits)?;
    Ok(sources)
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(mime) = super::validate::media_type(headers) else {
        return Ok(BodyKind::Json);
    };
    match mime.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/gzip"
        | "application/x-gzip"
        | "application/x-tar+gzip"
        | "application/tar+gzip"
        | "application/x-compressed-tar" => Ok(BodyKind::Archive(ArchiveFormat::TarGz)),
        "application/zip" | "application/x-zip-compressed" => Ok(BodyKind::Archive(ArchiveFormat::Zip)),
        "application/octet-stream" => Ok(BodyKind::Sniff),
        mime if mime.starts_with("application/") && mime.ends_with("+json") => Ok(BodyKind::Json),
        mime => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the sources as JSON (application/json), a .tar.gz (application/gzip) or a .zip \
                 (application/zip); got {mime:?}"
            ),
        )),
    }
}

fn sources_from_json(body: &[u8]) -> Result<UploadSources, ApiError> {
    let value: Value = super::append::parse_json(body)?;
    let Value::Object(mut object) = value else {
        return Err(invalid(
            "the body must be a JSON object: {\"files\": {\"Name.cs\": \"<source>\"}, \"aggregateType\": \"...\"}",
        ));
    };
    let (files, aggregate_type) = if let Some(files) = object.remove("files") {
        let aggregate_type = match object.remove("aggregateType") {
            None | Some(Value::Null) => None,
            Some(Value::String(aggregate_type)) => Some(aggregate_type),
            Some(_) => {
                return Err(ApiError::bad_request("invalid_json", "aggregateType must be a string"));
            }
        };
        if let Some(unknown) = object.keys().next() {
            return Err(ApiError::bad_request(
                "invalid_json",
                format!("unknown field {unknown:?}: send \"files\" and optionally \"aggregateType\""),
            ));
        }
        let Value::Object(files) = files else {
            return Err(ApiError::bad_request(
                "invalid_json",
                "files must be an object of file name to source",
            ));
        };
        (files, aggregate_type)
    } else {
        (object, None)
    };
    let mut sources = BTreeMap::new();
    for (name, source) in files {
        let Value::String(source) = source else {
            return Err(ApiError::bad_request(
                "invalid_json",
                format!("files.{name}: the source must be a string"),
            ));
        };
        sources.insert(name, source);
    }
    Ok(UploadSources {
        files: sources,
        aggregate_type,
    })
}

/// The shape rules of the compiler (dotnet-host `UploadLimits`), so that uploads it would refuse fail fast.
fn check_sources(files: &BTreeMap<String, String>, limits: &SourceLimits) -> Result<(), ApiError> {
    if !files.keys().any(|name| name.ends_with(".cs")) {
        return Err(invalid("the upload has no .cs file"));
    }
    if files.len() > limits.max_files {
        return Err(too_large(format!(
            "the upload has {} files; at most {} are allowed",
            files.len(),
            limits.max_files
        )));
    }
    let mut total = 0;
    for (name, source) in files {
        if !is_valid_source_path(name) {
            return Err(invalid(format!(
                "the file name {name:?} is not allowed: use a relative path of at most {MAX_SOURCE_PATH_CHARS} characters \
                 whose parts are letters, digits, '_', '-' or '.' (not starting with '.'), ending in .cs or .csproj"
            )));
        }
        if source.len() > limits.max_file_bytes {
            return Err(too_large(format!(
                "{name} has {} bytes; at most {} are allowed per file",
                source.len(),
                limits.max_file_bytes
            )));
        }
        total += source.len();
    }
    if total > limits.max_total_bytes {
        return Err(too_large(format!(
            "the sources have {total} bytes; at most {} are allowed in all",
            limits.max_total_bytes
        )));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_upload", message)
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_takes_both_forms() {
        let structured =
            sources_from_json(br#"{"files": {"A.cs": "class A {}"}, "aggregateType": "order"}"#).expect("parsed");
        assert_eq!(structured.aggregate_type.as_deref(), Some("order"));
        assert_eq!(structured.files["A.cs"], "class A {}");
        let bare = sources_from_json(br#"{"A.cs": "class A {}", "B.cs": "class B {}"}"#).expect("parsed");
        assert_eq!(bare.files.len(), 2);
        assert!(bare.aggregate_type.is_none());
        assert_eq!(
            sources_from_json(br#"{"A.cs": 5}"#).err().expect("refused").code,
            "invalid_json"
        );
        assert_eq!(
            sources_from_json(br#"{"files": {}, "other": 1}"#)
                .err()
                .expect("refused")
                .code,
            "invalid_json"
        );
        assert_eq!(sources_from_json(b"[1]").err().expect("refused").code, "invalid_upload");
    }
}
