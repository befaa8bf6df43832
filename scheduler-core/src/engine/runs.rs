//! One schedule's runs in this process: the ones going (counted for `max_instances`, listed
//! for the shutdown report) and, for the engine's own timetable, a bounded history of its
//! fires. One lock per schedule, so runs of different schedules never contend.
//!
//! Dispatching a run touches only the short list of runs going; the history is written when
//! a run ends, by the run's own task, off the engine's path. It keeps the fires with something
//! to tell (failed, aborted, missed, skipped, up to `keep`) and the latest run that succeeded:
//! a success is kept where the run writes anyway, so a history costs a healthy schedule
//! nothing per fire.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::run::RunFire;
use crate::fires::{FireRecord, FireState, NotRunFire};

/// What lets one run be asked to stop and then cut off: for schedules whose overlap policy
/// cancels the runs going ([`Overlap::CancelRunning`](crate::Overlap::CancelRunning)) only, so
/// other runs cost nothing for it.
#[derive(Clone, Debug)]
pub(crate) struct RunControl {
    /// The run's own cancellation token (a child of the scheduler's): what its job watches.
    pub(crate) cancel: CancellationToken,
    /// Fired when its grace is over: the run is aborted.
    pub(crate) abort: CancellationToken,
}

impl RunControl {
    pub(crate) fn new(scheduler: &CancellationToken) -> Self {
        Self {
            cancel: scheduler.child_token(),
            abort: CancellationToken::new(),
        }
    }
}

/// A fire waiting for a run of its schedule to end.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    run_id: Uuid,
    nominal_us: i64,
    queued_us: i64,
}

/// No time recorded.
const NONE: i64 = i64::MIN;

/// A fire being run (or waiting to): times in microseconds.
#[derive(Clone, Copy, Debug)]
struct Going {
    run_id: Uuid,
    nominal_us: i64,
    /// `NONE` while it waits for a concurrency slot; with none to wait for, known at its end.
    started_us: i64,
    queued: bool,
}

/// A fire of the history, kept small: a run that succeeded allocates nothing.
#[derive(Clone, Debug)]
struct Record {
    /// Nil for a fire that did not run.
    run_id: Uuid,
    nominal_us: i64,
    /// When it started, or when it was decided not to run.
    started_us: i64,
    /// How long it ran, in microseconds (at most 71 minutes: longer ones say so).
    ran_us: u32,
    state: FireState,
    /// The reason a fire did not run, or a failed run's error.
    detail: Option<Arc<String>>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> Option<DateTime<Utc>> {
    (us != NONE).then(|| DateTime::from_timestamp_micros(us))?
}

/// The runs going: nearly always none or one, which sits inline, in memory the run touches
/// anyway (a list of its own would be one more cache line per fire).
#[derive(Debug, Default)]
struct GoingList {
    first: Option<Going>,
    rest: Vec<Going>,
}

impl GoingList {
    fn push(&mut self, going: Going) {
        match self.first {
            None => self.first = Some(going),
            Some(_) => self.rest.push(going),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Going> {
        self.first.iter().chain(&self.rest)
    }

    fn position(&self, run_id: Uuid) -> Option<usize> {
        self.iter().position(|g| g.run_id == run_id)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Going> {
        match i {
            0 => self.first.as_mut(),
            _ => self.rest.get_mut(i - 1),
        }
    }

    fn remove(&mut self, i: usize) -> Option<Going> {
        match i {
            0 => {
                let first = self.first.take();
                self.first = self.rest.pop();
                first
            }
            _ if i - 1 < self.rest.len() => Some(self.rest.swap_remove(i - 1)),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// One entry per run (a catch-up of several fires is one run, at the fire it is at).
    going: GoingList,
    /// The latest run that succeeded, inline: with a ring of its own every fire would write
    /// one more cache line, and most fires succeed.
    succeeded: Option<Record>,
    /// The fires with something to tell (failed, aborted, missed, skipped), oldest first, at
    /// most `keep`.
    past: VecDeque<Record>,
    /// Fires kept in `past`; 0 keeps none (a shared store keeps the history).
    keep: usize,
    /// Fires waiting for a run to end (the overlap policy queued them), oldest first.
    waiting: VecDeque<Waiting>,
    /// The controls of the runs going that have one.
    controls: Vec<(Uuid, RunControl)>,
}

impl Inner {
    fn position(&self, run_id: Uuid) -> Option<usize> {
        self.going.position(run_id)
    }

    fn push(&mut self, record: Record) {
        if self.keep == 0 {
            return;
        }
        if record.state == FireState::Succeeded {
            self.succeeded = Some(record);
            return;
        }
        if self.past.capacity() == 0 {
            // Taken once: the history fills it within `keep` fires.
            self.past.reserve_exact(self.keep);
        }
        if self.past.len() == self.keep {
            self.past.pop_front();
        }
        self.past.push_back(record);
    }
}

#[derive(Debug)]
pub(crate) struct ScheduleRuns {
    inner: Mutex<Inner>,
    /// `going.len()`, readable without the lock: the engine reads it for every fire.
    count: AtomicU32,
}

/// How a run's fire ended, for the history.
pub(crate) struct Ended {
    pub(crate) state: FireState,
    /// When it started, in microseconds.
    pub(crate) started_us: i64,
    /// How long it ran, on the monotonic clock.
    pub(crate) duration: std::time::Duration,
    pub(crate) error: Option<String>,
}

impl ScheduleRuns {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                keep,
                ..Inner::default()
            }),
            count: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method finishes its change before it could panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many runs are going.
    pub(crate) fn running(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// Counts a dispatched run, at its first fire: running at once when it has no concurrency
    /// slot to wait for, else queued until [`started`](Self::started).
    pub(crate) fn begin(
        &self,
        run_id: Uuid,
        nominal_time: DateTime<Utc>,
        at_once: bool,
        control: Option<RunControl>,
    ) {
        let mut inner = self.lock();
        self.begin_locked(&mut inner, run_id, micros(nominal_time), at_once, control);
    }

    fn begin_locked(
        &self,
        inner: &mut Inner,
        run_id: Uuid,
        nominal_us: i64,
        at_once: bool,
        control: Option<RunControl>,
    ) {
        inner.going.push(Going {
            run_id,
            nominal_us,
            started_us: NONE,
            queued: !at_once,
        });
        if let Some(control) = control {
            inner.controls.push((run_id, control));
        }
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// The control of a run going, if it has one.
    pub(crate) fn control(&self, run_id: Uuid) -> Option<RunControl> {
        let inner = self.lock();
        inner
            .controls
            .iter()
            .find(|(id, _)| *id == run_id)
            .map(|(_, control)| control.clone())
    }

    /// Fires waiting for a run to end.
    pub(crate) fn waiting(&self) -> u32 {
        u32::try_from(self.lock().waiting.len()).unwrap_or(u32::MAX)
    }

    /// Queues fires that found `max_instances` runs going; they start one by one as runs end.
    /// A run that ended meanwhile left room: as many fires as there is room for start now
    /// instead, counted here (with `control()` made for each) and returned.
    pub(crate) fn enqueue(
        &self,
        fires: &[DateTime<Utc>],
        max_instances: u32,
        now: DateTime<Utc>,
        at_once: bool,
        mut control: impl FnMut() -> Option<RunControl>,
    ) -> Vec<RunFire> {
        let mut inner = self.lock();
        let mut start = Vec::new();
        for &nominal_time in fires {
            let run_id = super::run::new_run_id();
            if inner.waiting.is_empty() && self.running() < max_instances {
                self.begin_locked(&mut inner, run_id, micros(nominal_time), at_once, control());
                start.push(RunFire {
                    nominal_time,
                    run_id,
                });
            } else {
                inner.waiting.push_back(Waiting {
                    run_id,
                    nominal_us: micros(nominal_time),
                    queued_us: micros(now),
                });
            }
        }
        start
    }

    /// After a run let go of its slot: the fire waiting longest, counted as begun (in the
    /// same lock, so no fire dispatched meanwhile can take the slot first).
    fn next_waiting(
        &self,
        inner: &mut Inner,
        at_once: bool,
        control: impl FnOnce() -> Option<RunControl>,
    ) -> Option<RunFire> {
        let next = inner.waiting.pop_front()?;
        self.begin_locked(inner, next.run_id, next.nominal_us, at_once, control());
        Some(RunFire {
            nominal_time: time(next.nominal_us)?,
            run_id: next.run_id,
        })
    }

    /// The runs going that have a control, asked to stop now: `(run id, nominal time,
    /// control)` of each.
    pub(crate) fn controlled(&self) -> Vec<(Uuid, DateTime<Utc>, RunControl)> {
        let inner = self.lock();
        inner
            .controls
            .iter()
            .filter_map(|(run_id, control)| {
                let going = inner.going.iter().find(|g| g.run_id == *run_id)?;
                Some((*run_id, time(going.nominal_us)?, control.clone()))
            })
            .collect()
    }

    /// The run `from` starts a fire: its first (`run_id` is `from`), or its next catch-up
    /// fire.
    pub(crate) fn started(
        &self,
        from: Uuid,
        run_id: Uuid,
        nominal_time: DateTime<Utc>,
        started_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        if let Some(going) = inner.position(from).and_then(|i| inner.going.get_mut(i)) {
            *going = Going {
                run_id,
                nominal_us: micros(nominal_time),
                started_us: micros(started_at),
                queued: false,
            };
        }
    }

    /// Records how the fire the run `run_id` is at ended; with `release`, the run ends too
    /// and no longer counts (one lock for both), and the fire waiting longest, if any, is
    /// returned begun: the caller starts it.
    pub(crate) fn ended(
        &self,
        run_id: Uuid,
        ended: Ended,
        release: bool,
        at_once: bool,
        control: impl FnOnce() -> Option<RunControl>,
    ) -> Option<RunFire> {
        let mut inner = self.lock();
        let i = inner.position(run_id)?;
        let going = if release {
            self.count.fetch_sub(1, Ordering::AcqRel);
            inner.controls.retain(|(id, _)| *id != run_id);
            inner.going.remove(i)
        } else {
            inner.going.get_mut(i).copied()
        };
        let going = going?;
        inner.push(Record {
            run_id,
            nominal_us: going.nominal_us,
            started_us: ended.started_us,
            ran_us: u32::try_from(ended.duration.as_micros()).unwrap_or(u32::MAX),
            state: ended.state,
            detail: ended.error.map(Arc::new),
        });
        if release {
            self.next_waiting(&mut inner, at_once, control)
        } else {
            None
        }
    }

    /// The run `run_id` ends without its fire having run (shutdown came first, or the task
    /// was dropped): it no longer counts, and leaves no record. The fire waiting longest, if
    /// any, is returned begun: the caller starts it.
    pub(crate) fn release(
        &self,
        run_id: Uuid,
        at_once: bool,
        control: impl FnOnce() -> Option<RunControl>,
    ) -> Option<RunFire> {
        let mut inner = self.lock();
        let i = inner.position(run_id)?;
        inner.going.remove(i);
        inner.controls.retain(|(id, _)| *id != run_id);
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.next_waiting(&mut inner, at_once, control)
    }

    /// Records fires that did not run.
    pub(crate) fn not_run(&self, fires: &[NotRunFire], decided_at: DateTime<Utc>) {
        let mut inner = self.lock();
        if inner.keep == 0 {
            return;
        }
        for fire in fires {
            inner.push(Record {
                run_id: Uuid::nil(),
                nominal_us: micros(fire.nominal_time),
                started_us: micros(decided_at),
                ran_us: 0,
                state: fire.reason.state(),
                detail: Some(Arc::new(fire.reason.to_string())),
            });
        }
    }

    /// The fires being run now, as `(run id, nominal time)`.
    pub(crate) fn going(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        self.lock()
            .going
            .iter()
            .filter_map(|g| Some((g.run_id, time(g.nominal_us)?)))
            .collect()
    }

    /// The newest `limit` fires, runs going included, newest first.
    pub(crate) fn history(&self, schedule_id: &str, owner: &str, limit: usize) -> Vec<FireRecord> {
        let inner = self.lock();
        let owner = || Some(owner.to_owned());
        let going = inner.going.iter().filter_map(|g| {
            let state = if g.queued {
                FireState::Queued
            } else {
                FireState::Running
            };
            let started = time(g.started_us);
            Some(
                FireRecord::new(
                    g.run_id.to_string(),
                    schedule_id,
                    time(g.nominal_us)?,
                    state,
                )
                .owner(owner())
                .epoch(1, u32::from(!g.queued))
                .times([started, started, None]),
            )
        });
        let past = inner.past.iter().chain(&inner.succeeded).filter_map(|r| {
            let ran = !r.run_id.is_nil();
            let detail = r.detail.as_deref().cloned();
            let (reason, error) = if ran { (None, detail) } else { (detail, None) };
            let id = if ran {
                r.run_id.to_string()
            } else {
                format!("{schedule_id}@{}", r.nominal_us)
            };
            let decided = time(r.started_us);
            let (started, finished) = if ran {
                let finished = r.started_us.saturating_add(i64::from(r.ran_us));
                (decided, time(finished))
            } else {
                (None, decided)
            };
            Some(
                FireRecord::new(id, schedule_id, time(r.nominal_us)?, r.state)
                    .reason(reason)
                    .owner(owner())
                    .epoch(1, u32::from(ran))
                    .times([decided, started, finished])
                    .error(error),
            )
        });
        let waiting = inner.waiting.iter().filter_map(|w| {
            Some(
                FireRecord::new(
                    w.run_id.to_string(),
                    schedule_id,
                    time(w.nominal_us)?,
                    FireState::Waiting,
                )
                .reason(Some(
                    "waiting for a run of the schedule to end (overlap)".to_owned(),
                ))
                .epoch(1, 0)
                .times([time(w.queued_us), None, None]),
            )
        });
        let mut records: Vec<FireRecord> = going.chain(waiting).chain(past).collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.nominal_time));
        records.truncate(limit);
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fires::{NotRun, SkipReason};
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s).unwrap()
    }

    fn succeeded(at: DateTime<Utc>) -> Ended {
        Ended {
            state: FireState::Succeeded,
            started_us: at.timestamp_micros(),
            duration: std::time::Duration::ZERO,
            error: None,
        }
    }

    #[test]
    fn the_history_keeps_the_fires_with_a_story_the_latest_success_and_runs_going() {
        let runs = ScheduleRuns::new(3);
        for s in 0..6 {
            let id = Uuid::new_v4();
            runs.begin(id, t(s), false, None);
            runs.started(id, id, t(s), t(s));
            let mut ended = succeeded(t(s));
            if s % 2 == 0 {
                ended.state = FireState::Failed;
                ended.error = Some(format!("disk full at {s}"));
            }
            runs.ended(id, ended, true, true, || None);
        }
        runs.not_run(
            &[NotRunFire::new(
                t(6),
                NotRun::Skipped(SkipReason::MaxInstances { running: 1 }),
            )],
            t(6),
        );
        let going = Uuid::new_v4();
        runs.begin(going, t(7), false, None);
        let history = runs.history("s", "here", 10);
        let seen: Vec<_> = history.iter().map(|r| (r.nominal_time, r.state)).collect();
        assert_eq!(
            seen,
            vec![
                (t(7), FireState::Queued),
                (t(6), FireState::Skipped),
                (t(5), FireState::Succeeded),
                (t(4), FireState::Failed),
                (t(2), FireState::Failed),
            ],
            "three kept with a story, the latest success, and the run going"
        );
        assert_eq!(
            history[1].reason.as_deref(),
            Some("max_instances: 1 run(s) going")
        );
        assert_eq!(history[3].error.as_deref(), Some("disk full at 4"));
        assert_eq!(history[2].owner.as_deref(), Some("here"));
        assert_eq!(history[2].started_at, Some(t(5)));
        assert_eq!(history[2].finished_at, Some(t(5)));
        assert_eq!(runs.running(), 1);
        assert_eq!(runs.history("s", "here", 2).len(), 2);
    }

    #[test]
    fn a_long_run_is_listed_while_newer_fires_come_and_go() {
        let runs = ScheduleRuns::new(2);
        let long = Uuid::new_v4();
        runs.begin(long, t(0), true, None);
        let skipped = NotRun::Skipped(SkipReason::MaxInstances { running: 1 });
        for s in 1..6 {
            runs.not_run(&[NotRunFire::new(t(s), skipped)], t(s));
        }
        assert_eq!(runs.going(), vec![(long, t(0))]);
        let states: Vec<_> = runs
            .history("s", "here", 10)
            .iter()
            .map(|r| (r.nominal_time, r.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (t(5), FireState::Skipped),
                (t(4), FireState::Skipped),
                (t(0), FireState::Running)
            ],
            "two kept, and the run going however old"
        );
        // A catch-up run moves on to its next fire: a record of its own.
        let next = Uuid::new_v4();
        runs.ended(long, succeeded(t(6)), false, true, || None);
        runs.started(long, next, t(1), t(6));
        assert_eq!(runs.going(), vec![(next, t(1))]);
        runs.ended(next, succeeded(t(7)), true, true, || None);
        assert_eq!(runs.running(), 0);
        assert!(runs.going().is_empty());
        // Without a history only the runs going are kept.
        let bare = ScheduleRuns::new(0);
        let id = Uuid::new_v4();
        bare.begin(id, t(0), true, None);
        bare.ended(id, succeeded(t(1)), true, true, || None);
        assert!(bare.history("s", "here", 10).is_empty());
        assert_eq!(bare.running(), 0);
        bare.begin(id, t(2), false, None);
        bare.release(id, true, || None);
        assert!(bare.going().is_empty() && bare.running() == 0);
    }
}
