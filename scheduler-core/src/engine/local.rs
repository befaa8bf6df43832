//! The engine's own timetable: schedules in memory, ordered by due time, written through to a
//! [`JobStore`] if there is one, with a bounded history of each schedule's fires.
//!
//! Every fire runs in this process: this timetable does not coordinate with other instances.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::{Added, Changed, Edit, Prepared};
use super::dispatch::{self, SPAWN_CHUNK};
use super::run::{Fires, RunFire, RunTask, new_run_id};
use super::state::Shared;
use super::table::{Entry, Table};
use crate::error::{Error, Result, error_chain};
use crate::event::{AbortedRun, Event, RunSummary};
use crate::fires::FireRecord;
use crate::policy::{self, Due, FireTimes};
use crate::schedule::{OnConflict, Schedule};
use crate::store::JobStore;
use crate::trigger::whole_micros;

/// Fires dispatched per pass before the engine looks at its commands again.
const DISPATCH_BATCH: usize = 65_536;

pub(crate) struct LocalTimetable {
    shared: Arc<Shared>,
    /// Without a store, schedules live in the timetable alone (the default, and the fastest:
    /// nothing is written per fire).
    store: Option<Arc<dyn JobStore>>,
    table: Table,
    loaded: bool,
    /// Next run times changed by dispatching, written to the store once per wake-up.
    pending_times: Vec<(Arc<str>, Option<DateTime<Utc>>)>,
}

impl LocalTimetable {
    pub(crate) fn new(shared: Arc<Shared>, store: Option<Arc<dyn JobStore>>) -> Self {
        Self {
            shared,
            store,
            table: Table::default(),
            loaded: false,
            pending_times: Vec::new(),
        }
    }

    fn store_failed(&self, operation: &'static str, error: &Error) {
        crate::metrics::store_failed(operation);
        let text = error_chain(error);
        tracing::error!(operation, error = %text, "job store failed");
        self.shared.emit(|| Event::StoreFailed {
            operation,
            error: text.into(),
        });
    }

    /// Reads the store's schedules into the timetable, once.
    pub(crate) async fn load(&mut self) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        let Some(store) = &self.store else {
            self.loaded = true;
            return Ok(());
        };
        for schedule in store.list().await? {
            if self.table.key(&schedule.id).is_some() {
                continue;
            }
            let job = self.shared.job(schedule.job.as_deref());
            if job.is_none() {
                let name: Arc<str> = schedule.job.clone().unwrap_or_else(|| "<job value>".into());
                tracing::warn!(
                    schedule_id = %schedule.id,
                    job = %name,
                    "stored schedule names a job that is not registered here; it will not run in this process"
                );
                self.shared.emit(|| Event::UnknownJob {
                    schedule_id: Arc::clone(&schedule.id),
                    job: name,
                });
            }
            // A stored time is a fire the store already promised: no new jitter.
            self.table.insert(Entry::new(schedule, job), false);
        }
        self.loaded = true;
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn first_due(&self) -> Option<DateTime<Utc>> {
        self.table.first_due()
    }

    /// Decides every due fire, starts the runs, then brings the timetable up to date: the runs
    /// start while the engine does the bookkeeping.
    pub(crate) async fn fire_due(&mut self) {
        let mut now = self.shared.clock.now();
        let mut now_us = now.timestamp_micros();
        let mut fired = Vec::new();
        let mut runs = Vec::new();
        while fired.len() < DISPATCH_BATCH {
            let Some((key, due_time)) = self.table.pop_due(now_us) else {
                break;
            };
            let Some(entry) = self.table.entry_mut(key) else {
                continue;
            };
            let running = entry.running();
            // Only a schedule at its limit has fires waiting; the others skip the lock.
            let waiting = if running >= entry.schedule.max_instances {
                entry.runs().map_or(0, |runs| runs.waiting())
            } else {
                0
            };
            let plan = policy::plan(Due {
                schedule: &entry.schedule,
                due_time,
                now,
                running,
                waiting,
            });
            let max_instances = entry.schedule.max_instances;
            let overlap = entry.schedule.overlap;
            let Some(runtime) = entry.runtime(&self.shared, self.shared.history_limit) else {
                continue;
            };
            if !plan.not_run.is_empty() {
                dispatch::not_run(&self.shared, &runtime.context.schedule_id, &plan.not_run);
                runtime.runs.not_run(&plan.not_run, now);
            }
            if plan.cancel {
                if let crate::schedule::Overlap::CancelRunning { grace } = overlap {
                    dispatch::cancel_going(runtime, grace);
                }
            }
            if !plan.queue.is_empty() {
                dispatch::enqueue(runtime, plan.queue.as_slice(), max_instances, now);
            }
            let fire = |nominal_time| RunFire {
                nominal_time,
                run_id: new_run_id(),
            };
            let fires = match plan.run {
                FireTimes::None => Fires::Many(Vec::new()),
                FireTimes::One(t) => Fires::One(fire(t)),
                FireTimes::Many(times) => Fires::Many(times.into_iter().map(fire).collect()),
            };
            runs.extend(dispatch::submit(runtime, fires));
            fired.push((key, plan.after));
            if runs.len() == SPAWN_CHUNK {
                dispatch::spawn_from_helper(&self.shared, std::mem::take(&mut runs));
                now = self.shared.clock.now();
                now_us = now.timestamp_micros();
            }
        }
        for run in runs {
            run.spawn(&self.shared.tracker);
        }
        if fired.len() > SPAWN_CHUNK {
            // The runs first: the bookkeeping below can wait until the workers are idle.
            tokio::task::yield_now().await;
        }
        let mut finished = Vec::new();
        for (key, after) in fired {
            let Some(entry) = self.table.entry(key) else {
                continue;
            };
            let next = policy::next_run_time(&entry.schedule, after, now);
            let id = Arc::clone(&entry.schedule.id);
            if next.is_some() {
                self.table.set_next(key, next, true);
                if self.store.is_some() {
                    self.pending_times.push((id, next));
                }
            } else {
                finished.push(id);
            }
        }
        for id in finished {
            // The trigger has no more fires: the schedule is done, as in APScheduler.
            if self.table.remove(&id).is_some() {
                if let Some(store) = &self.store {
                    match store.remove(&id).await {
                        Ok(()) => {}
                        Err(error) if error.is_not_found() => {}
                        Err(error) => self.store_failed("remove finished schedule", &error),
                    }
                }
                tracing::debug!(schedule_id = %id, "schedule finished: its trigger has no more fire times");
                self.shared.emit(|| Event::Removed { schedule_id: id });
            }
        }
        self.flush().await;
    }

    /// Writes the next run times changed by dispatching.
    pub(crate) async fn flush(&mut self) {
        if self.pending_times.is_empty() {
            return;
        }
        let updates = std::mem::take(&mut self.pending_times);
        if let Some(store) = &self.store {
            if let Err(error) = store.set_next_run_times(&updates).await {
                self.store_failed("save next run times", &error);
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Schedule> {
        self.table.get(id).map(|e| e.schedule.clone())
    }

    pub(crate) fn list(&self) -> Vec<Schedule> {
        let mut list: Vec<Schedule> = self.table.entries().map(|e| e.schedule.clone()).collect();
        list.sort_by(crate::store::memory::run_order);
        list
    }

    /// Adds schedules, all or none: the store first; if it refuses one, what it took is
    /// undone and the timetable has changed nothing. A schedule whose id is taken is refused,
    /// kept or replaced as its [`OnConflict`] says.
    pub(crate) async fn add(&mut self, batch: Vec<Prepared>) -> Result<Vec<Added>> {
        let mut ids = HashSet::new();
        let mut writes = Vec::with_capacity(batch.len());
        let mut added = Vec::with_capacity(batch.len());
        for new in batch {
            if !ids.insert(Arc::clone(&new.schedule.id)) {
                return Err(Error::ConflictingId(new.schedule.id.to_string()));
            }
            let existing = self.table.get(&new.schedule.id).map(|e| &e.schedule);
            let keep = match (existing, new.on_conflict) {
                (None, _) => None,
                (Some(_), OnConflict::Replace) => None,
                (Some(old), OnConflict::Keep) => Some(old.clone()),
                (Some(old), OnConflict::ReplaceIfChanged) => new
                    .schedule
                    .same_definition(old, new.anchored)
                    .then(|| old.clone()),
                (Some(_), _) => return Err(Error::ConflictingId(new.schedule.id.to_string())),
            };
            match keep {
                Some(schedule) => added.push(Added {
                    schedule,
                    written: false,
                }),
                None => {
                    added.push(Added {
                        schedule: new.schedule.clone(),
                        written: true,
                    });
                    writes.push(new);
                }
            }
        }
        if let Some(store) = &self.store {
            for (i, new) in writes.iter().enumerate() {
                let replace = self.table.key(&new.schedule.id).is_some();
                if let Err(error) = store.add(&new.schedule, replace).await {
                    for done in &writes[..i] {
                        let undo = match self.table.get(&done.schedule.id) {
                            Some(old) => store.update(&old.schedule).await,
                            None => store.remove(&done.schedule.id).await,
                        };
                        if let Err(undo_error) = undo {
                            self.store_failed("undo a failed batch add", &undo_error);
                        }
                    }
                    return Err(error);
                }
            }
        }
        for new in writes {
            let mut entry = Entry::new(new.schedule, Some(new.job));
            // A replaced schedule keeps counting its runs that are still going.
            if let Some(old) = self.table.remove(&entry.schedule.id) {
                entry.inherit(&self.shared, old);
            }
            self.table.insert(entry, new.jitter);
        }
        Ok(added)
    }

    /// Applies an edit to a schedule: written to the store, then to the timetable; the fires
    /// it did not run go to the history.
    pub(crate) async fn change(
        &mut self,
        id: &str,
        edit: impl FnOnce(&Schedule, DateTime<Utc>) -> Result<Edit>,
    ) -> Result<Changed> {
        let before = self
            .table
            .get(id)
            .map(|entry| entry.schedule.clone())
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        let now = self.shared.clock.now();
        let edit = edit(&before, now)?;
        let Some(after) = edit.schedule else {
            // Its history goes with it.
            self.remove(id).await?;
            return Ok(Changed {
                before,
                after: None,
                not_run: edit.not_run,
            });
        };
        if after != before {
            if let Some(store) = &self.store {
                store.update(&after).await?;
            }
        }
        if let Some(key) = self.table.key(id) {
            if let Some(entry) = self.table.entry_mut(key) {
                if !edit.not_run.is_empty() {
                    if let Some(runtime) = entry.runtime(&self.shared, self.shared.history_limit) {
                        runtime.runs.not_run(&edit.not_run, now);
                    }
                }
                let moved = entry.schedule.next_run_time != after.next_run_time;
                entry.set_schedule(&self.shared, after.clone());
                if moved || edit.retime {
                    self.table.set_next(key, after.next_run_time, edit.retime);
                }
            }
        }
        Ok(Changed {
            before,
            after: Some(after),
            not_run: edit.not_run,
        })
    }

    pub(crate) async fn remove(&mut self, id: &str) -> Result<()> {
        if self.table.key(id).is_none() {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        if let Some(store) = &self.store {
            match store.remove(id).await {
                Ok(()) => {}
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        self.table.remove(id);
        Ok(())
    }

    pub(crate) async fn remove_all(&mut self) -> Result<()> {
        if let Some(store) = &self.store {
            store.remove_all().await?;
        }
        self.table.clear();
        self.pending_times.clear();
        Ok(())
    }

    /// One extra run of a schedule now.
    pub(crate) fn run_now(&mut self, id: &str) -> Result<RunTask> {
        let entry = self
            .table
            .key(id)
            .and_then(|key| self.table.entry_mut(key))
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        policy::run_now(&entry.schedule, entry.running())?;
        let Some(runtime) = entry.runtime(&self.shared, self.shared.history_limit) else {
            let name = entry.schedule.job.as_deref().unwrap_or("<job value>");
            return Err(Error::UnknownJob(name.to_owned()));
        };
        let fire = RunFire {
            nominal_time: whole_micros(self.shared.clock.now()),
            run_id: new_run_id(),
        };
        dispatch::submit(runtime, Fires::One(fire)).ok_or(Error::SchedulerStopped)
    }

    pub(crate) fn history(&self, id: &str, limit: usize) -> Result<Vec<FireRecord>> {
        let entry = self
            .table
            .get(id)
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        Ok(entry.runs().map_or_else(Vec::new, |runs| {
            runs.history(&entry.schedule.id, &self.shared.instance, limit)
        }))
    }

    /// The runs still going, for the shutdown report: after the abort, only jobs that block
    /// their thread without ever yielding.
    pub(crate) fn running(&self) -> Vec<AbortedRun> {
        self.table
            .entries()
            .filter_map(|entry| Some((entry, entry.runs()?)))
            .flat_map(|(entry, runs)| {
                runs.going().into_iter().map(|(run_id, nominal_time)| {
                    let run = RunSummary {
                        schedule_id: Arc::clone(&entry.schedule.id),
                        run_id,
                        nominal_time,
                    };
                    AbortedRun::new(run, false, false)
                })
            })
            .collect()
    }
}
