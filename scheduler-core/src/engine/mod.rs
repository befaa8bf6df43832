//! The engine: one task that owns the timetable and answers the handles' commands.
//!
//! One loop for every store: it sleeps until the timetable's next wake-up or a command, never
//! on a fixed tick. When it wakes it asks the timetable to fire what is due; the timetable
//! decides each due schedule with the one fire [`policy`](crate::policy), starts the runs (one
//! run task for both timetables) and records what did not run. The timetable is the engine's
//! own ([`local`]: in memory, written through to a `JobStore`) or a shared store's
//! ([`shared`]: claims, leases and fencing). Every command is written once, over the
//! timetable.

mod change;
mod command;
mod dispatch;
mod ledger;
mod local;
mod run;
mod runs;
mod shared;
mod state;
mod table;
mod timetable;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use self::change::{Edit, Prepared};
pub(crate) use self::command::{Command, Reply};
use self::local::LocalTimetable;
use self::run::new_run_id;
use self::shared::SharedTimetable;
pub use self::state::SchedulerState;
pub(crate) use self::state::{Settings, Shared};
pub(crate) use self::timetable::Backend;
use self::timetable::Timetable;
use crate::error::{Error, Result};
use crate::event::{Event, ShutdownReport};
use crate::policy;
use crate::schedule::{FirstRun, JobSource, NewSchedule, Schedule, ScheduleChanges};
use crate::trigger::{Trigger, TriggerSpec, whole_micros};

/// After the shutdown deadline, how long aborted runs get to unwind. A job that blocks its
/// thread without yielding cannot be stopped; it is reported aborted and left behind.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// Spawns the engine; returns the channel its commands go to.
pub(crate) fn spawn(shared: &Arc<Shared>, backend: Backend) -> mpsc::UnboundedSender<Command> {
    let (commands, receiver) = mpsc::unbounded_channel();
    let timetable = match backend {
        Backend::Local(store) => Timetable::Local(LocalTimetable::new(Arc::clone(shared), store)),
        Backend::Shared(store, ahead) => {
            Timetable::Shared(SharedTimetable::new(Arc::clone(shared), store).claim_ahead(ahead))
        }
    };
    let engine = Engine {
        shared: Arc::clone(shared),
        commands: receiver,
        timetable,
    };
    tokio::spawn(engine.run());
    commands
}

struct Engine {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    timetable: Timetable,
}

impl Engine {
    async fn run(mut self) {
        if let Timetable::Local(local) = &mut self.timetable {
            // Loaded at once, so that the handle sees stored schedules before `start`.
            if let Err(error) = local.load().await {
                let text = crate::error::error_chain(&error);
                tracing::error!(error = %text, "job store failed: could not load schedules");
                self.shared.emit(|| Event::StoreFailed {
                    operation: "load schedules",
                    error: text.into(),
                });
            }
        }
        loop {
            let wake = match self.shared.status() {
                SchedulerState::Running => self.timetable.wake(&self.shared).await,
                _ => None,
            };
            let command = tokio::select! {
                biased;
                command = self.commands.recv() => command,
                () = async {
                    match wake {
                        Some(wake) => wake.await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.timetable.fire_due().await;
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

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start(reply) => answer(reply, self.start().await),
            Command::Add(schedules, reply) => answer(reply, self.add(schedules).await),
            Command::Get(id, reply) => answer(reply, self.timetable.get(&id).await),
            Command::List(reply) => answer(reply, self.timetable.list().await),
            Command::Modify(id, changes, reply) => {
                answer(reply, self.modify(&id, &changes).await);
            }
            Command::Reschedule(id, trigger, reply) => {
                answer(reply, self.reschedule(&id, &trigger).await);
            }
            Command::Pause(id, reply) => answer(reply, self.pause(&id).await),
            Command::Resume(id, reply) => answer(reply, self.resume(&id).await),
            Command::PauseAll(reply) => {
                let paused = self.shared.set_paused(true);
                if paused.is_ok() {
                    // Runs claimed ahead would start late, at the resume: others run them.
                    self.timetable.paused().await;
                }
                answer(reply, paused);
            }
            Command::ResumeAll(reply) => answer(reply, self.shared.set_paused(false)),
            Command::Remove(id, reply) => answer(reply, self.remove(&id).await),
            Command::RemoveAll(reply) => answer(reply, self.remove_all().await),
            Command::RunNow(id, reply) => answer(reply, self.run_now(&id).await),
            Command::NextFireTimes(id, n, reply) => {
                answer(reply, self.next_fire_times(&id, n).await);
            }
            Command::Runs(id, limit, reply) => {
                answer(reply, self.timetable.history(&id, limit).await);
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
        match &mut self.timetable {
            Timetable::Local(local) => {
                local.load().await?;
                tracing::info!(
                    schedules = local.len(),
                    instance = %self.shared.instance,
                    "scheduler started; its timetable is its own (every fire runs in this process)"
                );
                log_schedules(&local.list(), self.shared.timezone);
                warn_if_several_processes();
            }
            Timetable::Shared(remote) => {
                remote.start().await?;
                tracing::info!(instance = %self.shared.instance, "scheduler started on a shared store");
            }
        }
        self.shared.set_status(SchedulerState::Running);
        self.shared.emit(|| Event::SchedulerStarted);
        Ok(())
    }

    async fn add(&mut self, schedules: Vec<NewSchedule>) -> Result<Vec<Schedule>> {
        let now = self.shared.clock.now();
        let batch = schedules
            .into_iter()
            .map(|new| prepare(&self.shared, new, now))
            .collect::<Result<Vec<_>>>()?;
        let added = self.timetable.add(batch).await?;
        for added in added.iter().filter(|a| a.written) {
            self.shared.emit(|| Event::Added {
                schedule_id: Arc::clone(&added.schedule.id),
            });
        }
        Ok(added.into_iter().map(|a| a.schedule).collect())
    }

    /// Applies an edit and reports it; a schedule the edit finished is reported removed.
    async fn change(
        &mut self,
        id: &str,
        edit: impl Fn(&Schedule, DateTime<Utc>) -> Result<Edit>,
        event: fn(Arc<str>) -> Event,
    ) -> Result<Schedule> {
        let changed = self.timetable.change(id, edit).await?;
        if changed.nothing() {
            return Ok(changed.before);
        }
        let schedule_id = Arc::clone(&changed.before.id);
        dispatch::not_run(&self.shared, &schedule_id, &changed.not_run);
        match changed.after {
            Some(schedule) => {
                self.shared.emit(|| event(schedule_id));
                Ok(schedule)
            }
            None => {
                tracing::debug!(schedule_id = %id, "schedule finished: its trigger has no more fire times");
                self.shared.emit(|| Event::Removed { schedule_id });
                Ok(changed.before)
            }
        }
    }

    async fn modify(&mut self, id: &str, changes: &ScheduleChanges) -> Result<Schedule> {
        if let Some(job) = &changes.job {
            if self.shared.job(Some(job)).is_none() {
                return Err(Error::UnknownJob(job.clone()));
            }
        }
        self.change(
            id,
            |schedule, now| {
                Ok(Edit {
                    schedule: Some(changes.apply(schedule, now)?),
                    not_run: Vec::new(),
                    retime: changes.retimes(),
                })
            },
            |schedule_id| Event::Modified { schedule_id },
        )
        .await
    }

    async fn reschedule(&mut self, id: &str, trigger: &TriggerSpec) -> Result<Schedule> {
        self.modify(id, &ScheduleChanges::new().trigger(trigger.clone()))
            .await
    }

    async fn pause(&mut self, id: &str) -> Result<Schedule> {
        self.change(
            id,
            |schedule, _| Ok(Edit::keep_time(policy::pause(schedule))),
            |schedule_id| Event::Paused { schedule_id },
        )
        .await
    }

    async fn resume(&mut self, id: &str) -> Result<Schedule> {
        self.change(
            id,
            |schedule, now| {
                let resumed = policy::resume(schedule, now);
                Ok(Edit {
                    schedule: resumed.schedule,
                    not_run: resumed.skipped,
                    retime: true,
                })
            },
            |schedule_id| Event::Resumed { schedule_id },
        )
        .await
    }

    async fn remove(&mut self, id: &str) -> Result<()> {
        self.timetable.remove(id).await?;
        self.shared.emit(|| Event::Removed {
            schedule_id: id.into(),
        });
        Ok(())
    }

    async fn remove_all(&mut self) -> Result<()> {
        self.timetable.remove_all().await?;
        self.shared.emit(|| Event::AllRemoved);
        Ok(())
    }

    async fn run_now(&mut self, id: &str) -> Result<()> {
        match self.shared.status() {
            SchedulerState::NotStarted => return Err(Error::NotStarted),
            SchedulerState::Stopped => return Err(Error::SchedulerStopped),
            SchedulerState::Running | SchedulerState::Paused => {}
        }
        let run = self.timetable.run_now(id).await?;
        run.spawn(&self.shared.tracker);
        Ok(())
    }

    async fn next_fire_times(&self, id: &str, n: usize) -> Result<Vec<DateTime<Utc>>> {
        let schedule = self
            .timetable
            .get(id)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        Ok(policy::upcoming(&schedule, n, self.shared.clock.now()))
    }

    // ===== stopping =====

    async fn shutdown(&mut self, deadline: Duration) -> ShutdownReport {
        tracing::info!(?deadline, instance = %self.shared.instance, "scheduler shutting down");
        self.shared.set_status(SchedulerState::Stopped);
        self.shared.begin_stopping();
        self.timetable.stop().await;
        self.shared.tracker.close();
        wait_for_runs(&self.shared, &mut self.commands, deadline).await;
        let mut report = self.shared.collector.take();
        // Still going after the abort: jobs that never yield.
        report.aborted.extend(self.timetable.running());
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
        self.timetable.stop().await;
        self.shared.tracker.close();
    }
}

/// A service that says it runs as several processes (`WEB_CONCURRENCY`, the variable gunicorn,
/// uvicorn and Heroku use) with a timetable of its own runs every fire in each of them: the
/// trap APScheduler users fall into. Say so where it will be seen.
fn warn_if_several_processes() {
    let declared = std::env::var("WEB_CONCURRENCY").ok();
    if let Some(processes) = declared
        .as_deref()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 1)
    {
        tracing::warn!(
            "WEB_CONCURRENCY={processes} says this service runs as {processes} processes, and \
             this scheduler's timetable is its own: each of them runs every fire. Give the \
             scheduler a shared store (SchedulerBuilder::shared_store) to run each fire once."
        );
    }
}

fn answer<T>(reply: Reply<T>, result: Result<T>) {
    // The caller may have stopped waiting; the command was applied all the same.
    let _ = reply.send(result);
}

/// Lets the runs still going finish, up to `deadline`, then aborts them and gives them a
/// moment to unwind. Commands that arrive meanwhile are answered with
/// [`Error::SchedulerStopped`] (their reply is dropped) rather than left waiting: a job that
/// calls its scheduler while it stops must not hold the stop up.
async fn wait_for_runs(
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
                // SchedulerHandle::abort: the deadline is now.
                () = shared.abort.cancelled(), if !abort_first => break,
                command = commands.recv(), if open => match command {
                    Some(command) => drop(command),
                    None => open = false,
                },
            }
        }
    }
}

/// The most schedules listed one per line when the scheduler starts.
const LOGGED_AT_START: usize = 20;

/// One line per schedule: its trigger in words and its next run (the first ones only, when
/// there are many).
pub(crate) fn log_schedules(schedules: &[Schedule], zone: chrono_tz::Tz) {
    for schedule in schedules.iter().take(LOGGED_AT_START) {
        let next = schedule.next_run_time.map_or_else(
            || "paused".to_owned(),
            |t| {
                format!(
                    "next run {}",
                    t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z")
                )
            },
        );
        tracing::info!(
            "schedule {}: {}; {next}",
            schedule.id,
            schedule.trigger.describe()
        );
    }
    if schedules.len() > LOGGED_AT_START {
        tracing::info!(
            "... and {} more schedules",
            schedules.len() - LOGGED_AT_START
        );
    }
}

/// Turns a new schedule into the stored form: id, name, anchored trigger, first run.
fn prepare(shared: &Shared, new: NewSchedule, now: DateTime<Utc>) -> Result<Prepared> {
    new.check()?;
    let id: Arc<str> = new
        .id
        .map_or_else(|| new_run_id().simple().to_string().into(), Into::into);
    let (job_name, job) = match new.job {
        JobSource::Named(name) => {
            let (name, job) = shared
                .named_job(&name)
                .ok_or_else(|| Error::UnknownJob(name.to_string()))?;
            (Some(name), job)
        }
        JobSource::Value(job) => (None, shared.layered(job)),
    };
    let mut trigger = new.trigger;
    let given = trigger.clone();
    trigger.anchor(now);
    let anchored = trigger != given;
    let next_run_time = if new.options.paused {
        None
    } else {
        Some(match new.first_run {
            FirstRun::Trigger => trigger.next_fire_time(None, now).ok_or_else(|| {
                Error::NeverFires(format!(
                    "the {} trigger of \"{id}\" has no fire time after {now}",
                    trigger.kind()
                ))
            })?,
            FirstRun::Now => whole_micros(now),
            FirstRun::At(t) => whole_micros(t),
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
        overlap: new.options.overlap,
        paused_from: None,
    };
    Ok(Prepared {
        schedule,
        job,
        on_conflict: new.on_conflict,
        // Jitter is for the trigger's times, not for an explicit first run.
        jitter: matches!(new.first_run, FirstRun::Trigger),
        anchored,
    })
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
