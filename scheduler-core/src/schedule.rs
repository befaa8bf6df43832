//! Schedules: a job, a trigger and the options that say how late runs and overlaps are
//! handled. APScheduler calls this a job.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::{IntoJob, Job};
use crate::trigger::{Trigger, TriggerSpec};

/// Default [`Schedule::misfire_grace_time`]: 60 s. APScheduler's 1 s turns ordinary queueing
/// into "missed" runs.
pub const DEFAULT_MISFIRE_GRACE_TIME: Duration = Duration::from_secs(60);

/// The longest schedule id accepted, in bytes: it fits a SQL key everywhere.
pub const MAX_ID_LEN: usize = 191;

/// A schedule as the scheduler and its store hold it.
///
/// Cloning is cheap (the strings, args and trigger are shared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    /// The registered job's name; `None` for a job given as a value, which only lives as long
    /// as the process (and cannot go to a durable store).
    pub(crate) job: Option<Arc<str>>,
    pub(crate) args: Arc<Value>,
    pub(crate) trigger: Arc<TriggerSpec>,
    pub(crate) next_run_time: Option<DateTime<Utc>>,
    #[serde(with = "grace_seconds")]
    pub(crate) misfire_grace_time: Option<Duration>,
    pub(crate) coalesce: bool,
    pub(crate) max_instances: u32,
    pub(crate) paused: bool,
    #[serde(default)]
    pub(crate) at_most_once: bool,
    #[serde(default)]
    pub(crate) overlap: Overlap,
    /// While paused: the first fire the pause skips (the next run time it had), so that resume
    /// can record the fires skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) paused_from: Option<DateTime<Utc>>,
}

impl Schedule {
    /// The unique id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A name for people; the id unless one was given.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the registered job it runs, or `None` for a job given as a value.
    #[must_use]
    pub fn job_name(&self) -> Option<&str> {
        self.job.as_deref()
    }

    /// The args given to each run ([`JobContext::args`](crate::JobContext::args)).
    #[must_use]
    pub fn args(&self) -> &Value {
        &self.args
    }

    /// The trigger.
    #[must_use]
    pub fn trigger(&self) -> &TriggerSpec {
        &self.trigger
    }

    /// The next nominal fire time; `None` while paused.
    #[must_use]
    pub fn next_run_time(&self) -> Option<DateTime<Utc>> {
        self.next_run_time
    }

    /// How late a run may start and still run; `None`: no limit.
    #[must_use]
    pub fn misfire_grace_time(&self) -> Option<Duration> {
        self.misfire_grace_time
    }

    /// Whether several due fires run once, for the latest.
    #[must_use]
    pub fn coalesce(&self) -> bool {
        self.coalesce
    }

    /// How many runs of this schedule may go on at once.
    #[must_use]
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Whether it is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// With a shared store: whether a fire whose instance died is marked lost instead of run
    /// again elsewhere.
    #[must_use]
    pub fn at_most_once(&self) -> bool {
        self.at_most_once
    }

    /// What a fire does when `max_instances` runs of the schedule are going.
    #[must_use]
    pub fn overlap(&self) -> Overlap {
        self.overlap
    }

    /// While paused: the first fire the pause skipped (the next run time the schedule had when
    /// it was paused). Resuming records the fires skipped from it on.
    #[must_use]
    pub fn paused_from(&self) -> Option<DateTime<Utc>> {
        self.paused_from
    }

    /// Whether `self` and `other` define the same schedule: the same job, name, args, trigger
    /// and options. What the schedule has become since it was added (paused, its next run
    /// time) is not part of its definition. With `unanchored`, interval grids are compared
    /// without their origin, which the scheduler pins when a trigger is given none (one
    /// period after it was added): two instances that add "every 30 s" a moment apart add the
    /// same schedule.
    #[must_use]
    pub fn same_definition(&self, other: &Self, unanchored: bool) -> bool {
        let triggers = if unanchored {
            self.trigger.unanchored() == other.trigger.unanchored()
        } else {
            self.trigger == other.trigger
        };
        triggers
            && self.job == other.job
            && self.name == other.name
            && self.args == other.args
            && self.misfire_grace_time == other.misfire_grace_time
            && self.coalesce == other.coalesce
            && self.max_instances == other.max_instances
            && self.at_most_once == other.at_most_once
            && self.overlap == other.overlap
    }

    /// The same schedule with `paused_from` set, as a store reads it back.
    #[must_use]
    pub fn with_paused_from(mut self, paused_from: Option<DateTime<Utc>>) -> Self {
        self.paused_from = paused_from.filter(|_| self.paused);
        self
    }

    /// Builds a schedule as a store would hold it, checking every field. Stores use it to
    /// rebuild rows; applications add schedules with [`NewSchedule`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an empty or too long id, `max_instances` 0 or a zero
    /// `misfire_grace_time`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        id: &str,
        name: &str,
        job: Option<&str>,
        args: Value,
        trigger: TriggerSpec,
        next_run_time: Option<DateTime<Utc>>,
        options: ScheduleOptions,
    ) -> Result<Self> {
        check_id(id)?;
        options.check()?;
        Ok(Self {
            id: id.into(),
            name: name.into(),
            job: job.map(Arc::from),
            args: Arc::new(args),
            trigger: Arc::new(trigger),
            next_run_time,
            misfire_grace_time: options.misfire_grace_time,
            coalesce: options.coalesce,
            max_instances: options.max_instances,
            paused: options.paused,
            at_most_once: options.at_most_once,
            overlap: options.overlap,
            paused_from: None,
        })
    }

    /// The options, as one value.
    #[must_use]
    pub fn options(&self) -> ScheduleOptions {
        ScheduleOptions {
            misfire_grace_time: self.misfire_grace_time,
            coalesce: self.coalesce,
            max_instances: self.max_instances,
            paused: self.paused,
            at_most_once: self.at_most_once,
            overlap: self.overlap,
        }
    }
}

/// The options of a schedule that say how late runs and overlaps are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleOptions {
    /// How late a run may start and still run (default 60 s); `None`: no limit. Lateness is
    /// measured when the scheduler dispatches the run, not after it waited for a worker.
    pub misfire_grace_time: Option<Duration>,
    /// Whether several due fires (after downtime, a scheduler-wide pause or a clock jump) run
    /// once, for the latest (default true). Without it each runs, up to
    /// 100 in one go.
    pub coalesce: bool,
    /// How many runs of the schedule may go on at once (default 1). A fire that finds that
    /// many still going is skipped and reported; the schedule still advances.
    pub max_instances: u32,
    /// Whether the schedule is paused.
    pub paused: bool,
    /// With a shared store (several instances): a fire whose instance dies while running it is
    /// marked lost instead of being run again by another instance (default false: run again,
    /// at least once).
    pub at_most_once: bool,
    /// What a fire does when `max_instances` runs are going (default [`Overlap::Skip`]:
    /// skipped, as in APScheduler).
    pub overlap: Overlap,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self {
            misfire_grace_time: Some(DEFAULT_MISFIRE_GRACE_TIME),
            coalesce: true,
            max_instances: 1,
            paused: false,
            at_most_once: false,
            overlap: Overlap::Skip,
        }
    }
}

impl ScheduleOptions {
    fn check(&self) -> Result<()> {
        if self.max_instances == 0 {
            return Err(Error::InvalidOption {
                option: "max_instances",
                reason: "must be at least 1, got 0".to_owned(),
            });
        }
        if self.misfire_grace_time.is_some_and(|g| g.is_zero()) {
            return Err(Error::InvalidOption {
                option: "misfire_grace_time",
                reason: "must be positive, or none for no limit; got 0".to_owned(),
            });
        }
        self.overlap.check()
    }
}

/// The most fires [`Overlap::QueueAll`] lets wait.
pub const MAX_QUEUE_LIMIT: u32 = 10_000;

/// The longest [`Overlap::CancelRunning`] grace: an hour.
pub const MAX_CANCEL_GRACE: Duration = Duration::from_secs(3600);

/// What a fire does when `max_instances` runs of its schedule are still going: the overlap
/// policy, decided by the scheduler's one fire policy, the same on every store. A fire that
/// does not run is recorded with its reason.
///
/// Temporal calls these overlap policies; APScheduler 3 knows only [`Skip`](Self::Skip).
///
/// ```
/// use std::time::Duration;
/// use apsched::{NewSchedule, Overlap, trigger::IntervalTrigger};
///
/// // A sync that must not run twice at once, but should run once more after a slow run.
/// let sync = NewSchedule::for_job("sync", IntervalTrigger::every(Duration::from_secs(60))?)
///     .overlap(Overlap::QueueOne);
/// // A cache refresh that replaces a stuck one: the stuck run's cancellation token fires,
/// // and it is aborted if it has not ended 5 s later.
/// let refresh = NewSchedule::for_job("refresh", IntervalTrigger::every(Duration::from_secs(30))?)
///     .overlap(Overlap::CancelRunning { grace: Duration::from_secs(5) });
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Overlap {
    /// Skipped, and recorded so (APScheduler's `max_instances`): the default.
    #[default]
    Skip,
    /// Run once more, right after: it waits for a run to end, and starts then. One fire waits
    /// at most; one that finds another waiting is skipped.
    QueueOne,
    /// Run in turn: it waits, and the fires waiting start one by one, oldest first, as runs
    /// end. A fire that finds `limit` waiting is skipped (recorded: the queue is full).
    QueueAll {
        /// How many fires may wait (1 to [`MAX_QUEUE_LIMIT`]).
        limit: u32,
    },
    /// Replace the runs going: their cancellation tokens fire
    /// ([`JobContext::cancellation_token`](crate::JobContext::cancellation_token)), and this
    /// fire starts when they have ended, or when `grace` has passed, at which they are
    /// aborted. With a shared store, an instance learns that its run is to be cancelled at
    /// its next lease renewal (a third of the lease).
    CancelRunning {
        /// How long the runs going get to end after their token fires (up to an hour).
        #[serde(with = "grace_seconds_required")]
        grace: Duration,
    },
    /// Run anyway: `max_instances` does not limit this schedule.
    AllowAll,
}

impl Overlap {
    fn check(self) -> Result<()> {
        match self {
            Self::QueueAll { limit } if !(1..=MAX_QUEUE_LIMIT).contains(&limit) => {
                Err(Error::InvalidOption {
                    option: "overlap",
                    reason: format!(
                        "queue_all's limit must be from 1 to {MAX_QUEUE_LIMIT}, got {limit}"
                    ),
                })
            }
            Self::CancelRunning { grace } if grace > MAX_CANCEL_GRACE => {
                Err(Error::InvalidOption {
                    option: "overlap",
                    reason: format!(
                        "cancel_running's grace must be at most {} s, got {} s",
                        MAX_CANCEL_GRACE.as_secs(),
                        grace.as_secs_f64()
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// How many fires may wait: 0 for the policies that never queue.
    pub(crate) fn queue_limit(self) -> u32 {
        match self {
            Self::QueueOne | Self::CancelRunning { .. } => 1,
            Self::QueueAll { limit } => limit,
            Self::Skip | Self::AllowAll => 0,
        }
    }
}

mod grace_seconds_required {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(grace: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(grace.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if secs.is_finite() && (0.0..=super::MAX_CANCEL_GRACE.as_secs_f64()).contains(&secs) {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(serde::de::Error::custom(format!(
                "grace must be a number of seconds from 0 to {}, got {secs}",
                super::MAX_CANCEL_GRACE.as_secs()
            )))
        }
    }
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidOption {
            option: "id",
            reason: "must not be empty".to_owned(),
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::InvalidOption {
            option: "id",
            reason: format!("is {} bytes long; the limit is {MAX_ID_LEN}", id.len()),
        });
    }
    if id.chars().any(char::is_control) {
        return Err(Error::InvalidOption {
            option: "id",
            reason: format!("{id:?} contains a control character"),
        });
    }
    Ok(())
}

/// When a new schedule first runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirstRun {
    /// At the trigger's first fire time (for an interval: one period after it is added).
    #[default]
    Trigger,
    /// At once, then on the trigger's times: the article's fix for "the first update comes
    /// only after a whole interval".
    Now,
    /// At this instant, then on the trigger's times.
    At(DateTime<Utc>),
}

pub(crate) enum JobSource {
    Named(Arc<str>),
    Value(Arc<dyn Job>),
}

/// What adding a schedule does when one with the same id exists.
///
/// ```
/// use apsched::{NewSchedule, OnConflict, trigger::CronTrigger};
///
/// // Each instance of a service adds its schedules at start; the first one to come adds
/// // them, the others (and later restarts) find them there and keep them.
/// let report = NewSchedule::for_job("report", CronTrigger::new("0 2 * * *")?)
///     .id("nightly-report")
///     .on_conflict(OnConflict::Keep);
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnConflict {
    /// Refuse with [`Error::ConflictingId`]: the default.
    #[default]
    Fail,
    /// Keep the schedule that is there, as it is (its place in time, its pause): add it only
    /// if it is absent. Safe when several instances add it at once: one adds it, the others
    /// keep it, none fails.
    Keep,
    /// Replace it with the new one.
    Replace,
    /// Keep it when it has the same definition ([`Schedule::same_definition`]: job, name,
    /// args, trigger, options); replace it when not. For schedules declared at start-up: a
    /// restart keeps their place in time, a deploy that changed one replaces it.
    ReplaceIfChanged,
}

/// A schedule to add: the job, the trigger and its options. Defaults follow DESIGN.md:
/// `misfire_grace_time` 60 s, `coalesce` true, `max_instances` 1.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use apsched::{FirstRun, NewSchedule, trigger::IntervalTrigger};
///
/// // A job registered on the scheduler under "update_db", every 30 s, the first run at once.
/// let schedule = NewSchedule::for_job("update_db", IntervalTrigger::every(Duration::from_secs(30))?)
///     .id("update-db")
///     .args(json!({"table": "my_data"}))
///     .first_run(FirstRun::Now)
///     .misfire_grace_time(Some(Duration::from_secs(10)));
/// # Ok::<(), apsched::Error>(())
/// ```
#[must_use]
pub struct NewSchedule {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) job: JobSource,
    pub(crate) args: Value,
    pub(crate) trigger: TriggerSpec,
    pub(crate) first_run: FirstRun,
    pub(crate) options: ScheduleOptions,
    pub(crate) on_conflict: OnConflict,
}

impl fmt::Debug for NewSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = match &self.job {
            JobSource::Named(name) => name.to_string(),
            JobSource::Value(_) => "<job value>".to_owned(),
        };
        f.debug_struct("NewSchedule")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("job", &job)
            .field("args", &self.args)
            .field("trigger", &self.trigger)
            .field("first_run", &self.first_run)
            .field("options", &self.options)
            .field("on_conflict", &self.on_conflict)
            .finish()
    }
}

impl NewSchedule {
    fn new(job: JobSource, trigger: TriggerSpec) -> Self {
        Self {
            id: None,
            name: None,
            job,
            args: Value::Null,
            trigger,
            first_run: FirstRun::Trigger,
            options: ScheduleOptions::default(),
            on_conflict: OnConflict::Fail,
        }
    }

    /// Runs the job registered on the scheduler under `job_name`
    /// ([`SchedulerBuilder::job`](crate::SchedulerBuilder::job)). Such a schedule can be stored
    /// durably: after a restart it finds its code again by name.
    pub fn for_job(job_name: &str, trigger: impl Into<TriggerSpec>) -> Self {
        Self::new(JobSource::Named(job_name.into()), trigger.into())
    }

    /// Runs `job`, a [`Job`], a closure or a `tower::Service`. Such a schedule lives in this
    /// process only.
    pub fn with_job<Kind>(job: impl IntoJob<Kind>, trigger: impl Into<TriggerSpec>) -> Self {
        Self::new(JobSource::Value(job.into_job()), trigger.into())
    }

    /// The id (default: a random UUID). Adding an id that exists is an error unless
    /// [`on_conflict`](Self::on_conflict) says otherwise.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// A name for people (default: the id).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// JSON args given to every run.
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// When it first runs (default: the trigger's first time).
    pub fn first_run(mut self, first_run: FirstRun) -> Self {
        self.first_run = first_run;
        self
    }

    /// How late a run may start and still run; `None`: no limit. Default 60 s.
    pub fn misfire_grace_time(mut self, grace: Option<Duration>) -> Self {
        self.options.misfire_grace_time = grace;
        self
    }

    /// Whether several due fires run once, for the latest. Default true.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.options.coalesce = coalesce;
        self
    }

    /// How many runs may go on at once. Default 1.
    pub fn max_instances(mut self, max_instances: u32) -> Self {
        self.options.max_instances = max_instances;
        self
    }

    /// With a shared store: a fire whose instance dies while running it is marked lost rather
    /// than run again elsewhere. Default false (at least once).
    pub fn at_most_once(mut self, at_most_once: bool) -> Self {
        self.options.at_most_once = at_most_once;
        self
    }

    /// What a fire does when `max_instances` runs are going (default [`Overlap::Skip`]).
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.options.overlap = overlap;
        self
    }

    /// Adds it paused: it has no next run time until resumed.
    pub fn paused(mut self, paused: bool) -> Self {
        self.options.paused = paused;
        self
    }

    /// What to do when a schedule with the same id exists (default [`OnConflict::Fail`]).
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        self.on_conflict = on_conflict;
        self
    }

    /// `true`: [`OnConflict::Replace`]; `false`: [`OnConflict::Fail`] (APScheduler's
    /// `replace_existing`).
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.on_conflict = if replace {
            OnConflict::Replace
        } else {
            OnConflict::Fail
        };
        self
    }
}

/// Changes to a schedule's name, args and options ([`SchedulerHandle::modify`]). Unset fields
/// stay as they are. The trigger changes with
/// [`SchedulerHandle::reschedule`](crate::SchedulerHandle::reschedule).
///
/// [`SchedulerHandle::modify`]: crate::SchedulerHandle::modify
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ScheduleChanges {
    pub(crate) name: Option<String>,
    pub(crate) job: Option<String>,
    pub(crate) args: Option<Value>,
    // Outer `None`: unchanged; inner `None`: no limit.
    pub(crate) misfire_grace_time: Option<Option<Duration>>,
    pub(crate) coalesce: Option<bool>,
    pub(crate) max_instances: Option<u32>,
    pub(crate) overlap: Option<Overlap>,
    pub(crate) trigger: Option<TriggerSpec>,
    // Outer `None`: unchanged; inner `None`: paused.
    pub(crate) next_run_time: Option<Option<DateTime<Utc>>>,
}

impl ScheduleChanges {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// New args.
    pub fn args(mut self, args: Value) -> Self {
        self.args = Some(args);
        self
    }

    /// Another registered job to run (APScheduler's `modify_job(func=...)`); runs going
    /// finish as the old job.
    pub fn job(mut self, job_name: impl Into<String>) -> Self {
        self.job = Some(job_name.into());
        self
    }

    /// A new grace time; `None`: no limit.
    pub fn misfire_grace_time(mut self, grace: Option<Duration>) -> Self {
        self.misfire_grace_time = Some(grace);
        self
    }

    /// A new coalesce setting.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = Some(coalesce);
        self
    }

    /// A new overlap limit.
    pub fn max_instances(mut self, max_instances: u32) -> Self {
        self.max_instances = Some(max_instances);
        self
    }

    /// A new overlap policy: for fires from now on.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = Some(overlap);
        self
    }

    /// Applies the changes to a copy of `schedule`, checking them.
    /// A new trigger: the next run time becomes its first from now (a paused schedule stays
    /// paused), as [`SchedulerHandle::reschedule`](crate::SchedulerHandle::reschedule) does,
    /// in the same change as the rest.
    pub fn trigger(mut self, trigger: impl Into<TriggerSpec>) -> Self {
        self.trigger = Some(trigger.into());
        self
    }

    /// A next run time of its own, as APScheduler's `modify_job(next_run_time=...)`: `Some`
    /// resumes a paused schedule at that time, `None` pauses it. Applied after a new
    /// [`trigger`](Self::trigger), so both together mean "this trigger, from this time".
    pub fn next_run_time(mut self, next_run_time: Option<DateTime<Utc>>) -> Self {
        self.next_run_time = Some(next_run_time.map(crate::trigger::whole_micros));
        self
    }

    /// Whether a trigger or next run time changes: the schedule's place in time is new.
    pub(crate) fn retimes(&self) -> bool {
        self.trigger.is_some() || self.next_run_time.is_some()
    }

    /// The changes applied to `schedule` at `now`; checked whole before anything changes.
    pub(crate) fn apply(&self, schedule: &Schedule, now: DateTime<Utc>) -> Result<Schedule> {
        let mut changed = schedule.clone();
        if let Some(trigger) = &self.trigger {
            let mut trigger = trigger.clone();
            trigger.anchor(now);
            let first = trigger.next_fire_time(None, now).ok_or_else(|| {
                Error::NeverFires(format!(
                    "the new {} trigger of \"{}\" has no fire time after {now}",
                    trigger.kind(),
                    schedule.id
                ))
            })?;
            // Paused, it stays paused; the fires it skips are the new trigger's.
            if changed.paused {
                changed.paused_from = Some(first);
            } else {
                changed.next_run_time = Some(first);
            }
            changed.trigger = Arc::new(trigger);
        }
        match self.next_run_time {
            None => {}
            Some(None) => changed = crate::policy::pause(&changed),
            Some(Some(next)) => {
                changed.paused = false;
                changed.paused_from = None;
                changed.next_run_time = Some(next);
            }
        }
        if let Some(name) = &self.name {
            changed.name = name.as_str().into();
        }
        if let Some(args) = &self.args {
            changed.args = Arc::new(args.clone());
        }
        if let Some(job) = &self.job {
            changed.job = Some(job.as_str().into());
        }
        if let Some(grace) = self.misfire_grace_time {
            changed.misfire_grace_time = grace;
        }
        if let Some(coalesce) = self.coalesce {
            changed.coalesce = coalesce;
        }
        if let Some(max_instances) = self.max_instances {
            changed.max_instances = max_instances;
        }
        if let Some(overlap) = self.overlap {
            changed.overlap = overlap;
        }
        changed.options().check()?;
        Ok(changed)
    }
}

impl NewSchedule {
    /// Checks the options and id; the scheduler fills in the id, the name and the first run.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(id) = &self.id {
            check_id(id)?;
        }
        self.options.check()
    }
}

mod grace_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes a reference to the field
    pub(super) fn serialize<S: Serializer>(
        grace: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match grace {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            Some(secs) => Err(serde::de::Error::custom(format!(
                "misfire_grace_time must be a positive number of seconds or null, got {secs}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::IntervalTrigger;

    #[test]
    fn schedules_round_trip_through_json() {
        let schedule = Schedule::from_parts(
            "a",
            "A",
            Some("job"),
            serde_json::json!({"k": 1}),
            IntervalTrigger::every(Duration::from_secs(5))
                .unwrap()
                .into(),
            None,
            ScheduleOptions {
                misfire_grace_time: None,
                ..ScheduleOptions::default()
            },
        )
        .unwrap();
        let json = serde_json::to_string(&schedule).unwrap();
        let back: Schedule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, schedule);
    }

    #[test]
    fn bad_options_are_named() {
        let trigger: TriggerSpec = IntervalTrigger::every(Duration::from_secs(5))
            .unwrap()
            .into();
        let err = Schedule::from_parts(
            "a",
            "a",
            None,
            Value::Null,
            trigger.clone(),
            None,
            ScheduleOptions {
                max_instances: 0,
                ..ScheduleOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid schedule option max_instances: must be at least 1, got 0"
        );
        let err = Schedule::from_parts(
            "",
            "a",
            None,
            Value::Null,
            trigger,
            None,
            ScheduleOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid schedule option id: must not be empty"
        );
    }
}
