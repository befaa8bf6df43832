//! The schedules: add, read, change (conditioned on their version) and remove.

use std::collections::HashMap;

use async_trait::async_trait;
use scheduler_core::store::shared::reason;
use scheduler_core::store::{NotRunFire, OnConflict, ScheduleCatalog, ScheduleWrite, Versioned};
use scheduler_core::{Error as CoreError, Schedule};
use serde::Serialize;

use crate::{Error, Store, micros, parse_micros, store_error, time};

type CoreResult<T> = scheduler_core::Result<T>;

/// How often a write that keeps losing to other instances' is made again.
const TRIES: usize = 8;

/// One schedule's part of a commit (see `lua/commit.lua`).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Item {
    pub(crate) id: String,
    /// `-1`: must be absent; `""`: any version; else the version it must have.
    pub(crate) expect: String,
    /// `put`, `delete`, `touch` (only the version goes up) or `none`.
    pub(crate) op: &'static str,
    pub(crate) json: String,
    pub(crate) job: String,
    pub(crate) due: String,
    pub(crate) score: String,
    pub(crate) snapshot: String,
    pub(crate) cancel: bool,
    pub(crate) removed_reason: &'static str,
    pub(crate) fires: Vec<FireItem>,
}

/// A fire a commit records.
#[derive(Debug, Serialize)]
pub(crate) struct FireItem {
    pub(crate) nominal: String,
    pub(crate) state: &'static str,
    pub(crate) reason: String,
    pub(crate) owner: String,
    pub(crate) snapshot: bool,
}

impl FireItem {
    pub(crate) fn not_run(fire: &NotRunFire, owner: &str) -> Self {
        Self {
            nominal: micros(fire.nominal_time).to_string(),
            state: fire.reason.state().as_str(),
            reason: fire.reason.to_string(),
            owner: owner.to_owned(),
            snapshot: false,
        }
    }
}

/// What a commit did: the ids whose version had changed (nothing written for them), and the
/// fires written, as (schedule, nominal micros, fire id).
pub(crate) struct Committed {
    pub(crate) conflicts: Vec<String>,
    pub(crate) written: Vec<(String, i64, String)>,
}

impl Committed {
    pub(crate) fn fire_id(&self, schedule_id: &str, nominal: i64) -> Option<&str> {
        self.written
            .iter()
            .find(|(s, n, _)| s == schedule_id && *n == nominal)
            .map(|(_, _, id)| id.as_str())
    }
}

/// A write of `schedule` with its due time.
pub(crate) fn put(
    schedule: &Schedule,
    due: Option<chrono::DateTime<chrono::Utc>>,
) -> CoreResult<Item> {
    let job = schedule
        .job_name()
        .ok_or_else(|| store_error(Error::UnnamedJob(schedule.id().to_owned())))?;
    let json = serde_json::to_string(schedule).map_err(|e| {
        store_error(Error::Corrupt {
            what: format!("schedule \"{}\"", schedule.id()),
            reason: e.to_string(),
        })
    })?;
    Ok(Item {
        id: schedule.id().to_owned(),
        op: "put",
        json,
        job: job.to_owned(),
        due: due
            .filter(|_| !schedule.paused())
            .map(|t| micros(t).to_string())
            .unwrap_or_default(),
        score: schedule
            .next_run_time()
            .map_or_else(|| "inf".to_owned(), |t| micros(t).to_string()),
        removed_reason: reason::SCHEDULE_REMOVED,
        ..Item::default()
    })
}

pub(crate) fn parse_schedule(id: &str, json: &str) -> Result<Schedule, Error> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt {
        what: format!("schedule \"{id}\""),
        reason: e.to_string(),
    })
}

/// A row of `lua/get.lua` and `lua/due.lua`: id, JSON, version, due.
pub(crate) fn versioned(row: &[String]) -> Result<Versioned, Error> {
    let [id, json, version, due] = row else {
        return Err(Error::Corrupt {
            what: "a schedule row".to_owned(),
            reason: format!("{} fields", row.len()),
        });
    };
    let schedule = parse_schedule(id, json)?;
    Ok(Versioned::new(
        schedule,
        parse_micros(due).map(time),
        version.parse().unwrap_or(0),
    ))
}

impl Store {
    pub(crate) async fn commit(&self, items: &[Item], all_or_none: bool) -> CoreResult<Committed> {
        if items.is_empty() {
            return Ok(Committed {
                conflicts: Vec::new(),
                written: Vec::new(),
            });
        }
        let payload = serde_json::to_string(items).map_err(|e| {
            store_error(Error::Corrupt {
                what: "a commit".to_owned(),
                reason: e.to_string(),
            })
        })?;
        let (conflicts, written): (Vec<String>, Vec<(String, String, String)>) = self
            .inner
            .scripts
            .commit
            .arg(self.prefix())
            .arg(self.lease_micros())
            .arg(if all_or_none { "1" } else { "0" })
            .arg(payload)
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(Committed {
            conflicts,
            written: written
                .into_iter()
                .map(|(s, n, f)| (s, parse_micros(&n).unwrap_or_default(), f))
                .collect(),
        })
    }

    pub(crate) async fn get_many(&self, ids: &[&str]) -> CoreResult<Vec<Versioned>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Vec<String>> = self
            .inner
            .scripts
            .get
            .arg(self.prefix())
            .arg(ids)
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| versioned(row).map_err(store_error))
            .collect()
    }
}

#[async_trait]
impl ScheduleCatalog for Store {
    async fn get(&self, id: &str) -> CoreResult<Option<Versioned>> {
        Ok(self.get_many(&[id]).await?.pop())
    }

    async fn list(&self) -> CoreResult<Vec<Schedule>> {
        let rows: Vec<String> = self
            .inner
            .scripts
            .list
            .arg(self.prefix())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        let mut schedules = Vec::with_capacity(rows.len());
        for json in rows {
            match serde_json::from_str::<Schedule>(&json) {
                Ok(schedule) => schedules.push(schedule),
                Err(error) => {
                    tracing::error!(%error, "skipping a stored schedule that cannot be read");
                }
            }
        }
        Ok(schedules)
    }

    async fn insert(&self, batch: &[(ScheduleWrite, OnConflict)]) -> CoreResult<()> {
        let ids: Vec<&str> = batch.iter().map(|(w, _)| w.schedule.id()).collect();
        for _ in 0..TRIES {
            let stored = self.get_many(&ids).await?;
            let stored: HashMap<&str, &Versioned> =
                stored.iter().map(|v| (v.schedule.id(), v)).collect();
            let mut items = Vec::with_capacity(batch.len());
            for (write, on_conflict) in batch {
                let id = write.schedule.id();
                let existing = stored.get(id).copied();
                let expect = existing.map_or_else(|| "-1".to_owned(), |v| v.version.to_string());
                let keep = match (existing, on_conflict) {
                    (None, _) => false,
                    (Some(_), OnConflict::Replace) => false,
                    (Some(_), OnConflict::Keep) => true,
                    (Some(stored), OnConflict::ReplaceIfChanged) => {
                        write.same_definition(&stored.schedule)
                    }
                    (Some(_), _) => return Err(CoreError::ConflictingId(id.to_owned())),
                };
                let mut item = if keep {
                    // Kept: nothing written, but it must still be the one read.
                    Item {
                        id: id.to_owned(),
                        op: "none",
                        ..Item::default()
                    }
                } else {
                    put(&write.schedule, write.due_time)?
                };
                item.expect = expect;
                items.push(item);
            }
            if self.commit(&items, true).await?.conflicts.is_empty() {
                return Ok(());
            }
        }
        Err(store_error(Error::Corrupt {
            what: "schedules being added".to_owned(),
            reason: format!("other instances kept changing them ({TRIES} tries)"),
        }))
    }

    async fn replace(
        &self,
        write: &ScheduleWrite,
        version: i64,
        not_run: &[NotRunFire],
    ) -> CoreResult<bool> {
        let mut item = put(&write.schedule, write.due_time)?;
        item.expect = version.to_string();
        item.fires = not_run
            .iter()
            .map(|fire| {
                let mut fire = FireItem::not_run(fire, "");
                fire.owner.clear();
                fire
            })
            .collect();
        let id = write.schedule.id();
        if self.commit(&[item], true).await?.conflicts.is_empty() {
            return Ok(true);
        }
        match self.get(id).await? {
            Some(_) => Ok(false),
            None => Err(CoreError::ScheduleNotFound(id.to_owned())),
        }
    }

    async fn remove(&self, id: &str) -> CoreResult<()> {
        let Some(current) = self.get(id).await? else {
            return Err(CoreError::ScheduleNotFound(id.to_owned()));
        };
        let item = Item {
            id: id.to_owned(),
            op: "delete",
            job: current.schedule.job_name().unwrap_or_default().to_owned(),
            removed_reason: reason::SCHEDULE_REMOVED,
            ..Item::default()
        };
        self.commit(&[item], true).await?;
        Ok(())
    }

    async fn remove_all(&self) -> CoreResult<()> {
        let _: i64 = self
            .inner
            .scripts
            .clear
            .arg(self.prefix())
            .arg(reason::SCHEDULE_REMOVED)
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
