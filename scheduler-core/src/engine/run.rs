//! One run: the task that calls a schedule's job for its fires (one, or a catch-up of several
//! one after another), the same on both timetables. Its job context is built here and only
//! here.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tracing::Instrument;
use uuid::Uuid;

use super::ledger::Ledger;
use super::runs::{Ended, ScheduleRuns};
use super::state::Shared;
use crate::context::{FireInfo, JobContext, ScheduleContext};
use crate::event::{Event, RunSummary, ShutdownReport};
use crate::job::Job;
use crate::schedule::Schedule;
use crate::store::{ClaimedFire, FireOutcome, FireState};

/// The outcome of the runs that were going when shutdown began, filled in by the runs.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    report: Mutex<ShutdownReport>,
}

impl Collector {
    fn lock(&self) -> MutexGuard<'_, ShutdownReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn take(&self) -> ShutdownReport {
        std::mem::take(&mut *self.lock())
    }
}

pub(crate) fn new_run_id() -> Uuid {
    // A random v4 UUID from a fast generator: the OS's generator costs a system call per run.
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// What runs one schedule: its job, the part of the job context all its runs share, and its
/// runs in this process. One allocation per schedule, made when the schedule is added or its
/// args change; a run clones this one `Arc`, a line of memory of its own schedule, instead of
/// several scheduler-wide ones that both cores would keep taking from each other.
pub(crate) struct ScheduleRuntime {
    pub(crate) shared: Arc<Shared>,
    pub(crate) job: Arc<dyn Job>,
    pub(crate) context: Arc<ScheduleContext>,
    pub(crate) runs: Arc<ScheduleRuns>,
    at_most_once: bool,
}

impl ScheduleRuntime {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        schedule: &Schedule,
        job: Arc<dyn Job>,
        runs: Arc<ScheduleRuns>,
    ) -> Arc<Self> {
        Arc::new(Self {
            shared: Arc::clone(shared),
            job,
            context: Arc::new(ScheduleContext {
                schedule_id: Arc::clone(&schedule.id),
                args: Arc::clone(&schedule.args),
                state: shared.state.clone(),
                cancellation: Arc::clone(&shared.cancel),
            }),
            runs,
            at_most_once: schedule.at_most_once,
        })
    }

    fn context(&self, fire: &RunFire, started_at: DateTime<Utc>) -> JobContext {
        JobContext {
            schedule: Arc::clone(&self.context),
            nominal_fire_time: fire.nominal_time,
            started_at,
            run_id: fire.run_id,
            fire: fire.held.as_ref().map(|held| FireInfo {
                token: held.token.clone(),
                attempt: held.attempt,
            }),
        }
    }
}

/// One fire of a run: its nominal time, and with a shared store the claim it is held by.
pub(crate) struct RunFire {
    pub(crate) nominal_time: DateTime<Utc>,
    pub(crate) run_id: Uuid,
    pub(crate) held: Option<ClaimedFire>,
}

impl RunFire {
    fn summary(&self, schedule_id: &Arc<str>) -> RunSummary {
        RunSummary {
            schedule_id: Arc::clone(schedule_id),
            run_id: self.run_id,
            nominal_time: self.nominal_time,
        }
    }
}

/// The fires one run executes, one after another: almost always one, so that case allocates
/// nothing.
pub(crate) enum Fires {
    One(RunFire),
    Many(Vec<RunFire>),
}

impl Fires {
    pub(crate) fn as_slice(&self) -> &[RunFire] {
        match self {
            Self::One(fire) => std::slice::from_ref(fire),
            Self::Many(fires) => fires,
        }
    }
}

impl FromIterator<RunFire> for Fires {
    fn from_iter<I: IntoIterator<Item = RunFire>>(iter: I) -> Self {
        let mut fires: Vec<RunFire> = iter.into_iter().collect();
        if fires.len() == 1 {
            Self::One(fires.remove(0))
        } else {
            Self::Many(fires)
        }
    }
}

/// A dispatched run: counted against `max_instances` (by its dispatcher) until it ends.
pub(crate) struct RunTask {
    pub(crate) runtime: Arc<ScheduleRuntime>,
    pub(crate) fires: Fires,
    /// With a shared store: where its fires are started and finished.
    pub(crate) ledger: Option<Arc<Ledger>>,
}

/// Lets the run go from its schedule's runs however the task ends (completion, abort, a
/// runtime dropping it).
struct Slot<'a> {
    runs: &'a ScheduleRuns,
    current: Uuid,
    released: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.runs.release(self.current);
        }
    }
}

impl RunTask {
    pub(crate) async fn run(self) {
        let Self {
            runtime,
            fires,
            ledger,
        } = self;
        let shared = &*runtime.shared;
        let fires = fires.as_slice();
        let Some(first) = fires.first() else {
            return;
        };
        let mut slot = Slot {
            runs: &runtime.runs,
            current: first.run_id,
            released: false,
        };
        let Ok(_permit) = shared.run_permit().await else {
            give_back(ledger.as_deref(), fires).await;
            return;
        };
        let schedule_id = &runtime.context.schedule_id;
        for (i, fire) in fires.iter().enumerate() {
            // A run that has not started when shutdown begins never starts.
            if shared.is_stopping() {
                give_back(ledger.as_deref(), &fires[i..]).await;
                return;
            }
            let summary = fire.summary(schedule_id);
            if let (Some(ledger), Some(held)) = (&ledger, &fire.held) {
                if !ledger.start(shared, held, &summary).await {
                    continue;
                }
            }
            let started_at = shared.clock.now();
            runtime
                .runs
                .at(slot.current, fire.run_id, fire.nominal_time, started_at);
            slot.current = fire.run_id;
            let ctx = runtime.context(fire, started_at);
            let end = execute(shared, &runtime.job, ctx, &summary).await;
            let last = i + 1 == fires.len() || end == RunEnd::Aborted;
            match (&ledger, &fire.held) {
                (Some(ledger), Some(held)) => {
                    let outcome = end.outcome(runtime.at_most_once);
                    ledger.finish(shared, held, &outcome, &summary).await;
                    if last {
                        runtime.runs.release(fire.run_id);
                    }
                }
                _ => runtime.runs.ended(
                    fire.run_id,
                    end.history(started_at, shared.clock.now()),
                    last,
                ),
            }
            slot.released = last;
            if end == RunEnd::Aborted {
                shared.collector.lock().aborted.push(summary);
                give_back(ledger.as_deref(), &fires[i + 1..]).await;
                return;
            }
            if shared.is_stopping() {
                shared.collector.lock().finished.push(summary);
            }
        }
    }
}

/// Fires held from a shared store that will not run here go back to it.
async fn give_back(ledger: Option<&Ledger>, fires: &[RunFire]) {
    let Some(ledger) = ledger else { return };
    for held in fires.iter().filter_map(|f| f.held.as_ref()) {
        ledger.give_back(held).await;
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

impl RunEnd {
    /// What a shared store records: an aborted run goes back to be run again, unless its
    /// schedule is at most once.
    fn outcome(&self, at_most_once: bool) -> FireOutcome {
        match self {
            Self::Succeeded => FireOutcome::Succeeded,
            Self::Failed(error) => FireOutcome::Failed(error.clone()),
            Self::Panicked(message) => FireOutcome::Panicked(message.clone()),
            Self::Aborted if at_most_once => FireOutcome::Aborted,
            Self::Aborted => FireOutcome::Interrupted,
        }
    }

    fn history(&self, started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> Ended {
        let (state, error) = match self {
            Self::Succeeded => (FireState::Succeeded, None),
            Self::Failed(error) => (FireState::Failed, Some(error.as_str().into())),
            Self::Panicked(message) => (
                FireState::Failed,
                Some(format!("panicked: {message}").into()),
            ),
            Self::Aborted => (FireState::Aborted, None),
        };
        Ended {
            state,
            started_at,
            finished_at,
            error,
        }
    }
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
