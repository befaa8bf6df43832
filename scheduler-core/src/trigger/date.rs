//! One-off trigger.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::time::whole_micros;
use super::{Trigger, parse_instant, parse_time_zone};
use crate::error::Result;

/// Fires once, at an instant.
///
/// Before its fire it answers with its instant even when that is past: the scheduler then runs
/// it late, within the schedule's `misfire_grace_time`, or reports it missed.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use apsched::trigger::{DateTrigger, Trigger};
///
/// // A local time is read in the given zone.
/// let once = DateTrigger::parse("2030-01-01 10:00:00", "Europe/Berlin")?;
/// let at = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).unwrap();
/// let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
/// assert_eq!(once.next_fire_time(None, now), Some(at));
/// assert_eq!(once.next_fire_time(Some(at), at), None);
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateTrigger {
    run_date: DateTime<Utc>,
    timezone: Tz,
}

impl DateTrigger {
    /// Fires at `run_date`.
    #[must_use]
    pub fn at(run_date: DateTime<Utc>) -> Self {
        Self {
            run_date: whole_micros(run_date),
            timezone: Tz::UTC,
        }
    }

    /// Reads `run_date` as RFC 3339 (`2030-01-01T10:00:00+01:00`) or as a local date-time in
    /// the named IANA zone (`2030-01-01 10:00:00`). A local time that the clocks skip is the
    /// first instant after the gap; one that occurs twice is its first occurrence.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTimeZone`](crate::Error::UnknownTimeZone) or
    /// [`Error::InvalidDateTime`](crate::Error::InvalidDateTime).
    pub fn parse(run_date: &str, timezone: &str) -> Result<Self> {
        let timezone = parse_time_zone(timezone)?;
        Ok(Self {
            run_date: whole_micros(parse_instant(run_date, timezone)?),
            timezone,
        })
    }

    /// Shows the instant in `timezone` (in the serde form and the REST API).
    #[must_use]
    pub fn with_timezone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self
    }

    /// The instant it fires.
    #[must_use]
    pub fn run_date(&self) -> DateTime<Utc> {
        self.run_date
    }

    /// The zone the instant is shown in.
    #[must_use]
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
}

impl Trigger for DateTrigger {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        _now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match previous {
            Some(previous) if previous >= self.run_date => None,
            _ => Some(self.run_date),
        }
    }

    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.run_date > after && self.run_date <= until).then_some(self.run_date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::utc;

    #[test]
    fn fires_once_even_when_past() {
        let t = DateTrigger::at(utc(2026, 1, 1, 0, 0, 0));
        let later = utc(2026, 6, 1, 0, 0, 0);
        assert_eq!(
            t.next_fire_time(None, later),
            Some(utc(2026, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            t.next_fire_time(Some(utc(2026, 1, 1, 0, 0, 0)), later),
            None
        );
        assert_eq!(
            t.last_fire_time(utc(2025, 1, 1, 0, 0, 0), later),
            Some(utc(2026, 1, 1, 0, 0, 0))
        );
        assert_eq!(t.last_fire_time(utc(2026, 1, 1, 0, 0, 0), later), None);
    }

    #[test]
    fn naive_times_are_read_in_the_zone() {
        let t = DateTrigger::parse("2026-07-01T12:00:00", "America/New_York").unwrap();
        assert_eq!(t.run_date(), utc(2026, 7, 1, 16, 0, 0));
        let t = DateTrigger::parse("2026-07-01T12:00:00+00:00", "America/New_York").unwrap();
        assert_eq!(t.run_date(), utc(2026, 7, 1, 12, 0, 0));
        assert!(DateTrigger::parse("2026-07-01", "Nowhere/Special").is_err());
    }
}
