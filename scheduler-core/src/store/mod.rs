//! Job stores: where schedules live.
//!
//! Two kinds, and the builder takes them as two different things:
//!
//! - A [`JobStore`] keeps the schedules of one scheduler. The engine keeps its own timetable
//!   in memory and writes every change through, so a durable store keeps schedules (and their
//!   place in time) across restarts. [`MemoryStore`] carries them across a scheduler restart
//!   within one process. Every fire runs in the process that has the timetable.
//! - A [`SharedStore`] is shared by several scheduler processes: each fire runs on one of
//!   them ([`shared`]).
//!
//! Every store passes its [`conformance`] suite (feature `test-util`).

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub(crate) mod memory;
pub mod shared;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::memory::MemoryStore;
pub use self::shared::{
    ChangeFeed, ClaimBatch, ClaimedFire, ClaimedRun, Claimer, DueSchedule, FireClaims, FireHistory,
    FireLeases, FireOutcome, FirePlan, FireToken, OnConflict, Planner, ScheduleCatalog,
    ScheduleWrite, SharedStore, Versioned,
};
use crate::error::Result;
pub use crate::fires::{FireRecord, FireState, NotRun, NotRunFire, SkipReason};
use crate::schedule::Schedule;

/// Where one scheduler's schedules live: what its timetable writes through to.
///
/// Errors: [`Error::ConflictingId`](crate::Error::ConflictingId) from [`add`](Self::add)
/// without `replace`, [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound) from
/// [`update`](Self::update) and [`remove`](Self::remove), and
/// [`Error::Store`](crate::Error::Store) for the store's own failures.
#[async_trait]
pub trait JobStore: Send + Sync + Debug + 'static {
    /// Every schedule, by next run time; those without one (paused) last; ties by id. The
    /// engine reads them once, when it starts.
    async fn list(&self) -> Result<Vec<Schedule>>;

    /// Adds a schedule; with `replace`, an existing one with the same id is overwritten.
    async fn add(&self, schedule: &Schedule, replace: bool) -> Result<()>;

    /// Overwrites an existing schedule.
    async fn update(&self, schedule: &Schedule) -> Result<()>;

    /// Removes a schedule.
    async fn remove(&self, id: &str) -> Result<()>;

    /// Removes every schedule.
    async fn remove_all(&self) -> Result<()>;

    /// Sets the next run times of several schedules at once (the engine's write after each
    /// wake-up). Ids the store does not have are ignored.
    async fn set_next_run_times(&self, updates: &[(Arc<str>, Option<DateTime<Utc>>)])
    -> Result<()>;
}
