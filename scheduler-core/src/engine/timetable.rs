//! The timetable the engine loop runs over: its own, or a shared store's. Every command is
//! written once, in the engine, over these operations.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::change::{Added, Changed, Edit, Prepared};
use super::local::LocalTimetable;
use super::run::RunTask;
use super::shared::SharedTimetable;
use super::state::Shared;
use crate::error::Result;
use crate::event::AbortedRun;
use crate::fires::FireRecord;
use crate::schedule::Schedule;
use crate::store::{JobStore, SharedStore};

/// Where the schedules live.
pub(crate) enum Backend {
    /// In the engine's own timetable, written through to a store if there is one.
    Local(Option<Arc<dyn JobStore>>),
    /// In a store several instances share, claimed this long ahead of their due time.
    Shared(Arc<dyn SharedStore>, std::time::Duration),
}

pub(crate) type WakeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) enum Timetable {
    Local(LocalTimetable),
    Shared(SharedTimetable),
}

impl Timetable {
    pub(crate) async fn wake(&mut self, shared: &Shared) -> Option<WakeFuture> {
        match self {
            Self::Local(local) => local.first_due().map(|t| shared.clock.sleep_until(t)),
            Self::Shared(remote) => Some(remote.wake().await),
        }
    }

    pub(crate) async fn fire_due(&mut self) {
        match self {
            Self::Local(local) => local.fire_due().await,
            Self::Shared(remote) => remote.fire_due().await,
        }
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Schedule>> {
        match self {
            Self::Local(local) => Ok(local.get(id)),
            Self::Shared(remote) => remote.get(id).await,
        }
    }

    pub(crate) async fn list(&self) -> Result<Vec<Schedule>> {
        match self {
            Self::Local(local) => Ok(local.list()),
            Self::Shared(remote) => remote.list().await,
        }
    }

    pub(crate) async fn add(&mut self, batch: Vec<Prepared>) -> Result<Vec<Added>> {
        match self {
            Self::Local(local) => local.add(batch).await,
            Self::Shared(remote) => remote.add(batch).await,
        }
    }

    pub(crate) async fn change(
        &mut self,
        id: &str,
        edit: impl Fn(&Schedule, DateTime<Utc>) -> Result<Edit>,
    ) -> Result<Changed> {
        match self {
            Self::Local(local) => local.change(id, edit).await,
            Self::Shared(remote) => remote.change(id, edit).await,
        }
    }

    pub(crate) async fn remove(&mut self, id: &str) -> Result<()> {
        match self {
            Self::Local(local) => local.remove(id).await,
            Self::Shared(remote) => remote.remove(id).await,
        }
    }

    pub(crate) async fn remove_all(&mut self) -> Result<()> {
        match self {
            Self::Local(local) => local.remove_all().await,
            Self::Shared(remote) => remote.remove_all().await,
        }
    }

    pub(crate) async fn run_now(&mut self, id: &str) -> Result<RunTask> {
        match self {
            Self::Local(local) => local.run_now(id),
            Self::Shared(remote) => remote.run_now(id).await,
        }
    }

    pub(crate) async fn history(&self, id: &str, limit: usize) -> Result<Vec<FireRecord>> {
        match self {
            Self::Local(local) => local.history(id, limit),
            Self::Shared(remote) => remote.history(id, limit).await,
        }
    }

    /// The scheduler was paused: nothing held here waits for the resume.
    pub(crate) async fn paused(&mut self) {
        if let Self::Shared(remote) = self {
            remote.give_back_claimed_ahead().await;
        }
    }

    /// Before shutdown waits for the runs: what this timetable owes its store.
    pub(crate) async fn stop(&mut self) {
        match self {
            Self::Local(local) => local.flush().await,
            Self::Shared(remote) => remote.release().await,
        }
    }

    pub(crate) fn running(&self) -> Vec<AbortedRun> {
        match self {
            Self::Local(local) => local.running(),
            Self::Shared(remote) => remote.running(),
        }
    }
}
