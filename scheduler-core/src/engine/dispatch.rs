//! From a decision to runs and reports: what both timetables do with the fire policy's plan.

use std::sync::Arc;

use super::run::{Fires, RunFire, RunTask, ScheduleRuntime};
use super::runs::RunControl;
use super::state::Shared;
use crate::event::Event;
use crate::fires::{NotRun, NotRunFire, SkipReason};

/// Runs handed to one helper task for spawning, when many fires are due at once.
pub(super) const SPAWN_CHUNK: usize = 128;

/// Logs and emits the fires a decision did not run.
pub(super) fn not_run(shared: &Shared, schedule_id: &Arc<str>, fires: &[NotRunFire]) {
    for fire in fires {
        crate::metrics::not_run(schedule_id, &fire.reason);
        let nominal_time = fire.nominal_time;
        match fire.reason {
            NotRun::Missed { lateness, grace } => {
                tracing::warn!(
                    %schedule_id,
                    %nominal_time,
                    ?lateness,
                    ?grace,
                    "run missed: later than its misfire_grace_time"
                );
                shared.emit(|| Event::Missed {
                    schedule_id: Arc::clone(schedule_id),
                    nominal_time,
                    lateness,
                });
            }
            NotRun::Skipped(reason) => {
                match reason {
                    SkipReason::MaxInstances { running } => tracing::warn!(
                        %schedule_id,
                        %nominal_time,
                        running,
                        "run skipped: max_instances runs are still going"
                    ),
                    SkipReason::Coalesced { into } => tracing::debug!(
                        %schedule_id,
                        %nominal_time,
                        %into,
                        "fire coalesced into a later one"
                    ),
                    SkipReason::Paused => tracing::debug!(
                        %schedule_id,
                        %nominal_time,
                        "fire skipped: the schedule was paused"
                    ),
                    SkipReason::QueueFull { limit } => tracing::warn!(
                        %schedule_id,
                        %nominal_time,
                        limit,
                        "run skipped: max_instances runs going and the overlap queue is full"
                    ),
                }
                shared.emit(|| Event::Skipped {
                    schedule_id: Arc::clone(schedule_id),
                    nominal_time,
                    reason,
                });
            }
        }
    }
}

/// Makes a run of `fires`: counts it against its schedule's `max_instances` and announces
/// each fire as submitted.
pub(super) fn submit(runtime: &Arc<ScheduleRuntime>, fires: Fires) -> Option<RunTask> {
    let first = fires.as_slice().first()?;
    let at_once = runtime.shared.concurrency.is_none();
    runtime.runs.begin(
        first.run_id,
        first.nominal_time,
        at_once,
        runtime.new_control(),
    );
    Some(announce(runtime, fires))
}

/// A run of one fire already counted (a fire that waited for a run to end), started now.
pub(super) fn start_begun(runtime: &Arc<ScheduleRuntime>, fire: RunFire) {
    let run = announce(runtime, Fires::One(fire));
    run.spawn(&runtime.shared.tracker);
}

/// Queues fires that found `max_instances` runs going, as the overlap policy said; the ones
/// a run that ended meanwhile left room for start now.
pub(super) fn enqueue(
    runtime: &Arc<ScheduleRuntime>,
    fires: &[chrono::DateTime<chrono::Utc>],
    max_instances: u32,
    now: chrono::DateTime<chrono::Utc>,
) {
    let shared = &runtime.shared;
    let schedule_id = &runtime.context.schedule_id;
    let at_once = shared.concurrency.is_none();
    let start = runtime
        .runs
        .enqueue(fires, max_instances, now, at_once, || runtime.new_control());
    for &nominal_time in fires {
        if !start.iter().any(|f| f.nominal_time == nominal_time) {
            tracing::info!(%schedule_id, %nominal_time, "fire waits: max_instances runs are going");
            shared.emit(|| Event::Queued {
                schedule_id: Arc::clone(schedule_id),
                nominal_time,
            });
        }
    }
    for fire in start {
        start_begun(runtime, fire);
    }
}

/// Asks the runs going to stop (overlap policy `CancelRunning`): their tokens fire now, and
/// they are cut off when `grace` is over.
pub(super) fn cancel_going(runtime: &ScheduleRuntime, grace: std::time::Duration) {
    for (run_id, nominal_time, control) in runtime.runs.controlled() {
        let run = crate::event::RunSummary {
            schedule_id: Arc::clone(&runtime.context.schedule_id),
            run_id,
            nominal_time,
        };
        cancel_run(&runtime.shared, run, &control, grace);
    }
}

/// Asks one run to stop for a newer fire: its token fires now, and it is cut off when `grace`
/// is over. Nothing when it was asked already.
pub(super) fn cancel_run(
    shared: &Shared,
    run: crate::event::RunSummary,
    control: &RunControl,
    grace: std::time::Duration,
) {
    if control.cancel.is_cancelled() {
        return;
    }
    tracing::info!(
        schedule_id = %run.schedule_id,
        nominal_time = %run.nominal_time,
        ?grace,
        "run asked to stop for a newer fire"
    );
    shared.emit(|| Event::Cancelled {
        schedule_id: run.schedule_id,
        run_id: run.run_id,
        nominal_time: run.nominal_time,
    });
    control.cancel.cancel();
    let abort = control.abort.clone();
    // Not on the tracker: shutdown does not wait for a grace.
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(grace) => abort.cancel(),
            () = abort.cancelled() => {}
        }
    });
}

/// Announces each fire of a counted run as submitted.
fn announce(runtime: &Arc<ScheduleRuntime>, fires: Fires) -> RunTask {
    let shared = &runtime.shared;
    if shared.has_subscribers() {
        for fire in fires.as_slice() {
            shared.emit(|| Event::Submitted {
                schedule_id: Arc::clone(&runtime.context.schedule_id),
                run_id: fire.run_id,
                nominal_time: fire.nominal_time,
            });
        }
    }
    RunTask {
        runtime: Arc::clone(runtime),
        fires,
    }
}

/// Spawns runs from a helper task, so that with many fires due at once the spawning is spread
/// over the runtime's workers instead of being done by the engine alone, and each worker
/// starts the runs it spawned without stealing them first.
pub(super) fn spawn_from_helper(shared: &Shared, runs: Vec<RunTask>) {
    let tracker = shared.tracker.clone();
    shared.tracker.spawn(async move {
        for run in runs {
            run.spawn(&tracker);
        }
    });
}

/// Spawns runs: in chunks from helpers when there are many, else from here.
pub(super) fn spawn_all(shared: &Shared, mut runs: Vec<RunTask>) {
    while runs.len() > SPAWN_CHUNK {
        let rest = runs.split_off(SPAWN_CHUNK);
        spawn_from_helper(shared, std::mem::replace(&mut runs, rest));
    }
    for run in runs {
        run.spawn(&shared.tracker);
    }
}
