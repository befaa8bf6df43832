//! One schedule's runs in this process: the ones going (counted for `max_instances`, listed
//! for the shutdown report) and, for the engine's own timetable, a bounded history of its
//! fires. One lock per schedule, so runs of different schedules never contend; a run takes it
//! when it is dispatched and when it ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::fires::{FireRecord, FireState, NotRunFire};

/// A fire being run here.
#[derive(Clone, Copy, Debug)]
struct Going {
    run_id: Uuid,
    nominal_time: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
}

/// A fire of the history, kept small: a run that succeeded allocates nothing.
#[derive(Clone, Debug)]
struct Past {
    run_id: Option<Uuid>,
    nominal_time: DateTime<Utc>,
    state: FireState,
    decided_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// The reason a fire did not run, or a failed run's error.
    detail: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// One entry per run (a catch-up of several fires is one run, at the fire it is at).
    going: Vec<Going>,
    past: VecDeque<Past>,
}

#[derive(Debug)]
pub(crate) struct ScheduleRuns {
    inner: Mutex<Inner>,
    /// `going.len()`, readable without the lock: the engine reads it for every fire.
    count: AtomicU32,
    /// Fires kept in `past`; 0 keeps none (a shared store keeps the history).
    keep: usize,
}

/// How a run's fire ended, for the history.
pub(crate) struct Ended {
    pub(crate) state: FireState,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    pub(crate) error: Option<Arc<str>>,
}

impl ScheduleRuns {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            inner: Mutex::default(),
            count: AtomicU32::new(0),
            keep,
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

    /// Counts a dispatched run, at its first fire.
    pub(crate) fn begin(&self, run_id: Uuid, nominal_time: DateTime<Utc>) {
        let mut inner = self.lock();
        inner.going.push(Going {
            run_id,
            nominal_time,
            started_at: None,
        });
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// The run `from` moves on to a fire (`run_id`, its next catch-up fire, or the same).
    pub(crate) fn at(
        &self,
        from: Uuid,
        run_id: Uuid,
        nominal_time: DateTime<Utc>,
        started_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        if let Some(going) = inner.going.iter_mut().find(|g| g.run_id == from) {
            *going = Going {
                run_id,
                nominal_time,
                started_at: Some(started_at),
            };
        }
    }

    /// Records how the fire the run `run_id` is at ended; with `release`, the run ends too
    /// and no longer counts (one lock for both).
    pub(crate) fn ended(&self, run_id: Uuid, ended: Ended, release: bool) {
        let mut inner = self.lock();
        let Some(i) = inner.going.iter().position(|g| g.run_id == run_id) else {
            return;
        };
        let going = if release {
            self.count.fetch_sub(1, Ordering::AcqRel);
            inner.going.swap_remove(i)
        } else {
            inner.going[i]
        };
        if self.keep > 0 {
            let past = Past {
                run_id: Some(run_id),
                nominal_time: going.nominal_time,
                state: ended.state,
                decided_at: ended.started_at,
                started_at: Some(ended.started_at),
                finished_at: Some(ended.finished_at),
                detail: ended.error,
            };
            self.push(&mut inner, past);
        }
    }

    /// Records fires that did not run.
    pub(crate) fn not_run(&self, fires: &[NotRunFire], decided_at: DateTime<Utc>) {
        if self.keep == 0 || fires.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for fire in fires {
            let past = Past {
                run_id: None,
                nominal_time: fire.nominal_time,
                state: fire.reason.state(),
                decided_at,
                started_at: None,
                finished_at: None,
                detail: Some(fire.reason.to_string().into()),
            };
            self.push(&mut inner, past);
        }
    }

    fn push(&self, inner: &mut Inner, past: Past) {
        if inner.past.len() == self.keep {
            inner.past.pop_front();
        }
        inner.past.push_back(past);
    }

    /// The run `run_id` has ended (or was dropped): it no longer counts.
    pub(crate) fn release(&self, run_id: Uuid) {
        let mut inner = self.lock();
        if let Some(i) = inner.going.iter().position(|g| g.run_id == run_id) {
            inner.going.swap_remove(i);
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The fires being run now, as `(run id, nominal time)`.
    pub(crate) fn going(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        self.lock()
            .going
            .iter()
            .map(|g| (g.run_id, g.nominal_time))
            .collect()
    }

    /// The newest `limit` fires, runs going included, newest first.
    pub(crate) fn history(&self, schedule_id: &str, owner: &str, limit: usize) -> Vec<FireRecord> {
        let inner = self.lock();
        let owner = || Some(owner.to_owned());
        let mut records: Vec<FireRecord> = inner
            .going
            .iter()
            .map(|g| {
                let state = if g.started_at.is_some() {
                    FireState::Running
                } else {
                    FireState::Queued
                };
                FireRecord::new(g.run_id.to_string(), schedule_id, g.nominal_time, state)
                    .owner(owner())
                    .epoch(1, u32::from(g.started_at.is_some()))
                    .times([g.started_at, g.started_at, None])
            })
            .chain(inner.past.iter().rev().map(|p| {
                let ran = p.run_id.is_some();
                let (reason, error) = if ran {
                    (None, p.detail.as_deref().map(str::to_owned))
                } else {
                    (p.detail.as_deref().map(str::to_owned), None)
                };
                let id = p.run_id.map_or_else(
                    || format!("{schedule_id}@{}", p.nominal_time.timestamp_micros()),
                    |id| id.to_string(),
                );
                FireRecord::new(id, schedule_id, p.nominal_time, p.state)
                    .reason(reason)
                    .owner(owner())
                    .epoch(1, u32::from(ran))
                    .times([Some(p.decided_at), p.started_at, p.finished_at])
                    .error(error)
            }))
            .collect();
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

    #[test]
    fn the_history_is_bounded_newest_first_and_lists_runs_going() {
        let t = |s| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s).unwrap();
        let runs = ScheduleRuns::new(3);
        for s in 0..4 {
            let id = Uuid::new_v4();
            runs.begin(id, t(s));
            runs.at(id, id, t(s), t(s));
            runs.ended(
                id,
                Ended {
                    state: FireState::Succeeded,
                    started_at: t(s),
                    finished_at: t(s),
                    error: None,
                },
                true,
            );
        }
        runs.not_run(
            &[NotRunFire::new(
                t(4),
                NotRun::Skipped(SkipReason::MaxInstances { running: 1 }),
            )],
            t(4),
        );
        let going = Uuid::new_v4();
        runs.begin(going, t(5));
        let history = runs.history("s", "here", 10);
        let times: Vec<_> = history.iter().map(|r| r.nominal_time).collect();
        assert_eq!(
            times,
            vec![t(5), t(4), t(3), t(2)],
            "three kept, plus the run going"
        );
        assert_eq!(history[0].state, FireState::Queued);
        assert_eq!(history[1].state, FireState::Skipped);
        assert_eq!(
            history[1].reason.as_deref(),
            Some("max_instances: 1 run(s) going")
        );
        assert_eq!(history[2].state, FireState::Succeeded);
        assert_eq!(history[2].owner.as_deref(), Some("here"));
        assert_eq!(runs.running(), 1);
        assert_eq!(runs.history("s", "here", 2).len(), 2);
    }
}
