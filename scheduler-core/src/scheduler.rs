//! The scheduler: its builder, and the handle that every part of an application shares.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::context::StateMap;
use crate::engine::{Collector, Engine, SharedEngine};
use crate::error::{Error, Result};
use crate::event::{Event, EventReceiver, ShutdownReport};
use crate::job::{IntoJob, Job};
use crate::schedule::{NewSchedule, Schedule, ScheduleChanges};
use crate::store::{FireRecord, JobStore, SharedStore};
use crate::trigger::TriggerSpec;

/// Default capacity of the event channel.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

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

/// What the engine, the handles and the running jobs share.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) subscribers: Arc<AtomicUsize>,
    pub(crate) state: StateMap,
    pub(crate) jobs: HashMap<Arc<str>, Arc<dyn Job>>,
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
    pub(crate) collector: Collector,
    status: AtomicU8,
}

/// The scheduler began shutting down while a run waited for a concurrency permit.
pub(crate) struct ShuttingDown;

impl Shared {
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
}

type Reply<T> = oneshot::Sender<Result<T>>;

pub(crate) enum Command {
    Start(Reply<()>),
    Add(Vec<NewSchedule>, Reply<Vec<Schedule>>),
    Get(String, Reply<Option<Schedule>>),
    List(Reply<Vec<Schedule>>),
    Modify(String, ScheduleChanges, Reply<Schedule>),
    Reschedule(String, TriggerSpec, Reply<Schedule>),
    Pause(String, Reply<Schedule>),
    Resume(String, Reply<Schedule>),
    PauseAll(Reply<()>),
    ResumeAll(Reply<()>),
    Remove(String, Reply<()>),
    RemoveAll(Reply<()>),
    RunNow(String, Reply<()>),
    NextFireTimes(String, usize, Reply<Vec<DateTime<Utc>>>),
    Runs(String, usize, Reply<Vec<FireRecord>>),
    Shutdown(Duration, Reply<ShutdownReport>),
}

/// Configures a [`Scheduler`].
///
/// ```
/// use scheduler_core::{Scheduler, JobContext};
///
/// #[derive(Clone)]
/// struct AppState { greeting: &'static str }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), scheduler_core::Error> {
/// let scheduler = Scheduler::builder()
///     .state(AppState { greeting: "hello" })
///     .job("greet", |ctx: JobContext| async move {
///         let state = ctx.state::<AppState>()?;
///         tracing::info!("{}", state.greeting);
///         Ok::<_, scheduler_core::JobError>(())
///     })
///     .timezone("Europe/Berlin")?
///     .max_concurrency(64)
///     .build();
/// # let handle = scheduler.start().await?;
/// # handle.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct SchedulerBuilder {
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn JobStore>>,
    shared_store: Option<Arc<dyn SharedStore>>,
    instance_name: Option<String>,
    state: StateMap,
    jobs: HashMap<Arc<str>, Arc<dyn Job>>,
    timezone: Tz,
    max_concurrency: Option<usize>,
    event_capacity: usize,
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut jobs: Vec<&str> = self.jobs.keys().map(|k| &**k).collect();
        jobs.sort_unstable();
        f.debug_struct("SchedulerBuilder")
            .field("clock", &self.clock)
            .field("store", &self.store)
            .field("state", &self.state)
            .field("jobs", &jobs)
            .field("timezone", &self.timezone.name())
            .field("max_concurrency", &self.max_concurrency)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl Default for SchedulerBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            store: None,
            shared_store: None,
            instance_name: None,
            state: StateMap::default(),
            jobs: HashMap::new(),
            timezone: Tz::UTC,
            max_concurrency: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

impl SchedulerBuilder {
    /// The clock (default: [`SystemClock`]); tests pass a [`TestClock`](crate::clock::TestClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The job store that keeps schedules beyond the engine: a durable one survives restarts.
    ///
    /// Default: none. Schedules then live in the engine's memory only, which is also the
    /// fastest: nothing is written per fire. A [`MemoryStore`](crate::store::MemoryStore)
    /// shared by two schedulers in turn carries schedules across a scheduler restart within
    /// one process.
    pub fn store(mut self, store: impl JobStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The job store, shared.
    pub fn store_arc(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A store several scheduler processes share (see [`store::shared`](crate::store::shared)):
    /// the engine keeps no timetable of its own and claims due fires from the store, so each
    /// fire runs on one instance. It replaces [`store`](Self::store).
    pub fn shared_store(mut self, store: impl SharedStore) -> Self {
        self.shared_store = Some(Arc::new(store));
        self
    }

    /// This instance's name in a shared store's ledger (default: host name, process id and a
    /// random suffix).
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance_name = Some(name.into());
        self
    }

    /// Application state that every run reaches by type through
    /// [`JobContext::state`](crate::JobContext::state). Call once per type.
    pub fn state<T: Send + Sync + 'static>(mut self, state: T) -> Self {
        self.state.insert(state);
        self
    }

    /// Registers a job under a name, so schedules (and stored schedules after a restart, and
    /// the REST API) can run it by name.
    pub fn job<Kind>(mut self, name: &str, job: impl IntoJob<Kind>) -> Self {
        self.jobs.insert(name.into(), job.into_job());
        self
    }

    /// The time zone for cron expressions and local date-times read without one (from the
    /// REST API or a configuration file). Default UTC.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTimeZone`] for a name the IANA database does not know.
    pub fn timezone(mut self, name: &str) -> Result<Self> {
        self.timezone = crate::trigger::parse_time_zone(name)?;
        Ok(self)
    }

    /// At most this many runs at once across all schedules; further runs wait for a slot.
    /// Default: no limit. Waiting does not count as lateness for `misfire_grace_time`, which
    /// is judged when the run is dispatched.
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.max_concurrency = Some(limit.max(1));
        self
    }

    /// Capacity of the event channel (default [`DEFAULT_EVENT_CAPACITY`]).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Builds the scheduler and spawns its engine, which loads the store and takes
    /// commands at once, but runs nothing until [`Scheduler::start`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn build(self) -> Scheduler {
        let (events, _) = broadcast::channel(self.event_capacity);
        let shared = Arc::new(Shared {
            clock: self.clock,
            events,
            subscribers: Arc::default(),
            state: self.state,
            jobs: self.jobs,
            timezone: self.timezone,
            concurrency: self.max_concurrency.map(|n| Arc::new(Semaphore::new(n))),
            tracker: TaskTracker::new(),
            cancel: Arc::new(CancellationToken::new()),
            stopping: AtomicBool::new(false),
            abort: CancellationToken::new(),
            collector: Collector::default(),
            status: AtomicU8::new(SchedulerState::NotStarted.to_u8()),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        if let Some(store) = self.shared_store {
            let owner = self.instance_name.unwrap_or_else(default_instance_name);
            let engine = SharedEngine::new(Arc::clone(&shared), store, receiver, owner.into());
            tokio::spawn(engine.run());
        } else {
            let engine = Engine::new(Arc::clone(&shared), self.store, receiver);
            tokio::spawn(engine.run());
        }
        Scheduler {
            handle: SchedulerHandle { commands, shared },
        }
    }
}

fn default_instance_name() -> String {
    let host = host_name().unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// This machine's name, from `HOSTNAME` or `/etc/hostname`, read once.
pub(crate) fn host_name() -> Option<String> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(read_host_name).clone()
}

fn read_host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
}

/// A scheduler that has been built and not started yet.
///
/// Its [`handle`](Self::handle) works already (add schedules, wire it into a web framework's
/// state); runs start with [`start`](Self::start).
#[derive(Debug)]
pub struct Scheduler {
    handle: SchedulerHandle,
}

impl Scheduler {
    /// A builder with the defaults: system clock, no store (schedules in memory), UTC, no
    /// concurrency limit.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder::default()
    }

    /// A handle, usable before the scheduler starts.
    #[must_use]
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Starts dispatching runs and returns the handle.
    ///
    /// # Errors
    ///
    /// The store's error if it could not be loaded.
    pub async fn start(self) -> Result<SchedulerHandle> {
        self.handle.start().await?;
        Ok(self.handle)
    }
}

/// The scheduler's handle: cheap to clone, `Send` and `Sync`; every clone talks to the same
/// engine. When the last handle is dropped without [`shutdown`](Self::shutdown), the engine
/// stops dispatching and exits (running jobs see their cancellation token).
///
/// Every method on a scheduler that has shut down returns [`Error::SchedulerStopped`].
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("state", &self.state())
            .finish()
    }
}

impl SchedulerHandle {
    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| Error::SchedulerStopped)?;
        answer.await.map_err(|_| Error::SchedulerStopped)?
    }

    /// Starts dispatching runs.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] when running or paused, [`Error::SchedulerStopped`] after
    /// shutdown, or the store's error if it could not be loaded.
    pub async fn start(&self) -> Result<()> {
        self.call(Command::Start).await
    }

    /// Where the scheduler is in its life.
    #[must_use]
    pub fn state(&self) -> SchedulerState {
        self.shared.status()
    }

    /// The scheduler's default time zone.
    #[must_use]
    pub fn timezone(&self) -> Tz {
        self.shared.timezone
    }

    /// The current time on the scheduler's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// The names of the registered jobs, sorted.
    #[must_use]
    pub fn job_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.jobs.keys().map(ToString::to_string).collect();
        names.sort_unstable();
        names
    }

    /// Adds a schedule and returns it as stored (id, name and first run time filled in).
    ///
    /// # Errors
    ///
    /// [`Error::ConflictingId`] for a taken id without `replace_existing`,
    /// [`Error::UnknownJob`] for an unregistered job name, [`Error::NeverFires`] when the
    /// trigger has no fire time left, [`Error::InvalidOption`], or a store error. A failed add
    /// changes nothing.
    pub async fn add(&self, schedule: NewSchedule) -> Result<Schedule> {
        let mut added = self.add_all([schedule]).await?;
        added.pop().ok_or(Error::SchedulerStopped)
    }

    /// Adds several schedules in one command: all of them, or (on any error) none.
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add), for the first schedule at fault (ids repeated in the batch
    /// conflict too).
    pub async fn add_all(
        &self,
        schedules: impl IntoIterator<Item = NewSchedule>,
    ) -> Result<Vec<Schedule>> {
        let schedules: Vec<NewSchedule> = schedules.into_iter().collect();
        self.call(|reply| Command::Add(schedules, reply)).await
    }

    /// The schedule with this id.
    ///
    /// # Errors
    ///
    /// [`Error::SchedulerStopped`].
    pub async fn get(&self, id: &str) -> Result<Option<Schedule>> {
        self.call(|reply| Command::Get(id.to_owned(), reply)).await
    }

    /// Every schedule, by next run time, paused ones last.
    ///
    /// # Errors
    ///
    /// [`Error::SchedulerStopped`].
    pub async fn list(&self) -> Result<Vec<Schedule>> {
        self.call(Command::List).await
    }

    /// Changes a schedule's name, args or options.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], [`Error::InvalidOption`], or a store error.
    pub async fn modify(&self, id: &str, changes: ScheduleChanges) -> Result<Schedule> {
        self.call(|reply| Command::Modify(id.to_owned(), changes, reply))
            .await
    }

    /// Gives a schedule a new trigger; its next run time is the new trigger's first (it stays
    /// paused if it was).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], [`Error::NeverFires`], or a store error.
    pub async fn reschedule(&self, id: &str, trigger: impl Into<TriggerSpec>) -> Result<Schedule> {
        let trigger = trigger.into();
        self.call(|reply| Command::Reschedule(id.to_owned(), trigger, reply))
            .await
    }

    /// Pauses one schedule: its fires are skipped until it is resumed.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    pub async fn pause(&self, id: &str) -> Result<Schedule> {
        self.call(|reply| Command::Pause(id.to_owned(), reply))
            .await
    }

    /// Resumes one schedule at its trigger's next time from now: fires skipped while paused
    /// are not replayed. A schedule whose trigger has no time left is removed.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    pub async fn resume(&self, id: &str) -> Result<Schedule> {
        self.call(|reply| Command::Resume(id.to_owned(), reply))
            .await
    }

    /// Pauses the whole scheduler: nothing is dispatched; schedules keep their next run
    /// times, so on [`resume_all`](Self::resume_all) the fires that came due meanwhile follow
    /// the misfire and coalesce rules.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::SchedulerStopped`].
    pub async fn pause_all(&self) -> Result<()> {
        self.call(Command::PauseAll).await
    }

    /// Resumes the whole scheduler after [`pause_all`](Self::pause_all).
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::SchedulerStopped`].
    pub async fn resume_all(&self) -> Result<()> {
        self.call(Command::ResumeAll).await
    }

    /// Removes a schedule. Its runs already going finish.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.call(|reply| Command::Remove(id.to_owned(), reply))
            .await
    }

    /// Removes every schedule.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn remove_all(&self) -> Result<()> {
        self.call(Command::RemoveAll).await
    }

    /// Queues one extra run of a schedule now (nominal time: now), besides its trigger's; it
    /// does not move the schedule's next run time. Returns once the run is dispatched, not
    /// when it ends.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], [`Error::MaxInstancesReached`] when `max_instances` runs
    /// are going, [`Error::UnknownJob`] when its job is not registered here,
    /// [`Error::NotStarted`].
    pub async fn run_now(&self, id: &str) -> Result<()> {
        self.call(|reply| Command::RunNow(id.to_owned(), reply))
            .await
    }

    /// The schedule's next `n` fire times, from its next run time (or, when paused, from now).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`].
    pub async fn next_fire_times(&self, id: &str, n: usize) -> Result<Vec<DateTime<Utc>>> {
        self.call(|reply| Command::NextFireTimes(id.to_owned(), n, reply))
            .await
    }

    /// A schedule's recent fires, newest first, from a shared store's ledger: runs (with how
    /// they ended), and fires missed, skipped or lost, with the reason.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or [`Error::Unsupported`] without a shared store.
    pub async fn runs(&self, id: &str, limit: usize) -> Result<Vec<FireRecord>> {
        self.call(|reply| Command::Runs(id.to_owned(), limit, reply))
            .await
    }

    /// Subscribes to the scheduler's [`Event`]s from now on.
    #[must_use]
    pub fn subscribe(&self) -> EventReceiver {
        EventReceiver::new(
            self.shared.events.subscribe(),
            Arc::clone(&self.shared.subscribers),
        )
    }

    /// Shuts the scheduler down: no run starts after this is called; running jobs see their
    /// cancellation token cancelled and are awaited up to `deadline`, then aborted. Returns
    /// which of them finished and which were aborted. With a durable store, schedules keep
    /// their next run times for the next start.
    ///
    /// # Errors
    ///
    /// [`Error::SchedulerStopped`] when already shut down.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport> {
        self.call(|reply| Command::Shutdown(deadline, reply)).await
    }
}
