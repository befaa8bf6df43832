//! One dispatched run (or, without coalesce, a few catch-up fires run one after another).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::{JobContext, ScheduleContext};
use crate::event::{Event, RunSummary, ShutdownReport};
use crate::job::Job;
use crate::schedule::Schedule;
use crate::scheduler::Shared;

/// The runs of one schedule that are going: counted for `max_instances`, listed for the
/// shutdown report. One lock per schedule, so runs of different schedules never contend; a
/// run takes it twice, when dispatched and when it ends.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    inner: Mutex<InFlightInner>,
}

#[derive(Debug, Default)]
struct InFlightInner {
    /// The fire each dispatched instance is at (a catch-up batch is one instance).
    runs: Vec<(Uuid, DateTime<Utc>)>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, InFlightInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an instance slot for `first` unless `max` are taken; else says how many are.
    pub(crate) fn try_acquire(&self, max: u32, first: (Uuid, DateTime<Utc>)) -> Result<(), u32> {
        let mut inner = self.lock();
        let running = u32::try_from(inner.runs.len()).unwrap_or(u32::MAX);
        if running >= max {
            return Err(running);
        }
        inner.runs.push(first);
        Ok(())
    }

    pub(crate) fn instances(&self) -> u32 {
        u32::try_from(self.lock().runs.len()).unwrap_or(u32::MAX)
    }

    /// The fires being run now, as `(run id, nominal time)`.
    pub(crate) fn running(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        self.lock().runs.clone()
    }

    fn advance(&self, from: Uuid, to: (Uuid, DateTime<Utc>)) {
        let mut inner = self.lock();
        if let Some(run) = inner.runs.iter_mut().find(|r| r.0 == from) {
            *run = to;
        }
    }

    fn release(&self, run_id: Uuid) {
        let mut inner = self.lock();
        if let Some(i) = inner.runs.iter().position(|r| r.0 == run_id) {
            inner.runs.swap_remove(i);
        }
    }
}

/// Releases the instance slot however the task ends (completion, abort, panic, a runtime
/// dropping it).
struct InstanceSlot {
    in_flight: Arc<InFlight>,
    current: Uuid,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.in_flight.release(self.current);
    }
}

/// The outcome of the runs that were going when shutdown began, filled in by the runs.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    report: Mutex<ShutdownReport>,
}

impl Collector {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ShutdownReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn take(&self) -> ShutdownReport {
        std::mem::take(&mut *self.lock())
    }
}

/// The fires one run task executes, one after another: almost always one, so that case
/// allocates nothing.
pub(crate) enum Fires {
    One((DateTime<Utc>, Uuid)),
    Many(Vec<(DateTime<Utc>, Uuid)>),
}

impl Fires {
    pub(crate) fn as_slice(&self) -> &[(DateTime<Utc>, Uuid)] {
        match self {
            Self::One(fire) => std::slice::from_ref(fire),
            Self::Many(fires) => fires,
        }
    }
}

pub(crate) fn new_run_id() -> Uuid {
    // A random v4 UUID from a fast generator: the OS's generator costs a system call per run.
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// What runs a schedule: with the schedule's part of the job context it makes one
/// allocation per schedule, built when the schedule is added or its args change. A run clones
/// that one `Arc`, a line of memory of its own schedule, instead of several scheduler-wide
/// ones that both cores would keep taking from each other.
#[derive(Clone)]
pub(crate) struct Runner {
    shared: Arc<Shared>,
    job: Arc<dyn Job>,
    pub(crate) in_flight: Arc<InFlight>,
}

impl Runner {
    pub(crate) fn job(&self) -> Arc<dyn Job> {
        Arc::clone(&self.job)
    }
}

pub(crate) type RunScope = ScheduleContext;

pub(crate) fn new_scope(
    shared: &Arc<Shared>,
    schedule: &Schedule,
    job: Arc<dyn Job>,
    in_flight: Arc<InFlight>,
) -> Arc<RunScope> {
    Arc::new(ScheduleContext {
        schedule_id: Arc::clone(&schedule.id),
        args: Arc::clone(&schedule.args),
        state: shared.state.clone(),
        cancellation: Arc::clone(&shared.cancel),
        runner: Some(Runner {
            shared: Arc::clone(shared),
            job,
            in_flight,
        }),
    })
}

pub(crate) struct RunTask {
    pub(crate) scope: Arc<RunScope>,
    pub(crate) fires: Fires,
}

impl RunTask {
    pub(crate) async fn run(self) {
        let Some(runner) = &self.scope.runner else {
            return;
        };
        let shared = &*runner.shared;
        let schedule_id = &self.scope.schedule_id;
        let fires = self.fires.as_slice();
        let Some(&(_, first_run)) = fires.first() else {
            return;
        };
        let mut slot = InstanceSlot {
            in_flight: Arc::clone(&runner.in_flight),
            current: first_run,
        };
        let Ok(_permit) = shared.run_permit().await else {
            return;
        };
        for &(nominal_time, run_id) in fires {
            // A run that has not started when shutdown begins never starts.
            if shared.is_stopping() {
                return;
            }
            if run_id != slot.current {
                runner
                    .in_flight
                    .advance(slot.current, (run_id, nominal_time));
                slot.current = run_id;
            }
            let ctx = JobContext {
                schedule: Arc::clone(&self.scope),
                nominal_fire_time: nominal_time,
                started_at: shared.clock.now(),
                run_id,
                fire: None,
            };
            let summary = RunSummary {
                schedule_id: Arc::clone(schedule_id),
                run_id,
                nominal_time,
            };
            let aborted = execute(shared, &runner.job, ctx, &summary).await == RunEnd::Aborted;
            if aborted {
                shared.collector.lock().aborted.push(summary);
                return;
            }
            if shared.is_stopping() {
                shared.collector.lock().finished.push(summary);
            }
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Succeeded,
    Failed(String),
    Panicked(String),
    Aborted,
}

/// Calls the job once, in its `tracing` span, catching a panic and giving up at the abort
/// token; logs and emits the outcome.
pub(crate) async fn execute(
    shared: &Shared,
    job: &Arc<dyn Job>,
    ctx: JobContext,
    run: &RunSummary,
) -> RunEnd {
    let span = tracing::info_span!(
        "apsched.run",
        schedule_id = %run.schedule_id,
        nominal_time = %run.nominal_time,
        run_id = %run.run_id,
    );
    // Timing costs two clock reads per run: only when someone will see it.
    let timer = shared.has_subscribers().then(tokio::time::Instant::now);
    let call = AssertUnwindSafe(job.run(ctx))
        .catch_unwind()
        .instrument(span.clone());
    // The job is polled first, so a job that finishes at once never registers with the abort
    // token.
    let outcome = tokio::select! {
        biased;
        outcome = call => Some(outcome),
        () = shared.abort.cancelled() => None,
    };
    let duration = timer.map(|t| t.elapsed());
    let end = match outcome {
        Some(Ok(Ok(()))) => RunEnd::Succeeded,
        Some(Ok(Err(error))) => RunEnd::Failed(error.to_string()),
        Some(Err(payload)) => RunEnd::Panicked(panic_message(payload.as_ref())),
        None => RunEnd::Aborted,
    };
    span.in_scope(|| report(shared, &end, run.clone(), duration));
    end
}

/// Logs and emits how a run ended.
fn report(shared: &Shared, end: &RunEnd, run: RunSummary, duration: Option<std::time::Duration>) {
    let RunSummary {
        schedule_id,
        run_id,
        nominal_time,
    } = run;
    let measured = duration.unwrap_or_default();
    match end {
        RunEnd::Succeeded => {
            tracing::debug!(?duration, "run succeeded");
            shared.emit(|| Event::Succeeded {
                schedule_id,
                run_id,
                nominal_time,
                duration: measured,
            });
        }
        RunEnd::Failed(error) => {
            tracing::warn!(%error, ?duration, "run failed");
            shared.emit(|| Event::Failed {
                schedule_id,
                run_id,
                nominal_time,
                duration: measured,
                error: error.as_str().into(),
            });
        }
        RunEnd::Panicked(message) => {
            tracing::error!(panic = %message, "run panicked");
            shared.emit(|| Event::Panicked {
                schedule_id,
                run_id,
                nominal_time,
                message: message.as_str().into(),
            });
        }
        RunEnd::Aborted => {
            tracing::warn!("run aborted at the shutdown deadline");
            shared.emit(|| Event::Aborted {
                schedule_id,
                run_id,
                nominal_time,
            });
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
