//! Claiming fires: due schedules are read, the engine's planner decides in Rust, and one
//! script records the decision for each schedule whose version is still the one read; waiting
//! fires and expired leases are claimed by scripts of their own.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scheduler_core::store::shared::reason;
use scheduler_core::store::{
    ClaimBatch, ClaimedFire, ClaimedRun, Claimer, DueSchedule, FireClaims, FireState, FireToken,
    Planner, Versioned,
};
use scheduler_core::{Error as CoreError, Schedule};

use crate::catalog::{FireItem, Item, parse_schedule, put, versioned};
use crate::{Error, Store, micros, parse_micros, store_error, time};

type CoreResult<T> = scheduler_core::Result<T>;

/// Why a fire waits, in the history.
const WAITING: &str = "waiting for a run of the schedule to end (overlap)";

fn state(name: &str) -> FireState {
    FireState::parse(name).unwrap_or(FireState::Claimed)
}

impl Store {
    /// Live and waiting fires of each of these schedules.
    async fn counts(&self, ids: &[&str]) -> CoreResult<Vec<(u32, u32)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .scripts
            .counts
            .arg(self.prefix())
            .arg(ids)
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)
    }

    /// Waiting fires of schedules that have room, claimed for `claimer`.
    async fn claim_waiting(&self, claimer: &Claimer<'_>, batch: &mut ClaimBatch) -> CoreResult<()> {
        let rows: Vec<(String, String, String, String, String)> = self
            .inner
            .scripts
            .claim_waiting
            .arg(self.prefix())
            .arg(self.lease_micros())
            .arg(claimer.owner)
            .arg(if claimer.start_at_once { "1" } else { "0" })
            .arg(claimer.limit)
            .arg(claimer.jobs.iter().map(|j| &**j).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        for (id, fire_id, nominal, held, json) in rows {
            let schedule = parse_schedule(&id, &json).map_err(store_error)?;
            let fire = ClaimedFire::new(
                FireToken::new(fire_id, 1),
                time(parse_micros(&nominal).unwrap_or_default()),
                1,
                state(&held),
            );
            batch.runs.push(ClaimedRun::new(schedule, vec![fire]));
        }
        Ok(())
    }
}

/// The write that records `plan` for a due schedule: its fires, and the schedule moved on.
fn plan_item(
    due: &Versioned,
    plan: &scheduler_core::store::FirePlan,
    claimer: &Claimer<'_>,
) -> CoreResult<Item> {
    let schedule = &due.schedule;
    let last = plan.next_run_time.is_none();
    let mut item = match plan.next_run_time {
        Some(next) => put(&moved(schedule, next)?, plan.next_due_time)?,
        None => {
            // No fire left: the schedule goes, and its last fires keep a copy of it.
            let mut item = put(schedule, None)?;
            item.snapshot = std::mem::take(&mut item.json);
            item.op = "delete";
            item
        }
    };
    item.expect = due.version.to_string();
    item.cancel = plan.cancel;
    let owner = claimer.owner.to_owned();
    for (i, nominal) in plan.run.iter().enumerate() {
        let held = claimer.held_state(i);
        item.fires.push(FireItem {
            nominal: micros(*nominal).to_string(),
            state: held.as_str(),
            reason: String::new(),
            owner: owner.clone(),
            snapshot: last,
        });
    }
    item.fires.extend(
        plan.not_run
            .iter()
            .map(|fire| FireItem::not_run(fire, &owner)),
    );
    item.fires.extend(plan.queue.iter().map(|nominal| FireItem {
        nominal: micros(*nominal).to_string(),
        state: FireState::Waiting.as_str(),
        reason: WAITING.to_owned(),
        owner: owner.clone(),
        snapshot: false,
    }));
    Ok(item)
}

/// `schedule` moved on to `next`.
fn moved(schedule: &Schedule, next: DateTime<Utc>) -> CoreResult<Schedule> {
    Ok(Schedule::from_parts(
        schedule.id(),
        schedule.name(),
        schedule.job_name(),
        schedule.args().clone(),
        schedule.trigger().clone(),
        Some(next),
        schedule.options(),
    )?
    .with_paused_from(schedule.paused_from()))
}

#[async_trait]
impl FireClaims for Store {
    async fn now(&self) -> CoreResult<DateTime<Utc>> {
        let (now, _): (String, String) = self
            .inner
            .scripts
            .next_due
            .arg(self.prefix())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(time(parse_micros(&now).unwrap_or_default()))
    }

    async fn next_due(
        &self,
        jobs: &[Arc<str>],
    ) -> CoreResult<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let (now, next): (String, String) = self
            .inner
            .scripts
            .next_due
            .arg(self.prefix())
            .arg(jobs.iter().map(|j| &**j).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok((
            time(parse_micros(&now).unwrap_or_default()),
            parse_micros(&next).map(time),
        ))
    }

    async fn claim_due(&self, claimer: &Claimer<'_>, planner: &Planner) -> CoreResult<ClaimBatch> {
        let mut batch = ClaimBatch::default();
        if claimer.jobs.is_empty() {
            return Ok(batch);
        }
        let (now, rows): (String, Vec<Vec<String>>) = self
            .inner
            .scripts
            .due
            .arg(self.prefix())
            .arg(claimer.limit)
            .arg(i64::try_from(claimer.ahead.as_micros()).unwrap_or(i64::MAX))
            .arg(claimer.jobs.iter().map(|j| &**j).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        let now = time(parse_micros(&now).unwrap_or_default());
        batch.more = rows.len() >= claimer.limit;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            match versioned(row) {
                Ok(v) if v.due_time.is_some() => due.push(v),
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "skipping a due schedule that cannot be read")
                }
            }
        }
        if !due.is_empty() {
            let ids: Vec<&str> = due.iter().map(|v| v.schedule.id()).collect();
            let counts = self.counts(&ids).await?;
            let mut plans = Vec::with_capacity(due.len());
            let mut items = Vec::with_capacity(due.len());
            for (v, &(live, waiting)) in due.iter().zip(&counts) {
                let due_time = v.due_time.unwrap_or(now);
                let plan = planner
                    .plan(DueSchedule::new(&v.schedule, due_time, now, live).waiting(waiting));
                if !plan.not_yet {
                    items.push(plan_item(v, &plan, claimer)?);
                }
                plans.push(plan);
            }
            if items.is_empty() {
                // Due ahead, with runs going: the same claim again would find the same.
                batch.more = false;
                return Ok(batch);
            }
            let committed = self.commit(&items, false).await?;
            // A schedule another instance claimed meanwhile: the next claim looks again.
            batch.more |= !committed.conflicts.is_empty();
            for (v, plan) in due.iter().zip(plans) {
                let id = v.schedule.id();
                if committed.conflicts.iter().any(|c| c == id) {
                    continue;
                }
                let shared_id: Arc<str> = id.into();
                let fires: Vec<ClaimedFire> = plan
                    .run
                    .iter()
                    .enumerate()
                    .filter_map(|(i, nominal)| {
                        let fire_id = committed.fire_id(id, micros(*nominal))?;
                        let held = claimer.held_state(i);
                        Some(ClaimedFire::new(
                            FireToken::new(fire_id.to_owned(), 1),
                            *nominal,
                            1,
                            held,
                        ))
                    })
                    .collect();
                if !fires.is_empty() {
                    batch.runs.push(ClaimedRun::new(v.schedule.clone(), fires));
                }
                for fire in plan.not_run {
                    if committed.fire_id(id, micros(fire.nominal_time)).is_some() {
                        batch.not_run.push((Arc::clone(&shared_id), fire));
                    }
                }
                for nominal in plan.queue {
                    if committed.fire_id(id, micros(nominal)).is_some() {
                        batch.queued.push((Arc::clone(&shared_id), nominal));
                    }
                }
                if plan.next_run_time.is_none() {
                    batch.finished.push(shared_id);
                }
            }
        }
        self.claim_waiting(claimer, &mut batch).await?;
        Ok(batch)
    }

    async fn take_over(&self, claimer: &Claimer<'_>) -> CoreResult<ClaimBatch> {
        let mut batch = ClaimBatch::default();
        if claimer.jobs.is_empty() {
            return Ok(batch);
        }
        type Taken = (String, String, String, String, String, String, String);
        let (taken, lost): (Vec<Taken>, Vec<(String, String)>) = self
            .inner
            .scripts
            .take_over
            .arg(self.prefix())
            .arg(self.lease_micros())
            .arg(claimer.owner)
            .arg(if claimer.start_at_once { "1" } else { "0" })
            .arg(claimer.limit)
            .arg(reason::taken_over("%s"))
            .arg(reason::lost("%s"))
            .arg(reason::SCHEDULE_REMOVED)
            .arg("asked to stop for a newer fire, and instance %s stopped renewing its lease")
            .arg(claimer.jobs.iter().map(|j| &**j).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        for (fire_id, id, nominal, epoch, attempt, held, json) in taken {
            let schedule = parse_schedule(&id, &json).map_err(store_error)?;
            let fire = ClaimedFire::new(
                FireToken::new(fire_id, epoch.parse().unwrap_or(1)),
                time(parse_micros(&nominal).unwrap_or_default()),
                attempt.parse().unwrap_or(1),
                state(&held),
            );
            batch.runs.push(ClaimedRun::new(schedule, vec![fire]));
        }
        for (id, nominal) in lost {
            batch
                .lost
                .push((id.into(), time(parse_micros(&nominal).unwrap_or_default())));
        }
        Ok(batch)
    }

    async fn claim_now(
        &self,
        claimer: &Claimer<'_>,
        schedule_id: &str,
        planner: &Planner,
    ) -> CoreResult<ClaimedRun> {
        let held = if claimer.start_at_once {
            FireState::Running
        } else {
            FireState::Claimed
        };
        for _ in 0..8 {
            let current = self
                .get_many(&[schedule_id])
                .await?
                .pop()
                .ok_or_else(|| CoreError::ScheduleNotFound(schedule_id.to_owned()))?;
            let live = self
                .counts(&[schedule_id])
                .await?
                .first()
                .map_or(0, |c| c.0);
            planner.run_now(&current.schedule, live)?;
            let now = self.now().await?;
            // Its nominal time is now; a fire already at that microsecond: the next one.
            for offset in 0..1000 {
                let nominal = micros(now) + offset;
                let item = Item {
                    id: schedule_id.to_owned(),
                    expect: current.version.to_string(),
                    op: "touch",
                    job: current.schedule.job_name().unwrap_or_default().to_owned(),
                    fires: vec![FireItem {
                        nominal: nominal.to_string(),
                        state: held.as_str(),
                        reason: "run now".to_owned(),
                        owner: claimer.owner.to_owned(),
                        snapshot: false,
                    }],
                    ..Item::default()
                };
                let committed = self.commit(&[item], true).await?;
                if !committed.conflicts.is_empty() {
                    break;
                }
                if let Some(fire_id) = committed.fire_id(schedule_id, nominal) {
                    let fire = ClaimedFire::new(
                        FireToken::new(fire_id.to_owned(), 1),
                        time(nominal),
                        1,
                        held,
                    );
                    return Ok(ClaimedRun::new(current.schedule, vec![fire]));
                }
            }
        }
        Err(store_error(Error::Corrupt {
            what: format!("schedule \"{schedule_id}\""),
            reason: "other instances kept changing it while it was run now".to_owned(),
        }))
    }
}
