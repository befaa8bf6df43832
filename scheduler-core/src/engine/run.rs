//! One dispatched run (or, without coalesce, a few catch-up fires run one after another).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::JobContext;
use crate::event::{Event, RunSummary, ShutdownReport};
use crate::job::Job;
use crate::scheduler::Shared;

/// The runs of one schedule that are going: counted for `max_instances`, listed for the
/// shutdown report. One lock per schedule, so runs of different schedules never contend.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    inner: Mutex<InFlightInner>,
}

#[derive(Debug, Default)]
struct InFlightInner {
    /// Dispatched instances not finished yet (a catch-up batch is one instance).
    instances: u32,
    /// The fires being executed right now.
    running: Vec<RunSummary>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, InFlightInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an instance slot unless `max` are taken; returns how many are going.
    pub(crate) fn try_acquire(&self, max: u32) -> Result<(), u32> {
        let mut inner = self.lock();
        if inner.instances >= max {
            return Err(inner.instances);
        }
        inner.instances += 1;
        Ok(())
    }

    pub(crate) fn instances(&self) -> u32 {
        self.lock().instances
    }

    pub(crate) fn running(&self) -> Vec<RunSummary> {
        self.lock().running.clone()
    }

    fn release(&self) {
        let mut inner = self.lock();
        inner.instances = inner.instances.saturating_sub(1);
    }

    fn started(&self, run: &RunSummary) {
        self.lock().running.push(run.clone());
    }

    fn ended(&self, run_id: Uuid) {
        let mut inner = self.lock();
        if let Some(i) = inner.running.iter().position(|r| r.run_id == run_id) {
            inner.running.swap_remove(i);
        }
    }
}

/// Releases the instance slot however the task ends (completion, abort, panic).
struct InstanceSlot(Arc<InFlight>);

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.0.release();
    }
}

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

pub(crate) struct RunTask {
    pub(crate) shared: Arc<Shared>,
    pub(crate) job: Arc<dyn Job>,
    pub(crate) schedule_id: Arc<str>,
    pub(crate) args: Arc<Value>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) fires: Vec<(DateTime<Utc>, Uuid)>,
}

impl RunTask {
    pub(crate) async fn run(self) {
        let _slot = InstanceSlot(Arc::clone(&self.in_flight));
        let shared = &self.shared;
        let _permit = match &shared.concurrency {
            Some(semaphore) => tokio::select! {
                biased;
                permit = Arc::clone(semaphore).acquire_owned() => permit.ok(),
                () = shared.cancel.cancelled() => return,
            },
            None => None,
        };
        for (nominal_time, run_id) in &self.fires {
            // A run that has not started when shutdown begins never starts.
            if shared.cancel.is_cancelled() {
                return;
            }
            let summary = RunSummary {
                schedule_id: Arc::clone(&self.schedule_id),
                run_id: *run_id,
                nominal_time: *nominal_time,
            };
            self.in_flight.started(&summary);
            let ctx = JobContext {
                schedule_id: Arc::clone(&self.schedule_id),
                nominal_fire_time: *nominal_time,
                started_at: shared.clock.now(),
                run_id: *run_id,
                cancellation: shared.cancel.clone(),
                args: Arc::clone(&self.args),
                state: shared.state.clone(),
            };
            let span = tracing::info_span!(
                "apsched.run",
                schedule_id = %self.schedule_id,
                nominal_time = %nominal_time,
                run_id = %run_id,
            );
            let timer = tokio::time::Instant::now();
            let job = AssertUnwindSafe(self.job.run(ctx))
                .catch_unwind()
                .instrument(span.clone());
            // The job is polled first, so a job that finishes at once never registers with
            // the abort token.
            let outcome = tokio::select! {
                biased;
                outcome = job => Some(outcome),
                () = shared.abort.cancelled() => None,
            };
            let duration = timer.elapsed();
            self.in_flight.ended(*run_id);
            let aborted = span.in_scope(|| report(shared, outcome, summary.clone(), duration));
            if aborted {
                shared.collector.lock().aborted.push(summary);
                return;
            }
            if shared.cancel.is_cancelled() {
                shared.collector.lock().finished.push(summary);
            }
        }
    }
}

type Outcome = Option<std::thread::Result<Result<(), crate::job::JobError>>>;

/// Logs and emits the outcome of one run; true when it was aborted.
fn report(
    shared: &Shared,
    outcome: Outcome,
    run: RunSummary,
    duration: std::time::Duration,
) -> bool {
    let RunSummary {
        schedule_id,
        run_id,
        nominal_time,
    } = run;
    match outcome {
        Some(Ok(Ok(()))) => {
            tracing::debug!(?duration, "run succeeded");
            shared.emit(Event::Succeeded {
                schedule_id,
                run_id,
                nominal_time,
                duration,
            });
        }
        Some(Ok(Err(error))) => {
            let error = error.to_string();
            tracing::warn!(%error, ?duration, "run failed");
            shared.emit(Event::Failed {
                schedule_id,
                run_id,
                nominal_time,
                duration,
                error: error.into(),
            });
        }
        Some(Err(payload)) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(panic = %message, "run panicked");
            shared.emit(Event::Panicked {
                schedule_id,
                run_id,
                nominal_time,
                message: message.into(),
            });
        }
        None => {
            tracing::warn!("run aborted at the shutdown deadline");
            shared.emit(Event::Aborted {
                schedule_id,
                run_id,
                nominal_time,
            });
            return true;
        }
    }
    false
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
