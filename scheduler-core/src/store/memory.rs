//! The in-memory store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::JobStore;
use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// Schedules in memory. Nothing survives the process, but a `MemoryStore` shared by two
/// schedulers one after the other (cloning shares it) keeps schedules across a scheduler
/// restart, which tests use. Without any store the engine keeps schedules in its own
/// timetable only, which is the default and the fastest.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<Arc<str>, Schedule>>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Schedule>> {
        // A panic while holding the lock cannot leave the map half-written: every method
        // finishes its changes before it could panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// By next run time, those without one last; ties by id.
pub(crate) fn run_order(a: &Schedule, b: &Schedule) -> std::cmp::Ordering {
    match (a.next_run_time, b.next_run_time) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    }
}

// No time index: the engine keeps its own timetable and writes every fire's next run time
// here, so that write (a hash lookup) is what must be cheap. `list` sorts on demand.
#[async_trait]
impl JobStore for MemoryStore {
    async fn list(&self) -> Result<Vec<Schedule>> {
        let mut list: Vec<Schedule> = self.lock().values().cloned().collect();
        list.sort_by(run_order);
        Ok(list)
    }

    async fn add(&self, schedule: &Schedule, replace: bool) -> Result<()> {
        let mut schedules = self.lock();
        if !replace && schedules.contains_key(&schedule.id) {
            return Err(Error::ConflictingId(schedule.id.to_string()));
        }
        schedules.insert(Arc::clone(&schedule.id), schedule.clone());
        Ok(())
    }

    async fn update(&self, schedule: &Schedule) -> Result<()> {
        let mut schedules = self.lock();
        let stored = schedules
            .get_mut(&schedule.id)
            .ok_or_else(|| Error::ScheduleNotFound(schedule.id.to_string()))?;
        *stored = schedule.clone();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.lock()
            .remove(id)
            .map(drop)
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))
    }

    async fn remove_all(&self) -> Result<()> {
        self.lock().clear();
        Ok(())
    }

    async fn set_next_run_times(
        &self,
        updates: &[(Arc<str>, Option<DateTime<Utc>>)],
    ) -> Result<()> {
        let mut schedules = self.lock();
        for (id, next) in updates {
            if let Some(schedule) = schedules.get_mut(id) {
                schedule.next_run_time = *next;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        super::super::conformance::local::run(|| async { MemoryStore::new() }).await;
    }
}
