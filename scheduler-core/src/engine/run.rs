//! One run: the task that calls a schedule's job for its fires (one, or a catch-up of several
//! one after another), the same on both timetables. Its job context is built here and only
//! here.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use super::ledger::Ledger;
use super::runs::{Ended, RunControl, ScheduleRuns};
use super::state::Shared;
use crate::context::{FireInfo, JobContext, ScheduleContext};
use crate::event::{AbortedRun, Event, RunSummary};
use crate::job::Job;
use crate::schedule::Schedule;
use crate::store::{ClaimedFire, FireOutcome, FireState};

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
    /// Its overlap policy cancels runs going: each run gets a control of its own.
    cancels: bool,
    /// With a shared store: the ledger, and the fires of the one claimed run this runtime
    /// was made for, in the order of the run's fires. Here rather than in each run task, so
    /// the engine's own run tasks stay small to spawn.
    held: Option<(Arc<Ledger>, Box<[ClaimedFire]>)>,
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
            cancels: matches!(
                schedule.overlap,
                crate::schedule::Overlap::CancelRunning { .. }
            ),
            held: None,
        })
    }

    /// A control for a new run, when the schedule's overlap policy may cancel it.
    pub(crate) fn new_control(&self) -> Option<RunControl> {
        self.cancels.then(|| RunControl::new(&self.shared.cancel))
    }

    /// The runtime of one run claimed from a shared store: its fires are held in `ledger`.
    pub(crate) fn claimed(
        shared: &Arc<Shared>,
        schedule: &Schedule,
        job: Arc<dyn Job>,
        ledger: Arc<Ledger>,
        fires: Box<[ClaimedFire]>,
    ) -> Arc<Self> {
        let mut runtime = Arc::into_inner(Self::new(
            shared,
            schedule,
            job,
            Arc::new(ScheduleRuns::new(0)),
        ))
        .expect("just made");
        runtime.held = Some((ledger, fires));
        Arc::new(runtime)
    }

    /// The ledger, and the claim of the run's fire `i`.
    fn held(&self, i: usize) -> Option<(&Ledger, &ClaimedFire)> {
        let (ledger, fires) = self.held.as_ref()?;
        Some((ledger, fires.get(i)?))
    }

    fn context(
        &self,
        i: usize,
        fire: &RunFire,
        started_at: DateTime<Utc>,
        control: Option<&RunControl>,
    ) -> JobContext {
        JobContext {
            schedule: Arc::clone(&self.context),
            nominal_fire_time: fire.nominal_time,
            started_at,
            run_id: fire.run_id,
            fire: self.held(i).map(|(_, held)| FireInfo {
                token: held.token.clone(),
                attempt: held.attempt,
            }),
            cancel: control.map(|c| c.cancel.clone()),
        }
    }
}

/// One fire of a run.
pub(crate) struct RunFire {
    pub(crate) nominal_time: DateTime<Utc>,
    pub(crate) run_id: Uuid,
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
}

/// Lets the run go from its schedule's runs however the task ends (completion, abort, a
/// runtime dropping it), and starts the fire waiting for it, if any.
struct Slot<'a> {
    runtime: &'a Arc<ScheduleRuntime>,
    current: Uuid,
    released: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.released {
            let runtime = self.runtime;
            let at_once = runtime.shared.concurrency.is_none();
            let next = runtime
                .runs
                .release(self.current, at_once, || runtime.new_control());
            if let Some(next) = next {
                super::dispatch::start_begun(runtime, next);
            }
        }
    }
}

impl RunTask {
    /// Spawns the run on the scheduler's task tracker.
    pub(crate) fn spawn(self, tracker: &TaskTracker) {
        // Boxed: the run's state machine is large, and tokio moves a task's future by value
        // several times on its way into the task (spawn, the task cell, its stage); a box
        // moves as a pointer.
        tracker.spawn(Box::pin(self.run()));
    }

    async fn run(self) {
        let Self { runtime, fires } = self;
        let shared = &*runtime.shared;
        let fires = fires.as_slice();
        let Some(first) = fires.first() else {
            return;
        };
        let mut slot = Slot {
            runtime: &runtime,
            current: first.run_id,
            released: false,
        };
        let Ok(_permit) = shared.run_permit().await else {
            Box::pin(give_back(&runtime, 0)).await;
            return;
        };
        let schedule_id = &runtime.context.schedule_id;
        for (i, fire) in fires.iter().enumerate() {
            // A run that has not started when shutdown begins never starts.
            if shared.is_stopping() {
                Box::pin(give_back(&runtime, i)).await;
                return;
            }
            let summary = fire.summary(schedule_id);
            // The shared store's writes are boxed: the engine's own runs, which have none, keep
            // a small task to spawn.
            if let Some((ledger, held)) = runtime.held(i) {
                if !Box::pin(ledger.start(shared, held, &summary)).await {
                    continue;
                }
            }
            let started_at = shared.clock.now();
            // A first fire without a concurrency limit was counted running at dispatch.
            if i > 0 || shared.concurrency.is_some() {
                runtime
                    .runs
                    .started(slot.current, fire.run_id, fire.nominal_time, started_at);
            }
            slot.current = fire.run_id;
            // Only a schedule whose overlap policy cancels runs looks for a control.
            let control = if runtime.cancels {
                runtime.runs.control(slot.current)
            } else {
                None
            };
            let ctx = runtime.context(i, fire, started_at, control.as_ref());
            let started_us = started_at.timestamp_micros();
            let (end, duration) =
                execute(shared, &runtime.job, ctx, &summary, control.as_ref()).await;
            let cut_off = matches!(end, RunEnd::CutOff(_));
            let last = i + 1 == fires.len() || end == RunEnd::Aborted || cut_off;
            let at_once = shared.concurrency.is_none();
            let (recorded, next) = match runtime.held(i) {
                Some((ledger, held)) => {
                    let outcome = end.outcome(runtime.at_most_once);
                    let recorded = Box::pin(ledger.finish(shared, held, &outcome, &summary)).await;
                    let next = if last {
                        runtime
                            .runs
                            .release(fire.run_id, at_once, || runtime.new_control())
                    } else {
                        None
                    };
                    (recorded, next)
                }
                None => {
                    let history = end.history(started_us, duration);
                    let next = runtime.runs.ended(fire.run_id, history, last, at_once, || {
                        runtime.new_control()
                    });
                    (true, next)
                }
            };
            slot.released = last;
            if let Some(next) = next {
                super::dispatch::start_begun(&runtime, next);
            }
            let aborted = end == RunEnd::Aborted;
            if aborted || !recorded {
                // Not recorded, a held fire goes back to the store when its lease runs out.
                let again = runtime.held.is_some() && !runtime.at_most_once;
                let run = AbortedRun::new(summary, !aborted, again);
                shared.collector.lock().aborted.push(run);
            } else if shared.is_stopping() {
                shared.collector.lock().finished.push(summary);
            }
            if aborted || cut_off {
                Box::pin(give_back(&runtime, i + 1)).await;
                return;
            }
        }
    }
}

/// The fires from `from` on, held from a shared store, will not run here: they go back.
async fn give_back(runtime: &ScheduleRuntime, from: usize) {
    let Some((ledger, fires)) = &runtime.held else {
        return;
    };
    for held in fires.iter().skip(from) {
        ledger.give_back(held).await;
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Succeeded,
    Failed(String),
    Panicked(String),
    /// At the shutdown deadline.
    Aborted,
    /// Asked to stop for a newer fire, it had not ended when its grace was over: a failure,
    /// with this message.
    CutOff(String),
}

impl RunEnd {
    /// What a shared store records: an aborted run goes back to be run again, unless its
    /// schedule is at most once.
    fn outcome(&self, at_most_once: bool) -> FireOutcome {
        match self {
            Self::Succeeded => FireOutcome::Succeeded,
            Self::Failed(error) | Self::CutOff(error) => FireOutcome::Failed(error.clone()),
            Self::Panicked(message) => FireOutcome::Panicked(message.clone()),
            Self::Aborted if at_most_once => FireOutcome::Aborted,
            Self::Aborted => FireOutcome::Interrupted,
        }
    }

    fn history(&self, started_us: i64, duration: Duration) -> Ended {
        let (state, error) = match self {
            Self::Succeeded => (FireState::Succeeded, None),
            Self::Failed(error) | Self::CutOff(error) => (FireState::Failed, Some(error.clone())),
            Self::Panicked(message) => (FireState::Failed, Some(format!("panicked: {message}"))),
            Self::Aborted => (FireState::Aborted, None),
        };
        Ended {
            state,
            started_us,
            duration,
            error,
        }
    }
}

/// Calls the job once, in its `tracing` span, catching a panic and giving up at the abort
/// token; logs and emits the outcome. Returns how it ended and how long it ran.
// Not inlined into the run task, whose state would then copy this future's twice per run.
#[inline(never)]
pub(crate) async fn execute(
    shared: &Shared,
    job: &Arc<dyn Job>,
    ctx: JobContext,
    run: &RunSummary,
    control: Option<&RunControl>,
) -> (RunEnd, Duration) {
    // A debug span: at info level each run is one short line of its own (see `report`).
    let span = tracing::debug_span!(
        "apsched.run",
        schedule_id = %run.schedule_id,
        nominal_time = %run.nominal_time,
        run_id = %run.run_id,
    );
    let lateness = (ctx.started_at - run.nominal_time)
        .to_std()
        .unwrap_or_default();
    crate::metrics::run_started(&run.schedule_id, lateness);
    // On the monotonic clock: a wall-clock step during the run must not change its duration.
    let timer = tokio::time::Instant::now();
    let call = AssertUnwindSafe(job.run(ctx))
        .catch_unwind()
        .instrument(span.clone());
    // The job is polled first, so a job that finishes at once never registers with the abort
    // token.
    let cut_off = async {
        match control {
            Some(control) => control.abort.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        biased;
        outcome = call => Ok(outcome),
        () = shared.abort.cancelled() => Err(RunEnd::Aborted),
        () = cut_off => Err(RunEnd::CutOff(
            "cancelled for a newer fire (overlap: cancel_running), and cut off when its grace was over"
                .to_owned(),
        )),
    };
    let duration = timer.elapsed();
    let end = match outcome {
        Ok(Ok(Ok(()))) => RunEnd::Succeeded,
        Ok(Ok(Err(error))) => RunEnd::Failed(error.to_string()),
        Ok(Err(payload)) => RunEnd::Panicked(panic_message(payload.as_ref())),
        Err(end) => end,
    };
    span.in_scope(|| report(shared, &end, run.clone(), duration, lateness));
    (end, duration)
}

/// Logs (one short line) and emits how a run ended.
fn report(shared: &Shared, end: &RunEnd, run: RunSummary, duration: Duration, lateness: Duration) {
    let RunSummary {
        schedule_id,
        run_id,
        nominal_time,
    } = run;
    let outcome = match end {
        RunEnd::Succeeded => "succeeded",
        RunEnd::Failed(_) => "failed",
        RunEnd::Panicked(_) => "panicked",
        RunEnd::CutOff(_) => "cut_off",
        RunEnd::Aborted => "aborted",
    };
    crate::metrics::run_ended(&schedule_id, outcome, duration);
    let at = nominal_time.format("%Y-%m-%d %H:%M:%S");
    let (took, late) = (Short(duration), Short(lateness));
    match end {
        RunEnd::Succeeded => {
            tracing::info!("run {schedule_id} {at}: succeeded in {took} ({late} late)");
            shared.emit(|| Event::Succeeded {
                schedule_id,
                run_id,
                nominal_time,
                duration,
            });
        }
        RunEnd::Failed(error) => {
            tracing::warn!("run {schedule_id} {at}: failed in {took} ({late} late): {error}");
            shared.emit(|| Event::Failed {
                schedule_id,
                run_id,
                nominal_time,
                duration,
                error: error.as_str().into(),
            });
        }
        RunEnd::Panicked(message) => {
            tracing::error!("run {schedule_id} {at}: panicked after {took}: {message}");
            shared.emit(|| Event::Panicked {
                schedule_id,
                run_id,
                nominal_time,
                message: message.as_str().into(),
            });
        }
        RunEnd::CutOff(error) => {
            tracing::warn!("run {schedule_id} {at}: cut off after {took}: {error}");
            shared.emit(|| Event::Aborted {
                schedule_id,
                run_id,
                nominal_time,
            });
        }
        RunEnd::Aborted => {
            let why = if shared.forced.load(std::sync::atomic::Ordering::Acquire) {
                "the shutdown was cut short"
            } else {
                "the shutdown deadline passed"
            };
            tracing::warn!("run {schedule_id} {at}: aborted after {took}: {why}");
            shared.emit(|| Event::Aborted {
                schedule_id,
                run_id,
                nominal_time,
            });
        }
    }
}

/// A duration for a log line: `12 ms`, `3.4 s`, `2 min 5 s`. Written only if the line is:
/// most runs are logged by no one, and formatting two strings per run was a tenth of the
/// engine's work per fire.
#[derive(Clone, Copy)]
struct Short(Duration);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        let ms = d.as_millis();
        if ms < 1000 {
            write!(f, "{ms} ms")
        } else if ms < 60_000 {
            write!(f, "{:.1} s", d.as_secs_f64())
        } else {
            write!(f, "{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
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
