//! Triggers: when a job runs.
//!
//! A [`Trigger`] answers one question: given the previous fire time (if any) and the current
//! time, when is the next fire? Triggers hold no state between calls, so a schedule can be
//! stored, reloaded after a restart and shared by several processes without losing its place.
//!
//! - [`IntervalTrigger`] fires every fixed period, on the grid `start + k * period`.
//! - [`CronTrigger`] fires on crontab (5 fields) and Quartz (6 or 7 fields) expressions in an
//!   IANA time zone, with a documented daylight-saving rule.
//! - [`DateTrigger`] fires once.
//! - [`OrTrigger`] and [`AndTrigger`] are the union and (bounded) intersection of others.
//!
//! [`TriggerSpec`] is the serde form of all of them, for stores, configuration files and the
//! REST API.

mod and_or;
mod cron;
mod cron_fields;
mod date;
mod describe;
mod interval;
mod spec;
mod time;

use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use self::and_or::{AND_SEARCH_LIMIT, AndTrigger, OrTrigger};
pub use self::cron::{CronDialect, CronTrigger, CronTriggerBuilder};
pub use self::cron_fields::CronFields;
pub use self::date::DateTrigger;
pub use self::interval::{IntervalTrigger, IntervalTriggerBuilder};
pub use self::spec::TriggerSpec;

pub use self::time::parse_instant;
pub(crate) use self::time::{format_instant, parse_time_zone, whole_micros};

/// Decides when a job runs.
///
/// Implementations are pure functions of their configuration and the arguments: the same
/// call gives the same answer, whatever happened before. Jitter is not part of the answer; the
/// scheduler adds it at dispatch (see [`Trigger::jitter`]), so the fire times a trigger
/// returns are its *nominal* times and never drift.
pub trait Trigger: Send + Sync + Debug {
    /// The next fire time: strictly after `previous` (the last nominal fire time, `None` before
    /// the first) and at or after `now`. `None` means the trigger will not fire again.
    ///
    /// [`DateTrigger`] is the one exception to "at or after `now`": before its fire it returns
    /// its instant even when that is past, so the scheduler can run it late or report it
    /// missed, as APScheduler does.
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>>;

    /// The latest fire time in `(after, until]`, if any.
    ///
    /// The scheduler uses it to catch up after downtime without walking every missed fire
    /// (APScheduler enumerates them all, which a clock jump turns into an out-of-memory).
    /// The default walks [`next_fire_time`](Trigger::next_fire_time) forwards for at most
    /// [`LAST_FIRE_WALK_LIMIT`] steps; the built-in triggers answer directly.
    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        walk_to_last_fire(self, after, until)
    }

    /// The largest random delay added to each fire at dispatch, or `None` for no jitter.
    ///
    /// Each fire is delayed by a random offset in `[0, jitter]`; the next fire is computed
    /// from the nominal time, so jitter never accumulates into drift.
    fn jitter(&self) -> Option<Duration> {
        None
    }
}

/// How many steps the default [`Trigger::last_fire_time`] walks before it stops and answers
/// with the latest fire it has seen.
pub const LAST_FIRE_WALK_LIMIT: usize = 10_000;

pub(crate) fn walk_to_last_fire<T: Trigger + ?Sized>(
    trigger: &T,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut last = None;
    let mut previous = after;
    for _ in 0..LAST_FIRE_WALK_LIMIT {
        match trigger.next_fire_time(Some(previous), previous) {
            Some(fire) if fire <= until => {
                last = Some(fire);
                previous = fire;
            }
            _ => return last,
        }
    }
    last
}

/// Refuses a jitter longer than the longest interval (about 100 years): beyond it the
/// arithmetic on fire times would overflow.
pub(crate) fn check_jitter(jitter: Option<Duration>) -> crate::Result<()> {
    match jitter {
        Some(j) if j > Duration::from_secs(36_525 * 86_400) => {
            Err(crate::Error::InvalidTrigger(format!(
                "jitter of {} s is longer than the limit of 36525 days",
                j.as_secs()
            )))
        }
        _ => Ok(()),
    }
}

/// Adds a random offset in `[0, jitter]` to `nominal`: the instant a fire with that jitter is
/// due. The engine draws it once per fire, for its own timetable or a shared store's.
#[must_use]
pub(crate) fn apply_jitter(nominal: DateTime<Utc>, jitter: Option<Duration>) -> DateTime<Utc> {
    match jitter {
        Some(max) if !max.is_zero() => {
            let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
            let offset = fastrand::u64(0..=max_ns);
            nominal + chrono::TimeDelta::nanoseconds(i64::try_from(offset).unwrap_or(i64::MAX))
        }
        _ => nominal,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::{DateTime, TimeZone, Utc};

    pub(crate) fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// The first `n` fire times from `now`.
    pub(crate) fn fires(
        trigger: &dyn super::Trigger,
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut previous = None;
        while out.len() < n {
            match trigger.next_fire_time(previous, now) {
                Some(t) => {
                    out.push(t);
                    previous = Some(t);
                }
                None => break,
            }
        }
        out
    }
}
