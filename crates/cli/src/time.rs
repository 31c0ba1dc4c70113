//! Times on the command line (`--at`): RFC 3339, parsed by the `time` crate.
//!
//! Accepted: `2026-11-27T20:15:00Z`, `2026-11-27t21:15:00.5+01:00`, `2026-11-27 20:15:00z`
//! (RFC 3339 §5.6 allows another separator than `T`; `time` takes any one character),
//! surrounding whitespace ignored, fractions of a second beyond nanoseconds truncated. Rejected,
//! as RFC 3339 requires: offsets beyond ±23:59, and a second 60 except as a leap second (the
//! last second of a UTC month), which reads as 23:59:59.999999999.

use std::time::SystemTime;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 timestamp (a clap value parser, hence the `String` error: clap prints it
/// as the reason the value was refused).
pub(crate) fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| format!("{s:?} is not an RFC 3339 time (like 2026-11-27T20:15:00Z)"))
}

/// Unix seconds as an RFC 3339 UTC time (`2026-12-06T08:00:00Z`), for listings.
pub(crate) fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::UNIX_EPOCH;

    fn secs(s: &str) -> i64 {
        let t = parse_rfc3339(s).unwrap();
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    #[test]
    fn utc_listing_round_trips() {
        for t in [0, 951_868_800, 1_764_979_200, 4_102_444_799, -86_400] {
            assert_eq!(secs(&format_utc(t)), t, "{}", format_utc(t));
        }
        assert_eq!(format_utc(951_868_800), "2000-03-01T00:00:00Z");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(
            secs("2026-11-27T21:15:00+01:00"),
            secs("2026-11-27T20:15:00Z")
        );
        assert_eq!(
            secs("2026-11-27T20:15:00.999-00:30"),
            secs("2026-11-27T20:45:00Z")
        );
        assert_eq!(secs("1969-12-31T23:59:59Z"), -1);
        // Lowercase, a space separator, surrounding whitespace, more than nine fraction digits.
        assert_eq!(
            secs(" 2026-11-27 20:15:00.1234567891z\n"),
            secs("2026-11-27T20:15:00Z")
        );
        assert_eq!(secs("2026-11-27t20:15:00z"), secs("2026-11-27T20:15:00Z"));
        for bad in [
            "",
            "yesterday",
            "2026-11-27",
            "2026-11-27T20:15:00",
            "2026-02-30T00:00:00Z",
            "2026-11-27T20:15:00+0100",
            "2026-11-27T20:15:00.Z",
            "2026-1a-27T20:15:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T20:15:00Zjunk",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
