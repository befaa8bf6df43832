//! Job stores: where schedules live.
//!
//! The scheduler's engine keeps its own timetable in memory and writes every change through to
//! its [`JobStore`], so a durable store keeps schedules (and their place in time) across
//! restarts. [`MemoryStore`] is the default; `store-sea-orm` is durable and shared by several
//! processes. Every store passes the same [`conformance`] suite.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub(crate) mod memory;
pub mod shared;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::memory::MemoryStore;
pub use self::shared::{Claimed, FireClaim, FireOutcome, FireRecord, FireState, SharedStore};
use crate::error::Result;
use crate::schedule::Schedule;

/// Where schedules live.
///
/// Errors: [`Error::ConflictingId`](crate::Error::ConflictingId) from [`add`](Self::add)
/// without `replace`, [`Error::ScheduleNotFound`](crate::Error::ScheduleNotFound) from
/// [`update`](Self::update) and [`remove`](Self::remove), and
/// [`Error::Store`](crate::Error::Store) for the store's own failures.
#[async_trait]
pub trait JobStore: Send + Sync + Debug + 'static {
    /// Adds a schedule; with `replace`, an existing one with the same id is overwritten.
    async fn add(&self, schedule: &Schedule, replace: bool) -> Result<()>;

    /// The schedule with this id.
    async fn get(&self, id: &str) -> Result<Option<Schedule>>;

    /// Overwrites an existing schedule.
    async fn update(&self, schedule: &Schedule) -> Result<()>;

    /// Removes a schedule.
    async fn remove(&self, id: &str) -> Result<()>;

    /// Removes every schedule.
    async fn remove_all(&self) -> Result<()>;

    /// Every schedule, by next run time; those without one (paused) last; ties by id.
    async fn list(&self) -> Result<Vec<Schedule>>;

    /// Up to `limit` schedules whose next run time is at or before `now`, earliest first.
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Schedule>>;

    /// The earliest next run time of any schedule.
    async fn next_run_time(&self) -> Result<Option<DateTime<Utc>>>;

    /// Sets the next run times of several schedules at once (the engine's write after each
    /// wake-up). Ids the store does not have are ignored.
    async fn set_next_run_times(&self, updates: &[(Arc<str>, Option<DateTime<Utc>>)])
    -> Result<()>;
}
