//! The rules for ids, types and payloads (docs/http-api.md, "Limits and validation"), checked before anything reaches
//! the store.

use super::error::ApiError;

pub const MAX_AGGREGATE_ID_LEN: usize = 200;
pub const MAX_AGGREGATE_TYPE_LEN: usize = 100;
pub const MAX_EVENT_TYPE_LEN: usize = 200;
pub const MAX_TRACE_ID_LEN: usize = 200;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

pub fn aggregate_id(id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty() && id.len() <= MAX_AGGREGATE_ID_LEN && id.bytes().all(|b| is_name_byte(b) || b == b'@');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_aggregate_id",
            format!(
                "aggregate id must be 1-{MAX_AGGREGATE_ID_LEN} characters from A-Z a-z 0-9 _ - . : @, like \"order_123\""
            ),
        ))
    }
}

pub fn aggregate_type(value: &str, field: &str) -> Result<(), ApiError> {
    if !value.is_empty() && value.len() <= MAX_AGGREGATE_TYPE_LEN && value.bytes().all(is_name_byte) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_aggregate_type",
            format!("{field} must be 1-{MAX_AGGREGATE_TYPE_LEN} characters from A-Z a-z 0-9 _ - . :"),
        ))
    }
}

pub fn event_type(value: &str, field: &str) -> Result<(), ApiError> {
    if !value.is_empty() && value.len() <= MAX_EVENT_TYPE_LEN && value.bytes().all(is_name_byte) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_event_type",
            format!("{field} must be 1-{MAX_EVENT_TYPE_LEN} characters from A-Z a-z 0-9 _ - . :, like \"OrderPlaced\""),
        ))
    }
}

/// Correlation and causation ids are opaque to us, but they are echoed back and logged, so no control characters.
pub fn trace_id(value: &str, field: &str) -> Result<(), ApiError> {
    if !value.is_empty() && value.chars().count() <= MAX_TRACE_ID_LEN && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be 1-{MAX_TRACE_ID_LEN} characters without control characters"),
        ))
    }
}

/// The aggregate type an id implies: everything before its first `_` or `-` (`order_123` → `order`). `None` when
/// the id has no separator or the prefix is not a valid type.
pub fn infer_aggregate_type(aggregate_id: &str) -> Option<&str> {
    let end = aggregate_id.find(['_', '-'])?;
    let prefix = &aggregate_id[..end];
    aggregate_type(prefix, "").ok().map(|()| prefix)
}

/// Drops insignificant whitespace from JSON text that is already known to be valid, so stored events are compact and
/// retries compare byte for byte in the usual case. Key order and number spelling are kept as the client sent them.
pub fn compact_json(valid_json: &str) -> String {
    let mut out = String::with_capacity(valid_json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in valid_json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// The media type of the request's `Content-Type` (lowercase, parameters dropped); `None` without the header.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::CONTENT_TYPE)?;
    Some(
        value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_the_type_from_the_prefix() {
        assert_eq!(infer_aggregate_type("order_123"), Some("order"));
        assert_eq!(infer_aggregate_type("cart-abc"), Some("cart"));
        assert_eq!(infer_aggregate_type("user_profile_456"), Some("user"));
        assert_eq!(infer_aggregate_type("inventory-item-789"), Some("inventory"));
        assert_eq!(infer_aggregate_type("order123"), None);
        assert_eq!(infer_aggregate_type("_123"), None);
        assert_eq!(infer_aggregate_type("a@b_1"), None);
    }

    #[test]
    fn ids_and_types() {
        assert!(aggregate_id("order_1").is_ok());
        assert!(aggregate_id("user@example.com").is_ok());
        assert!(aggregate_id("").is_err());
        assert!(aggregate_id("a b").is_err());
        assert!(aggregate_id(&"a".repeat(201)).is_err());
        assert!(aggregate_id(&"a".repeat(200)).is_ok());
        assert!(event_type("Order.Placed:v2", "eventType").is_ok());
        assert!(event_type("Order Placed", "eventType").is_err());
        assert!(trace_id("abc", "correlationId").is_ok());
        assert!(trace_id("a\nb", "correlationId").is_err());
    }

    #[test]
    fn compaction_keeps_strings_intact() {
        assert_eq!(
            compact_json("{ \"a b\" : [1, 2],\n \"c\": \"x \\\" y\" }"),
            r#"{"a b":[1,2],"c":"x \" y"}"#
        );
        assert_eq!(compact_json(r#"{"s":"\\"}"#), r#"{"s":"\\"}"#);
    }
}
