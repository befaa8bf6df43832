//! The engine's schedules and their timetable.
//!
//! Schedules sit in a slab; the timetable orders slab keys by due time. Dispatching goes from
//! the timetable to the slab by key, so the hot path never hashes a schedule id; ids are
//! looked up only for commands.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::run::ScheduleRuntime;
use super::runs::ScheduleRuns;
use super::state::Shared;
use crate::job::Job;
use crate::schedule::Schedule;
use crate::trigger::{Trigger, apply_jitter};

pub(super) type Key = u32;

pub(super) struct Entry {
    pub(super) schedule: Schedule,
    /// `None`: the job is not registered here; the schedule is kept but never dispatched.
    job: Option<Arc<dyn Job>>,
    /// What runs it, made at its first fire (or history record): a schedule that has not run
    /// yet costs nothing more. Kept when the schedule is replaced, so its runs going go on
    /// counting against `max_instances`.
    runtime: Option<Arc<ScheduleRuntime>>,
    /// Its place in the timetable, and its due time (with jitter).
    slot: Option<(Slot, DateTime<Utc>)>,
}

/// A place in the timetable: the due time in microseconds (cheaper to compare than a
/// `DateTime`, on every insert), then the order of insertion.
type Slot = (i64, u64);

impl Entry {
    pub(super) fn new(schedule: Schedule, job: Option<Arc<dyn Job>>) -> Self {
        Self {
            schedule,
            job,
            runtime: None,
            slot: None,
        }
    }

    /// Whether this process can run it.
    pub(super) fn runnable(&self) -> bool {
        self.job.is_some()
    }

    /// What runs it, made now if it has not run yet; `None` when its job is unknown here.
    pub(super) fn runtime(
        &mut self,
        shared: &Arc<Shared>,
        keep: usize,
    ) -> Option<&Arc<ScheduleRuntime>> {
        let job = self.job.as_ref()?;
        if self.runtime.is_none() {
            let runs = Arc::new(ScheduleRuns::new(keep));
            let runtime = ScheduleRuntime::new(shared, &self.schedule, Arc::clone(job), runs);
            self.runtime = Some(runtime);
        }
        self.runtime.as_ref()
    }

    /// Its runs in this process, if it ever had any.
    pub(super) fn runs(&self) -> Option<&Arc<ScheduleRuns>> {
        Some(&self.runtime.as_ref()?.runs)
    }

    /// Runs going.
    pub(super) fn running(&self) -> u32 {
        self.runs().map_or(0, |runs| runs.running())
    }

    /// Takes over the runs of the schedule this one replaces.
    pub(super) fn inherit(&mut self, shared: &Arc<Shared>, old: Self) {
        if let (Some(job), Some(runtime)) = (&self.job, old.runtime) {
            let runs = Arc::clone(&runtime.runs);
            self.runtime = Some(ScheduleRuntime::new(
                shared,
                &self.schedule,
                Arc::clone(job),
                runs,
            ));
        }
    }

    /// Replaces the schedule's data (not its place in the timetable). Runs from now on see the
    /// new args; runs going keep counting against `max_instances`.
    pub(super) fn set_schedule(&mut self, shared: &Arc<Shared>, schedule: Schedule) {
        if self.schedule.job != schedule.job {
            self.job = shared.job(schedule.job.as_deref());
            // Runs going keep counting; the next ones run the new job.
            self.runtime = match (&self.job, self.runtime.take()) {
                (Some(job), Some(runtime)) => Some(ScheduleRuntime::new(
                    shared,
                    &schedule,
                    Arc::clone(job),
                    Arc::clone(&runtime.runs),
                )),
                _ => None,
            };
        } else if let Some(runtime) = &self.runtime {
            if !Arc::ptr_eq(&runtime.context.args, &schedule.args)
                || self.schedule.at_most_once != schedule.at_most_once
                || self.schedule.overlap != schedule.overlap
            {
                let job = Arc::clone(&runtime.job);
                self.runtime = Some(ScheduleRuntime::new(
                    shared,
                    &schedule,
                    job,
                    Arc::clone(&runtime.runs),
                ));
            }
        }
        self.schedule = schedule;
    }
}

#[derive(Default)]
pub(super) struct Table {
    slab: Vec<Option<Entry>>,
    free: Vec<Key>,
    ids: HashMap<Arc<str>, Key>,
    timetable: BTreeMap<Slot, Key>,
    sequence: u64,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn key(&self, id: &str) -> Option<Key> {
        self.ids.get(id).copied()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Entry> {
        self.entry(self.key(id)?)
    }

    pub(super) fn entry(&self, key: Key) -> Option<&Entry> {
        self.slab.get(key as usize)?.as_ref()
    }

    pub(super) fn entry_mut(&mut self, key: Key) -> Option<&mut Entry> {
        self.slab.get_mut(key as usize)?.as_mut()
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slab.iter().flatten()
    }

    /// Adds an entry (its id must not be in the table) and slots it at `next_run_time`.
    pub(super) fn insert(&mut self, entry: Entry, jitter: bool) -> Key {
        let id = Arc::clone(&entry.schedule.id);
        let next = entry.schedule.next_run_time;
        let key = match self.free.pop() {
            Some(key) => {
                self.slab[key as usize] = Some(entry);
                key
            }
            None => {
                self.slab.push(Some(entry));
                Key::try_from(self.slab.len() - 1).expect("fewer than 2^32 schedules")
            }
        };
        self.ids.insert(id, key);
        self.set_next(key, next, jitter);
        key
    }

    /// Takes an entry out of the table and the timetable.
    pub(super) fn remove(&mut self, id: &str) -> Option<Entry> {
        let key = self.ids.remove(id)?;
        let entry = self.slab.get_mut(key as usize)?.take()?;
        if let Some((slot, _)) = entry.slot {
            self.timetable.remove(&slot);
        }
        self.free.push(key);
        Some(entry)
    }

    pub(super) fn clear(&mut self) {
        *self = Self {
            sequence: self.sequence,
            ..Self::default()
        };
    }

    /// Sets the schedule's next run time and moves it in the timetable (out of it for `None`,
    /// or when its job is unknown). With `jitter`, the due time gets the trigger's jitter.
    pub(super) fn set_next(&mut self, key: Key, next: Option<DateTime<Utc>>, jitter: bool) {
        let Some(entry) = self.slab.get_mut(key as usize).and_then(Option::as_mut) else {
            return;
        };
        entry.schedule.next_run_time = next;
        if let Some((slot, _)) = entry.slot.take() {
            self.timetable.remove(&slot);
        }
        if let (Some(next), true) = (next, entry.runnable()) {
            let due = if jitter {
                apply_jitter(next, entry.schedule.trigger.jitter())
            } else {
                next
            };
            self.sequence += 1;
            let slot = (due.timestamp_micros(), self.sequence);
            self.timetable.insert(slot, key);
            entry.slot = Some((slot, due));
        }
    }

    /// The earliest due time.
    pub(super) fn first_due(&self) -> Option<DateTime<Utc>> {
        let (_, &key) = self.timetable.first_key_value()?;
        Some(self.entry(key)?.slot?.1)
    }

    /// Takes the earliest entry out of the timetable if it is due at `now_us` (microseconds):
    /// its key and its due time.
    pub(super) fn pop_due(&mut self, now_us: i64) -> Option<(Key, DateTime<Utc>)> {
        let (&(due_us, _), _) = self.timetable.first_key_value()?;
        if due_us > now_us {
            return None;
        }
        let (_, key) = self.timetable.pop_first()?;
        let (_, due) = self.entry_mut(key)?.slot.take()?;
        Some((key, due))
    }
}
