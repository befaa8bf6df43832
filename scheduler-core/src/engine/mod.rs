//! The engine: one task that owns the timetable.
//!
//! It sleeps until the earliest due time or a command, never on a fixed tick. When it wakes it
//! takes what is due from the timetable (ordered by due time), applies misfire, coalesce and
//! `max_instances`, spawns the runs, computes the next fire times and sleeps again. Every
//! operation is O(log n) in the number of schedules.

mod run;
mod shared;
mod table;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;

pub(crate) use self::run::{Collector, Runner};
use self::run::{Fires, RunTask, new_run_id};
pub(crate) use self::shared::SharedEngine;
use self::table::{Entry, Key, Table};
use crate::error::{Error, Result, error_chain};
use crate::event::{Event, RunSummary, ShutdownReport};
use crate::job::Job;
use crate::schedule::{FirstRun, JobSource, NewSchedule, Schedule, ScheduleChanges};
use crate::scheduler::{Command, SchedulerState, Shared};
use crate::store::JobStore;
use crate::trigger::{Trigger, TriggerSpec};

/// How many due fires of one schedule without `coalesce` are handled one by one in a single
/// wake-up (run, or reported missed). Past it, the rest are coalesced into the latest, so a
/// long downtime (or a clock jump to the year 2200) costs a bounded amount of work.
pub const CATCH_UP_LIMIT: usize = 100;

/// Runs handed to one helper task for spawning, when many fires are due at once.
const SPAWN_CHUNK: usize = 128;

/// Fires dispatched per pass before the engine looks at its commands again.
const DISPATCH_BATCH: usize = 65_536;

/// After the shutdown deadline, how long aborted runs get to unwind. A job that blocks its
/// thread without yielding cannot be stopped; it is reported aborted and left behind.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// What one wake-up does with the due fires of a schedule without `coalesce`.
#[derive(Debug, Default, PartialEq)]
struct CatchUp {
    run: Vec<DateTime<Utc>>,
    missed: Vec<(DateTime<Utc>, TimeDelta)>,
    /// The latest fire handled; the next fire comes after it.
    last: Option<DateTime<Utc>>,
}

pub(crate) struct Engine {
    shared: Arc<Shared>,
    store: Persistence,
    commands: mpsc::UnboundedReceiver<Command>,
    table: Table,
    loaded: bool,
    /// Next run times changed by dispatching, written to the store once per wake-up.
    pending_times: Vec<(Arc<str>, Option<DateTime<Utc>>)>,
}

impl Engine {
    pub(crate) fn new(
        shared: Arc<Shared>,
        store: Option<Arc<dyn JobStore>>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let store = Persistence(store);
        Self {
            shared,
            store,
            commands,
            table: Table::default(),
            loaded: false,
            pending_times: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        if let Err(error) = self.load().await {
            self.store_failed("load schedules", &error);
        }
        loop {
            let due = match self.shared.status() {
                SchedulerState::Running => self.table.first_due(),
                _ => None,
            };
            let sleep = due.map(|t| self.shared.clock.sleep_until(t));
            let command = tokio::select! {
                biased;
                command = self.commands.recv() => command,
                () = async {
                    match sleep {
                        Some(sleep) => sleep.await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.dispatch_due().await;
                    continue;
                }
            };
            match command {
                Some(Command::Shutdown(deadline, reply)) => {
                    let report = self.shutdown(deadline).await;
                    let _ = reply.send(Ok(report));
                    return;
                }
                Some(command) => self.handle(command).await,
                None => {
                    // Every handle is gone: nobody can shut down or query any more.
                    self.abandon().await;
                    return;
                }
            }
        }
    }

    // ===== loading and store bookkeeping =====

    async fn load(&mut self) -> Result<()> {
        let schedules = self.store.list().await?;
        for schedule in schedules {
            if self.table.key(&schedule.id).is_some() {
                continue;
            }
            let job = self.resolve_stored_job(&schedule);
            // A stored time is a fire the store already promised: no new jitter.
            self.table.insert(
                Entry::new(&self.shared, schedule, job, Arc::default()),
                false,
            );
        }
        self.loaded = true;
        Ok(())
    }

    fn resolve_stored_job(&self, schedule: &Schedule) -> Option<Arc<dyn Job>> {
        let job = schedule
            .job
            .as_ref()
            .and_then(|name| self.shared.jobs.get(name).cloned());
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
        job
    }

    fn store_failed(&self, operation: &'static str, error: &Error) {
        let text = error_chain(error);
        tracing::error!(operation, error = %text, "job store failed");
        self.shared.emit(|| Event::StoreFailed {
            operation,
            error: text.into(),
        });
    }

    async fn flush_times(&mut self) {
        if self.pending_times.is_empty() {
            return;
        }
        let updates = std::mem::take(&mut self.pending_times);
        // Without a store the list is never filled; see `fire`.
        if let Err(error) = self.store.set_next_run_times(&updates).await {
            self.store_failed("save next run times", &error);
        }
    }

    // ===== dispatching =====

    async fn dispatch_due(&mut self) {
        let mut now = self.shared.clock.now();
        // First every due run is decided and spawned, then the timetable is brought up to
        // date: the runs start while the engine does the bookkeeping.
        let mut fired = Vec::new();
        let mut runs = Vec::new();
        while fired.len() < DISPATCH_BATCH {
            let Some((key, due)) = self.table.pop_due(now) else {
                break;
            };
            if let Some(last) = self.fire(key, due, now, &mut runs) {
                fired.push((key, last));
            }
            if runs.len() == SPAWN_CHUNK {
                spawn_from_helper(&self.shared, std::mem::take(&mut runs));
                now = self.shared.clock.now();
            }
        }
        for run in runs {
            self.shared.tracker.spawn(run.run());
        }
        if fired.len() > SPAWN_CHUNK {
            // The runs first: the bookkeeping below can wait until the workers are idle.
            tokio::task::yield_now().await;
        }
        let mut finished = Vec::new();
        for (key, last) in fired {
            let Some(entry) = self.table.entry(key) else {
                continue;
            };
            let next = entry.schedule.trigger.next_fire_time(Some(last), now);
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
                match self.store.remove(&id).await {
                    Ok(()) => {}
                    Err(error) if error.is_not_found() => {}
                    Err(error) => self.store_failed("remove finished schedule", &error),
                }
                tracing::debug!(schedule_id = %id, "schedule finished: its trigger has no more fire times");
                self.shared.emit(|| Event::Removed { schedule_id: id });
            }
        }
        self.flush_times().await;
    }

    /// Runs, or reports missed, the due fires of a schedule; returns the latest fire handled.
    fn fire(
        &self,
        key: Key,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        runs: &mut Vec<RunTask>,
    ) -> Option<DateTime<Utc>> {
        let entry = self.table.entry(key)?;
        let schedule = &entry.schedule;
        let first = schedule.next_run_time?;
        let grace = schedule
            .misfire_grace_time
            .map(|g| TimeDelta::from_std(g).unwrap_or(TimeDelta::MAX));
        if schedule.coalesce {
            let (latest, lateness) = coalesce(&schedule.trigger, first, due, now);
            if grace.is_some_and(|g| lateness > g) {
                self.missed(entry, latest, lateness);
            } else {
                runs.extend(dispatch(
                    &self.shared,
                    entry,
                    Fires::One((latest, new_run_id())),
                ));
            }
            Some(latest)
        } else {
            let plan = catch_up(&schedule.trigger, grace, first, due, now);
            for (nominal_time, lateness) in &plan.missed {
                self.missed(entry, *nominal_time, *lateness);
            }
            if !plan.run.is_empty() {
                let fires = plan.run.into_iter().map(|t| (t, new_run_id())).collect();
                runs.extend(dispatch(&self.shared, entry, Fires::Many(fires)));
            }
            Some(plan.last.unwrap_or(first))
        }
    }

    fn missed(&self, entry: &Entry, nominal_time: DateTime<Utc>, lateness: TimeDelta) {
        let lateness = lateness.to_std().unwrap_or_default();
        let schedule = &entry.schedule;
        tracing::warn!(
            schedule_id = %schedule.id,
            %nominal_time,
            ?lateness,
            grace = ?schedule.misfire_grace_time,
            "run missed: later than its misfire_grace_time"
        );
        self.shared.emit(|| Event::Missed {
            schedule_id: Arc::clone(&schedule.id),
            nominal_time,
            lateness,
        });
    }

    // ===== commands =====

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start(reply) => {
                let _ = reply.send(self.start().await);
            }
            Command::Add(schedules, reply) => {
                let _ = reply.send(self.add(schedules).await);
            }
            Command::Get(id, reply) => {
                let _ = reply.send(Ok(self.table.get(&id).map(|e| e.schedule.clone())));
            }
            Command::List(reply) => {
                let _ = reply.send(Ok(self.list()));
            }
            Command::Modify(id, changes, reply) => {
                let _ = reply.send(self.modify(&id, &changes).await);
            }
            Command::Reschedule(id, trigger, reply) => {
                let _ = reply.send(self.reschedule(&id, trigger).await);
            }
            Command::Pause(id, reply) => {
                let _ = reply.send(self.pause(&id).await);
            }
            Command::Resume(id, reply) => {
                let _ = reply.send(self.resume(&id).await);
            }
            Command::PauseAll(reply) => {
                let _ = reply.send(self.set_paused(true));
            }
            Command::ResumeAll(reply) => {
                let _ = reply.send(self.set_paused(false));
            }
            Command::Remove(id, reply) => {
                let _ = reply.send(self.remove(&id).await);
            }
            Command::RemoveAll(reply) => {
                let _ = reply.send(self.remove_all().await);
            }
            Command::RunNow(id, reply) => {
                let _ = reply.send(self.run_now(&id));
            }
            Command::NextFireTimes(id, n, reply) => {
                let _ = reply.send(self.next_fire_times(&id, n));
            }
            Command::Runs(id, _, reply) => {
                let result = match self.get(&id) {
                    Ok(_) => Err(Error::Unsupported(
                        "run history needs a shared store, which keeps a ledger of fires \
                         (SchedulerBuilder::shared_store with store-sea-orm)"
                            .to_owned(),
                    )),
                    Err(error) => Err(error),
                };
                let _ = reply.send(result);
            }
            Command::Shutdown(..) => unreachable!("shutdown is handled by the run loop"),
        }
    }

    async fn start(&mut self) -> Result<()> {
        match self.shared.status() {
            SchedulerState::NotStarted => {}
            SchedulerState::Running | SchedulerState::Paused => return Err(Error::AlreadyRunning),
            SchedulerState::Stopped => return Err(Error::SchedulerStopped),
        }
        if !self.loaded {
            self.load().await?;
        }
        self.shared.set_status(SchedulerState::Running);
        tracing::info!(schedules = self.table.len(), "scheduler started");
        self.shared.emit(|| Event::SchedulerStarted);
        Ok(())
    }

    fn get(&self, id: &str) -> Result<&Entry> {
        self.table
            .get(id)
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))
    }

    async fn add(&mut self, schedules: Vec<NewSchedule>) -> Result<Vec<Schedule>> {
        let now = self.shared.clock.now();
        let mut prepared = Vec::with_capacity(schedules.len());
        let mut batch_ids = HashSet::new();
        for new in schedules {
            new.check()?;
            let replace = new.replace_existing;
            // Jitter is for the trigger's times, not for an explicit first run.
            let jitter = matches!(new.first_run, FirstRun::Trigger);
            let (schedule, job) = prepare(&self.shared, new, now)?;
            if !batch_ids.insert(Arc::clone(&schedule.id))
                || (!replace && self.table.key(&schedule.id).is_some())
            {
                return Err(Error::ConflictingId(schedule.id.to_string()));
            }
            prepared.push((schedule, job, replace, jitter));
        }
        // The store first: if it refuses one, undo the ones it took, and the engine has
        // changed nothing.
        for (i, (schedule, _, replace, _)) in prepared.iter().enumerate() {
            if let Err(error) = self.store.add(schedule, *replace).await {
                for (done, _, replaced, _) in &prepared[..i] {
                    let undo = match self.table.get(&done.id) {
                        Some(old) if *replaced => self.store.update(&old.schedule).await,
                        _ => self.store.remove(&done.id).await,
                    };
                    if let Err(undo_error) = undo {
                        self.store_failed("undo a failed batch add", &undo_error);
                    }
                }
                return Err(error);
            }
        }
        let mut added = Vec::with_capacity(prepared.len());
        for (schedule, job, _, jitter) in prepared {
            let id = Arc::clone(&schedule.id);
            // A replaced schedule keeps counting its runs that are still going.
            let in_flight = self
                .table
                .remove(&id)
                .and_then(|old| old.in_flight().cloned())
                .unwrap_or_default();
            added.push(schedule.clone());
            self.table.insert(
                Entry::new(&self.shared, schedule, Some(job), in_flight),
                jitter,
            );
            self.shared.emit(|| Event::Added { schedule_id: id });
        }
        Ok(added)
    }

    fn list(&self) -> Vec<Schedule> {
        let mut list: Vec<Schedule> = self.table.entries().map(|e| e.schedule.clone()).collect();
        list.sort_by(crate::store::memory::run_order);
        list
    }

    /// Writes a changed schedule to the store, then to the engine.
    async fn replace_schedule(&mut self, changed: Schedule, jitter: bool) -> Result<Schedule> {
        self.store.update(&changed).await?;
        if let Some(key) = self.table.key(&changed.id) {
            if let Some(entry) = self.table.entry_mut(key) {
                entry.set_schedule(&self.shared, changed.clone());
            }
            self.table.set_next(key, changed.next_run_time, jitter);
        }
        Ok(changed)
    }

    async fn modify(&mut self, id: &str, changes: &ScheduleChanges) -> Result<Schedule> {
        let entry = self.get(id)?;
        let changed = changes.apply(&entry.schedule)?;
        self.store.update(&changed).await?;
        // Name, args and options do not move the schedule in the timetable.
        if let Some(entry) = self.table.key(id).and_then(|key| self.table.entry_mut(key)) {
            entry.set_schedule(&self.shared, changed.clone());
        }
        self.shared.emit(|| Event::Modified {
            schedule_id: Arc::clone(&changed.id),
        });
        Ok(changed)
    }

    async fn reschedule(&mut self, id: &str, mut trigger: TriggerSpec) -> Result<Schedule> {
        let now = self.shared.clock.now();
        let entry = self.get(id)?;
        trigger.anchor(now);
        let mut changed = entry.schedule.clone();
        changed.next_run_time = if changed.paused {
            None
        } else {
            Some(trigger.next_fire_time(None, now).ok_or_else(|| {
                Error::NeverFires(format!(
                    "the new {} trigger of \"{id}\" has no fire time after {now}",
                    trigger.kind()
                ))
            })?)
        };
        changed.trigger = Arc::new(trigger);
        let changed = self.replace_schedule(changed, true).await?;
        self.shared.emit(|| Event::Modified {
            schedule_id: Arc::clone(&changed.id),
        });
        Ok(changed)
    }

    async fn pause(&mut self, id: &str) -> Result<Schedule> {
        let entry = self.get(id)?;
        if entry.schedule.paused {
            return Ok(entry.schedule.clone());
        }
        let mut changed = entry.schedule.clone();
        changed.paused = true;
        changed.next_run_time = None;
        let changed = self.replace_schedule(changed, false).await?;
        self.shared.emit(|| Event::Paused {
            schedule_id: Arc::clone(&changed.id),
        });
        Ok(changed)
    }

    async fn resume(&mut self, id: &str) -> Result<Schedule> {
        let now = self.shared.clock.now();
        let entry = self.get(id)?;
        if !entry.schedule.paused {
            return Ok(entry.schedule.clone());
        }
        let mut changed = entry.schedule.clone();
        changed.paused = false;
        // From now: the fires skipped while paused are not replayed.
        changed.next_run_time = changed.trigger.next_fire_time(None, now);
        if changed.next_run_time.is_none() {
            self.remove(id).await?;
            return Ok(changed);
        }
        let changed = self.replace_schedule(changed, true).await?;
        self.shared.emit(|| Event::Resumed {
            schedule_id: Arc::clone(&changed.id),
        });
        Ok(changed)
    }

    fn set_paused(&mut self, paused: bool) -> Result<()> {
        self.shared.set_paused(paused)
    }

    async fn remove(&mut self, id: &str) -> Result<()> {
        let schedule_id = Arc::clone(&self.get(id)?.schedule.id);
        match self.store.remove(id).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
        self.table.remove(id);
        self.shared.emit(|| Event::Removed { schedule_id });
        Ok(())
    }

    async fn remove_all(&mut self) -> Result<()> {
        self.store.remove_all().await?;
        self.table.clear();
        self.pending_times.clear();
        self.shared.emit(|| Event::AllRemoved);
        Ok(())
    }

    fn run_now(&self, id: &str) -> Result<()> {
        match self.shared.status() {
            SchedulerState::NotStarted => return Err(Error::NotStarted),
            SchedulerState::Stopped => return Err(Error::SchedulerStopped),
            SchedulerState::Running | SchedulerState::Paused => {}
        }
        let entry = self.get(id)?;
        let Some(in_flight) = entry.in_flight() else {
            let name = entry.schedule.job.as_deref().unwrap_or("<job value>");
            return Err(Error::UnknownJob(name.to_owned()));
        };
        let running = in_flight.instances();
        if running >= entry.schedule.max_instances {
            return Err(Error::MaxInstancesReached {
                id: id.to_owned(),
                running,
            });
        }
        let now = self.shared.clock.now();
        if let Some(run) = dispatch(&self.shared, entry, Fires::One((now, new_run_id()))) {
            self.shared.tracker.spawn(run.run());
        }
        Ok(())
    }

    fn next_fire_times(&self, id: &str, n: usize) -> Result<Vec<DateTime<Utc>>> {
        Ok(upcoming(
            &self.get(id)?.schedule,
            n,
            self.shared.clock.now(),
        ))
    }

    // ===== stopping =====

    async fn shutdown(&mut self, deadline: Duration) -> ShutdownReport {
        tracing::info!(?deadline, "scheduler shutting down");
        self.flush_times().await;
        self.shared.set_status(SchedulerState::Stopped);
        self.shared.begin_stopping();
        self.shared.tracker.close();
        wait_for_runs(&self.shared, &mut self.commands, deadline).await;
        let mut report = self.shared.collector.take();
        for entry in self.table.entries() {
            // Still registered after the abort: a job that never yields.
            let Some(in_flight) = entry.in_flight() else {
                continue;
            };
            report.aborted.extend(
                in_flight
                    .running()
                    .into_iter()
                    .map(|(run_id, nominal_time)| RunSummary {
                        schedule_id: Arc::clone(&entry.schedule.id),
                        run_id,
                        nominal_time,
                    }),
            );
        }
        tracing::info!(
            finished = report.finished.len(),
            aborted = report.aborted.len(),
            "scheduler shut down"
        );
        self.shared
            .emit(|| Event::Shutdown(Arc::new(report.clone())));
        report
    }

    async fn abandon(&mut self) {
        tracing::info!("every scheduler handle was dropped; the scheduler stops");
        self.flush_times().await;
        self.shared.set_status(SchedulerState::Stopped);
        self.shared.begin_stopping();
        self.shared.tracker.close();
    }
}

/// Lets the runs still going finish, up to `deadline`, then aborts them and gives them a
/// moment to unwind. Commands that arrive meanwhile are answered with
/// [`Error::SchedulerStopped`] (their reply is dropped) rather than left waiting: a job that
/// calls its scheduler while it stops must not hold the stop up.
pub(crate) async fn wait_for_runs(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    deadline: Duration,
) {
    for (limit, abort_first) in [(deadline, false), (ABORT_WAIT, true)] {
        if abort_first {
            shared.abort.cancel();
        }
        let wait = tokio::time::timeout(limit, shared.tracker.wait());
        tokio::pin!(wait);
        let mut open = true;
        loop {
            tokio::select! {
                result = &mut wait => {
                    if result.is_ok() {
                        return;
                    }
                    break;
                }
                command = commands.recv(), if open => match command {
                    Some(command) => drop(command),
                    None => open = false,
                },
            }
        }
    }
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

/// Turns a new schedule into the stored form: id, name, anchored trigger, first run.
pub(crate) fn prepare(
    shared: &Shared,
    new: NewSchedule,
    now: DateTime<Utc>,
) -> Result<(Schedule, Arc<dyn Job>)> {
    let id: Arc<str> = new
        .id
        .map_or_else(|| new_run_id().simple().to_string().into(), Into::into);
    let (job_name, job) = match new.job {
        JobSource::Named(name) => {
            let job = shared
                .jobs
                .get(&name)
                .cloned()
                .ok_or_else(|| Error::UnknownJob(name.to_string()))?;
            (Some(name), job)
        }
        JobSource::Value(job) => (None, job),
    };
    let mut trigger = new.trigger;
    trigger.anchor(now);
    let next_run_time = if new.options.paused {
        None
    } else {
        Some(match new.first_run {
            crate::FirstRun::Trigger => trigger.next_fire_time(None, now).ok_or_else(|| {
                Error::NeverFires(format!(
                    "the {} trigger of \"{id}\" has no fire time after {now}",
                    trigger.kind()
                ))
            })?,
            crate::FirstRun::Now => now,
            crate::FirstRun::At(t) => t,
        })
    };
    let schedule = Schedule {
        name: new.name.map_or_else(|| Arc::clone(&id), Into::into),
        id,
        job: job_name,
        args: shared_args(new.args),
        trigger: Arc::new(trigger),
        next_run_time,
        misfire_grace_time: new.options.misfire_grace_time,
        coalesce: new.options.coalesce,
        max_instances: new.options.max_instances,
        paused: new.options.paused,
        at_most_once: new.options.at_most_once,
    };
    Ok((schedule, job))
}

/// Hands fires to a run task, unless `max_instances` runs are going.
fn dispatch(shared: &Arc<Shared>, entry: &Entry, fires: Fires) -> Option<RunTask> {
    let (Some(scope), Some(in_flight)) = (&entry.scope, entry.in_flight()) else {
        return None;
    };
    let id = &entry.schedule.id;
    let &first = fires.as_slice().first()?;
    if let Err(running) = in_flight.try_acquire(entry.schedule.max_instances, (first.1, first.0)) {
        for &(nominal_time, _) in fires.as_slice() {
            tracing::warn!(
                schedule_id = %id,
                %nominal_time,
                running,
                "run skipped: max_instances runs are still going"
            );
            shared.emit(|| Event::Skipped {
                schedule_id: Arc::clone(id),
                nominal_time,
                running,
            });
        }
        return None;
    }
    for &(nominal_time, run_id) in fires.as_slice() {
        shared.emit(|| Event::Submitted {
            schedule_id: Arc::clone(id),
            run_id,
            nominal_time,
        });
    }
    Some(RunTask {
        scope: Arc::clone(scope),
        fires,
    })
}

/// Spawns runs from a helper task, so that with many fires due at once the spawning is spread
/// over the runtime's workers instead of being done by the engine alone, and each worker
/// starts the runs it spawned without stealing them first.
fn spawn_from_helper(shared: &Shared, runs: Vec<RunTask>) {
    let tracker = shared.tracker.clone();
    shared.tracker.spawn(async move {
        for run in runs {
            tracker.spawn(run.run());
        }
    });
}

/// What a due schedule does when the scheduler comes to it: the fires to run, the fires
/// missed, and its next run time (`None`: the trigger has no more fires).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DuePlan {
    /// Fires to run, oldest first (one with `coalesce`; at most [`CATCH_UP_LIMIT`] without).
    pub run: Vec<DateTime<Utc>>,
    /// Fires that were due longer ago than `misfire_grace_time`, with how late they were.
    pub missed: Vec<(DateTime<Utc>, Duration)>,
    /// The schedule's next run time after these fires.
    pub next_run_time: Option<DateTime<Utc>>,
}

/// Applies misfire and coalesce to a schedule due at `due` (its next run time, or that time
/// with jitter), as the scheduler does at `now`. Shared stores call it inside their claim, so
/// the rules are the same whichever instance and store decide.
#[must_use]
pub fn plan_due(schedule: &Schedule, due: DateTime<Utc>, now: DateTime<Utc>) -> DuePlan {
    let Some(first) = schedule.next_run_time else {
        return DuePlan::default();
    };
    let grace = schedule
        .misfire_grace_time
        .map(|g| TimeDelta::from_std(g).unwrap_or(TimeDelta::MAX));
    let to_std = |d: TimeDelta| d.to_std().unwrap_or_default();
    let (run, missed, last) = if schedule.coalesce {
        let (latest, lateness) = coalesce(&schedule.trigger, first, due, now);
        if grace.is_some_and(|g| lateness > g) {
            (Vec::new(), vec![(latest, to_std(lateness))], latest)
        } else {
            (vec![latest], Vec::new(), latest)
        }
    } else {
        let plan = catch_up(&schedule.trigger, grace, first, due, now);
        let missed = plan
            .missed
            .into_iter()
            .map(|(t, late)| (t, to_std(late)))
            .collect();
        (plan.run, missed, plan.last.unwrap_or(first))
    };
    DuePlan {
        run,
        missed,
        next_run_time: schedule.trigger.next_fire_time(Some(last), now),
    }
}

/// With `coalesce`: the latest due fire, and how late it is.
///
/// `first` is the schedule's next run time and `first_due` the instant it was due (with
/// jitter); every fire up to `now` is due.
fn coalesce(
    trigger: &TriggerSpec,
    first: DateTime<Utc>,
    first_due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, TimeDelta) {
    let latest = trigger.last_fire_time(first, now).unwrap_or(first);
    let due = if latest == first { first_due } else { latest };
    (latest, (now - due).max(TimeDelta::zero()))
}

/// Without `coalesce`: which due fires run and which are missed, at most [`CATCH_UP_LIMIT`]
/// of each.
fn catch_up(
    trigger: &TriggerSpec,
    grace: Option<TimeDelta>,
    first: DateTime<Utc>,
    first_due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> CatchUp {
    let mut plan = CatchUp::default();
    let mut fire = Some((first, first_due));
    while let Some((nominal, due)) = fire {
        if nominal > now {
            break;
        }
        plan.last = Some(nominal);
        let lateness = (now - due).max(TimeDelta::zero());
        if grace.is_some_and(|g| lateness > g) {
            if plan.missed.len() < CATCH_UP_LIMIT {
                plan.missed.push((nominal, lateness));
            } else if let Some(grace) = grace {
                // Enough reported: jump to the first fire inside the grace window.
                fire = trigger
                    .next_fire_time(Some(nominal), now - grace)
                    .map(|t| (t, t));
                continue;
            }
        } else {
            plan.run.push(nominal);
            if plan.run.len() == CATCH_UP_LIMIT - 1 {
                // The rest are coalesced into the latest.
                if let Some(latest) = trigger.last_fire_time(nominal, now) {
                    plan.run.push(latest);
                    plan.last = Some(latest);
                }
                break;
            }
        }
        fire = trigger
            .next_fire_time(Some(nominal), nominal)
            .map(|t| (t, t));
    }
    plan
}

/// The engine's store, if it has one: without, schedules live in the engine alone and every
/// write is skipped (the default; nothing survives the process either way with a
/// [`MemoryStore`](crate::store::MemoryStore)).
struct Persistence(Option<Arc<dyn JobStore>>);

impl Persistence {
    fn is_some(&self) -> bool {
        self.0.is_some()
    }

    async fn list(&self) -> Result<Vec<Schedule>> {
        match &self.0 {
            Some(store) => store.list().await,
            None => Ok(Vec::new()),
        }
    }

    async fn add(&self, schedule: &Schedule, replace: bool) -> Result<()> {
        match &self.0 {
            Some(store) => store.add(schedule, replace).await,
            None => Ok(()),
        }
    }

    async fn update(&self, schedule: &Schedule) -> Result<()> {
        match &self.0 {
            Some(store) => store.update(schedule).await,
            None => Ok(()),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match &self.0 {
            Some(store) => store.remove(id).await,
            None => Ok(()),
        }
    }

    async fn remove_all(&self) -> Result<()> {
        match &self.0 {
            Some(store) => store.remove_all().await,
            None => Ok(()),
        }
    }

    async fn set_next_run_times(
        &self,
        updates: &[(Arc<str>, Option<DateTime<Utc>>)],
    ) -> Result<()> {
        match &self.0 {
            Some(store) => store.set_next_run_times(updates).await,
            None => Ok(()),
        }
    }
}

/// Most schedules have no args: they share one `null` instead of allocating one each.
fn shared_args(args: serde_json::Value) -> Arc<serde_json::Value> {
    static NULL: std::sync::LazyLock<Arc<serde_json::Value>> =
        std::sync::LazyLock::new(|| Arc::new(serde_json::Value::Null));
    if args.is_null() {
        Arc::clone(&NULL)
    } else {
        Arc::new(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleOptions;
    use crate::trigger::IntervalTrigger;
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

    #[test]
    fn on_time_fire_runs_on_time() {
        let s = every_minute(true, Some(Duration::from_secs(60)));
        assert_eq!(
            coalesce(&s.trigger, t(0, 0), t(0, 0), t(0, 0)),
            (t(0, 0), TimeDelta::zero())
        );
    }

    #[test]
    fn coalesce_takes_the_latest_due_fire() {
        let s = every_minute(true, Some(Duration::from_secs(60)));
        assert_eq!(
            coalesce(&s.trigger, t(0, 0), t(0, 0), t(9, 30)),
            (t(9, 0), TimeDelta::seconds(30))
        );
        // The first fire's lateness counts from its jittered due time.
        assert_eq!(
            coalesce(&s.trigger, t(0, 0), t(0, 5), t(0, 30)),
            (t(0, 0), TimeDelta::seconds(25))
        );
    }

    fn grace(seconds: i64) -> Option<TimeDelta> {
        Some(TimeDelta::seconds(seconds))
    }

    #[test]
    fn without_coalesce_each_fire_is_judged() {
        let s = every_minute(false, None);
        let p = catch_up(&s.trigger, grace(150), t(0, 0), t(0, 0), t(4, 0));
        assert_eq!(
            p.missed,
            vec![
                (t(0, 0), TimeDelta::seconds(240)),
                (t(1, 0), TimeDelta::seconds(180))
            ]
        );
        assert_eq!(p.run, vec![t(2, 0), t(3, 0), t(4, 0)]);
        assert_eq!(p.last, Some(t(4, 0)));
    }

    #[test]
    fn catch_up_is_bounded() {
        // A day of one-minute fires without coalesce or grace: 99 one by one, then the latest.
        let s = every_minute(false, None);
        let now = t(0, 0) + TimeDelta::days(1);
        let p = catch_up(&s.trigger, None, t(0, 0), t(0, 0), now);
        assert_eq!(p.run.len(), CATCH_UP_LIMIT);
        assert_eq!(p.run[98], t(0, 0) + TimeDelta::minutes(98));
        assert_eq!(p.run[99], now);
        // With a grace, the missed reports stop at the limit and the window's fires run.
        let p = catch_up(&s.trigger, grace(180), t(0, 0), t(0, 0), now);
        assert_eq!(p.missed.len(), CATCH_UP_LIMIT);
        assert_eq!(
            p.run,
            vec![
                now - TimeDelta::minutes(3),
                now - TimeDelta::minutes(2),
                now - TimeDelta::minutes(1),
                now
            ]
        );
    }
}
