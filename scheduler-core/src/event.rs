//! Events: what the scheduler did, as a typed broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
pub use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::fires::SkipReason;

/// A subscription to a scheduler's events
/// ([`SchedulerHandle::subscribe`](crate::SchedulerHandle::subscribe)).
///
/// ```
/// # use apsched::{Event, Scheduler};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let scheduler = Scheduler::builder().build().start().await?;
/// let mut events = scheduler.subscribe();
/// tokio::spawn(async move {
///     while let Ok(event) = events.recv().await {
///         if let Event::Failed { schedule_id, error, .. } = event {
///             eprintln!("{schedule_id} failed: {error}");
///         }
///     }
/// });
/// # scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EventReceiver {
    inner: broadcast::Receiver<Event>,
    subscribers: Arc<AtomicUsize>,
}

impl EventReceiver {
    pub(crate) fn new(inner: broadcast::Receiver<Event>, subscribers: Arc<AtomicUsize>) -> Self {
        subscribers.fetch_add(1, Ordering::AcqRel);
        Self { inner, subscribers }
    }

    /// The next event. `Err(RecvError::Lagged(n))` says `n` events were lost because this
    /// receiver fell behind; `Err(RecvError::Closed)` that the scheduler is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like `tokio::sync::broadcast::Receiver::recv`.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        self.inner.recv().await
    }

    /// The next event if one is waiting.
    ///
    /// # Errors
    ///
    /// `TryRecvError::Empty` when none is, and as [`recv`](Self::recv) otherwise.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        self.inner.try_recv()
    }
}

impl Clone for EventReceiver {
    fn clone(&self) -> Self {
        Self::new(self.inner.resubscribe(), Arc::clone(&self.subscribers))
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Something the scheduler did. Subscribe with
/// [`SchedulerHandle::subscribe`](crate::SchedulerHandle::subscribe).
///
/// Events go through a `tokio::sync::broadcast` channel: a receiver that falls more than the
/// channel's capacity behind ([`SchedulerBuilder::event_capacity`](crate::SchedulerBuilder::event_capacity))
/// loses the oldest events and is told how many (`RecvError::Lagged`). Every run is also a
/// `tracing` span (`apsched.run`, with `schedule_id`, `nominal_time` and `run_id`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The scheduler started dispatching runs.
    SchedulerStarted,
    /// The whole scheduler was paused: nothing is dispatched, schedules keep their times.
    SchedulerPaused,
    /// The whole scheduler was resumed; due fires follow the misfire and coalesce rules.
    SchedulerResumed,
    /// The scheduler shut down.
    Shutdown(Arc<ShutdownReport>),
    /// A schedule was added (or replaced).
    Added {
        /// The schedule.
        schedule_id: Arc<str>,
    },
    /// A schedule's name, args, options or trigger changed.
    Modified {
        /// The schedule.
        schedule_id: Arc<str>,
    },
    /// A schedule was removed, by a call or because its trigger has no more fire times.
    Removed {
        /// The schedule.
        schedule_id: Arc<str>,
    },
    /// Every schedule was removed.
    AllRemoved,
    /// A schedule was paused.
    Paused {
        /// The schedule.
        schedule_id: Arc<str>,
    },
    /// A schedule was resumed.
    Resumed {
        /// The schedule.
        schedule_id: Arc<str>,
    },
    /// A run was handed to the runtime.
    Submitted {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it is for.
        nominal_time: DateTime<Utc>,
    },
    /// A run returned `Ok`.
    Succeeded {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it was for.
        nominal_time: DateTime<Utc>,
        /// How long it ran.
        duration: Duration,
    },
    /// A run returned an error.
    Failed {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it was for.
        nominal_time: DateTime<Utc>,
        /// How long it ran.
        duration: Duration,
        /// The error, with its sources.
        error: Arc<str>,
    },
    /// A run panicked. The panic was caught; the scheduler and the schedule go on.
    Panicked {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it was for.
        nominal_time: DateTime<Utc>,
        /// The panic's message.
        message: Arc<str>,
    },
    /// A fire waits for a run of its schedule to end: `max_instances` runs were going and its
    /// overlap policy queues it. A `Submitted` follows when it starts.
    Queued {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The fire that waits.
        nominal_time: DateTime<Utc>,
    },
    /// A run going was asked to stop for a newer fire (overlap policy
    /// [`CancelRunning`](crate::Overlap::CancelRunning)): its cancellation token fired, and it
    /// is aborted if it has not ended when the grace is over.
    Cancelled {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run asked to stop.
        run_id: Uuid,
        /// The fire it was running.
        nominal_time: DateTime<Utc>,
    },
    /// A run was aborted: at the shutdown deadline, or at the end of the grace its overlap
    /// policy gave it to stop for a newer fire.
    Aborted {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it was for.
        nominal_time: DateTime<Utc>,
    },
    /// A fire did not run: it was due more than `misfire_grace_time` ago when the scheduler
    /// came to dispatch it.
    Missed {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The fire that did not run.
        nominal_time: DateTime<Utc>,
        /// How late it was at dispatch.
        lateness: Duration,
    },
    /// A fire did not run: `max_instances` runs of its schedule were still going, it was
    /// coalesced into a later fire, or the schedule was paused at its time (reported when it
    /// is resumed).
    Skipped {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The fire that did not run.
        nominal_time: DateTime<Utc>,
        /// Why.
        reason: SkipReason,
    },
    /// With a shared store: a run finished after its fire had changed hands (this instance's
    /// lease ran out and another took it over); its result was not recorded.
    Rejected {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The run.
        run_id: Uuid,
        /// The fire it was for.
        nominal_time: DateTime<Utc>,
        /// The stale fencing token it ran with.
        epoch: i64,
    },
    /// With a shared store: a fire whose instance died was marked lost (the schedule is
    /// `at_most_once`).
    Lost {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The fire.
        nominal_time: DateTime<Utc>,
    },
    /// A stored schedule names a job that is not registered here; it is left as it is and
    /// does not run in this process.
    UnknownJob {
        /// The schedule.
        schedule_id: Arc<str>,
        /// The job name it asks for.
        job: Arc<str>,
    },
    /// The job store failed; the scheduler carries on and tries again.
    StoreFailed {
        /// What the scheduler was doing.
        operation: &'static str,
        /// The store's error.
        error: Arc<str>,
    },
    /// The job store works again after failing.
    StoreRecovered,
}

impl Event {
    /// The schedule the event is about, if any.
    #[must_use]
    pub fn schedule_id(&self) -> Option<&str> {
        match self {
            Self::Added { schedule_id }
            | Self::Modified { schedule_id }
            | Self::Removed { schedule_id }
            | Self::Paused { schedule_id }
            | Self::Resumed { schedule_id }
            | Self::Submitted { schedule_id, .. }
            | Self::Succeeded { schedule_id, .. }
            | Self::Failed { schedule_id, .. }
            | Self::Panicked { schedule_id, .. }
            | Self::Aborted { schedule_id, .. }
            | Self::Queued { schedule_id, .. }
            | Self::Cancelled { schedule_id, .. }
            | Self::Missed { schedule_id, .. }
            | Self::Skipped { schedule_id, .. }
            | Self::Rejected { schedule_id, .. }
            | Self::Lost { schedule_id, .. }
            | Self::UnknownJob { schedule_id, .. } => Some(schedule_id),
            Self::SchedulerStarted
            | Self::SchedulerPaused
            | Self::SchedulerResumed
            | Self::Shutdown(_)
            | Self::AllRemoved
            | Self::StoreFailed { .. }
            | Self::StoreRecovered => None,
        }
    }
}

/// One run, as a shutdown report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The schedule.
    pub schedule_id: Arc<str>,
    /// The run.
    pub run_id: Uuid,
    /// The fire it was for.
    pub nominal_time: DateTime<Utc>,
}

/// What happened to the runs that were going when shutdown began.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Runs that ended (successfully or not) before the deadline, their outcome recorded.
    pub finished: Vec<RunSummary>,
    /// Runs cut off at the deadline (or by [`SchedulerHandle::abort`](crate::SchedulerHandle::abort)):
    /// jobs still going, and with a shared store jobs that returned but whose outcome could not
    /// be recorded in time. A job that blocks its thread without ever yielding cannot be stopped
    /// by tokio; it is listed here too.
    pub aborted: Vec<AbortedRun>,
}

/// A run cut off at a shutdown deadline, and what follows from it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AbortedRun {
    /// The run.
    pub run: RunSummary,
    /// Whether its job had returned. `false`: the job was stopped where it was, and whatever it
    /// had begun (a database write sent, say) may or may not have taken effect; a job that
    /// must not leave half its work behind watches its
    /// [`cancellation_token`](crate::JobContext::cancellation_token).
    pub job_returned: bool,
    /// With a shared store: whether the fire goes back to be run again by another instance
    /// (at least once; not for `at_most_once` schedules), because no outcome of it was
    /// recorded. Always `false` for the scheduler's own timetable, which runs nothing twice.
    pub to_be_run_again: bool,
}

impl AbortedRun {
    pub(crate) fn new(run: RunSummary, job_returned: bool, to_be_run_again: bool) -> Self {
        Self {
            run,
            job_returned,
            to_be_run_again,
        }
    }
}
