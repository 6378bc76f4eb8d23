//! A page of a tenant's log in one buffer, for consumers that pass every event on (projections re-encode each one
//! for a worker): reading it allocates two vectors instead of a dozen strings per event, and an aggregate's id and
//! type are stored once per page, not once per event.

use uuid::Uuid;

/// Where a text column lies in the slab's buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// A text column that may be absent.
type MaybeSpan = Option<Span>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    event_id: [u8; 16],
    version: u64,
    global_position: u64,
    recorded_at_micros: i64,
    aggregate_id: Span,
    aggregate_type: Span,
    event_type: Span,
    data: Span,
    metadata: MaybeSpan,
    correlation_id: MaybeSpan,
    causation_id: MaybeSpan,
}

/// One event of a slab, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct SlabEvent<'a> {
    pub event_id: Uuid,
    pub aggregate_id: &'a str,
    pub aggregate_type: &'a str,
    pub event_type: &'a str,
    pub version: u64,
    pub global_position: u64,
    pub recorded_at_micros: i64,
    /// JSON, as validated when it was appended.
    pub data: &'a str,
    pub metadata: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub causation_id: Option<&'a str>,
}

/// Events of one tenant's log in position order, and the tenant's durable head when they were read.
#[derive(Debug, Default)]
pub struct LogSlab {
    pub head_position: u64,
    text: String,
    entries: Vec<Entry>,
}

/// An event being added to a slab ([`LogSlab::push`]); the aggregate's id and type come from
/// [`LogSlab::push_text`], so a page's events of one aggregate can share them.
pub struct NewSlabEvent<'a> {
    pub event_id: [u8; 16],
    pub version: u64,
    pub global_position: u64,
    pub recorded_at_micros: i64,
    pub aggregate: (TextRef, TextRef),
    pub event_type: &'a str,
    pub data: &'a str,
    pub metadata: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub causation_id: Option<&'a str>,
}

/// Text already in a slab.
#[derive(Debug, Clone, Copy)]
pub struct TextRef(Span);

impl LogSlab {
    pub fn with_capacity(events: usize, text_bytes: usize) -> Self {
        LogSlab {
            head_position: 0,
            text: String::with_capacity(text_bytes),
            entries: Vec::with_capacity(events),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of the last event, if any.
    pub fn last_position(&self) -> Option<u64> {
        self.entries.last().map(|entry| entry.global_position)
    }

    /// Copies `text` into the slab, for events to refer to.
    pub fn push_text(&mut self, text: &str) -> TextRef {
        TextRef(self.span_of(text))
    }

    pub fn push(&mut self, event: NewSlabEvent<'_>) {
        let entry = Entry {
            event_id: event.event_id,
            version: event.version,
            global_position: event.global_position,
            recorded_at_micros: event.recorded_at_micros,
            aggregate_id: event.aggregate.0.0,
            aggregate_type: event.aggregate.1.0,
            event_type: self.span_of(event.event_type),
            data: self.span_of(event.data),
            metadata: event.metadata.map(|text| self.span_of(text)),
            correlation_id: event.correlation_id.map(|text| self.span_of(text)),
            causation_id: event.causation_id.map(|text| self.span_of(text)),
        };
        self.entries.push(entry);
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = SlabEvent<'_>> + '_ {
        self.entries.iter().map(|entry| SlabEvent {
            event_id: Uuid::from_bytes(entry.event_id),
            aggregate_id: self.text(entry.aggregate_id),
            aggregate_type: self.text(entry.aggregate_type),
            event_type: self.text(entry.event_type),
            version: entry.version,
            global_position: entry.global_position,
            recorded_at_micros: entry.recorded_at_micros,
            data: self.text(entry.data),
            metadata: entry.metadata.map(|span| self.text(span)),
            correlation_id: entry.correlation_id.map(|span| self.text(span)),
            causation_id: entry.causation_id.map(|span| self.text(span)),
        })
    }

    fn span_of(&mut self, text: &str) -> Span {
        // A page is at most a few MiB (a batch of events, each at most the configured event size), far below 4 GiB.
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.text.push_str(text);
        Span {
            start,
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
        }
    }

    fn text(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text.get(start..start + span.len as usize).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_pushed_and_share_their_aggregate() {
        let mut slab = LogSlab::with_capacity(2, 64);
        let aggregate = (slab.push_text("email-1"), slab.push_text("email"));
        for (position, data, metadata) in [(5, r#"{"a":1}"#, None), (6, r#"{"b":"é"}"#, Some(r#"{"m":true}"#))] {
            slab.push(NewSlabEvent {
                event_id: [position as u8; 16],
                version: position - 4,
                global_position: position,
                recorded_at_micros: 42,
                aggregate,
                event_type: "Received",
                data,
                metadata,
                correlation_id: (position == 6).then_some("corr"),
                causation_id: None,
            });
        }
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.last_position(), Some(6));
        let events: Vec<SlabEvent<'_>> = slab.iter().collect();
        assert_eq!(events[0].aggregate_id, "email-1");
        assert_eq!(events[1].aggregate_type, "email");
        assert_eq!(events[0].data, r#"{"a":1}"#);
        assert_eq!(events[1].data, r#"{"b":"é"}"#);
        assert_eq!(events[0].metadata, None);
        assert_eq!(events[1].metadata, Some(r#"{"m":true}"#));
        assert_eq!(events[1].correlation_id, Some("corr"));
        assert_eq!(events[1].event_id, Uuid::from_bytes([6; 16]));
        assert_eq!(events[1].version, 2);
    }
}
