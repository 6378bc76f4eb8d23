//! Timestamps are stored as integer microseconds since the Unix epoch (compact, ordered) and shown as RFC 3339 UTC.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Always six fraction digits, so timestamps have one width and sort as text.
const RFC3339_MICROS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn unix_micros(at: OffsetDateTime) -> i64 {
    // Microseconds since 1970 fit in i64 for 292,000 years.
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Out-of-range values (only possible from a damaged file) clamp to the epoch rather than fail a whole read.
pub fn from_unix_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-25T11:15:53.123456Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_MICROS)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_microsecond_precision() {
        let at = time::macros::datetime!(2026-11-25 11:15:53.123456789 UTC);
        let back = from_unix_micros(unix_micros(at));
        assert_eq!(rfc3339(back), "2026-11-25T11:15:53.123456Z");
        let whole_second = time::macros::datetime!(2026-11-25 11:15:53 UTC);
        assert_eq!(rfc3339(whole_second), "2026-11-25T11:15:53.000000Z");
        let trailing_zero = time::macros::datetime!(2026-11-25 11:15:53.41781 UTC);
        assert_eq!(rfc3339(trailing_zero), "2026-11-25T11:15:53.417810Z");
    }
}
