//! Stores that several scheduler processes share, as small capabilities.
//!
//! With a [`SharedStore`] ([`SchedulerBuilder::shared_store`](crate::SchedulerBuilder::shared_store))
//! every instance claims due fires from the store, which records each fire in a ledger unique
//! per (schedule, nominal time). So each fire runs on one instance, whichever are alive. The
//! store keeps and persists; the engine decides:
//!
//! - [`ScheduleCatalog`]: the schedules, each with a version that conditional writes compare,
//!   so two instances changing one schedule cannot overwrite each other's change unseen.
//! - [`FireClaims`]: claiming due fires. A claim reads due schedules under a lock (or a
//!   compare-and-set), hands each to the engine's [`Planner`] (misfire, coalesce, catch-up,
//!   `max_instances` counted across instances), records what it returns and moves the
//!   schedules on, in one atomic step. Due times are judged by the store's clock.
//! - [`FireLeases`]: a claimed fire is its instance's for a lease, renewed while the instance
//!   lives. When the instance dies the lease runs out and another instance takes the fire over
//!   with `epoch + 1` (at least once), or records it lost (a schedule's `at_most_once`). The
//!   job sees the epoch ([`JobContext::epoch`](crate::JobContext::epoch)) as a fencing token;
//!   starting and finishing a fire are writes conditioned on it, so a stale owner's late
//!   result is refused.
//! - [`FireHistory`]: what happened to each fire, with the reason when it did not run.
//! - [`ChangeFeed`]: how an idle instance learns that another one changed the schedules.
//!
//! Every implementation passes [`conformance::shared`](crate::store::conformance) (feature
//! `test-util`).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
pub use crate::fires::FireToken;
use crate::fires::{FireRecord, FireState, NotRunFire};
use crate::policy;
use crate::schedule::Schedule;
pub use crate::schedule::{OnConflict, Overlap};
use crate::trigger::{Trigger, apply_jitter};

/// A schedule as a shared store keeps it, with its version.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Versioned {
    /// The schedule.
    pub schedule: Schedule,
    /// When its next run time is due (with jitter).
    pub due_time: Option<DateTime<Utc>>,
    /// Raised by every write of the schedule (claims included).
    pub version: i64,
}

impl Versioned {
    /// A schedule at a version, as stores read it.
    #[must_use]
    pub fn new(schedule: Schedule, due_time: Option<DateTime<Utc>>, version: i64) -> Self {
        Self {
            schedule,
            due_time,
            version,
        }
    }
}

/// A schedule to write, and when its next fire is due: its next run time plus the trigger's
/// jitter, drawn once by the engine so every instance agrees on it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ScheduleWrite {
    /// The schedule.
    pub schedule: Schedule,
    /// When its next run time is due (`None` when it has none: paused).
    pub due_time: Option<DateTime<Utc>>,
    /// Its trigger's interval grids were given no origin and the scheduler pinned one:
    /// [`same_definition`](Self::same_definition) compares them without it.
    pub anchored: bool,
}

impl ScheduleWrite {
    /// Whether the stored schedule `stored` has this write's definition, for
    /// [`OnConflict::ReplaceIfChanged`]: see [`Schedule::same_definition`].
    #[must_use]
    pub fn same_definition(&self, stored: &Schedule) -> bool {
        self.schedule.same_definition(stored, self.anchored)
    }

    /// The write of `schedule`, due at its next run time with the trigger's jitter (`jitter`
    /// false: due at its next run time exactly, as an explicit first run is).
    pub(crate) fn new(schedule: Schedule, jitter: bool) -> Self {
        let due_time = schedule.next_run_time.map(|next| {
            if jitter {
                apply_jitter(next, schedule.trigger.jitter())
            } else {
                next
            }
        });
        Self {
            schedule,
            due_time,
            anchored: false,
        }
    }

    /// The same write, its trigger's grids anchored by the scheduler (or not).
    #[must_use]
    pub(crate) fn anchored(mut self, anchored: bool) -> Self {
        self.anchored = anchored;
        self
    }
}

/// A due schedule, as a claim reads it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct DueSchedule<'a> {
    /// The schedule; its next run time is the first due fire.
    pub schedule: &'a Schedule,
    /// When that fire is due (the next run time plus jitter, as written).
    pub due_time: DateTime<Utc>,
    /// The store's clock at the claim.
    pub now: DateTime<Utc>,
    /// Live fires of the schedule (claimed or running, lease not run out), across instances.
    /// Queued fires are not counted: they run after a claimed one, as part of its run.
    pub running: u32,
    /// Its fires waiting for a run to end ([`FireState::Waiting`]).
    pub waiting: u32,
}

impl<'a> DueSchedule<'a> {
    /// A due schedule, as a claim reads it.
    #[must_use]
    pub fn new(
        schedule: &'a Schedule,
        due_time: DateTime<Utc>,
        now: DateTime<Utc>,
        running: u32,
    ) -> Self {
        Self {
            schedule,
            due_time,
            now,
            running,
            waiting: 0,
        }
    }

    /// With this many of its fires waiting for a run to end.
    #[must_use]
    pub fn waiting(mut self, waiting: u32) -> Self {
        self.waiting = waiting;
        self
    }
}

/// What a claim records for one due schedule: the engine's decision, to be written as given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirePlan {
    /// Fires to run here as one run of the schedule, oldest first: the first is claimed (or
    /// running), the others queued behind it.
    pub run: Vec<DateTime<Utc>>,
    /// Fires that do not run, with the reason: recorded in the history.
    pub not_run: Vec<NotRunFire>,
    /// Fires that wait for a run of the schedule to end, oldest first: recorded
    /// [`FireState::Waiting`], held by no instance, and claimed one by one as runs end (by
    /// [`FireClaims::claim_due`], whichever instance has room).
    pub queue: Vec<DateTime<Utc>>,
    /// The live fires of the schedule are to be cancelled ([`Overlap::CancelRunning`]): the
    /// store marks them so, and their owners learn it when they renew their leases.
    pub cancel: bool,
    /// The schedule's next run time; `None`: its trigger has no more fires and the schedule is
    /// deleted (the claim keeps a copy with its last fire, for a take-over).
    pub next_run_time: Option<DateTime<Utc>>,
    /// When that next run time is due (with jitter).
    pub next_due_time: Option<DateTime<Utc>>,
    /// Nothing to record yet: the schedule is not due (a claim ahead of its due time found
    /// runs of it going, which may end by then; or the store looked early). The claim leaves
    /// it as it is, unwritten, and a later claim decides.
    pub not_yet: bool,
}

/// The engine's fire policy, handed to [`FireClaims::claim_due`] and
/// [`FireClaims::claim_now`]: the store calls it inside its claim and records what it
/// returns, so every store decides the same way.
#[derive(Debug)]
pub struct Planner {
    _private: (),
}

impl Planner {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// The decision for a due schedule.
    ///
    /// A schedule whose due time is still ahead (claimed ahead, [`Claimer::ahead`]) is decided
    /// as at its due time, when its instance will start it; unless runs of it are going or
    /// waiting now, which may have ended by then: it is left for the claim at its due time
    /// ([`FirePlan::not_yet`]).
    #[must_use]
    pub fn plan(&self, due: DueSchedule<'_>) -> FirePlan {
        let now = if due.due_time > due.now && due.running == 0 && due.waiting == 0 {
            due.due_time
        } else {
            due.now
        };
        let plan = policy::plan(policy::Due {
            schedule: due.schedule,
            due_time: due.due_time,
            now,
            running: due.running,
            waiting: due.waiting,
        });
        let not_yet = plan.after == policy::After::Unchanged
            && plan.run.is_empty()
            && plan.not_run.is_empty()
            && plan.queue.is_empty();
        let next_run_time = policy::next_run_time(due.schedule, plan.after, now);
        let next_due_time = if plan.after == policy::After::Unchanged {
            Some(due.due_time)
        } else {
            next_run_time.map(|next| apply_jitter(next, due.schedule.trigger.jitter()))
        };
        FirePlan {
            run: plan.run.as_slice().to_vec(),
            not_run: plan.not_run,
            queue: plan.queue.as_slice().to_vec(),
            cancel: plan.cancel,
            next_run_time,
            next_due_time,
            not_yet,
        }
    }

    /// Whether one extra run of `schedule` (`run_now`) may start with `running` live fires.
    ///
    /// # Errors
    ///
    /// [`Error::MaxInstancesReached`](crate::Error::MaxInstancesReached).
    pub fn run_now(&self, schedule: &Schedule, running: u32) -> Result<()> {
        policy::run_now(schedule, running)
    }
}

/// Who claims, and how much.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Claimer<'a> {
    /// The instance's name in the ledger.
    pub owner: &'a str,
    /// The job names it can run: schedules of other jobs are left to instances that know them.
    pub jobs: &'a [Arc<str>],
    /// At most this many schedules (or expired fires) per claim.
    pub limit: usize,
    /// Record the first fire of each run as running at once (the instance starts it without
    /// waiting for a concurrency slot), which saves a write per fire.
    pub start_at_once: bool,
    /// Claim schedules due up to this long from now, not only those due already (claim
    /// ahead): the instance holds their fires and starts each at its time, so the claim's
    /// round trips are not in its lateness. The [`Planner`] decides them as at their due
    /// time. Zero: only what is due.
    pub ahead: Duration,
}

impl<'a> Claimer<'a> {
    /// A claimer for `owner`, of at most `limit` schedules of `jobs` at a time, claiming only
    /// what is due and recording fires claimed (not running).
    pub(crate) fn new(owner: &'a str, jobs: &'a [Arc<str>], limit: usize) -> Self {
        Self {
            owner,
            jobs,
            limit,
            start_at_once: false,
            ahead: Duration::ZERO,
        }
    }

    /// The latest due time this claim takes, by the store's clock `now`.
    #[must_use]
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::TimeDelta::from_std(self.ahead).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// The state a store records for the fire at `index` of a run it claims: the first
    /// running ([`start_at_once`](Self::start_at_once)) or claimed, the later ones queued
    /// behind it.
    #[must_use]
    pub fn held_state(&self, index: usize) -> FireState {
        match index {
            0 if self.start_at_once => FireState::Running,
            0 => FireState::Claimed,
            _ => FireState::Queued,
        }
    }
}

/// One fire a claim gave this instance.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimedFire {
    /// The fire, at the epoch this instance holds it.
    pub token: FireToken,
    /// Its nominal time.
    pub nominal_time: DateTime<Utc>,
    /// 1 for its first run, 2 after one instance died running it, ...
    pub attempt: u32,
    /// As recorded: claimed, queued, or running (started by the claim itself).
    pub state: FireState,
}

impl ClaimedFire {
    /// A claimed fire, as stores build them.
    #[must_use]
    pub fn new(
        token: FireToken,
        nominal_time: DateTime<Utc>,
        attempt: u32,
        state: FireState,
    ) -> Self {
        Self {
            token,
            nominal_time,
            attempt,
            state,
        }
    }
}

/// One run a claim gave this instance: fires of one schedule, run one after another.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClaimedRun {
    /// The schedule as it was when claimed (the copy kept with its last fire, if it is gone).
    pub schedule: Schedule,
    /// The fires, oldest first.
    pub fires: Vec<ClaimedFire>,
}

impl ClaimedRun {
    /// A claimed run, as stores build them.
    #[must_use]
    pub fn new(schedule: Schedule, fires: Vec<ClaimedFire>) -> Self {
        Self { schedule, fires }
    }
}

/// What one claim found.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ClaimBatch {
    /// Runs for this instance.
    pub runs: Vec<ClaimedRun>,
    /// Fires recorded as not run, by schedule.
    pub not_run: Vec<(Arc<str>, NotRunFire)>,
    /// Fires recorded lost: their instance died and the schedule is `at_most_once` (or was
    /// removed meanwhile).
    pub lost: Vec<(Arc<str>, DateTime<Utc>)>,
    /// Schedules whose trigger has no more fires; the claim deleted them.
    pub finished: Vec<Arc<str>>,
    /// Fires the claim recorded waiting for a run of their schedule to end.
    pub queued: Vec<(Arc<str>, DateTime<Utc>)>,
    /// True when the claim took as many as it was allowed (or gave up on a conflict): more
    /// may be due.
    pub more: bool,
}

impl ClaimBatch {
    /// True when the claim found nothing: no run and nothing recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.not_run.is_empty()
            && self.lost.is_empty()
            && self.finished.is_empty()
            && self.queued.is_empty()
    }
}

/// How a held fire ends, as the engine tells its store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FireOutcome {
    /// The job returned `Ok`.
    Succeeded,
    /// The job returned an error (with its sources).
    Failed(String),
    /// The job panicked.
    Panicked(String),
    /// Aborted at the shutdown deadline, for good (the schedule is `at_most_once`).
    Aborted,
    /// Aborted at the shutdown deadline and handed back: another instance runs it again as a
    /// new attempt.
    Interrupted,
    /// Recorded running by the claim but never started here (shutdown began first, or the
    /// scheduler was paused before a fire claimed ahead was due): handed back as a claim, not
    /// counted as an attempt.
    NotStarted,
}

impl FireOutcome {
    /// The state the fire ends in; `None` for a fire handed back to be run elsewhere (its
    /// lease ends now and another instance takes it over).
    #[must_use]
    pub fn final_state(&self) -> Option<FireState> {
        match self {
            Self::Succeeded => Some(FireState::Succeeded),
            Self::Failed(_) | Self::Panicked(_) => Some(FireState::Failed),
            Self::Aborted => Some(FireState::Aborted),
            Self::Interrupted | Self::NotStarted => None,
        }
    }

    /// The job's error or panic message.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Failed(error) => Some(error),
            Self::Panicked(message) => Some(message),
            _ => None,
        }
    }

    /// What the history says about it, for the instance `owner`.
    #[must_use]
    pub fn reason(&self, owner: &str) -> Option<String> {
        match self {
            Self::Succeeded | Self::Failed(_) => None,
            Self::Panicked(_) => Some("panicked".to_owned()),
            Self::Aborted => Some(format!("aborted at {owner}'s shutdown deadline")),
            Self::Interrupted => Some(format!(
                "aborted at {owner}'s shutdown deadline; to be run again"
            )),
            Self::NotStarted => Some(format!("handed back by {owner} before it started")),
        }
    }
}

/// The reasons a store records for what it does with leases, so that every store words them
/// alike.
pub mod reason {
    /// A fire taken over from `previous`, whose lease ran out.
    #[must_use]
    pub fn taken_over(previous: &str) -> String {
        format!("taken over from {previous}, whose lease ran out")
    }

    /// A running fire of an `at_most_once` schedule whose instance `previous` died.
    #[must_use]
    pub fn lost(previous: &str) -> String {
        format!("instance {previous} stopped renewing its lease while running it (at_most_once)")
    }

    /// A fire whose schedule was removed while it was live.
    pub const SCHEDULE_REMOVED: &str =
        "its schedule was removed while the fire was live; not run again";

    /// Claims given back by `owner` at shutdown.
    #[must_use]
    pub fn released(owner: &str) -> String {
        format!("released by {owner} at shutdown")
    }
}

/// The schedules a shared store keeps.
///
/// Errors: [`Error::ConflictingId`](crate::Error::ConflictingId) from
/// [`insert`](Self::insert), [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound) from
/// [`replace`](Self::replace) and [`remove`](Self::remove),
/// [`Error::Store`](crate::Error::Store) for the store's own failures.
#[async_trait]
pub trait ScheduleCatalog: Send + Sync + Debug + 'static {
    /// The schedule with this id, and its version.
    async fn get(&self, id: &str) -> Result<Option<Versioned>>;

    /// Every schedule, by next run time; those without one (paused) last; ties by id.
    async fn list(&self) -> Result<Vec<Schedule>>;

    /// Adds schedules, all or none.
    async fn insert(&self, batch: &[(ScheduleWrite, OnConflict)]) -> Result<()>;

    /// Overwrites a schedule if it is still at `version`, and records `not_run` (the fires a
    /// resume skipped) with it, in one atomic step. `false`, and nothing written, when it
    /// changed meanwhile.
    async fn replace(
        &self,
        write: &ScheduleWrite,
        version: i64,
        not_run: &[NotRunFire],
    ) -> Result<bool>;

    /// Removes a schedule (its live fires are recorded lost when taken over).
    async fn remove(&self, id: &str) -> Result<()>;

    /// Removes every schedule.
    async fn remove_all(&self) -> Result<()>;
}

/// Claiming due fires.
#[async_trait]
pub trait FireClaims: Send + Sync + Debug + 'static {
    /// The store's clock: due times are judged by it, not by the instances'.
    async fn now(&self) -> Result<DateTime<Utc>>;

    /// The store's clock now, and when an instance that runs `jobs` next has something to do:
    /// the earliest due time of such a schedule, the earliest lease of a live fire of one to
    /// run out (a dead instance's fire is taken over then), or now when a waiting fire's
    /// schedule has room.
    async fn next_due(&self, jobs: &[Arc<str>]) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>)>;

    /// Claims up to `claimer.limit` due schedules of `claimer.jobs`, in one atomic step per
    /// schedule: reads each with its due time, live fires and waiting fires, records what
    /// [`Planner::plan`] returns for it (the runs for `claimer.owner` at epoch 1 with a lease,
    /// the fires that do not run with their reason, the fires that wait as
    /// [`FireState::Waiting`], and the cancellation of its live fires when the plan says
    /// [`cancel`](FirePlan::cancel)), and moves the schedule on to the plan's next run time
    /// (or deletes it). A fire that already has a row is neither recorded nor run again.
    /// Paused schedules and schedules of other jobs are never due.
    ///
    /// In the same step it claims waiting fires, oldest first, of schedules that have room
    /// again (fewer live fires than `max_instances`), each as a run of its own.
    async fn claim_due(&self, claimer: &Claimer<'_>, planner: &Planner) -> Result<ClaimBatch>;

    /// Takes over up to `claimer.limit` live fires of `claimer.jobs` whose lease ran out: for
    /// `claimer.owner` at `epoch + 1` (with `attempt + 1` for a fire that had started), or
    /// recorded lost (a running fire of an `at_most_once` schedule, or one whose schedule is
    /// gone). Each taken-over fire is a run of its own.
    async fn take_over(&self, claimer: &Claimer<'_>) -> Result<ClaimBatch>;

    /// Claims one extra fire of a schedule now (`run_now`), if [`Planner::run_now`] allows it
    /// with the schedule's live fires; its nominal time is the store's now.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound), or what the planner says.
    async fn claim_now(
        &self,
        claimer: &Claimer<'_>,
        schedule_id: &str,
        planner: &Planner,
    ) -> Result<ClaimedRun>;
}

/// The leases of held fires.
#[async_trait]
pub trait FireLeases: Send + Sync + Debug + 'static {
    /// Marks a claimed or queued fire running; `false` when it changed hands (stale epoch).
    async fn start(&self, owner: &str, fire: &FireToken) -> Result<bool>;

    /// Renews the leases of these live fires of `owner`; fires it no longer holds are left.
    /// Returns those of them that a newer fire asked to stop
    /// ([`FirePlan::cancel`], overlap policy [`Overlap::CancelRunning`]): the owner cancels
    /// their runs.
    async fn renew(&self, owner: &str, fires: &[FireToken]) -> Result<Vec<FireToken>>;

    /// Records how a fire ended (or hands it back, see [`FireOutcome`]); `false`, and nothing
    /// written, when it changed hands.
    ///
    /// Recording an end that is already recorded (same owner, epoch and final state) returns
    /// `true` and writes nothing: a retry after an answer lost on the way (the write made, the
    /// connection cut) must not be taken for a fire that changed hands. A different end for a
    /// fire that has ended is `false`: a fire ends once.
    async fn finish(&self, owner: &str, fire: &FireToken, outcome: &FireOutcome) -> Result<bool>;

    /// Records how several fires of `owner` ended, as [`finish`](Self::finish) does for one:
    /// one answer per fire, in order. The engine hands a store every end that came in while
    /// its previous write was under way, so a store that writes them together (one statement,
    /// one script) makes one round trip of what would be many.
    ///
    /// On `Err` some of the ends may have been written; the engine tries them all again, which
    /// the rule above makes safe. The default records them one by one.
    async fn finish_many(
        &self,
        owner: &str,
        fires: &[(FireToken, FireOutcome)],
    ) -> Result<Vec<bool>> {
        let mut finished = Vec::with_capacity(fires.len());
        for (fire, outcome) in fires {
            finished.push(self.finish(owner, fire, outcome).await?);
        }
        Ok(finished)
    }

    /// Gives back `owner`'s claimed and queued fires that have not started, so another
    /// instance takes them at once instead of after their lease.
    async fn release(&self, owner: &str) -> Result<()>;

    /// How long a held fire is its instance's without a renewal.
    fn lease(&self) -> Duration;
}

/// What happened to each fire.
#[async_trait]
pub trait FireHistory: Send + Sync + Debug + 'static {
    /// A schedule's recent fires, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound) for a schedule that
    /// neither exists nor has fires.
    async fn fires(&self, schedule_id: &str, limit: usize) -> Result<Vec<FireRecord>>;

    /// Deletes history past the store's retention, never a live fire; returns how many.
    async fn prune(&self) -> Result<u64>;
}

/// How idle instances learn of changes.
#[async_trait]
pub trait ChangeFeed: Send + Sync + Debug + 'static {
    /// Completes when another instance may have changed the schedules, or after `timeout`.
    async fn wait_for_change(&self, timeout: Duration);

    /// How long an idle instance may sleep before looking again without a change.
    fn recheck_interval(&self) -> Duration;
}

/// A store several scheduler processes share: every capability above. Implemented for any
/// type that has them all.
pub trait SharedStore:
    ScheduleCatalog + FireClaims + FireLeases + FireHistory + ChangeFeed
{
}

impl<T: ScheduleCatalog + FireClaims + FireLeases + FireHistory + ChangeFeed> SharedStore for T {}
