//! Time zone names, date-time text and local-time resolution shared by the triggers.

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, SubsecRound, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// Looks up an IANA time zone by name (`UTC` and `Z` included).
pub(crate) fn parse_time_zone(name: &str) -> Result<Tz> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| Error::UnknownTimeZone(name.to_owned()))
}

/// Reads a date-time: RFC 3339 with an offset (`2030-01-01T10:00:00+02:00`), or a naive
/// date-time or date (`2030-01-01 10:00:00`, `2030-01-01T10:00`, `2030-01-01`) read as a wall
/// time in `tz`.
///
/// # Errors
///
/// [`Error::InvalidDateTime`](crate::Error::InvalidDateTime) naming the text.
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.with_timezone(&Utc));
    }
    // RFC 3339 insists on `T`; APScheduler users write a space.
    if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| Error::InvalidDateTime {
        value: text.to_owned(),
        reason: "expected RFC 3339 (2030-01-01T10:00:00+02:00) or a local date-time \
                     (2030-01-01 10:00:00)"
            .to_owned(),
    })?;
    Ok(resolve_local(naive, tz))
}

/// The instant of a wall time in `tz`, by the rule the cron trigger follows too: a wall time
/// that occurs twice (the clocks went back) is its first occurrence; one that does not exist
/// (the clocks went forward) is the first instant after the gap.
pub(crate) fn resolve_local(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => dt.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are whole minutes in every zone in use; the first wall minute that exists
            // again is the transition itself.
            let mut probe = naive;
            for _ in 0..(48 * 60) {
                probe += chrono::TimeDelta::minutes(1);
                let probe_floor = probe
                    .date()
                    .and_hms_opt(
                        chrono::Timelike::hour(&probe),
                        chrono::Timelike::minute(&probe),
                        0,
                    )
                    .unwrap_or(probe);
                match tz.from_local_datetime(&probe_floor) {
                    LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => {
                        return dt.with_timezone(&Utc);
                    }
                    LocalResult::None => {}
                }
            }
            // No zone has a gap of two days; read the time as UTC rather than fail.
            naive.and_utc()
        }
    }
}

/// RFC 3339 in `tz`, with sub-second digits only when there are any.
pub(crate) fn format_instant(instant: DateTime<Utc>, tz: Tz) -> String {
    let local = instant.with_timezone(&tz);
    if tz == Tz::UTC {
        instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    } else {
        local.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

/// An instant at the scheduler's resolution, one microsecond (what SQL timestamps and the
/// stores keep): every trigger time is a whole microsecond, so a time read back from a store is
/// the very fire its trigger computes.
pub(crate) fn whole_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::utc;

    #[test]
    fn reads_offsets_and_local_times() {
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        assert_eq!(
            parse_instant("2030-01-01T10:00:00+02:00", berlin).unwrap(),
            utc(2030, 1, 1, 8, 0, 0)
        );
        assert_eq!(
            parse_instant("2030-01-01 10:00:00", berlin).unwrap(),
            utc(2030, 1, 1, 9, 0, 0)
        );
        assert_eq!(
            parse_instant("2030-07-01", berlin).unwrap(),
            utc(2030, 6, 30, 22, 0, 0)
        );
        assert_eq!(
            parse_instant("2030-07-01T00:00:00Z", berlin).unwrap(),
            utc(2030, 7, 1, 0, 0, 0)
        );
    }

    #[test]
    fn local_gap_and_fold_follow_the_cron_rule() {
        let ny = parse_time_zone("America/New_York").unwrap();
        // 02:30 does not exist on 2026-03-08: the first instant after the gap is 03:00 EDT.
        assert_eq!(
            parse_instant("2026-03-08 02:30", ny).unwrap(),
            utc(2026, 3, 8, 7, 0, 0)
        );
        // 01:30 happens twice on 2026-11-01: the first is 01:30 EDT.
        assert_eq!(
            parse_instant("2026-11-01 01:30", ny).unwrap(),
            utc(2026, 11, 1, 5, 30, 0)
        );
    }

    #[test]
    fn names_the_bad_input() {
        let err = parse_time_zone("Mars/Olympus").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown time zone \"Mars/Olympus\" (expected an IANA name such as \"Europe/Berlin\")"
        );
        let err = parse_instant("next tuesday", Tz::UTC).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid date-time \"next tuesday\""),
            "{err}"
        );
    }

    #[test]
    fn formats_in_the_zone() {
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        assert_eq!(
            format_instant(utc(2030, 1, 1, 8, 0, 0), berlin),
            "2030-01-01T09:00:00+01:00"
        );
        assert_eq!(
            format_instant(utc(2030, 1, 1, 8, 0, 0), Tz::UTC),
            "2030-01-01T08:00:00Z"
        );
    }
}
