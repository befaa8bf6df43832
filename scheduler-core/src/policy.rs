//! The fire policy: what happens to a schedule's due fires, and to its pause and resume.
//!
//! Pure: it reads no clock, does no I/O and draws no random numbers; both timetables (the
//! engine's own, and a shared store's claim) call it with the time and the running count they
//! have, so misfire, coalesce, catch-up, `max_instances` and pause catch-up are decided here
//! and only here, the same way on every store.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::fires::{NotRun, NotRunFire, SkipReason};
use crate::schedule::{Overlap, Schedule};
use crate::trigger::Trigger;

/// How many fires one decision handles one by one: runs without `coalesce`, and records of
/// fires that did not run. Past it, the rest are coalesced into the latest (or jumped over),
/// so a long downtime (or a clock jump to the year 2200) costs a bounded amount of work.
pub(crate) const CATCH_UP_LIMIT: usize = 100;

/// A schedule that has come due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Due<'a> {
    /// The schedule; its next run time is the first due fire.
    pub(crate) schedule: &'a Schedule,
    /// When that fire was due: its nominal time plus the trigger's jitter.
    pub(crate) due_time: DateTime<Utc>,
    /// Now, on the clock that judges lateness (the engine's, or the shared store's).
    pub(crate) now: DateTime<Utc>,
    /// Runs of the schedule going now (across instances, for a shared store).
    pub(crate) running: u32,
    /// Its fires waiting for a run to end (its overlap policy queued them).
    pub(crate) waiting: u32,
}

/// Fire times, almost always one: that case allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum FireTimes {
    #[default]
    None,
    One(DateTime<Utc>),
    Many(Vec<DateTime<Utc>>),
}

impl FireTimes {
    pub(crate) fn as_slice(&self) -> &[DateTime<Utc>] {
        match self {
            Self::None => &[],
            Self::One(t) => std::slice::from_ref(t),
            Self::Many(times) => times,
        }
    }

    pub(crate) fn push(&mut self, t: DateTime<Utc>) {
        *self = match std::mem::take(self) {
            Self::None => Self::One(t),
            Self::One(first) => Self::Many(vec![first, t]),
            Self::Many(mut times) => {
                times.push(t);
                Self::Many(times)
            }
        };
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Self::None)
    }
}

/// What to do with a due schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Fires to run, oldest first, as one run of the schedule (one instance for
    /// `max_instances`): one with `coalesce`, up to [`CATCH_UP_LIMIT`] without.
    pub(crate) run: FireTimes,
    /// Fires that do not run, with the reason, oldest first.
    pub(crate) not_run: Vec<NotRunFire>,
    /// Fires that wait for a run of the schedule to end, oldest first (`max_instances` runs
    /// are going and the overlap policy queues them); each starts as a run of its own.
    pub(crate) queue: FireTimes,
    /// The runs going are asked to stop, for the fires queued ([`Overlap::CancelRunning`]).
    pub(crate) cancel: bool,
    /// Where the schedule goes next ([`next_run_time`]).
    pub(crate) after: After,
}

/// What a plan knows of the schedule's next run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum After {
    /// Nothing was due: it stays as it was.
    #[default]
    Unchanged,
    /// The trigger's next fire after this one, the latest decided on.
    Fire(DateTime<Utc>),
    /// Already found while deciding (the common case: one fire due, and the one after it
    /// not): `None` when the trigger has no more.
    Known(Option<DateTime<Utc>>),
}

/// The schedule's next run time after a plan (`None`: its trigger has no more). Apart from
/// [`plan`] so that the engine can start the runs before it does this bookkeeping.
pub(crate) fn next_run_time(
    schedule: &Schedule,
    after: After,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match after {
        After::Unchanged => schedule.next_run_time,
        After::Fire(last) => schedule.trigger.next_fire_time(Some(last), now),
        After::Known(next) => next,
    }
}

/// Decides a due schedule's fires: every fire from its next run time up to `now`.
pub(crate) fn plan(due: Due<'_>) -> Plan {
    let schedule = due.schedule;
    let Some(first) = schedule.next_run_time else {
        return Plan::default();
    };
    if due.due_time > due.now || first > due.now {
        // Not due yet (a store may look early): nothing changes.
        return Plan::default();
    }
    let grace = schedule
        .misfire_grace_time
        .map(|g| TimeDelta::from_std(g).unwrap_or(TimeDelta::MAX));
    let mut plan = Plan::default();
    let last = if schedule.coalesce {
        coalesce(&due, first, grace, &mut plan)
    } else {
        catch_up(&due, first, grace, &mut plan)
    };
    // Fires waiting for a run to end go first: a newer one queues behind them.
    if !plan.run.is_empty() && (due.running >= schedule.max_instances || due.waiting > 0) {
        overlap(&due, &mut plan);
    }
    if plan.after == After::Unchanged {
        plan.after = After::Fire(last);
    }
    plan
}

/// `max_instances` runs are going: the fires of the run go as the overlap policy says.
fn overlap(due: &Due<'_>, plan: &mut Plan) {
    let policy = due.schedule.overlap;
    if policy == Overlap::AllowAll {
        return;
    }
    let fires = std::mem::take(&mut plan.run);
    let limit = policy.queue_limit();
    let free = limit.saturating_sub(due.waiting) as usize;
    for (i, &t) in fires.as_slice().iter().enumerate() {
        if i < free {
            plan.queue.push(t);
        } else {
            let reason = if limit == 0 {
                SkipReason::MaxInstances {
                    running: due.running,
                }
            } else {
                SkipReason::QueueFull { limit }
            };
            plan.not_run
                .push(NotRunFire::new(t, NotRun::Skipped(reason)));
        }
    }
    plan.not_run.sort_by_key(|f| f.nominal_time);
    plan.cancel = matches!(policy, Overlap::CancelRunning { .. });
}

/// With `coalesce`: the latest due fire runs (or is missed); the ones before it are
/// coalesced into it. Returns the latest.
fn coalesce(
    due: &Due<'_>,
    first: DateTime<Utc>,
    grace: Option<TimeDelta>,
    plan: &mut Plan,
) -> DateTime<Utc> {
    let trigger = &due.schedule.trigger;
    // Usually only the first fire is due: the fire after it, which the schedule moves on to,
    // says so, and no search for the latest is needed.
    let after_first = trigger.next_fire_time(Some(first), first);
    let latest = if after_first.is_none_or(|next| next > due.now) {
        plan.after = After::Known(after_first);
        first
    } else {
        trigger
            .last_fire_time(first, due.now)
            .map_or(first, |t| t.max(first))
    };
    coalesced(due, Some(first), latest, plan);
    // The first fire's lateness counts from its jittered due time; a later one has none.
    let due_at = if latest == first {
        due.due_time
    } else {
        latest
    };
    let lateness = (due.now - due_at).max(TimeDelta::zero());
    match grace {
        Some(grace) if lateness > grace => plan.not_run.push(missed(latest, lateness, grace)),
        _ => plan.run.push(latest),
    }
    latest
}

/// Without `coalesce`: each due fire is judged on its own, oldest first, up to
/// [`CATCH_UP_LIMIT`] of them; past it the rest are coalesced into the latest. Returns the
/// latest fire handled.
fn catch_up(
    due: &Due<'_>,
    first: DateTime<Utc>,
    grace: Option<TimeDelta>,
    plan: &mut Plan,
) -> DateTime<Utc> {
    let trigger = &due.schedule.trigger;
    let now = due.now;
    let mut last = first;
    let mut fire = Some((first, due.due_time));
    while let Some((nominal, due_at)) = fire {
        if nominal > now {
            break;
        }
        last = nominal;
        let lateness = (now - due_at).max(TimeDelta::zero());
        match grace {
            Some(grace) if lateness > grace => {
                if plan.not_run.len() < CATCH_UP_LIMIT {
                    plan.not_run.push(missed(nominal, lateness, grace));
                } else {
                    // Enough reported: jump to the first fire inside the grace window.
                    fire = trigger
                        .next_fire_time(Some(nominal), now - grace)
                        .map(|t| (t, t));
                    continue;
                }
            }
            _ => {
                plan.run.push(nominal);
                if plan.run.len() == CATCH_UP_LIMIT - 1 {
                    // The rest run once, for the latest.
                    if let Some(latest) = trigger.last_fire_time(nominal, now) {
                        coalesced(
                            due,
                            trigger.next_fire_time(Some(nominal), nominal),
                            latest,
                            plan,
                        );
                        plan.run.push(latest);
                        last = latest;
                    }
                    break;
                }
            }
        }
        fire = trigger
            .next_fire_time(Some(nominal), nominal)
            .map(|t| (t, t));
    }
    last
}

/// Records the fires from `from` up to (not including) `latest` as coalesced into it, as
/// long as the record stays within [`CATCH_UP_LIMIT`].
fn coalesced(due: &Due<'_>, from: Option<DateTime<Utc>>, latest: DateTime<Utc>, plan: &mut Plan) {
    let trigger = &due.schedule.trigger;
    let reason = NotRun::Skipped(SkipReason::Coalesced { into: latest });
    let mut t = from;
    while let Some(nominal) = t.filter(|&t| t < latest) {
        if plan.not_run.len() == CATCH_UP_LIMIT {
            break;
        }
        plan.not_run.push(NotRunFire::new(nominal, reason));
        t = trigger.next_fire_time(Some(nominal), nominal);
    }
}

fn missed(nominal_time: DateTime<Utc>, lateness: TimeDelta, grace: TimeDelta) -> NotRunFire {
    NotRunFire::new(
        nominal_time,
        NotRun::Missed {
            lateness: lateness.to_std().unwrap_or_default(),
            grace: grace.to_std().unwrap_or(Duration::MAX),
        },
    )
}

/// Pauses a schedule: its fires are skipped from its next run time on, which it remembers so
/// that [`resume`] can record them.
pub(crate) fn pause(schedule: &Schedule) -> Schedule {
    let mut paused = schedule.clone();
    if !paused.paused {
        paused.paused = true;
        paused.paused_from = paused.next_run_time;
        paused.next_run_time = None;
    }
    paused
}

/// What resuming a schedule does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Resumed {
    /// The schedule resumed at its trigger's next time from now; `None` when the trigger has
    /// no time left (the schedule is done and goes).
    pub(crate) schedule: Option<Schedule>,
    /// The fires the pause skipped, at most [`CATCH_UP_LIMIT`].
    pub(crate) skipped: Vec<NotRunFire>,
}

/// Resumes a schedule at its trigger's next time from `now`: the fires skipped while paused
/// are recorded, not replayed.
pub(crate) fn resume(schedule: &Schedule, now: DateTime<Utc>) -> Resumed {
    if !schedule.paused {
        return Resumed {
            schedule: Some(schedule.clone()),
            skipped: Vec::new(),
        };
    }
    let trigger = &schedule.trigger;
    let mut skipped = Vec::new();
    let mut t = schedule.paused_from;
    while let Some(nominal) = t.filter(|&t| t <= now) {
        if skipped.len() == CATCH_UP_LIMIT {
            break;
        }
        skipped.push(NotRunFire::new(
            nominal,
            NotRun::Skipped(SkipReason::Paused),
        ));
        t = trigger.next_fire_time(Some(nominal), nominal);
    }
    let resumed = trigger.next_fire_time(None, now).map(|next| {
        let mut resumed = schedule.clone();
        resumed.paused = false;
        resumed.paused_from = None;
        resumed.next_run_time = Some(next);
        resumed
    });
    Resumed {
        schedule: resumed,
        skipped,
    }
}

/// Whether one extra run (`run_now`) may start with `running` runs going: below
/// `max_instances`, or at any count with [`Overlap::AllowAll`].
pub(crate) fn run_now(schedule: &Schedule, running: u32) -> Result<()> {
    if running >= schedule.max_instances && schedule.overlap != Overlap::AllowAll {
        return Err(Error::MaxInstancesReached {
            id: schedule.id.to_string(),
            running,
        });
    }
    Ok(())
}

/// The next `n` fire times of a schedule from `now` (its next run time first).
pub(crate) fn upcoming(schedule: &Schedule, n: usize, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let trigger = &schedule.trigger;
    let mut times = Vec::with_capacity(n.min(CATCH_UP_LIMIT));
    let mut next = schedule
        .next_run_time
        .or_else(|| trigger.next_fire_time(None, now));
    while let Some(t) = next {
        if times.len() >= n {
            break;
        }
        times.push(t);
        next = trigger.next_fire_time(Some(t), t);
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fires::FireState;
    use crate::schedule::ScheduleOptions;
    use crate::trigger::{IntervalTrigger, TriggerSpec};
    use chrono::TimeZone;

    fn t(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, second).unwrap()
    }

    fn every_minute(coalesce: bool, grace: Option<Duration>) -> Schedule {
        let trigger: TriggerSpec = IntervalTrigger::builder()
            .minutes(1)
            .start(t(0, 0))
            .build()
            .unwrap()
            .into();
        Schedule::from_parts(
            "s",
            "s",
            None,
            serde_json::Value::Null,
            trigger,
            Some(t(0, 0)),
            ScheduleOptions {
                misfire_grace_time: grace,
                coalesce,
                ..ScheduleOptions::default()
            },
        )
        .unwrap()
    }

    fn due(schedule: &Schedule, due_time: DateTime<Utc>, now: DateTime<Utc>) -> Due<'_> {
        Due {
            schedule,
            due_time,
            now,
            running: 0,
            waiting: 0,
        }
    }

    fn next(due: Due<'_>) -> Option<DateTime<Utc>> {
        next_run_time(due.schedule, plan(due).after, due.now)
    }

    fn reasons(plan: &Plan) -> Vec<(DateTime<Utc>, NotRun)> {
        plan.not_run
            .iter()
            .map(|f| (f.nominal_time, f.reason))
            .collect()
    }

    fn grace(seconds: u64) -> Option<Duration> {
        Some(Duration::from_secs(seconds))
    }

    #[test]
    fn an_on_time_fire_runs_and_the_schedule_moves_on() {
        let s = every_minute(true, grace(60));
        let plan = plan(due(&s, t(0, 0), t(0, 0)));
        assert_eq!(plan.run, FireTimes::One(t(0, 0)));
        assert!(plan.not_run.is_empty());
        assert_eq!(next(due(&s, t(0, 0), t(0, 0))), Some(t(1, 0)));
    }

    #[test]
    fn a_schedule_not_yet_due_is_left_as_it_is() {
        let s = every_minute(true, grace(60));
        let plan = plan(due(&s, t(0, 5), t(0, 2)));
        assert_eq!(plan.run, FireTimes::None);
        assert_eq!(next(due(&s, t(0, 5), t(0, 2))), Some(t(0, 0)));
    }

    #[test]
    fn coalesce_runs_the_latest_and_records_the_rest() {
        let s = every_minute(true, grace(60));
        let plan = plan(due(&s, t(0, 0), t(3, 30)));
        assert_eq!(plan.run, FireTimes::One(t(3, 0)));
        let into = NotRun::Skipped(SkipReason::Coalesced { into: t(3, 0) });
        assert_eq!(
            reasons(&plan),
            vec![(t(0, 0), into), (t(1, 0), into), (t(2, 0), into)]
        );
        assert_eq!(next(due(&s, t(0, 0), t(3, 30))), Some(t(4, 0)));
        // The first fire's lateness counts from its jittered due time.
        let plan = super::plan(due(&s, t(0, 5), t(0, 30)));
        assert_eq!(plan.run, FireTimes::One(t(0, 0)));
    }

    #[test]
    fn a_coalesced_fire_later_than_its_grace_is_missed() {
        let s = every_minute(true, grace(10));
        let plan = plan(due(&s, t(0, 0), t(2, 30)));
        assert_eq!(plan.run, FireTimes::None);
        let into = NotRun::Skipped(SkipReason::Coalesced { into: t(2, 0) });
        assert_eq!(
            reasons(&plan),
            vec![
                (t(0, 0), into),
                (t(1, 0), into),
                (
                    t(2, 0),
                    NotRun::Missed {
                        lateness: Duration::from_secs(30),
                        grace: Duration::from_secs(10)
                    }
                )
            ]
        );
        assert_eq!(plan.not_run[2].reason.state(), FireState::Missed);
    }

    #[test]
    fn without_coalesce_each_fire_is_judged() {
        let s = every_minute(false, grace(150));
        let plan = plan(due(&s, t(0, 0), t(4, 0)));
        assert_eq!(
            reasons(&plan),
            vec![
                (
                    t(0, 0),
                    NotRun::Missed {
                        lateness: Duration::from_secs(240),
                        grace: Duration::from_secs(150)
                    }
                ),
                (
                    t(1, 0),
                    NotRun::Missed {
                        lateness: Duration::from_secs(180),
                        grace: Duration::from_secs(150)
                    }
                )
            ]
        );
        assert_eq!(plan.run, FireTimes::Many(vec![t(2, 0), t(3, 0), t(4, 0)]));
        assert_eq!(next(due(&s, t(0, 0), t(4, 0))), Some(t(5, 0)));
    }

    #[test]
    fn catch_up_is_bounded() {
        // A day of one-minute fires without coalesce or grace: 99 one by one, then the latest.
        let s = every_minute(false, None);
        let now = t(0, 0) + TimeDelta::days(1);
        let p = plan(due(&s, t(0, 0), now));
        let run = p.run.as_slice();
        assert_eq!(run.len(), CATCH_UP_LIMIT);
        assert_eq!(run[98], t(0, 0) + TimeDelta::minutes(98));
        assert_eq!(run[99], now);
        assert_eq!(p.not_run.len(), CATCH_UP_LIMIT, "coalesced ones, bounded");
        assert_eq!(
            next(due(&s, t(0, 0), now)),
            Some(now + TimeDelta::minutes(1))
        );
        // With a grace, the missed reports stop at the limit and the window's fires run.
        let s = every_minute(false, grace(180));
        let p = plan(due(&s, t(0, 0), now));
        assert_eq!(p.not_run.len(), CATCH_UP_LIMIT);
        assert_eq!(
            p.run.as_slice(),
            [
                now - TimeDelta::minutes(3),
                now - TimeDelta::minutes(2),
                now - TimeDelta::minutes(1),
                now
            ]
        );
    }

    #[test]
    fn max_instances_skips_every_fire_of_the_run_and_keeps_the_grid() {
        let s = every_minute(true, grace(60));
        let mut busy = due(&s, t(0, 0), t(0, 1));
        busy.running = 1;
        let p = plan(busy);
        assert_eq!(p.run, FireTimes::None);
        assert_eq!(
            reasons(&p),
            vec![(
                t(0, 0),
                NotRun::Skipped(SkipReason::MaxInstances { running: 1 })
            )]
        );
        assert_eq!(next(busy), Some(t(1, 0)));
        // Without coalesce a catch-up is one run: all of it is skipped, in order with the
        // fires missed before it.
        let s = every_minute(false, grace(150));
        let mut busy = due(&s, t(0, 0), t(3, 0));
        busy.running = 1;
        let p = plan(busy);
        let times: Vec<_> = p.not_run.iter().map(|f| f.nominal_time).collect();
        assert_eq!(times, vec![t(0, 0), t(1, 0), t(2, 0), t(3, 0)]);
        assert!(run_now(&s, 1).is_err() && run_now(&s, 0).is_ok());
    }

    #[test]
    fn overlap_policies_at_max_instances() {
        let reason = |p: &Plan| reasons(p).into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        let at_limit = |overlap: Overlap, coalesce: bool, waiting: u32| {
            let mut s = every_minute(coalesce, grace(600));
            s.overlap = overlap;
            let mut d = due(&s, t(0, 0), t(2, 0));
            d.running = 1;
            d.waiting = waiting;
            plan(d)
        };
        // Skip: APScheduler's max_instances.
        let p = at_limit(Overlap::Skip, true, 0);
        assert!(p.run.is_empty() && p.queue.is_empty() && !p.cancel);
        assert!(reason(&p).contains(&NotRun::Skipped(SkipReason::MaxInstances { running: 1 })));
        // QueueOne: the run waits; with one waiting already, it is skipped.
        let p = at_limit(Overlap::QueueOne, true, 0);
        assert_eq!(p.queue, FireTimes::One(t(2, 0)));
        assert!(p.run.is_empty());
        let p = at_limit(Overlap::QueueOne, true, 1);
        assert!(p.queue.is_empty());
        assert!(reason(&p).contains(&NotRun::Skipped(SkipReason::QueueFull { limit: 1 })));
        // QueueAll: each fire of a catch-up waits, up to the limit; the rest are skipped.
        let p = at_limit(Overlap::QueueAll { limit: 4 }, false, 2);
        assert_eq!(p.queue.as_slice(), [t(0, 0), t(1, 0)]);
        assert_eq!(
            reasons(&p),
            vec![(t(2, 0), NotRun::Skipped(SkipReason::QueueFull { limit: 4 }))]
        );
        // CancelRunning: the runs going are asked to stop and the fire waits for them.
        let p = at_limit(
            Overlap::CancelRunning {
                grace: Duration::from_secs(5),
            },
            true,
            0,
        );
        assert!(p.cancel);
        assert_eq!(p.queue, FireTimes::One(t(2, 0)));
        // AllowAll: it runs.
        let p = at_limit(Overlap::AllowAll, true, 0);
        assert_eq!(p.run, FireTimes::One(t(2, 0)));
        // Under the limit every policy just runs.
        for overlap in [Overlap::QueueOne, Overlap::AllowAll] {
            let mut s = every_minute(true, grace(60));
            s.overlap = overlap;
            assert_eq!(plan(due(&s, t(0, 0), t(0, 0))).run, FireTimes::One(t(0, 0)));
        }
        let mut s = every_minute(true, grace(60));
        s.overlap = Overlap::AllowAll;
        assert!(run_now(&s, 5).is_ok());
    }

    #[test]
    fn pause_then_resume_records_the_skipped_fires_and_resumes_on_the_grid() {
        let s = every_minute(true, grace(60));
        let paused = pause(&s);
        assert!(paused.paused);
        assert_eq!(paused.next_run_time, None);
        assert_eq!(paused.paused_from, Some(t(0, 0)));
        let resumed = resume(&paused, t(2, 30));
        let times: Vec<_> = resumed.skipped.iter().map(|f| f.nominal_time).collect();
        assert_eq!(times, vec![t(0, 0), t(1, 0), t(2, 0)]);
        assert!(
            resumed
                .skipped
                .iter()
                .all(|f| f.reason == NotRun::Skipped(SkipReason::Paused))
        );
        let schedule = resumed.schedule.unwrap();
        assert!(!schedule.paused);
        assert_eq!(schedule.next_run_time, Some(t(3, 0)));
        assert_eq!(schedule.paused_from, None);
        // Resuming a schedule that is not paused changes nothing.
        assert_eq!(resume(&schedule, t(9, 0)).schedule, Some(schedule));
    }
}
