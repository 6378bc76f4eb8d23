//! The supervisor↔worker protocol, version [`PROTOCOL_VERSION`]: the one definition of what crosses the pipes to a
//! jailed worker, for any language.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes of UTF-8 JSON. The worker speaks first, a
//! `hello` naming its protocol version; then the supervisor sends `request`s and the worker answers each with one
//! `response` carrying the same id and either `ok` (any JSON) or `error` (the user's code failed: a kind and a
//! message). The worker runs requests one at a time, in the order they arrive, and answers in that order; the
//! supervisor may send the next requests (a few, bounded) before the earlier ones are answered, so the worker finds
//! its next request waiting in its input (pipelining: a worker that reads one frame, answers it and reads the next
//! needs nothing more). Anything else (a frame above the cap, a truncated frame, bytes that are not a message, an
//! answer to another request than the oldest unanswered) is a protocol violation ([`ProtocolViolation`]) and the
//! worker is discarded.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PROTOCOL_VERSION: u32 = 1;

/// Frames larger than this are refused unless the worker's configuration says otherwise.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// Worker → supervisor, once, first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename = "hello")]
pub struct Hello {
    pub protocol: u32,
}

/// Supervisor → worker: `{"type":"request","id":N,"body":BODY}`. The field order is part of the wire format
/// (simple workers may rely on it). The body is any JSON value: raw, or serialized straight into the frame.
#[derive(Debug)]
pub struct Request<'a, B: ?Sized = RawValue> {
    pub id: u64,
    pub body: &'a B,
}

impl<B: Serialize + ?Sized> Serialize for Request<'_, B> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut request = serializer.serialize_struct("Request", 3)?;
        request.serialize_field("type", "request")?;
        request.serialize_field("id", &self.id)?;
        request.serialize_field("body", self.body)?;
        request.end()
    }
}

/// Worker → supervisor, one per request.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename = "response")]
pub struct Response {
    pub id: u64,
    #[serde(default)]
    pub ok: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<UserError>,
}

/// The worker ran the request and the user's code failed (or the request was refused): the worker itself is fine.
/// `detail` is whatever structured context the worker adds (for a .NET worker: the exception type and the event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserError {
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// How a worker broke the protocol; the worker is discarded. The messages are the ones operators see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A frame's length prefix announced more than the supervisor accepts (or than a frame can hold).
    #[error("a frame of {length} bytes is above the cap of {cap}")]
    TooLarge { length: u32, cap: u32 },
    /// The worker exited normally in the middle of a frame.
    #[error("the worker exited inside a frame")]
    Truncated,
    /// A frame that is not the message expected at that point.
    #[error("not a protocol message: {0}")]
    Garbage(String),
    /// A response to another request than the oldest one awaiting its answer.
    #[error("answered request {answered} while {asked} was asked")]
    WrongId { asked: u64, answered: u64 },
    /// The worker's hello names another protocol version.
    #[error("the worker speaks protocol {worker}, the supervisor {supervisor}")]
    WrongVersion { worker: u32, supervisor: u32 },
    /// The worker said nothing within the handshake timeout.
    #[error("no hello within {waited:?}")]
    NoHello { waited: Duration },
    /// A response with both `ok` and `error`, or neither.
    #[error("a response needs exactly one of `ok` and `error`")]
    AmbiguousResponse,
    /// The worker was started without its standard streams piped, so it cannot speak at all.
    #[error("the worker's standard streams are not piped")]
    NotPiped,
    /// The worker's stream broke and the worker could not be reaped to tell how it ended.
    #[error("{stream}; and the wait failed: {wait}")]
    Unexplained { stream: String, wait: String },
}

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the stream ended")]
    Closed,
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("a frame of {length} bytes is above the cap of {cap}")]
    TooLarge { length: u32, cap: u32 },
    #[error("not a protocol message: {0}")]
    Garbage(String),
    #[error("pipe: {0}")]
    Io(std::io::Error),
}

/// Writes one frame.
pub async fn write_frame(writer: &mut (impl AsyncWrite + Unpin), payload: &[u8]) -> Result<(), FrameError> {
    let length = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        length: u32::MAX,
        cap: u32::MAX,
    })?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(payload);
    writer.write_all(&frame).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

/// A whole request frame, length prefix included, serialized in place: one buffer, one write.
pub fn request_frame(id: u64, body: &(impl Serialize + ?Sized)) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::new();
    encode_request(&mut frame, id, body)?;
    Ok(frame)
}

/// Serializes a request frame into `frame` (cleared first; its allocation is reused from call to call).
pub fn encode_request(frame: &mut Vec<u8>, id: u64, body: &(impl Serialize + ?Sized)) -> Result<(), FrameError> {
    frame.clear();
    frame.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *frame, &Request { id, body })
        .map_err(|e| FrameError::Garbage(format!("serialize the request: {e}")))?;
    let length = u32::try_from(frame.len() - 4).map_err(|_| FrameError::TooLarge {
        length: u32::MAX,
        cap: u32::MAX,
    })?;
    frame[..4].copy_from_slice(&length.to_le_bytes());
    Ok(())
}

/// Writes a frame made by [`request_frame`].
pub async fn write_encoded(writer: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> Result<(), FrameError> {
    writer.write_all(frame).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

/// Reads one frame's payload, refusing one above `cap` before reading it.
pub async fn read_frame(reader: &mut (impl AsyncRead + Unpin), cap: u32) -> Result<Vec<u8>, FrameError> {
    let mut header = [0_u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]).await.map_err(FrameError::Io)? {
            0 if filled == 0 => return Err(FrameError::Closed),
            0 => return Err(FrameError::Truncated),
            n => filled += n,
        }
    }
    let length = u32::from_le_bytes(header);
    if length > cap {
        return Err(FrameError::TooLarge { length, cap });
    }
    let mut payload = vec![0_u8; length as usize];
    reader.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(payload)
}

/// Parses a frame as message `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| {
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned();
        FrameError::Garbage(format!("{e}: {shown:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_frames_are_typed() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, br#"{"type":"hello","protocol":1}"#)
            .await
            .expect("write");
        let payload = read_frame(&mut b, 1024).await.expect("read");
        assert_eq!(parse::<Hello>(&payload).expect("hello"), Hello { protocol: 1 });

        write_frame(&mut a, &[b'x'; 100]).await.expect("write");
        assert!(matches!(
            read_frame(&mut b, 10).await,
            Err(FrameError::TooLarge { length: 100, cap: 10 })
        ));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[50, 0, 0, 0, b'{']).await.expect("write");
        drop(a);
        assert!(matches!(read_frame(&mut b, 1024).await, Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut b, 1024).await, Err(FrameError::Closed)));

        assert!(matches!(parse::<Hello>(b"nope!"), Err(FrameError::Garbage(_))));
    }

    #[test]
    fn violations_read_as_lowercase_sentences_with_their_context() {
        let shown = [
            ProtocolViolation::TooLarge { length: 100, cap: 10 }.to_string(),
            ProtocolViolation::WrongId { asked: 3, answered: 4 }.to_string(),
            ProtocolViolation::WrongVersion {
                worker: 2,
                supervisor: PROTOCOL_VERSION,
            }
            .to_string(),
            ProtocolViolation::NoHello {
                waited: Duration::from_millis(500),
            }
            .to_string(),
        ];
        assert_eq!(
            shown,
            [
                "a frame of 100 bytes is above the cap of 10",
                "answered request 4 while 3 was asked",
                "the worker speaks protocol 2, the supervisor 1",
                "no hello within 500ms",
            ]
        );
    }

    #[test]
    fn a_request_keeps_its_field_order() {
        let body = RawValue::from_string(r#"{"cmd":"echo"}"#.into()).expect("raw");
        let text = serde_json::to_string(&Request { id: 7, body: &body }).expect("serialize");
        assert_eq!(text, r#"{"type":"request","id":7,"body":{"cmd":"echo"}}"#);
        let frame = request_frame(7, &body).expect("a frame");
        assert_eq!(&frame[..4], &(text.len() as u32).to_le_bytes());
        assert_eq!(&frame[4..], text.as_bytes());
    }
}
