//! Union and intersection of triggers.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Trigger, TriggerSpec};
use crate::error::{Error, Result};

/// How many rounds [`AndTrigger`] searches for a time all its triggers agree on before it gives
/// up, logs a warning and answers `None`.
///
/// Each round moves the search to the latest of the triggers' next fire times, so the limit
/// bounds the work of one call; APScheduler 3's `AndTrigger` has no such bound and can spin
/// forever, holding its scheduler's lock.
pub const AND_SEARCH_LIMIT: usize = 10_000;

fn check_children(kind: &str, triggers: &[TriggerSpec]) -> Result<()> {
    if triggers.is_empty() {
        return Err(Error::NeverFires(format!(
            "an {kind} trigger needs at least one trigger"
        )));
    }
    if triggers.iter().any(|t| t.jitter().is_some()) {
        return Err(Error::InvalidTrigger(format!(
            "jitter is not supported on a trigger inside an {kind} trigger; set it on the {kind} \
             trigger itself"
        )));
    }
    Ok(())
}

/// Fires whenever any of its triggers fires (once when several fire at the same instant).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use apsched::trigger::{CronTrigger, OrTrigger, Trigger};
///
/// // Weekdays at 10:00, weekends at 11:00.
/// let either = OrTrigger::new(vec![
///     CronTrigger::new("0 10 * * mon-fri")?.into(),
///     CronTrigger::new("0 11 * * sat,sun")?.into(),
/// ])?;
/// let friday = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
/// let next = either.next_fire_time(None, friday).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 28, 11, 0, 0).unwrap());
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OrTrigger {
    triggers: Vec<TriggerSpec>,
    jitter: Option<Duration>,
}

impl OrTrigger {
    /// The union of `triggers`.
    ///
    /// # Errors
    ///
    /// An empty list, or a trigger in it with its own jitter.
    pub fn new(triggers: Vec<TriggerSpec>) -> Result<Self> {
        check_children("or", &triggers)?;
        Ok(Self {
            triggers,
            jitter: None,
        })
    }

    /// Delays each fire by a random offset in `[0, jitter]`.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Option<Duration>) -> Self {
        self.jitter = jitter.filter(|j| !j.is_zero());
        self
    }

    /// The triggers combined.
    #[must_use]
    pub fn triggers(&self) -> &[TriggerSpec] {
        &self.triggers
    }

    pub(crate) fn triggers_mut(&mut self) -> &mut [TriggerSpec] {
        &mut self.triggers
    }
}

impl Trigger for OrTrigger {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.triggers
            .iter()
            .filter_map(|t| t.next_fire_time(previous, now))
            .min()
    }

    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.triggers
            .iter()
            .filter_map(|t| t.last_fire_time(after, until))
            .max()
    }

    fn jitter(&self) -> Option<Duration> {
        self.jitter
    }
}

/// Fires at the times all of its triggers agree on.
///
/// The search for a common time is bounded by [`AND_SEARCH_LIMIT`] rounds: when the triggers
/// do not agree within it, [`next_fire_time`](Trigger::next_fire_time) logs a warning and
/// answers `None`, which ends the schedule, instead of spinning.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use apsched::trigger::{AndTrigger, CronTrigger, Trigger};
///
/// // The first Monday of each month at 09:00: days 1-7 that are also Mondays.
/// let first_monday = AndTrigger::new(vec![
///     CronTrigger::new("0 9 1-7 * *")?.into(),
///     CronTrigger::new("0 9 * * mon")?.into(),
/// ])?;
/// let now = Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap();
/// let next = first_monday.next_fire_time(None, now).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap());
/// let after = first_monday.next_fire_time(Some(next), next).unwrap();
/// assert_eq!(after, Utc.with_ymd_and_hms(2027, 1, 4, 9, 0, 0).unwrap());
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AndTrigger {
    triggers: Vec<TriggerSpec>,
    jitter: Option<Duration>,
}

impl AndTrigger {
    /// The intersection of `triggers`.
    ///
    /// # Errors
    ///
    /// An empty list, or a trigger in it with its own jitter.
    pub fn new(triggers: Vec<TriggerSpec>) -> Result<Self> {
        check_children("and", &triggers)?;
        Ok(Self {
            triggers,
            jitter: None,
        })
    }

    /// Delays each fire by a random offset in `[0, jitter]`.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Option<Duration>) -> Self {
        self.jitter = jitter.filter(|j| !j.is_zero());
        self
    }

    /// The triggers combined.
    #[must_use]
    pub fn triggers(&self) -> &[TriggerSpec] {
        &self.triggers
    }

    pub(crate) fn triggers_mut(&mut self) -> &mut [TriggerSpec] {
        &mut self.triggers
    }
}

impl Trigger for AndTrigger {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut lower = now;
        for _ in 0..AND_SEARCH_LIMIT {
            let mut earliest = None;
            let mut latest = None;
            for trigger in &self.triggers {
                let fire = trigger.next_fire_time(previous, lower)?;
                earliest = Some(earliest.map_or(fire, |e: DateTime<Utc>| e.min(fire)));
                latest = Some(latest.map_or(fire, |l: DateTime<Utc>| l.max(fire)));
            }
            let (earliest, latest) = (earliest?, latest?);
            if earliest == latest {
                return Some(latest);
            }
            // A trigger that answers before `lower` (a date trigger whose instant has passed)
            // can never meet the others at or after it.
            if earliest < lower {
                return None;
            }
            lower = latest;
        }
        tracing::warn!(
            target: "scheduler_core::trigger",
            limit = AND_SEARCH_LIMIT,
            ?previous,
            %now,
            "and trigger: no common fire time found within the search limit; it will not fire again"
        );
        None
    }

    fn jitter(&self) -> Option<Duration> {
        self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::{fires, utc};
    use crate::trigger::{CronTrigger, DateTrigger, IntervalTrigger};

    fn cron(expression: &str) -> TriggerSpec {
        CronTrigger::new(expression).unwrap().into()
    }

    #[test]
    fn or_is_the_union_without_duplicates() {
        let t = OrTrigger::new(vec![
            cron("0 10 * * mon-fri"),
            cron("0 11 * * sat,sun"),
            cron("0 10 * * fri"),
        ])
        .unwrap();
        // Thursday 2026-11-26 onwards.
        assert_eq!(
            fires(&t, utc(2026, 11, 26, 12, 0, 0), 4),
            [
                utc(2026, 11, 27, 10, 0, 0),
                utc(2026, 11, 28, 11, 0, 0),
                utc(2026, 11, 29, 11, 0, 0),
                utc(2026, 11, 30, 10, 0, 0),
            ]
        );
        assert_eq!(
            t.last_fire_time(utc(2026, 11, 26, 12, 0, 0), utc(2026, 11, 29, 12, 0, 0)),
            Some(utc(2026, 11, 29, 11, 0, 0))
        );
    }

    #[test]
    fn or_ends_when_all_end() {
        let t = OrTrigger::new(vec![
            DateTrigger::at(utc(2026, 1, 1, 0, 0, 0)).into(),
            DateTrigger::at(utc(2026, 1, 2, 0, 0, 0)).into(),
        ])
        .unwrap();
        assert_eq!(
            fires(&t, utc(2025, 1, 1, 0, 0, 0), 5),
            [utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 2, 0, 0, 0)]
        );
    }

    #[test]
    fn and_finds_agreement_repeatedly() {
        // APScheduler 3 hangs on the second call of exactly this trigger.
        let t = AndTrigger::new(vec![cron("0 9 1-7 * *"), cron("0 9 * * mon")]).unwrap();
        assert_eq!(
            fires(&t, utc(2025, 1, 1, 0, 0, 0), 3),
            [
                utc(2025, 1, 6, 9, 0, 0),
                utc(2025, 2, 3, 9, 0, 0),
                utc(2025, 3, 3, 9, 0, 0)
            ]
        );
    }

    #[test]
    fn and_search_is_bounded_when_triggers_never_agree() {
        // Every 7 s from :00 and every 7 s from :01 never meet; the search gives up.
        let start = utc(2026, 1, 1, 0, 0, 0);
        let a = IntervalTrigger::builder()
            .seconds(7)
            .start(start)
            .build()
            .unwrap();
        let b = IntervalTrigger::builder()
            .seconds(7)
            .start(start + chrono::TimeDelta::seconds(1))
            .build()
            .unwrap();
        let t = AndTrigger::new(vec![a.into(), b.into()]).unwrap();
        assert_eq!(t.next_fire_time(None, start), None);
        // A passed date can never meet a recurring trigger: answered at once.
        let t = AndTrigger::new(vec![DateTrigger::at(start).into(), cron("* * * * *")]).unwrap();
        assert_eq!(t.next_fire_time(None, utc(2026, 6, 1, 0, 0, 0)), None);
    }

    #[test]
    fn empty_lists_and_inner_jitter_are_errors() {
        assert!(matches!(OrTrigger::new(vec![]), Err(Error::NeverFires(_))));
        let jittery: TriggerSpec = IntervalTrigger::builder()
            .seconds(5)
            .jitter(Duration::from_secs(1))
            .build()
            .unwrap()
            .into();
        let err = AndTrigger::new(vec![jittery, cron("* * * * *")]).unwrap_err();
        assert!(
            err.to_string().contains("set it on the and trigger itself"),
            "{err}"
        );
    }
}
