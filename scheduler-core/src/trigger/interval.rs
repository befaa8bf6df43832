//! Fixed-period trigger on a drift-free grid.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Trigger;
use super::time::whole_micros;
use crate::error::{Error, HumanDuration, Result};

/// The longest period accepted: about 100 years, so grid arithmetic in nanoseconds never
/// overflows.
pub(crate) const MAX_PERIOD: TimeDelta = TimeDelta::days(36_525);

/// The shortest period accepted.
const MIN_PERIOD: TimeDelta = TimeDelta::milliseconds(1);

/// Fires every `period`, on the grid `start + k * period` (k = 0, 1, 2, ...).
///
/// The grid is fixed: how long a run takes, or how late it starts, never moves the following
/// fires. Jitter delays each fire by a random offset in `[0, jitter]` at dispatch and never
/// moves the grid either (APScheduler 3 computes the next fire from the jittered one, so its
/// jitter accumulates into drift).
///
/// - `start` defaults to one period after the schedule is added, so the first fire comes one
///   period later, as in APScheduler. Set the schedule's `next_run_time` to run at once.
///   A trigger used on its own without a start anchors its grid on `previous` (or on
///   `now + period` before the first fire).
/// - A `start` in the past fires at the next grid time at or after now: past fires are not
///   replayed.
/// - `end` is inclusive: a grid time equal to it still fires.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeZone, Utc};
/// use apsched::trigger::{IntervalTrigger, Trigger};
///
/// let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let every_90s = IntervalTrigger::builder().minutes(1).seconds(30).start(start).build()?;
/// let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 2, 0).unwrap();
/// let next = every_90s.next_fire_time(None, now).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 0, 3, 0).unwrap());
/// let after = every_90s.next_fire_time(Some(next), now).unwrap();
/// assert_eq!(after, Utc.with_ymd_and_hms(2026, 1, 1, 0, 4, 30).unwrap());
///
/// // A zero interval is an error, not a silent one second.
/// assert!(IntervalTrigger::every(Duration::ZERO).is_err());
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalTrigger {
    period: TimeDelta,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    jitter: Option<Duration>,
}

impl IntervalTrigger {
    /// Every `period`, starting one period after the schedule is added.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInterval`] when `period` is zero or longer than about 100 years.
    pub fn every(period: Duration) -> Result<Self> {
        Self::builder().period(period).build()
    }

    /// A builder for periods made of several units, a start, an end and jitter.
    pub fn builder() -> IntervalTriggerBuilder {
        IntervalTriggerBuilder::default()
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> TimeDelta {
        self.period
    }

    /// The grid's origin, if set.
    #[must_use]
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// The last instant a fire may have, if set.
    #[must_use]
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    /// Sets the grid's origin when none was given: the scheduler calls this when the schedule
    /// is added, with `now`, so the grid starts one period later and stays put across pauses
    /// and restarts.
    /// The same trigger with its grid's origin forgotten, as before [`anchor`](Self::anchor).
    pub(crate) fn unanchored(&self) -> Self {
        Self {
            start: None,
            ..self.clone()
        }
    }

    pub(crate) fn anchor(&mut self, now: DateTime<Utc>) {
        if self.start.is_none() {
            self.start = Some(whole_micros(now) + self.period);
        }
    }

    /// The first grid time at or after `lower`.
    fn grid_at_or_after(
        &self,
        origin: DateTime<Utc>,
        lower: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if lower <= origin {
            return Some(origin);
        }
        let period = i128::from(self.period.num_nanoseconds()?);
        let elapsed = i128::from((lower - origin).num_nanoseconds()?);
        let steps = (elapsed + period - 1) / period;
        origin.checked_add_signed(TimeDelta::nanoseconds(i64::try_from(steps * period).ok()?))
    }

    /// The last grid time at or before `upper`, if it is not before the origin.
    fn grid_at_or_before(
        &self,
        origin: DateTime<Utc>,
        upper: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if upper < origin {
            return None;
        }
        let period = i128::from(self.period.num_nanoseconds()?);
        let elapsed = i128::from((upper - origin).num_nanoseconds()?);
        let steps = elapsed / period;
        origin.checked_add_signed(TimeDelta::nanoseconds(i64::try_from(steps * period).ok()?))
    }

    fn within_end(&self, fire: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.end {
            Some(end) if fire > end => None,
            _ => Some(fire),
        }
    }
}

impl Trigger for IntervalTrigger {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let origin = match (self.start, previous) {
            (Some(start), _) => start,
            (None, Some(previous)) => previous,
            (None, None) => return self.within_end(now + self.period),
        };
        let mut lower = now;
        if let Some(previous) = previous {
            lower = lower.max(previous + TimeDelta::nanoseconds(1));
        }
        self.within_end(self.grid_at_or_after(origin, lower)?)
    }

    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let origin = self.start.unwrap_or(after);
        let upper = self.end.map_or(until, |end| end.min(until));
        self.grid_at_or_before(origin, upper)
            .filter(|&fire| fire > after)
    }

    fn jitter(&self) -> Option<Duration> {
        self.jitter
    }
}

/// Builds an [`IntervalTrigger`]; the units add up (`.hours(1).minutes(30)` is 90 minutes).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct IntervalTriggerBuilder {
    period: TimeDelta,
    negative: Option<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    jitter: Option<Duration>,
}

impl IntervalTriggerBuilder {
    fn add(mut self, unit: &str, amount: i64, unit_length: TimeDelta) -> Self {
        if amount < 0 {
            self.negative
                .get_or_insert_with(|| format!("{unit} = {amount} is negative"));
        }
        let added = unit_length
            .checked_mul(i32::try_from(amount).unwrap_or(i32::MAX))
            .unwrap_or(TimeDelta::MAX);
        self.period = self.period.checked_add(&added).unwrap_or(TimeDelta::MAX);
        self
    }

    /// Adds weeks.
    pub fn weeks(self, weeks: i64) -> Self {
        self.add("weeks", weeks, TimeDelta::weeks(1))
    }

    /// Adds days (24 hours each: the grid is in absolute time).
    pub fn days(self, days: i64) -> Self {
        self.add("days", days, TimeDelta::days(1))
    }

    /// Adds hours.
    pub fn hours(self, hours: i64) -> Self {
        self.add("hours", hours, TimeDelta::hours(1))
    }

    /// Adds minutes.
    pub fn minutes(self, minutes: i64) -> Self {
        self.add("minutes", minutes, TimeDelta::minutes(1))
    }

    /// Adds seconds.
    pub fn seconds(self, seconds: i64) -> Self {
        self.add("seconds", seconds, TimeDelta::seconds(1))
    }

    /// Adds milliseconds.
    pub fn milliseconds(self, milliseconds: i64) -> Self {
        self.add("milliseconds", milliseconds, TimeDelta::milliseconds(1))
    }

    /// Adds a [`Duration`].
    pub fn period(mut self, period: Duration) -> Self {
        let added = TimeDelta::from_std(period).unwrap_or(TimeDelta::MAX);
        self.period = self.period.checked_add(&added).unwrap_or(TimeDelta::MAX);
        self
    }

    /// The grid's origin: the first fire, when it is in the future.
    pub fn start(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    /// The last instant a fire may have (inclusive).
    pub fn end(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self
    }

    /// The largest random delay added to each fire.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// [`start`](Self::start) when there is one.
    pub fn maybe_start(mut self, start: Option<DateTime<Utc>>) -> Self {
        self.start = start;
        self
    }

    /// [`end`](Self::end) when there is one.
    pub fn maybe_end(mut self, end: Option<DateTime<Utc>>) -> Self {
        self.end = end;
        self
    }

    /// [`jitter`](Self::jitter) when there is one.
    pub fn maybe_jitter(mut self, jitter: Option<Duration>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks and builds the trigger.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidInterval`]: a negative unit, a total of zero, or more than about
    ///   100 years.
    /// - [`Error::StartAfterEnd`]: `start` after `end`.
    pub fn build(self) -> Result<IntervalTrigger> {
        if let Some(negative) = self.negative {
            return Err(Error::InvalidInterval(negative));
        }
        if self.period <= TimeDelta::zero() {
            return Err(Error::InvalidInterval(
                "the period is zero; give at least one of weeks, days, hours, minutes, seconds \
                 or milliseconds a positive value"
                    .to_owned(),
            ));
        }
        // Fire times are whole microseconds, the scheduler's resolution; a period below a
        // millisecond would have the scheduler do nothing but fire.
        let period = TimeDelta::microseconds(self.period.num_microseconds().unwrap_or(i64::MAX));
        if self.period < MIN_PERIOD {
            return Err(Error::InvalidInterval(format!(
                "the period of {} is shorter than the minimum of 1 ms",
                HumanDuration(self.period)
            )));
        }
        if self.period > MAX_PERIOD {
            return Err(Error::InvalidInterval(format!(
                "the period {} is longer than the limit of 36525 days",
                HumanDuration(self.period)
            )));
        }
        if let (Some(start), Some(end)) = (self.start, self.end) {
            if start > end {
                return Err(Error::StartAfterEnd { start, end });
            }
        }
        super::check_jitter(self.jitter)?;
        Ok(IntervalTrigger {
            period,
            start: self.start.map(whole_micros),
            end: self.end.map(whole_micros),
            jitter: self.jitter.filter(|j| !j.is_zero()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::{fires, utc};

    #[test]
    fn fires_on_the_grid_from_start() {
        let t = IntervalTrigger::builder()
            .seconds(30)
            .start(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap();
        let now = utc(2026, 1, 1, 0, 0, 10);
        assert_eq!(
            fires(&t, now, 3),
            [
                utc(2026, 1, 1, 0, 0, 30),
                utc(2026, 1, 1, 0, 1, 0),
                utc(2026, 1, 1, 0, 1, 30)
            ]
        );
    }

    #[test]
    fn lateness_never_moves_the_grid() {
        let t = IntervalTrigger::builder()
            .minutes(1)
            .start(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap();
        // The 00:01 fire ran 40 s late; the next one is still 00:02.
        let previous = utc(2026, 1, 1, 0, 1, 0);
        let now = utc(2026, 1, 1, 0, 1, 40);
        assert_eq!(
            t.next_fire_time(Some(previous), now),
            Some(utc(2026, 1, 1, 0, 2, 0))
        );
        // Hours later: the next grid time, not a replay.
        let now = utc(2026, 1, 1, 5, 0, 1);
        assert_eq!(
            t.next_fire_time(Some(previous), now),
            Some(utc(2026, 1, 1, 5, 1, 0))
        );
    }

    #[test]
    fn start_defaults_to_one_period_after_now() {
        let t = IntervalTrigger::every(Duration::from_secs(3600)).unwrap();
        let now = utc(2026, 1, 1, 12, 0, 0);
        assert_eq!(t.next_fire_time(None, now), Some(utc(2026, 1, 1, 13, 0, 0)));
        let mut anchored = t.clone();
        anchored.anchor(now);
        assert_eq!(anchored.start(), Some(utc(2026, 1, 1, 13, 0, 0)));
        assert_eq!(
            anchored.next_fire_time(None, utc(2026, 1, 1, 15, 30, 0)),
            Some(utc(2026, 1, 1, 16, 0, 0))
        );
    }

    #[test]
    fn end_is_inclusive() {
        let t = IntervalTrigger::builder()
            .hours(1)
            .start(utc(2026, 1, 1, 0, 0, 0))
            .end(utc(2026, 1, 1, 2, 0, 0))
            .build()
            .unwrap();
        assert_eq!(
            fires(&t, utc(2025, 12, 31, 0, 0, 0), 10),
            [
                utc(2026, 1, 1, 0, 0, 0),
                utc(2026, 1, 1, 1, 0, 0),
                utc(2026, 1, 1, 2, 0, 0)
            ]
        );
    }

    #[test]
    fn milliseconds_and_mixed_units_add_up() {
        let t = IntervalTrigger::builder()
            .seconds(1)
            .milliseconds(250)
            .build()
            .unwrap();
        assert_eq!(t.period(), TimeDelta::milliseconds(1250));
        let t = IntervalTrigger::builder()
            .weeks(1)
            .days(1)
            .hours(1)
            .build()
            .unwrap();
        assert_eq!(t.period(), TimeDelta::hours(8 * 24 + 1));
    }

    #[test]
    fn zero_negative_and_huge_periods_are_errors() {
        let zero = IntervalTrigger::every(Duration::ZERO).unwrap_err();
        assert!(matches!(zero, Error::InvalidInterval(_)));
        assert!(zero.to_string().contains("the period is zero"), "{zero}");
        let negative = IntervalTrigger::builder().seconds(-5).build().unwrap_err();
        assert_eq!(
            negative.to_string(),
            "invalid interval: seconds = -5 is negative"
        );
        let huge = IntervalTrigger::builder()
            .weeks(10_000)
            .build()
            .unwrap_err();
        assert!(huge.to_string().contains("longer than the limit"), "{huge}");
    }

    #[test]
    fn start_after_end_is_an_error() {
        let err = IntervalTrigger::builder()
            .seconds(1)
            .start(utc(2026, 2, 1, 0, 0, 0))
            .end(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "start 2026-02-01 00:00:00 UTC is after end 2026-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn last_fire_is_found_without_walking() {
        let t = IntervalTrigger::builder()
            .seconds(1)
            .start(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap();
        // A year of one-second fires: answered by arithmetic.
        let after = utc(2026, 1, 1, 0, 0, 0);
        let until = utc(2027, 1, 1, 0, 0, 0) + TimeDelta::milliseconds(500);
        assert_eq!(
            t.last_fire_time(after, until),
            Some(utc(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(t.last_fire_time(until, until), None);
    }

    #[test]
    fn jitter_is_reported_not_applied() {
        let t = IntervalTrigger::builder()
            .seconds(10)
            .jitter(Duration::from_secs(3))
            .start(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap();
        assert_eq!(t.jitter(), Some(Duration::from_secs(3)));
        assert_eq!(
            fires(&t, utc(2026, 1, 1, 0, 0, 0), 2)[1],
            utc(2026, 1, 1, 0, 0, 10)
        );
        for _ in 0..1000 {
            let nominal = utc(2026, 1, 1, 0, 0, 10);
            let jittered = super::super::apply_jitter(nominal, t.jitter());
            assert!(jittered >= nominal && jittered <= nominal + TimeDelta::seconds(3));
        }
    }
}
