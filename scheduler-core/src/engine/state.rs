//! What the engine, the handles and the running jobs share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono_tz::Tz;
use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::context::StateMap;
use crate::error::{Error, Result};
use crate::event::{Event, ShutdownReport};
use crate::job::{Job, JobLayer};

/// Where a scheduler is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchedulerState {
    /// Built, not started: schedules can be added, nothing runs yet.
    NotStarted,
    /// Dispatching runs.
    Running,
    /// Paused as a whole: schedules keep their times, nothing is dispatched.
    Paused,
    /// Shut down (or its engine stopped because every handle was dropped).
    Stopped,
}

impl SchedulerState {
    const fn to_u8(self) -> u8 {
        match self {
            Self::NotStarted => 0,
            Self::Running => 1,
            Self::Paused => 2,
            Self::Stopped => 3,
        }
    }

    const fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::NotStarted,
            1 => Self::Running,
            2 => Self::Paused,
            _ => Self::Stopped,
        }
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

/// What the engine is built with, besides its timetable.
pub(crate) struct Settings {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: StateMap,
    pub(crate) jobs: HashMap<Arc<str>, Arc<dyn Job>>,
    pub(crate) layer: Option<JobLayer>,
    pub(crate) timezone: Tz,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) event_capacity: usize,
    pub(crate) instance: Arc<str>,
    pub(crate) history_limit: usize,
}

/// What the engine, the handles and the running jobs share.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) subscribers: Arc<AtomicUsize>,
    pub(crate) state: StateMap,
    pub(crate) jobs: HashMap<Arc<str>, Arc<dyn Job>>,
    /// The scheduler-wide layers, for jobs given as values (registered ones are wrapped
    /// already).
    pub(crate) layer: Option<JobLayer>,
    /// Wakes a shared store's timetable: a held fire ended, and a fire of its schedule may
    /// be waiting for it.
    pub(crate) wake: Notify,
    pub(crate) timezone: Tz,
    pub(crate) concurrency: Option<Arc<Semaphore>>,
    pub(crate) tracker: TaskTracker,
    /// Cancelled when shutdown begins: jobs see it through their context. Shared by `Arc`:
    /// cloning the token itself takes a lock, once per run.
    pub(crate) cancel: Arc<CancellationToken>,
    /// Set when shutdown begins; read on every run, where the token's own check would lock.
    stopping: AtomicBool,
    /// Cancelled at the shutdown deadline: runs still going are dropped.
    pub(crate) abort: CancellationToken,
    /// Set by `SchedulerHandle::abort`: the shutdown was cut short before its deadline.
    pub(crate) forced: AtomicBool,
    pub(crate) collector: Collector,
    status: AtomicU8,
    /// This instance's name, in histories and a shared store's ledger.
    pub(crate) instance: Arc<str>,
    /// Fires kept per schedule in the engine's own history (local timetable).
    pub(crate) history_limit: usize,
}

/// The scheduler began shutting down while a run waited for a concurrency permit.
pub(crate) struct ShuttingDown;

impl Shared {
    pub(crate) fn new(settings: Settings) -> Self {
        let (events, _) = broadcast::channel(settings.event_capacity.max(1));
        Self {
            clock: settings.clock,
            events,
            subscribers: Arc::default(),
            state: settings.state,
            jobs: settings.jobs,
            layer: settings.layer,
            wake: Notify::new(),
            timezone: settings.timezone,
            concurrency: settings
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n))),
            tracker: TaskTracker::new(),
            cancel: Arc::new(CancellationToken::new()),
            stopping: AtomicBool::new(false),
            abort: CancellationToken::new(),
            forced: AtomicBool::new(false),
            collector: Collector::default(),
            status: AtomicU8::new(SchedulerState::NotStarted.to_u8()),
            instance: settings.instance,
            history_limit: settings.history_limit,
        }
    }

    /// A permit under the global concurrency limit (none needed without a limit), waited for
    /// until shutdown begins.
    pub(crate) async fn run_permit(
        &self,
    ) -> std::result::Result<Option<tokio::sync::OwnedSemaphorePermit>, ShuttingDown> {
        match &self.concurrency {
            Some(semaphore) => tokio::select! {
                biased;
                permit = Arc::clone(semaphore).acquire_owned() => Ok(permit.ok()),
                () = self.cancel.cancelled() => Err(ShuttingDown),
            },
            None => Ok(None),
        }
    }

    /// Pauses or resumes the whole scheduler: its engine stops or starts dispatching.
    pub(crate) fn set_paused(&self, paused: bool) -> Result<()> {
        let (from, to, event) = if paused {
            (
                SchedulerState::Running,
                SchedulerState::Paused,
                Event::SchedulerPaused,
            )
        } else {
            (
                SchedulerState::Paused,
                SchedulerState::Running,
                Event::SchedulerResumed,
            )
        };
        match self.status() {
            SchedulerState::NotStarted => Err(Error::NotStarted),
            SchedulerState::Stopped => Err(Error::SchedulerStopped),
            state if state == from => {
                self.set_status(to);
                tracing::info!(
                    paused,
                    "scheduler {}",
                    if paused { "paused" } else { "resumed" }
                );
                self.emit(|| event);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends an event if anyone listens; without subscribers the event is not even built,
    /// which keeps the dispatch path free of the channel's lock.
    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        if self.has_subscribers() {
            // A receiver dropped in between is not an error: events are optional.
            let _ = self.events.send(event());
        }
    }

    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::Acquire) > 0
    }

    /// Starts stopping: no run starts from now on, and running jobs see their token.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
        self.cancel.cancel();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn status(&self) -> SchedulerState {
        SchedulerState::from_u8(self.status.load(Ordering::Acquire))
    }

    pub(crate) fn set_status(&self, state: SchedulerState) {
        self.status.store(state.to_u8(), Ordering::Release);
    }

    /// The job registered under `name`.
    /// A job given as a value, in the scheduler-wide layers.
    pub(crate) fn layered(&self, job: Arc<dyn Job>) -> Arc<dyn Job> {
        match &self.layer {
            Some(layer) => layer(job),
            None => job,
        }
    }

    pub(crate) fn job(&self, name: Option<&str>) -> Option<Arc<dyn Job>> {
        self.jobs.get(name?).cloned()
    }

    /// The registered job of this name, with the registry's own copy of the name: schedules
    /// that keep it share one string instead of each holding its own (3 MiB for 100,000).
    pub(crate) fn named_job(&self, name: &str) -> Option<(Arc<str>, Arc<dyn Job>)> {
        self.jobs
            .get_key_value(name)
            .map(|(name, job)| (Arc::clone(name), Arc::clone(job)))
    }
}
