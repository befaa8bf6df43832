//! The scheduler: its builder, and the handle that every part of an application shares.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::context::JobContext;
use crate::context::StateMap;
use crate::engine::{self, Backend, Command, Reply, SchedulerState, Settings, Shared};
use crate::error::BoxError;
use crate::error::{Error, Result};
use crate::event::{EventReceiver, ShutdownReport};
use crate::fires::FireRecord;
use crate::job::{IntoJob, Job, JobLayer, JobService};
use crate::schedule::{NewSchedule, Schedule, ScheduleChanges};
use crate::store::{JobStore, SharedStore};
use crate::trigger::TriggerSpec;
use tower::{Layer, Service};

/// Default capacity of the event channel.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Default number of fires with something to tell (failed, aborted, missed, skipped) that the
/// engine's own timetable keeps in each schedule's history ([`SchedulerHandle::runs`]), besides
/// its runs going and its latest success; a shared store keeps its own history.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// How long before their due time a scheduler on a shared store claims fires by default
/// ([`SchedulerBuilder::claim_ahead`]).
pub const DEFAULT_CLAIM_AHEAD: Duration = Duration::from_millis(500);

/// Configures a [`Scheduler`].
///
/// ```
/// use apsched::{Scheduler, JobContext};
///
/// #[derive(Clone)]
/// struct AppState { greeting: &'static str }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apsched::Error> {
/// let scheduler = Scheduler::builder()
///     .state(AppState { greeting: "hello" })
///     .job("greet", |ctx: JobContext| async move {
///         let state = ctx.state::<AppState>()?;
///         tracing::info!("{}", state.greeting);
///         Ok::<_, apsched::JobError>(())
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
    layer: Option<JobLayer>,
    timezone: Tz,
    max_concurrency: Option<usize>,
    event_capacity: usize,
    history_limit: usize,
    claim_ahead: Duration,
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut jobs: Vec<&str> = self.jobs.keys().map(|k| &**k).collect();
        jobs.sort_unstable();
        f.debug_struct("SchedulerBuilder")
            .field("clock", &self.clock)
            .field("store", &self.store)
            .field("shared_store", &self.shared_store)
            .field("instance_name", &self.instance_name)
            .field("state", &self.state)
            .field("jobs", &jobs)
            .field("layered", &self.layer.is_some())
            .field("timezone", &self.timezone.name())
            .field("max_concurrency", &self.max_concurrency)
            .field("event_capacity", &self.event_capacity)
            .field("history_limit", &self.history_limit)
            .field("claim_ahead", &self.claim_ahead)
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
            layer: None,
            timezone: Tz::UTC,
            max_concurrency: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            history_limit: DEFAULT_HISTORY_LIMIT,
            claim_ahead: DEFAULT_CLAIM_AHEAD,
        }
    }
}

impl SchedulerBuilder {
    /// The clock (default: [`SystemClock`]); tests pass a [`TestClock`](crate::clock::TestClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The job store this scheduler's own timetable writes through to: a durable one keeps
    /// schedules across restarts. Every fire runs in this process; for several processes
    /// that must run each fire once, use [`shared_store`](Self::shared_store).
    ///
    /// Default: none. Schedules then live in the engine's memory only, which is also the
    /// fastest: nothing is written per fire. A [`MemoryStore`](crate::store::MemoryStore)
    /// shared by two schedulers in turn carries schedules across a scheduler restart within
    /// one process.
    pub fn store(mut self, store: impl JobStore) -> Self {
        self.store = Some(Arc::new(store));
        self.shared_store = None;
        self
    }

    /// [`store`](Self::store), with a store already shared by `Arc`.
    pub fn store_arc(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self.shared_store = None;
        self
    }

    /// A store several scheduler processes share (see [`store::shared`](crate::store::shared)):
    /// the engine keeps no timetable of its own and claims due fires from the store, so each
    /// fire runs on one instance. It replaces [`store`](Self::store).
    pub fn shared_store(mut self, store: impl SharedStore) -> Self {
        self.shared_store = Some(Arc::new(store));
        self.store = None;
        self
    }

    /// This instance's name in histories and a shared store's ledger (default: host name,
    /// process id and a random suffix).
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

    /// A tower layer around every job's service, registered or given as a value, after the
    /// job's own layers: timeouts, concurrency limits, tracing, metrics for all jobs at once.
    /// The middleware sees each run's [`JobContext`](crate::JobContext) (schedule id, nominal
    /// time, attempt) as its request; an error it returns is the run's failure, reported as
    /// any job error. A layer added later wraps the ones added before.
    ///
    /// ```
    /// use std::time::Duration;
    /// use apsched::Scheduler;
    /// use tower::limit::GlobalConcurrencyLimitLayer;
    /// use tower::timeout::TimeoutLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let scheduler = Scheduler::builder()
    ///     // No run of any job takes more than 10 minutes: it fails with "request timed out".
    ///     .layer(TimeoutLayer::new(Duration::from_secs(600)))
    ///     // At most 4 runs at once, of all jobs together.
    ///     .layer(GlobalConcurrencyLimitLayer::new(4))
    ///     .build();
    /// # }
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<JobService> + Send + Sync + 'static,
        L::Service: Service<JobContext> + Clone + Send + Sync + 'static,
        <L::Service as Service<JobContext>>::Future: Send,
        <L::Service as Service<JobContext>>::Response: Send,
        <L::Service as Service<JobContext>>::Error: Into<BoxError>,
    {
        self.layer = Some(crate::job::stack(self.layer.take(), layer));
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

    /// How many fires with something to tell (failed, aborted, missed, skipped) the engine's
    /// own timetable remembers for each schedule, for [`SchedulerHandle::runs`], besides its
    /// runs going and its latest success (default [`DEFAULT_HISTORY_LIMIT`]; 0 keeps none).
    /// Successes are summed up by the latest so that a history costs a healthy schedule
    /// nothing per fire. A shared store keeps every fire in its own history, with its own
    /// retention.
    pub fn history_limit(mut self, fires: usize) -> Self {
        self.history_limit = fires;
        self
    }

    /// With a shared store: how long before their due time fires are claimed (default
    /// [`DEFAULT_CLAIM_AHEAD`], at most a third of the store's lease). The instance holds them
    /// and starts each at its time, so the claim's round trips to the store are not part of
    /// the run's lateness. A fire claimed ahead runs even if its schedule is paused, changed
    /// or removed in that window (as one that had started would); `Duration::ZERO` claims
    /// only what is due. Pausing the scheduler hands back what it claimed ahead.
    pub fn claim_ahead(mut self, ahead: Duration) -> Self {
        self.claim_ahead = ahead;
        self
    }

    /// Builds the scheduler and spawns its engine, which loads the store and takes
    /// commands at once, but runs nothing until [`Scheduler::start`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn build(self) -> Scheduler {
        let jobs = match &self.layer {
            Some(layer) => self
                .jobs
                .into_iter()
                .map(|(name, job)| (name, layer(job)))
                .collect(),
            None => self.jobs,
        };
        let shared = Arc::new(Shared::new(Settings {
            clock: self.clock,
            state: self.state,
            jobs,
            layer: self.layer,
            timezone: self.timezone,
            max_concurrency: self.max_concurrency,
            event_capacity: self.event_capacity,
            instance: self
                .instance_name
                .unwrap_or_else(default_instance_name)
                .into(),
            history_limit: self.history_limit,
        }));
        let backend = match self.shared_store {
            Some(store) => Backend::Shared(store, self.claim_ahead),
            None => Backend::Local(self.store),
        };
        let commands = engine::spawn(&shared, backend);
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
/// This machine's host name, as the scheduler names its instance after it: `HOSTNAME`, else
/// `/etc/hostname`.
#[must_use]
pub fn host_name() -> Option<String> {
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
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
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses only the answer.
    pub async fn get(&self, id: &str) -> Result<Option<Schedule>> {
        if !can_exist(id) {
            return Ok(None);
        }
        self.call(|reply| Command::Get(id.to_owned(), reply)).await
    }

    /// Every schedule, by next run time, paused ones last.
    ///
    /// # Errors
    ///
    /// [`Error::SchedulerStopped`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses only the answer.
    pub async fn list(&self) -> Result<Vec<Schedule>> {
        self.call(Command::List).await
    }

    /// Changes a schedule's name, args or options.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], [`Error::InvalidOption`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn modify(&self, id: &str, changes: ScheduleChanges) -> Result<Schedule> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::Modify(id.to_owned(), changes, reply))
            .await
    }

    /// Gives a schedule a new trigger; its next run time is the new trigger's first (it stays
    /// paused if it was).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], [`Error::NeverFires`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn reschedule(&self, id: &str, trigger: impl Into<TriggerSpec>) -> Result<Schedule> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        let trigger = trigger.into();
        self.call(|reply| Command::Reschedule(id.to_owned(), trigger, reply))
            .await
    }

    /// Pauses one schedule: its fires are skipped until it is resumed.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn pause(&self, id: &str) -> Result<Schedule> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::Pause(id.to_owned(), reply))
            .await
    }

    /// Resumes one schedule at its trigger's next time from now: fires skipped while paused
    /// are not replayed. A schedule whose trigger has no time left is removed.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn resume(&self, id: &str) -> Result<Schedule> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn pause_all(&self) -> Result<()> {
        self.call(Command::PauseAll).await
    }

    /// Resumes the whole scheduler after [`pause_all`](Self::pause_all).
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::SchedulerStopped`].
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn resume_all(&self) -> Result<()> {
        self.call(Command::ResumeAll).await
    }

    /// Removes a schedule. Its runs already going finish.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn remove(&self, id: &str) -> Result<()> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::Remove(id.to_owned(), reply))
            .await
    }

    /// Removes every schedule.
    ///
    /// # Errors
    ///
    /// A store error.
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn run_now(&self, id: &str) -> Result<()> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::RunNow(id.to_owned(), reply))
            .await
    }

    /// The schedule's next `n` fire times, from its next run time (or, when paused, from now).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses only the answer.
    pub async fn next_fire_times(&self, id: &str, n: usize) -> Result<Vec<DateTime<Utc>>> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::NextFireTimes(id.to_owned(), n, reply))
            .await
    }

    /// A schedule's recent fires, newest first: runs going and ended (with how), and fires
    /// that did not run (missed, skipped, coalesced, lost), with the reason. From a shared
    /// store's ledger (every fire), or the engine's own bounded history (runs going, the latest
    /// success, and the fires that failed or did not run: [`SchedulerBuilder::history_limit`]).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`], or a store error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses only the answer.
    pub async fn runs(&self, id: &str, limit: usize) -> Result<Vec<FireRecord>> {
        if !can_exist(id) {
            return Err(Error::ScheduleNotFound(id.to_owned()));
        }
        self.call(|reply| Command::Runs(id.to_owned(), limit, reply))
            .await
    }

    /// Subscribes to the scheduler's [`Event`](crate::Event)s from now on.
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
    ///
    /// # Cancel safety
    ///
    /// The command is sent on the first poll; dropping the future after that (a client that
    /// went away, a `select!` that took another branch) loses only the answer: the command
    /// still applies.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport> {
        // Here rather than in the engine: a run due while the engine is still busy with an
        // earlier command must not start either.
        self.shared.begin_stopping();
        self.call(|reply| Command::Shutdown(deadline, reply)).await
    }

    /// Cuts a shutdown short: runs still going are aborted now rather than at the deadline,
    /// claims go back to the store, and the report is written (to whoever awaits
    /// [`shutdown`](Self::shutdown), and in [`Event::Shutdown`](crate::Event::Shutdown)). Called
    /// before any shutdown, it shuts the scheduler down with no deadline. What a second SIGTERM
    /// or Ctrl-C does with `scheduler_api::Lifecycle`.
    pub fn abort(&self) {
        self.shared.forced.store(true, Ordering::Release);
        self.shared.begin_stopping();
        self.shared.abort.cancel();
        let (reply, _answer) = oneshot::channel();
        // Refused once the engine is gone or already stopping; either way, it stops.
        let _ = self.commands.send(Command::Shutdown(Duration::ZERO, reply));
    }

    /// Whether [`abort`](Self::abort) was called: the shutdown was cut short.
    #[must_use]
    pub fn abort_requested(&self) -> bool {
        self.shared.forced.load(Ordering::Acquire)
    }

    /// Completes when running jobs are aborted: by [`abort`](Self::abort), or at a shutdown's
    /// deadline. For a server that must stop waiting for its clients then too.
    pub fn aborted(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.abort.clone().cancelled_owned()
    }

    /// Completes when the scheduler begins to shut down (when the jobs' cancellation tokens
    /// fire): for long-lived responses, such as an event stream, that should end then so the
    /// server can drain.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        CancellationToken::clone(&self.shared.cancel).cancelled_owned()
    }
}

/// Whether a schedule could have this id: one [`NewSchedule`] refuses (a NUL byte, say) is
/// not looked up, so no store sees it and every store answers alike.
fn can_exist(id: &str) -> bool {
    crate::schedule::check_id(id).is_ok()
}
