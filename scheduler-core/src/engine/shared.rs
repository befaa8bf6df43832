//! The engine for a shared store: it keeps no timetable; it claims due fires from the store,
//! runs them under a lease, and records how they ended.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::run::{RunEnd, execute, new_run_id};
use super::{prepare, upcoming, wait_for_runs};
use crate::context::{FireInfo, JobContext, ScheduleContext};
use crate::error::{Error, Result, error_chain};
use crate::event::{Event, RunSummary, ShutdownReport};
use crate::schedule::{NewSchedule, Schedule, ScheduleChanges};
use crate::scheduler::{Command, SchedulerState, Shared};
use crate::store::{Claimed, FireClaim, FireOutcome, SharedStore};
use crate::trigger::{Trigger, TriggerSpec};

/// Schedules claimed per transaction.
const CLAIM_BATCH: usize = 512;

/// The longest wait between attempts while the store fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Claims between two prunings of the ledger.
const PRUNE_EVERY: u32 = 600;

/// The shortest wait after a look at the store that found nothing to do although something
/// seemed due: another instance was claiming it, or a row cannot be read. Without it such a
/// row would make the engine spin.
const FRUITLESS_WAIT: Duration = Duration::from_millis(50);

/// Fires running in this instance, for the shutdown report.
type Running = Arc<Mutex<HashMap<i64, RunSummary>>>;

fn lock(running: &Running) -> MutexGuard<'_, HashMap<i64, RunSummary>> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct SharedEngine {
    shared: Arc<Shared>,
    store: Arc<dyn SharedStore>,
    commands: mpsc::UnboundedReceiver<Command>,
    owner: Arc<str>,
    jobs: Arc<[Arc<str>]>,
    running: Running,
    backoff: Option<Duration>,
    ticks: u32,
    /// Looks at the store in a row that found nothing to do although something was due.
    fruitless: u32,
    /// The due time the last wait was for.
    waiting_for: Option<DateTime<Utc>>,
    /// The due time the last fruitless look was for.
    stuck_at: Option<DateTime<Utc>>,
}

impl SharedEngine {
    pub(crate) fn new(
        shared: Arc<Shared>,
        store: Arc<dyn SharedStore>,
        commands: mpsc::UnboundedReceiver<Command>,
        owner: Arc<str>,
    ) -> Self {
        let mut jobs: Vec<Arc<str>> = shared.jobs.keys().cloned().collect();
        jobs.sort_unstable();
        Self {
            shared,
            store,
            commands,
            owner,
            jobs: jobs.into(),
            running: Running::default(),
            backoff: None,
            ticks: 0,
            fruitless: 0,
            waiting_for: None,
            stuck_at: None,
        }
    }

    pub(crate) async fn run(mut self) {
        self.spawn_lease_renewal();
        loop {
            let wait = match self.shared.status() {
                SchedulerState::Running => Some(self.next_wait().await),
                _ => None,
            };
            let store = Arc::clone(&self.store);
            let command = tokio::select! {
                biased;
                command = self.commands.recv() => command,
                () = async move {
                    match wait {
                        Some(wait) if wait.is_zero() => {}
                        Some(wait) => store.wait_for_change(wait).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.tick().await;
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
                    self.abandon().await;
                    return;
                }
            }
        }
    }

    fn spawn_lease_renewal(&self) {
        let (store, owner, cancel) = (
            Arc::clone(&self.store),
            Arc::clone(&self.owner),
            Arc::clone(&self.shared.cancel),
        );
        let every = (store.lease() / 3).max(Duration::from_millis(100));
        let running = Arc::clone(&self.running);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = cancel.cancelled() => {
                        // Runs still going keep their leases until they end or are aborted.
                        if lock(&running).is_empty() {
                            return;
                        }
                        tokio::time::sleep(every).await;
                    }
                }
                let ids: Vec<i64> = lock(&running).keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                if let Err(error) = store.renew_leases(&owner, &ids).await {
                    tracing::warn!(error = %error_chain(&error), "renewing leases failed; runs here may be taken over");
                }
                if cancel.is_cancelled() && lock(&running).is_empty() {
                    return;
                }
            }
        });
    }

    fn store_failed(&mut self, operation: &'static str, error: &Error) {
        let text = error_chain(error);
        let backoff = self
            .backoff
            .map_or(Duration::from_millis(250), |b| (b * 2).min(MAX_BACKOFF));
        self.backoff = Some(backoff);
        tracing::error!(operation, error = %text, retry_in = ?backoff, "job store failed");
        self.shared.emit(|| Event::StoreFailed {
            operation,
            error: text.into(),
        });
    }

    fn recovered(&mut self) {
        if self.backoff.take().is_some() {
            tracing::info!("job store works again");
            self.shared.emit(|| Event::StoreRecovered);
        }
    }

    /// How long to wait before looking at the store again.
    async fn next_wait(&mut self) -> Duration {
        if let Some(backoff) = self.backoff {
            return backoff;
        }
        // `next_due` counts leases running out too, so a dead instance's fires are seen on
        // time without a shorter re-check.
        let recheck = self.store.recheck_interval();
        match self.store.next_due(&self.jobs).await {
            Ok((now, Some(due))) => {
                let wait = (due - now).to_std().unwrap_or_default().min(recheck);
                // The same due time that the last look found nothing to do for (a row this
                // instance cannot use): back off, up to the re-check, rather than spin. A later
                // due time is news (another instance took the fire): no backoff.
                if self.stuck_at.is_some_and(|stuck| due > stuck) {
                    self.fruitless = 0;
                }
                self.waiting_for = Some(due);
                if self.fruitless > 0 {
                    let floor = FRUITLESS_WAIT * 2u32.pow(self.fruitless.min(6));
                    wait.max(floor.min(recheck))
                } else {
                    wait
                }
            }
            Ok((_, None)) => recheck,
            Err(error) => {
                self.store_failed("look for due fires", &error);
                self.backoff.unwrap_or(MAX_BACKOFF)
            }
        }
    }

    /// Without a concurrency limit a claimed fire starts at once: the claim records it
    /// running, which saves a write per fire before the job can start.
    fn start_at_once(&self) -> bool {
        self.shared.concurrency.is_none()
    }

    async fn tick(&mut self) {
        let mut found = false;
        let recovering = self.backoff.is_some();
        for _ in 0..64 {
            match self
                .store
                .claim_due(&self.owner, &self.jobs, CLAIM_BATCH, self.start_at_once())
                .await
            {
                Ok(claimed) => {
                    self.recovered();
                    found |= !claimed.is_empty();
                    let more = claimed.more;
                    self.apply(claimed);
                    if !more {
                        break;
                    }
                }
                Err(error) => {
                    self.store_failed("claim due fires", &error);
                    return;
                }
            }
        }
        if recovering {
            // While the store was away the leases of runs here may have run out: renew them
            // before looking for expired fires, so this instance does not take over (and run
            // again) a fire it ran itself and is still reporting.
            let ids: Vec<i64> = lock(&self.running).keys().copied().collect();
            if let Err(error) = self.store.renew_leases(&self.owner, &ids).await {
                self.store_failed("renew leases", &error);
                return;
            }
        }
        match self
            .store
            .reclaim_expired(&self.owner, &self.jobs, CLAIM_BATCH, self.start_at_once())
            .await
        {
            Ok(claimed) => {
                found |= !claimed.is_empty();
                self.apply(claimed);
            }
            Err(error) => self.store_failed("take over expired fires", &error),
        }
        if found {
            self.fruitless = 0;
        } else {
            self.fruitless = self.fruitless.saturating_add(1);
            self.stuck_at = self.waiting_for;
        }
        self.ticks += 1;
        if self.ticks % PRUNE_EVERY == 0 {
            if let Err(error) = self.store.prune().await {
                self.store_failed("prune the ledger", &error);
            }
        }
    }

    fn apply(&self, claimed: Claimed) {
        for (schedule_id, nominal_time, lateness) in claimed.missed {
            tracing::warn!(%schedule_id, %nominal_time, ?lateness, "run missed: later than its misfire_grace_time");
            self.shared.emit(|| Event::Missed {
                schedule_id,
                nominal_time,
                lateness,
            });
        }
        for (schedule_id, nominal_time, running) in claimed.skipped {
            tracing::warn!(%schedule_id, %nominal_time, running, "run skipped: max_instances runs are still going");
            self.shared.emit(|| Event::Skipped {
                schedule_id,
                nominal_time,
                running,
            });
        }
        for (schedule_id, nominal_time) in claimed.lost {
            tracing::warn!(%schedule_id, %nominal_time, "fire lost: its instance died and the schedule is at_most_once");
            self.shared.emit(|| Event::Lost {
                schedule_id,
                nominal_time,
            });
        }
        for schedule_id in claimed.finished {
            self.shared.emit(|| Event::Removed { schedule_id });
        }
        for fire in claimed.fires {
            self.dispatch(fire);
        }
    }

    fn dispatch(&self, fire: FireClaim) {
        let run_id = new_run_id();
        let schedule_id: Arc<str> = fire.schedule.id().into();
        self.shared.emit(|| Event::Submitted {
            schedule_id: Arc::clone(&schedule_id),
            run_id,
            nominal_time: fire.nominal_time,
        });
        let task = SharedRun {
            shared: Arc::clone(&self.shared),
            store: Arc::clone(&self.store),
            owner: Arc::clone(&self.owner),
            running: Arc::clone(&self.running),
            summary: RunSummary {
                schedule_id,
                run_id,
                nominal_time: fire.nominal_time,
            },
            fire,
        };
        self.shared.tracker.spawn(task.run());
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
                let _ = reply.send(self.store.get(&id).await);
            }
            Command::List(reply) => {
                let _ = reply.send(self.store.list().await);
            }
            Command::Modify(id, changes, reply) => {
                let _ = reply.send(self.modify(&id, &changes).await);
            }
            Command::Reschedule(id, trigger, reply) => {
                let _ = reply.send(self.reschedule(&id, trigger).await);
            }
            Command::Pause(id, reply) => {
                let result = self.store.pause(&id).await;
                if result.is_ok() {
                    self.shared.emit(|| Event::Paused {
                        schedule_id: id.as_str().into(),
                    });
                }
                let _ = reply.send(result);
            }
            Command::Resume(id, reply) => {
                let result = self.store.resume(&id).await;
                if result.is_ok() {
                    self.shared.emit(|| Event::Resumed {
                        schedule_id: id.as_str().into(),
                    });
                }
                let _ = reply.send(result);
            }
            Command::PauseAll(reply) => {
                let _ = reply.send(self.set_paused(true));
            }
            Command::ResumeAll(reply) => {
                let _ = reply.send(self.set_paused(false));
            }
            Command::Remove(id, reply) => {
                let result = self.store.remove(&id).await;
                if result.is_ok() {
                    self.shared.emit(|| Event::Removed {
                        schedule_id: id.as_str().into(),
                    });
                }
                let _ = reply.send(result);
            }
            Command::RemoveAll(reply) => {
                let result = self.store.remove_all().await;
                if result.is_ok() {
                    self.shared.emit(|| Event::AllRemoved);
                }
                let _ = reply.send(result);
            }
            Command::RunNow(id, reply) => {
                let _ = reply.send(self.run_now(&id).await);
            }
            Command::NextFireTimes(id, n, reply) => {
                let _ = reply.send(self.next_fire_times(&id, n).await);
            }
            Command::Runs(id, limit, reply) => {
                let _ = reply.send(self.store.fires(&id, limit).await);
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
        // Schedules of jobs this instance does not know are left to the instances that do;
        // say so once.
        let known: HashSet<&str> = self.jobs.iter().map(|j| &**j).collect();
        for schedule in self.store.list().await? {
            let job = schedule.job_name().unwrap_or("<job value>");
            if !known.contains(job) {
                tracing::warn!(
                    schedule_id = %schedule.id(),
                    job,
                    "a stored schedule names a job that is not registered here; instances that know it run it"
                );
                self.shared.emit(|| Event::UnknownJob {
                    schedule_id: schedule.id().into(),
                    job: job.into(),
                });
            }
        }
        self.shared.set_status(SchedulerState::Running);
        tracing::info!(owner = %self.owner, "scheduler started on a shared store");
        self.shared.emit(|| Event::SchedulerStarted);
        Ok(())
    }

    async fn add(&mut self, schedules: Vec<NewSchedule>) -> Result<Vec<Schedule>> {
        let now = self.shared.clock.now();
        let mut prepared = Vec::with_capacity(schedules.len());
        let mut ids = HashSet::new();
        for new in schedules {
            new.check()?;
            let replace = new.replace_existing;
            let (schedule, _job) = prepare(&self.shared, new, now)?;
            if !ids.insert(Arc::clone(&schedule.id)) {
                return Err(Error::ConflictingId(schedule.id.to_string()));
            }
            prepared.push((schedule, replace));
        }
        // All or none: a failure takes back what the batch wrote, restoring what it replaced.
        let mut added: Vec<(Schedule, Option<Schedule>)> = Vec::with_capacity(prepared.len());
        for (schedule, replace) in prepared {
            let previous = if replace {
                self.store.get(schedule.id()).await?
            } else {
                None
            };
            let written = self.store.add(&schedule, replace).await;
            if let Err(error) = written {
                for (done, previous) in added.iter().rev() {
                    let _ = match previous {
                        Some(previous) => self.store.add(previous, true).await,
                        None => self.store.remove(done.id()).await,
                    };
                }
                return Err(error);
            }
            added.push((schedule, previous));
        }
        let added: Vec<Schedule> = added.into_iter().map(|(schedule, _)| schedule).collect();
        for schedule in &added {
            self.shared.emit(|| Event::Added {
                schedule_id: Arc::clone(&schedule.id),
            });
        }
        Ok(added)
    }

    async fn existing(&self, id: &str) -> Result<Schedule> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))
    }

    async fn modify(&mut self, id: &str, changes: &ScheduleChanges) -> Result<Schedule> {
        let changed = changes.apply(&self.existing(id).await?)?;
        self.store.update(&changed).await?;
        self.shared.emit(|| Event::Modified {
            schedule_id: id.into(),
        });
        Ok(changed)
    }

    async fn reschedule(&mut self, id: &str, mut trigger: TriggerSpec) -> Result<Schedule> {
        let now = self.shared.clock.now();
        let mut changed = self.existing(id).await?;
        trigger.anchor(now);
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
        self.store.update(&changed).await?;
        self.shared.emit(|| Event::Modified {
            schedule_id: id.into(),
        });
        Ok(changed)
    }

    fn set_paused(&mut self, paused: bool) -> Result<()> {
        // A shared store's instances pause one by one: the others keep claiming.
        self.shared.set_paused(paused)
    }

    async fn run_now(&mut self, id: &str) -> Result<()> {
        match self.shared.status() {
            SchedulerState::NotStarted => return Err(Error::NotStarted),
            SchedulerState::Stopped => return Err(Error::SchedulerStopped),
            SchedulerState::Running | SchedulerState::Paused => {}
        }
        let schedule = self.existing(id).await?;
        let job = schedule.job_name().unwrap_or("<job value>");
        if !self.shared.jobs.contains_key(job) {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        let fire = self.store.claim_now(&self.owner, id).await?;
        self.dispatch(fire);
        Ok(())
    }

    async fn next_fire_times(&self, id: &str, n: usize) -> Result<Vec<DateTime<Utc>>> {
        let schedule = self.existing(id).await?;
        Ok(upcoming(&schedule, n, self.shared.clock.now()))
    }

    // ===== stopping =====

    async fn shutdown(&mut self, deadline: Duration) -> ShutdownReport {
        tracing::info!(?deadline, owner = %self.owner, "scheduler shutting down");
        self.shared.set_status(SchedulerState::Stopped);
        self.shared.begin_stopping();
        // Claims that have not started go back at once, so another instance runs them now
        // rather than after their lease.
        if let Err(error) = self.store.release(&self.owner).await {
            self.store_failed("release claims", &error);
        }
        self.shared.tracker.close();
        wait_for_runs(&self.shared, &mut self.commands, deadline).await;
        let mut report = self.shared.collector.take();
        report.aborted.extend(lock(&self.running).values().cloned());
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
        self.shared.set_status(SchedulerState::Stopped);
        self.shared.begin_stopping();
        if let Err(error) = self.store.release(&self.owner).await {
            self.store_failed("release claims", &error);
        }
        self.shared.tracker.close();
    }
}

/// One claimed fire, run here.
struct SharedRun {
    shared: Arc<Shared>,
    store: Arc<dyn SharedStore>,
    owner: Arc<str>,
    running: Running,
    summary: RunSummary,
    fire: FireClaim,
}

impl SharedRun {
    async fn run(self) {
        let Self {
            shared,
            store,
            owner,
            running,
            summary,
            fire,
        } = self;
        let job_name = fire.schedule.job_name().unwrap_or("<job value>");
        let Some(job) = shared.jobs.get(job_name).cloned() else {
            // Only claimed for known jobs; a job name cannot vanish from a running scheduler.
            return;
        };
        let Ok(_permit) = shared.run_permit().await else {
            return;
        };
        // A fire not started when shutdown begins goes back at once; another instance runs it.
        if shared.is_stopping() {
            if fire.started {
                // The claim recorded it running: only this run can say it never began.
                if let Err(error) = store
                    .finish_fire(&owner, &fire, &FireOutcome::NotStarted)
                    .await
                {
                    tracing::error!(error = %error_chain(&error), "could not give back a fire");
                }
            }
            return;
        }
        if !fire.started {
            match store.start_fire(&owner, &fire).await {
                Ok(true) => {}
                Ok(false) => {
                    reject(&shared, &summary, fire.epoch, "before it started");
                    return;
                }
                Err(error) => {
                    // Its lease runs out and another instance takes it over.
                    tracing::error!(error = %error_chain(&error), "could not mark a fire running");
                    return;
                }
            }
        }
        lock(&running).insert(fire.fire_id, summary.clone());
        let ctx = JobContext {
            schedule: Arc::new(ScheduleContext {
                schedule_id: Arc::clone(&summary.schedule_id),
                args: Arc::clone(&fire.schedule.args),
                state: shared.state.clone(),
                cancellation: Arc::clone(&shared.cancel),
                runner: None,
            }),
            nominal_fire_time: fire.nominal_time,
            started_at: shared.clock.now(),
            run_id: summary.run_id,
            fire: Some(FireInfo {
                fire_id: fire.fire_id,
                epoch: fire.epoch,
                attempt: fire.attempt,
            }),
        };
        let end = execute(&shared, &job, ctx, &summary).await;
        let outcome = match &end {
            RunEnd::Succeeded => FireOutcome::Succeeded,
            RunEnd::Failed(error) => FireOutcome::Failed(error.clone()),
            RunEnd::Panicked(message) => FireOutcome::Panicked(message.clone()),
            RunEnd::Aborted => FireOutcome::Aborted,
        };
        // The fire stays in `running` (its lease renewed) until its end is recorded.
        finish(&shared, &*store, &owner, &fire, &outcome, &summary).await;
        lock(&running).remove(&fire.fire_id);
        if end == RunEnd::Aborted {
            shared.collector.lock().aborted.push(summary);
        } else if shared.is_stopping() {
            shared.collector.lock().finished.push(summary);
        }
    }
}

/// Records how a fire ended, retrying while the store fails: a result that is not recorded
/// would leave the fire to be taken over and run again. Gives up at the shutdown deadline.
async fn finish(
    shared: &Shared,
    store: &dyn SharedStore,
    owner: &str,
    fire: &FireClaim,
    outcome: &FireOutcome,
    summary: &RunSummary,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match store.finish_fire(owner, fire, outcome).await {
            Ok(true) => return,
            Ok(false) => return reject(shared, summary, fire.epoch, "after it ended"),
            Err(error) => {
                tracing::error!(
                    schedule_id = %summary.schedule_id,
                    nominal_time = %summary.nominal_time,
                    error = %error_chain(&error),
                    retry_in = ?delay,
                    "could not record how a fire ended"
                );
                shared.emit(|| Event::StoreFailed {
                    operation: "record how a fire ended",
                    error: error_chain(&error).into(),
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.abort.cancelled() => {
                tracing::error!(schedule_id = %summary.schedule_id, "gave up recording a fire's end at the shutdown deadline");
                return;
            }
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

fn reject(shared: &Shared, run: &RunSummary, epoch: i64, when: &str) {
    tracing::warn!(
        schedule_id = %run.schedule_id,
        nominal_time = %run.nominal_time,
        epoch,
        "stale run rejected {when}: the fire was taken over by another instance"
    );
    shared.emit(|| Event::Rejected {
        schedule_id: Arc::clone(&run.schedule_id),
        run_id: run.run_id,
        nominal_time: run.nominal_time,
        epoch,
    });
}
