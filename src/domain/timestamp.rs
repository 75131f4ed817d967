//! Timestamps on the wire: ISO-8601 strings or epoch milliseconds, as JavaScript's `Date` takes them.
//! Internally every timestamp is UTC epoch milliseconds (`i64`).

use time::{OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339};

/// Largest magnitude JavaScript `Date` accepts (±100,000,000 days).
const JS_DATE_LIMIT_MS: f64 = 8.64e15;

/// Current time as epoch milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch milliseconds from a JSON number, if it is a finite value within JavaScript's date range.
pub fn from_epoch_number(n: f64) -> Option<i64> {
    (n.is_finite() && n.abs() <= JS_DATE_LIMIT_MS).then(|| n.trunc() as i64)
}

/// Parses an ISO-8601 date or date-time string. A date-time without an offset is read as UTC
/// (SuperInsights 1.x read it in the server's zone, which is UTC in its container).
pub fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(to_ms(t));
    }
    let date_time = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(s, &date_time) {
        return Some(to_ms(t.assume_utc()));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .ok()
        .map(|d| to_ms(d.midnight().assume_utc()))
}

/// Formats epoch milliseconds as `2024-01-31T12:00:00.000Z`, the shape JavaScript's `toISOString` gives.
pub fn to_iso(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_browsers_send() {
        assert_eq!(
            parse_iso("2024-01-31T12:00:00.000Z"),
            Some(1_706_702_400_000)
        );
        assert_eq!(
            parse_iso("2024-01-31T13:00:00+01:00"),
            Some(1_706_702_400_000)
        );
        assert_eq!(parse_iso("2024-01-31T12:00:00"), Some(1_706_702_400_000));
        assert_eq!(parse_iso("2024-01-31T12:00"), Some(1_706_702_400_000));
        assert_eq!(parse_iso("2024-01-31"), Some(1_706_659_200_000));
        assert_eq!(parse_iso("NaN"), None);
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn epoch_numbers_must_be_finite_and_in_range() {
        assert_eq!(
            from_epoch_number(1_706_702_400_000.0),
            Some(1_706_702_400_000)
        );
        assert_eq!(from_epoch_number(f64::NAN), None);
        assert_eq!(from_epoch_number(1e300), None);
    }

    #[test]
    fn iso_round_trip() {
        assert_eq!(to_iso(1_706_702_400_123), "2024-01-31T12:00:00.123Z");
        assert_eq!(
            parse_iso(&to_iso(1_706_702_400_123)),
            Some(1_706_702_400_123)
        );
    }
}
