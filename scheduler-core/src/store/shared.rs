//! Stores that several scheduler processes share.
//!
//! With a [`SharedStore`] ([`SchedulerBuilder::shared_store`](crate::SchedulerBuilder::shared_store))
//! the engine keeps no timetable of its own: every instance claims due fires from the store,
//! which records each fire in a ledger unique per (schedule, nominal time). So each fire runs
//! on one instance, whichever are alive:
//!
//! - **Claims**: the store takes due schedules, decides their fires with [`plan_due`]
//!   (misfire and coalesce as everywhere) and `max_instances` (counted in the ledger, across
//!   instances), records the fires and advances the schedules, in one transaction.
//! - **Leases and fencing**: a claimed fire belongs to its instance for a lease, renewed while
//!   it runs. When the instance dies the lease runs out and another instance takes the fire
//!   with `epoch + 1` and `attempt + 1` (at least once), or marks it lost (a schedule's
//!   `at_most_once`). The job sees the epoch ([`JobContext::epoch`](crate::JobContext::epoch))
//!   as a fencing token; finishing a fire is a write conditioned on it, so a stale owner's late
//!   result is rejected and reported.
//!
//! [`plan_due`]: crate::plan_due

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::JobStore;
use crate::error::Result;
use crate::schedule::Schedule;

/// A fire this instance claimed and must run.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FireClaim {
    /// The ledger row.
    pub fire_id: i64,
    /// The schedule, as it was when claimed.
    pub schedule: Schedule,
    /// The fire's nominal time.
    pub nominal_time: DateTime<Utc>,
    /// The fencing token: raised each time the fire changes hands.
    pub epoch: i64,
    /// 1 for the first run of this fire, 2 after one instance died with it, ...
    pub attempt: u32,
    /// Recorded running by the claim itself (the instance starts it at once), so no
    /// [`SharedStore::start_fire`] is needed.
    pub started: bool,
}

impl FireClaim {
    /// A claim, as stores build them.
    #[must_use]
    pub fn new(
        fire_id: i64,
        schedule: Schedule,
        nominal_time: DateTime<Utc>,
        epoch: i64,
        attempt: u32,
    ) -> Self {
        Self {
            fire_id,
            schedule,
            nominal_time,
            epoch,
            attempt,
            started: false,
        }
    }

    /// The same claim, recorded running by the claim itself.
    #[must_use]
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }
}

/// What one claim found.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Claimed {
    /// Fires to run here.
    pub fires: Vec<FireClaim>,
    /// Fires recorded missed: (schedule, nominal time, how late).
    pub missed: Vec<(Arc<str>, DateTime<Utc>, Duration)>,
    /// Fires recorded skipped because `max_instances` runs were going: (schedule, nominal
    /// time, runs going).
    pub skipped: Vec<(Arc<str>, DateTime<Utc>, u32)>,
    /// Fires recorded lost: their instance died and the schedule is `at_most_once`.
    pub lost: Vec<(Arc<str>, DateTime<Utc>)>,
    /// Schedules whose trigger has no more fires; the store removed them.
    pub finished: Vec<Arc<str>>,
    /// True when the claim took as many schedules as it was allowed: more may be due.
    pub more: bool,
}

impl Claimed {
    /// True when the claim found nothing at all: no fire to run and nothing recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fires.is_empty()
            && self.missed.is_empty()
            && self.skipped.is_empty()
            && self.lost.is_empty()
            && self.finished.is_empty()
    }
}

/// How a run ended, as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FireOutcome {
    /// The job returned `Ok`.
    Succeeded,
    /// The job returned an error.
    Failed(String),
    /// The job panicked.
    Panicked(String),
    /// The run was aborted at the shutdown deadline.
    Aborted,
    /// A fire claimed as started that the instance did not start after all (it began to shut
    /// down first): it goes back for another instance, not counted as an attempt.
    NotStarted,
}

/// A fire's state in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FireState {
    /// Claimed by an instance, not started yet.
    Claimed,
    /// Running.
    Running,
    /// Ended with `Ok`.
    Succeeded,
    /// Ended with an error or a panic.
    Failed,
    /// Not run: later than `misfire_grace_time`.
    Missed,
    /// Not run: `max_instances` runs were going, or the schedule was paused.
    Skipped,
    /// Not finished: its instance died and the schedule is `at_most_once`.
    Lost,
    /// Aborted at a shutdown deadline.
    Aborted,
}

impl FireState {
    /// The state's name in the ledger.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Missed => "missed",
            Self::Skipped => "skipped",
            Self::Lost => "lost",
            Self::Aborted => "aborted",
        }
    }

    /// The state of a ledger name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "claimed" => Self::Claimed,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "missed" => Self::Missed,
            "skipped" => Self::Skipped,
            "lost" => Self::Lost,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

/// One row of a schedule's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FireRecord {
    /// The ledger row.
    pub fire_id: i64,
    /// The schedule.
    pub schedule_id: String,
    /// The fire's nominal time.
    pub nominal_time: DateTime<Utc>,
    /// Where it is.
    pub state: FireState,
    /// Why it did not run, or why it changed hands.
    pub reason: Option<String>,
    /// The instance that has it, or had it last.
    pub owner: Option<String>,
    /// Its fencing token.
    pub epoch: i64,
    /// How many times it was started.
    pub attempt: u32,
    /// When it was claimed, started, finished.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The job's error, for a failed run.
    pub error: Option<String>,
}

impl FireRecord {
    /// A record, as stores build them.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fire_id: i64,
        schedule_id: String,
        nominal_time: DateTime<Utc>,
        state: FireState,
        reason: Option<String>,
        owner: Option<String>,
        epoch: i64,
        attempt: u32,
        times: [Option<DateTime<Utc>>; 3],
        error: Option<String>,
    ) -> Self {
        let [claimed_at, started_at, finished_at] = times;
        Self {
            fire_id,
            schedule_id,
            nominal_time,
            state,
            reason,
            owner,
            epoch,
            attempt,
            claimed_at,
            started_at,
            finished_at,
            error,
        }
    }
}

/// A store several scheduler processes share; see the [module](self) documentation.
///
/// `owner` is the calling instance's name; `jobs` the job names it can run (schedules of other
/// jobs are left for instances that know them).
#[async_trait]
pub trait SharedStore: JobStore {
    /// The store's clock: due times are judged by it, not by the instances'.
    async fn now(&self) -> Result<DateTime<Utc>>;

    /// The store's clock now, and when this instance next has something to do: the earliest
    /// due time of a schedule it can run, or the earliest lease of a live fire of such a
    /// schedule to run out (a dead instance's fire is taken over then). One round trip.
    async fn next_due(&self, jobs: &[Arc<str>]) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>)>;

    /// Claims up to `limit` due schedules of `jobs` for `owner`, in one transaction: records
    /// their fires (run, missed or skipped) and advances them.
    ///
    /// With `running`, the fires to run are recorded running at once (the instance starts
    /// them without waiting, and saves a write per fire); otherwise claimed, and
    /// [`start_fire`](Self::start_fire) marks each when it starts.
    async fn claim_due(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> Result<Claimed>;

    /// Takes over up to `limit` fires whose lease ran out: for `owner` with `epoch + 1` and
    /// `attempt + 1` (a fire that never started keeps its attempt), or marked lost for
    /// `at_most_once` schedules. `running` as for [`claim_due`](Self::claim_due).
    async fn reclaim_expired(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> Result<Claimed>;

    /// Claims one extra fire of a schedule now (`run_now`).
    ///
    /// # Errors
    ///
    /// [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound), or
    /// [`Error::MaxInstancesReached`](crate::Error::MaxInstancesReached) counted in the ledger.
    async fn claim_now(&self, owner: &str, schedule_id: &str) -> Result<FireClaim>;

    /// Marks a claimed fire running; `false` when it changed hands (stale epoch).
    async fn start_fire(&self, owner: &str, fire: &FireClaim) -> Result<bool>;

    /// Records how a fire ended; `false`, and nothing written, when it changed hands.
    async fn finish_fire(
        &self,
        owner: &str,
        fire: &FireClaim,
        outcome: &FireOutcome,
    ) -> Result<bool>;

    /// Renews the leases of these fires of `owner`: the ones it is running. A fire it gave
    /// back, or claimed and never ran, is not among them and runs out.
    async fn renew_leases(&self, owner: &str, fire_ids: &[i64]) -> Result<()>;

    /// Gives back `owner`'s claimed fires that have not started, so another instance takes
    /// them at once instead of after their lease.
    async fn release(&self, owner: &str) -> Result<()>;

    /// Pauses a schedule, remembering where it was so that [`resume`](Self::resume) can record
    /// the fires it skipped.
    async fn pause(&self, id: &str) -> Result<Schedule>;

    /// Resumes a schedule at its next fire from the store's clock, recording the fires skipped
    /// while it was paused (at most [`CATCH_UP_LIMIT`](crate::CATCH_UP_LIMIT)).
    async fn resume(&self, id: &str) -> Result<Schedule>;

    /// A schedule's recent fires, newest first.
    async fn fires(&self, schedule_id: &str, limit: usize) -> Result<Vec<FireRecord>>;

    /// Deletes ledger rows past the store's retention; returns how many.
    async fn prune(&self) -> Result<u64>;

    /// Completes when another instance may have changed the schedules (PostgreSQL
    /// notifications), or after `timeout`.
    async fn wait_for_change(&self, timeout: Duration);

    /// How long a claim is its instance's without a heartbeat.
    fn lease(&self) -> Duration;

    /// How long an idle instance may sleep before looking again.
    fn recheck_interval(&self) -> Duration;
}
