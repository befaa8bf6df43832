//! The in-memory store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::JobStore;
use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// Schedules in memory: the default store. Nothing survives the process, but a `MemoryStore`
/// shared by two schedulers one after the other (cloning shares it) keeps schedules across a
/// scheduler restart, which tests use.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<Arc<str>, Schedule>,
    // (next run time, id) of schedules that have one: due order without a scan.
    by_time: BTreeSet<(DateTime<Utc>, Arc<str>)>,
}

impl Inner {
    fn unindex(&mut self, schedule: &Schedule) {
        if let Some(t) = schedule.next_run_time {
            self.by_time.remove(&(t, Arc::clone(&schedule.id)));
        }
    }

    fn insert(&mut self, schedule: Schedule) {
        if let Some(old) = self.by_id.remove(&schedule.id) {
            self.unindex(&old);
        }
        if let Some(t) = schedule.next_run_time {
            self.by_time.insert((t, Arc::clone(&schedule.id)));
        }
        self.by_id.insert(Arc::clone(&schedule.id), schedule);
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-written: every method
        // finishes its changes before it could panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn add(&self, schedule: &Schedule, replace: bool) -> Result<()> {
        let mut inner = self.lock();
        if !replace && inner.by_id.contains_key(&schedule.id) {
            return Err(Error::ConflictingId(schedule.id.to_string()));
        }
        inner.insert(schedule.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Schedule>> {
        Ok(self.lock().by_id.get(id).cloned())
    }

    async fn update(&self, schedule: &Schedule) -> Result<()> {
        let mut inner = self.lock();
        if !inner.by_id.contains_key(&schedule.id) {
            return Err(Error::ScheduleNotFound(schedule.id.to_string()));
        }
        inner.insert(schedule.clone());
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        let schedule = inner
            .by_id
            .remove(id)
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        inner.unindex(&schedule);
        Ok(())
    }

    async fn remove_all(&self) -> Result<()> {
        let mut inner = self.lock();
        inner.by_id.clear();
        inner.by_time.clear();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Schedule>> {
        let inner = self.lock();
        let mut list: Vec<Schedule> = inner
            .by_time
            .iter()
            .filter_map(|(_, id)| inner.by_id.get(id).cloned())
            .collect();
        let mut unscheduled: Vec<Schedule> = inner
            .by_id
            .values()
            .filter(|s| s.next_run_time.is_none())
            .cloned()
            .collect();
        unscheduled.sort_by(|a, b| a.id.cmp(&b.id));
        list.extend(unscheduled);
        Ok(list)
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Schedule>> {
        let inner = self.lock();
        Ok(inner
            .by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .filter_map(|(_, id)| inner.by_id.get(id).cloned())
            .collect())
    }

    async fn next_run_time(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.lock().by_time.first().map(|(t, _)| *t))
    }

    async fn set_next_run_times(
        &self,
        updates: &[(Arc<str>, Option<DateTime<Utc>>)],
    ) -> Result<()> {
        let mut inner = self.lock();
        for (id, next) in updates {
            let Some(old) = inner.by_id.get(id).map(|s| s.next_run_time) else {
                continue;
            };
            if old == *next {
                continue;
            }
            if let Some(t) = old {
                inner.by_time.remove(&(t, Arc::clone(id)));
            }
            if let Some(t) = *next {
                inner.by_time.insert((t, Arc::clone(id)));
            }
            if let Some(schedule) = inner.by_id.get_mut(id) {
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
        super::super::conformance::run(|| async { MemoryStore::new() }).await;
    }
}
