//! The store shared by several scheduler processes: claims, leases, fencing and the ledger.
//!
//! - A claim is one transaction: due schedules are locked (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL and MariaDB/MySQL, so instances never wait for each other; a version
//!   compare-and-set on SQLite), their fires decided by [`plan_due`] and `max_instances`
//!   (counted in the ledger), recorded, and the schedules advanced. A fire row is unique per
//!   (schedule, nominal time), so no two instances can ever both record a fire.
//! - Due times are judged by the database's clock. A trigger's jitter is drawn once, when the
//!   next run time is written (`due_time`), so every instance agrees on when a fire is due.
//! - A claimed fire is its instance's for a lease (default 30 s), renewed while it runs. When
//!   an instance dies its leases run out and another instance takes the fires over with
//!   `epoch + 1` (at least once), or records them lost (`at_most_once`). Starting and finishing
//!   a fire are writes conditioned on its epoch and owner: a stale owner's result is rejected.
//! - A fire taken over runs the schedule as it is then; a schedule's last fire (the claim
//!   deleted the schedule) keeps a copy of it in its row. A fire whose schedule was removed
//!   meanwhile is recorded lost, not run again.
//! - On PostgreSQL, every change to the schedules sends a notification that wakes idle
//!   instances at once; SQLite and MariaDB are polled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scheduler_core::store::{
    Claimed, FireClaim, FireOutcome, FireRecord, FireState, JobStore, SharedStore,
};
use scheduler_core::trigger::Trigger;
use scheduler_core::{CATCH_UP_LIMIT, Schedule, plan_due};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, TransactionTrait, Value};

use crate::dialect::Dialect;
use crate::{COLUMNS, Store, db, due_time_of, micros, schedule_from_row};

type CoreResult<T> = scheduler_core::Result<T>;

fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn lease_micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

const LIVE: &str = "'claimed', 'running'";

/// The ledger's columns written when a fire is recorded.
const FIRE_COLUMNS: &str = "schedule_id, job, claim, nominal_time, state, reason, owner, epoch, attempt, \
                            lease_until, claimed_at, started_at, finished_at";

/// One fire's values: a new fire is at epoch 1.
const FIRE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)";

/// A fire a claim decided on, before it is written.
struct PlannedFire<'a> {
    schedule: &'a Schedule,
    nominal: DateTime<Utc>,
    state: FireState,
    reason: Option<String>,
    /// For a skipped fire: the runs going.
    running: u32,
    /// For a missed fire: how late.
    lateness: Duration,
    /// The claim also deletes the schedule (no fires left): the fire row keeps a copy, for
    /// whoever has to take it over.
    snapshot: bool,
}

impl<'a> PlannedFire<'a> {
    fn new(
        schedule: &'a Schedule,
        nominal: DateTime<Utc>,
        state: FireState,
        reason: Option<String>,
    ) -> Self {
        Self {
            schedule,
            nominal,
            state,
            reason,
            running: 0,
            lateness: Duration::ZERO,
            snapshot: false,
        }
    }
}

impl Store {
    fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// Gives a live fire back with its lease run out, so that an instance takes it over at
    /// once; `set` changes more columns (`"state = 'claimed', "`).
    async fn hand_back(
        &self,
        owner: &str,
        fire: &FireClaim,
        set: &str,
        reason: String,
    ) -> CoreResult<bool> {
        let sql = format!(
            "UPDATE {} SET {set}lease_until = {}, reason = ? \
             WHERE id = ? AND epoch = ? AND owner = ? AND state IN ({LIVE})",
            self.inner.fires,
            self.dialect().now_micros()
        );
        let values = vec![
            reason.into(),
            fire.fire_id.into(),
            fire.epoch.into(),
            owner.into(),
        ];
        self.changes_one(&sql, values).await
    }

    /// Runs a write fenced by epoch and owner: true when it changed the one row it names.
    async fn changes_one(&self, sql: &str, values: Vec<Value>) -> CoreResult<bool> {
        Ok(self
            .execute(&self.inner.db, sql, values)
            .await
            .map_err(db)?
            == 1)
    }

    async fn now_in(&self, conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
        let sql = format!("SELECT {} AS now", self.dialect().now_micros());
        let rows = self.query(conn, &sql, Vec::new()).await?;
        let row = rows
            .first()
            .ok_or_else(|| DbErr::RecordNotFound("the database's clock".to_owned()))?;
        row.try_get("", "now")
    }

    fn jobs_filter(jobs: &[Arc<str>], column: &str) -> (String, Vec<Value>) {
        (
            format!("{column} IN ({})", placeholders(jobs.len())),
            jobs.iter().map(|j| (**j).into()).collect(),
        )
    }

    /// Tells the other instances that the schedules changed (PostgreSQL NOTIFY): called after
    /// writes that move a schedule in time.
    pub(crate) async fn notify_change(&self) {
        #[cfg(feature = "postgres")]
        if self.dialect() == Dialect::Postgres {
            let sql = format!("SELECT pg_notify('{}', '')", self.channel());
            if let Err(error) = self.inner.db.execute_unprepared(&sql).await {
                tracing::warn!(%error, "could not notify the other instances of a change");
            }
        }
    }

    #[cfg(feature = "postgres")]
    fn channel(&self) -> String {
        format!("{}changes", self.inner.options.table_prefix)
    }

    async fn claim_in(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> Result<Option<Claimed>, DbErr> {
        let txn = self.inner.db.begin().await?;
        let now = self.now_in(&txn).await?;
        let now_time = micros(Some(now)).unwrap_or_default();
        let (filter, mut values) = Self::jobs_filter(jobs, "job");
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE due_time IS NOT NULL AND due_time <= ? AND {filter} \
             ORDER BY due_time LIMIT ?{}",
            self.inner.schedules,
            self.dialect().skip_locked()
        );
        values.insert(0, now.into());
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = self.query(&txn, &sql, values).await?;
        let mut claimed = Claimed::default();
        claimed.more = rows.len() == limit;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            match schedule_from_row(row) {
                Ok(schedule) => {
                    let version: i64 = row.try_get("", "version")?;
                    let due_time = micros(row.try_get("", "due_time")?);
                    due.push((schedule, version, due_time));
                }
                Err(error) => {
                    tracing::error!(%error, "a due schedule cannot be read; it is left as it is");
                }
            }
        }
        if due.is_empty() {
            txn.commit().await?;
            return Ok(Some(claimed));
        }
        // Every statement below covers the whole batch: a claim costs a handful of round
        // trips however many schedules are due, and holds its row locks that briefly.
        let mut live = self
            .live_counts(&txn, due.iter().map(|(s, _, _)| s.id()), now)
            .await?;
        let lease_until = now.saturating_add(lease_micros(self.inner.options.lease));
        let mut planned: Vec<PlannedFire<'_>> = Vec::new();
        let mut advanced = Vec::new();
        let mut finished = Vec::new();
        for (schedule, version, due_time) in &due {
            let Some(next_run_time) = schedule.next_run_time() else {
                continue;
            };
            // Lateness counts from the jittered due time.
            let plan = plan_due(schedule, due_time.unwrap_or(next_run_time), now_time);
            let last = plan.next_run_time.is_none();
            let live = live.entry(schedule.id().to_owned()).or_default();
            for nominal in plan.run {
                if *live < schedule.max_instances() {
                    *live += 1;
                    let state = if running {
                        FireState::Running
                    } else {
                        FireState::Claimed
                    };
                    let mut fire = PlannedFire::new(schedule, nominal, state, None);
                    fire.snapshot = last;
                    planned.push(fire);
                } else {
                    let reason = format!("max_instances: {live} run(s) going");
                    let mut fire =
                        PlannedFire::new(schedule, nominal, FireState::Skipped, Some(reason));
                    fire.running = *live;
                    planned.push(fire);
                }
            }
            for (nominal, lateness) in plan.missed {
                let reason = format!(
                    "misfire: {:.3} s late, grace {}",
                    lateness.as_secs_f64(),
                    schedule.misfire_grace_time().map_or_else(
                        || "none".to_owned(),
                        |g| format!("{:.3} s", g.as_secs_f64())
                    )
                );
                let mut fire = PlannedFire::new(schedule, nominal, FireState::Missed, Some(reason));
                fire.lateness = lateness;
                planned.push(fire);
            }
            match plan.next_run_time {
                Some(next) => advanced.push((
                    schedule.id(),
                    *version,
                    to_micros(next),
                    due_time_of(schedule, Some(next)).unwrap_or_else(|| to_micros(next)),
                )),
                None => finished.push((schedule.id(), *version)),
            }
        }
        let recorded = self
            .record_fires(&txn, &planned, Some(owner), lease_until, now)
            .await?;
        for (fire, id) in planned.into_iter().zip(recorded) {
            // No id: the fire already had a row (its schedule was removed and added again,
            // say); it is not recorded, or run, twice.
            let Some(fire_id) = id else { continue };
            let schedule_id = || Arc::<str>::from(fire.schedule.id());
            match fire.state {
                FireState::Claimed | FireState::Running => {
                    let claim = FireClaim::new(fire_id, fire.schedule.clone(), fire.nominal, 1, 1);
                    claimed
                        .fires
                        .push(if running { claim.started() } else { claim });
                }
                FireState::Skipped => {
                    claimed
                        .skipped
                        .push((schedule_id(), fire.nominal, fire.running))
                }
                _ => claimed
                    .missed
                    .push((schedule_id(), fire.nominal, fire.lateness)),
            }
        }
        let expected = advanced.len() + finished.len();
        let changed = self.advance_schedules(&txn, &advanced).await?
            + self.delete_schedules(&txn, &finished).await?;
        if usize::try_from(changed).ok() != Some(expected) {
            // Another instance changed a schedule since it was read (SQLite, which has no row
            // locks): give this claim up; the next one sees the new state.
            txn.rollback().await?;
            return Ok(None);
        }
        claimed.finished = finished.iter().map(|(id, _)| Arc::from(*id)).collect();
        txn.commit().await?;
        Ok(Some(claimed))
    }

    /// Records a live fire lost, with why; false when it changed hands meanwhile.
    async fn mark_lost(
        &self,
        txn: &DatabaseTransaction,
        fire_id: i64,
        epoch: i64,
        reason: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let sql = format!(
            "UPDATE {} SET state = 'lost', reason = ?, finished_at = ?, lease_until = NULL, claim = NULL \
             WHERE id = ? AND epoch = ?",
            self.inner.fires
        );
        let values = vec![reason.into(), now.into(), fire_id.into(), epoch.into()];
        Ok(self.execute(txn, &sql, values).await? == 1)
    }

    /// The stored schedules of these fire rows, by id (removed ones are absent).
    async fn current_schedules(
        &self,
        txn: &DatabaseTransaction,
        fires: &[QueryResult],
    ) -> Result<HashMap<String, Schedule>, DbErr> {
        let mut ids = Vec::new();
        for row in fires {
            if row.try_get::<Option<String>>("", "claim")?.is_none() {
                ids.push(Value::from(row.try_get::<String>("", "schedule_id")?));
            }
        }
        let mut schedules = HashMap::new();
        if ids.is_empty() {
            return Ok(schedules);
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE id IN ({})",
            self.inner.schedules,
            placeholders(ids.len())
        );
        for row in self.query(txn, &sql, ids).await? {
            match schedule_from_row(&row) {
                Ok(schedule) => {
                    schedules.insert(schedule.id().to_owned(), schedule);
                }
                Err(error) => tracing::error!(%error, "a schedule cannot be read"),
            }
        }
        Ok(schedules)
    }

    /// Live fires (claimed or running, lease not run out) of each of these schedules.
    async fn live_counts(
        &self,
        txn: &DatabaseTransaction,
        ids: impl Iterator<Item = &str>,
        now: i64,
    ) -> Result<HashMap<String, u32>, DbErr> {
        let mut values: Vec<Value> = ids.map(Into::into).collect();
        let sql = format!(
            "SELECT schedule_id, COUNT(*) AS live FROM {} WHERE schedule_id IN ({}) \
             AND state IN ({LIVE}) AND lease_until > ? GROUP BY schedule_id",
            self.inner.fires,
            placeholders(values.len())
        );
        values.push(now.into());
        let mut counts = HashMap::new();
        for row in self.query(txn, &sql, values).await? {
            let live: i64 = row.try_get("", "live")?;
            counts.insert(
                row.try_get("", "schedule_id")?,
                u32::try_from(live).unwrap_or(u32::MAX),
            );
        }
        Ok(counts)
    }

    /// Inserts planned fires, many rows per statement; for each, its id, or `None` when the
    /// fire already had a row.
    async fn record_fires(
        &self,
        txn: &DatabaseTransaction,
        planned: &[PlannedFire<'_>],
        owner: Option<&str>,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<Option<i64>>, DbErr> {
        let mut ids = Vec::with_capacity(planned.len());
        for chunk in planned.chunks(self.dialect().rows_per_statement()) {
            let mut values = Vec::with_capacity(chunk.len() * 12);
            for fire in chunk {
                let live = matches!(fire.state, FireState::Claimed | FireState::Running);
                values.extend([
                    fire.schedule.id().into(),
                    fire.schedule.job_name().map(str::to_owned).into(),
                    (live && fire.snapshot)
                        .then(|| serde_json::to_string(fire.schedule).unwrap_or_default())
                        .into(),
                    to_micros(fire.nominal).into(),
                    fire.state.as_str().into(),
                    fire.reason.clone().into(),
                    owner.map(str::to_owned).into(),
                    i32::from(live).into(),
                    live.then_some(lease_until).into(),
                    now.into(),
                    (fire.state == FireState::Running).then_some(now).into(),
                    (!live).then_some(now).into(),
                ]);
            }
            let sql = self.dialect().insert_ignore(
                &self.inner.fires,
                FIRE_COLUMNS,
                &vec![FIRE_ROW; chunk.len()].join(", "),
            );
            self.execute(txn, &sql, values).await?;
            // Which rows this transaction wrote: those with its owner and its instant.
            let sql = format!(
                "SELECT id, schedule_id, nominal_time FROM {} WHERE (schedule_id, nominal_time) IN ({}) \
                 AND {} AND claimed_at = ? AND epoch = 1",
                self.inner.fires,
                vec!["(?, ?)"; chunk.len()].join(", "),
                if owner.is_some() {
                    "owner = ?"
                } else {
                    "owner IS NULL"
                }
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2 + 2);
            for fire in chunk {
                values.extend([fire.schedule.id().into(), to_micros(fire.nominal).into()]);
            }
            values.extend(owner.map(Value::from));
            values.push(now.into());
            let mut written = HashMap::new();
            for row in self.query(txn, &sql, values).await? {
                let key: (String, i64) = (
                    row.try_get("", "schedule_id")?,
                    row.try_get("", "nominal_time")?,
                );
                written.insert(key, row.try_get::<i64>("", "id")?);
            }
            ids.extend(chunk.iter().map(|fire| {
                written
                    .get(&(fire.schedule.id().to_owned(), to_micros(fire.nominal)))
                    .copied()
            }));
        }
        Ok(ids)
    }

    /// Moves schedules to their next run time, each only if its version is still the one
    /// read; how many moved.
    async fn advance_schedules(
        &self,
        txn: &DatabaseTransaction,
        advanced: &[(&str, i64, i64, i64)],
    ) -> Result<u64, DbErr> {
        let mut changed = 0;
        for chunk in advanced.chunks(self.dialect().rows_per_statement()) {
            let cases = "WHEN ? THEN ? ".repeat(chunk.len());
            let sql = format!(
                "UPDATE {} SET next_run_time = CASE id {cases}END, due_time = CASE id {cases}END, \
                 version = version + 1 WHERE id IN ({}) AND version = CASE id {cases}END",
                self.inner.schedules,
                placeholders(chunk.len())
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 7);
            values.extend(
                chunk
                    .iter()
                    .flat_map(|&(id, _, next, _)| [id.into(), next.into()]),
            );
            values.extend(
                chunk
                    .iter()
                    .flat_map(|&(id, _, _, due)| [id.into(), due.into()]),
            );
            values.extend(chunk.iter().map(|&(id, _, _, _)| Value::from(id)));
            values.extend(
                chunk
                    .iter()
                    .flat_map(|&(id, version, _, _)| [id.into(), version.into()]),
            );
            changed += self.execute(txn, &sql, values).await?;
        }
        Ok(changed)
    }

    /// Deletes schedules with no fire left, each only if its version is still the one read.
    async fn delete_schedules(
        &self,
        txn: &DatabaseTransaction,
        finished: &[(&str, i64)],
    ) -> Result<u64, DbErr> {
        let mut changed = 0;
        for chunk in finished.chunks(self.dialect().rows_per_statement()) {
            let sql = format!(
                "DELETE FROM {} WHERE id IN ({}) AND version = CASE id {}END",
                self.inner.schedules,
                placeholders(chunk.len()),
                "WHEN ? THEN ? ".repeat(chunk.len())
            );
            let mut values: Vec<Value> = chunk.iter().map(|&(id, _)| id.into()).collect();
            values.extend(
                chunk
                    .iter()
                    .flat_map(|&(id, version)| [id.into(), version.into()]),
            );
            changed += self.execute(txn, &sql, values).await?;
        }
        Ok(changed)
    }

    async fn reclaim_in(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> Result<Claimed, DbErr> {
        let txn = self.inner.db.begin().await?;
        let now = self.now_in(&txn).await?;
        let f = &self.inner.fires;
        let (filter, mut values) = Self::jobs_filter(jobs, "job");
        let sql = format!(
            "SELECT id, schedule_id, claim, nominal_time, state, epoch, attempt, owner FROM {f} \
             WHERE state IN ({LIVE}) AND lease_until < ? AND {filter} ORDER BY lease_until LIMIT ?{}",
            self.dialect().skip_locked()
        );
        values.insert(0, now.into());
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = self.query(&txn, &sql, values).await?;
        let lease_until = now.saturating_add(lease_micros(self.inner.options.lease));
        let mut claimed = Claimed::default();
        let current = self.current_schedules(&txn, &rows).await?;
        for row in &rows {
            let fire_id: i64 = row.try_get("", "id")?;
            let schedule_id: String = row.try_get("", "schedule_id")?;
            let claim: Option<String> = row.try_get("", "claim")?;
            // The schedule's last fire carries a copy (the claim deleted the schedule); any
            // other runs the schedule as it is now.
            let schedule = match claim.as_deref().map(serde_json::from_str::<Schedule>) {
                Some(Ok(schedule)) => schedule,
                None => match current.get(&schedule_id) {
                    Some(schedule) => schedule.clone(),
                    None => {
                        let reason =
                            "its schedule was removed while the fire was live; not run again";
                        let epoch: i64 = row.try_get("", "epoch")?;
                        if self.mark_lost(&txn, fire_id, epoch, reason, now).await? {
                            let nominal: i64 = row.try_get("", "nominal_time")?;
                            claimed.lost.push((
                                schedule_id.into(),
                                micros(Some(nominal)).unwrap_or_default(),
                            ));
                        }
                        continue;
                    }
                },
                Some(Err(error)) => {
                    tracing::error!(
                        fire_id,
                        %error,
                        "an expired fire's copy of its schedule cannot be read; it is left as it is"
                    );
                    continue;
                }
            };
            let nominal: i64 = row.try_get("", "nominal_time")?;
            let state: String = row.try_get("", "state")?;
            let epoch: i64 = row.try_get("", "epoch")?;
            let attempt: i32 = row.try_get("", "attempt")?;
            let previous: Option<String> = row.try_get("", "owner")?;
            let previous = previous.unwrap_or_else(|| "?".to_owned());
            let nominal_time = micros(Some(nominal)).unwrap_or_default();
            let started = state == "running";
            if started && schedule.at_most_once() {
                let reason = format!(
                    "instance {previous} stopped renewing its lease while running it (at_most_once)"
                );
                if self.mark_lost(&txn, fire_id, epoch, &reason, now).await? {
                    claimed.lost.push((schedule.id().into(), nominal_time));
                }
                continue;
            }
            // A released or never-started claim is not an attempt; a run cut short is.
            let attempts = u32::try_from(attempt).unwrap_or(1) + u32::from(started);
            let sql = format!(
                "UPDATE {f} SET attempt = ?, epoch = epoch + 1, owner = ?, state = ?, lease_until = ?, \
                 claimed_at = ?, started_at = ?, reason = ? WHERE id = ? AND epoch = ?"
            );
            let reason = format!("taken over from {previous}, whose lease ran out");
            let values = vec![
                i32::try_from(attempts).unwrap_or(i32::MAX).into(),
                owner.into(),
                if running { "running" } else { "claimed" }.into(),
                lease_until.into(),
                now.into(),
                running.then_some(now).into(),
                reason.into(),
                fire_id.into(),
                epoch.into(),
            ];
            if self.execute(&txn, &sql, values).await? == 1 {
                let claim = FireClaim::new(fire_id, schedule, nominal_time, epoch + 1, attempts);
                claimed
                    .fires
                    .push(if running { claim.started() } else { claim });
            }
        }
        txn.commit().await?;
        Ok(claimed)
    }

    fn fire_record(row: &QueryResult) -> Result<FireRecord, DbErr> {
        let state: String = row.try_get("", "state")?;
        let attempt: i32 = row.try_get("", "attempt")?;
        let time = |column: &str| -> Result<Option<DateTime<Utc>>, DbErr> {
            Ok(micros(row.try_get("", column)?))
        };
        Ok(FireRecord::new(
            row.try_get("", "id")?,
            row.try_get("", "schedule_id")?,
            micros(Some(row.try_get("", "nominal_time")?)).unwrap_or_default(),
            FireState::parse(&state).unwrap_or(FireState::Failed),
            row.try_get("", "reason")?,
            row.try_get("", "owner")?,
            row.try_get("", "epoch")?,
            u32::try_from(attempt).unwrap_or(0),
            [
                time("claimed_at")?,
                time("started_at")?,
                time("finished_at")?,
            ],
            row.try_get("", "error")?,
        ))
    }

    async fn locked_schedule(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
    ) -> CoreResult<(Schedule, Option<i64>)> {
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT {COLUMNS}, paused_from FROM {} WHERE id = ?{lock}",
            self.inner.schedules
        );
        let rows = self.query(txn, &sql, vec![id.into()]).await.map_err(db)?;
        let row = rows
            .first()
            .ok_or_else(|| scheduler_core::Error::ScheduleNotFound(id.to_owned()))?;
        let paused_from: Option<i64> = row.try_get("", "paused_from").map_err(db)?;
        Ok((schedule_from_row(row)?, paused_from))
    }
}

#[async_trait]
impl SharedStore for Store {
    async fn now(&self) -> CoreResult<DateTime<Utc>> {
        let now = self.now_in(&self.inner.db).await.map_err(db)?;
        Ok(micros(Some(now)).unwrap_or_default())
    }

    async fn next_due(
        &self,
        jobs: &[Arc<str>],
    ) -> CoreResult<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        if jobs.is_empty() {
            return Ok((SharedStore::now(self).await?, None));
        }
        let (filter, mut values) = Self::jobs_filter(jobs, "job");
        values.extend(values.clone());
        let sql = format!(
            "SELECT {} AS now, (SELECT MIN(due_time) FROM {} WHERE {filter}) AS next, \
             (SELECT MIN(lease_until) FROM {} WHERE state IN ({LIVE}) AND {filter}) AS lease",
            self.dialect().now_micros(),
            self.inner.schedules,
            self.inner.fires
        );
        let rows = self.query(&self.inner.db, &sql, values).await.map_err(db)?;
        let row = rows
            .first()
            .ok_or_else(|| db(DbErr::RecordNotFound("the next due time".to_owned())))?;
        let now: i64 = row.try_get("", "now").map_err(db)?;
        let next: Option<i64> = row.try_get("", "next").map_err(db)?;
        let lease: Option<i64> = row.try_get("", "lease").map_err(db)?;
        // A lease runs out when the database's clock passes it: one microsecond later.
        let due = next
            .into_iter()
            .chain(lease.map(|l| l.saturating_add(1)))
            .min();
        Ok((micros(Some(now)).unwrap_or_default(), micros(due)))
    }

    async fn claim_due(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> CoreResult<Claimed> {
        if jobs.is_empty() {
            return Ok(Claimed::default());
        }
        match self.claim_in(owner, jobs, limit, running).await {
            Ok(Some(claimed)) => Ok(claimed),
            Ok(None) => {
                let mut retry = Claimed::default();
                retry.more = true;
                Ok(retry)
            }
            // SQLite refuses a second writer while one holds the lock: the next claim retries.
            Err(error)
                if self.dialect() == Dialect::Sqlite && error.to_string().contains("locked") =>
            {
                Ok(Claimed::default())
            }
            Err(error) => Err(db(error)),
        }
    }

    async fn reclaim_expired(
        &self,
        owner: &str,
        jobs: &[Arc<str>],
        limit: usize,
        running: bool,
    ) -> CoreResult<Claimed> {
        if jobs.is_empty() {
            return Ok(Claimed::default());
        }
        self.reclaim_in(owner, jobs, limit, running)
            .await
            .map_err(db)
    }

    async fn claim_now(&self, owner: &str, schedule_id: &str) -> CoreResult<FireClaim> {
        let txn = self.inner.db.begin().await.map_err(db)?;
        let (schedule, _) = self.locked_schedule(&txn, schedule_id).await?;
        let now = self.now_in(&txn).await.map_err(db)?;
        let live = self
            .live_counts(&txn, std::iter::once(schedule_id), now)
            .await
            .map_err(db)?
            .get(schedule_id)
            .copied()
            .unwrap_or(0);
        if live >= schedule.max_instances() {
            return Err(scheduler_core::Error::MaxInstancesReached {
                id: schedule_id.to_owned(),
                running: live,
            });
        }
        let lease_until = now.saturating_add(lease_micros(self.inner.options.lease));
        // Its nominal time is now; two extra runs in the same microsecond: the second takes
        // the next one.
        for nominal in now..now + 1000 {
            let nominal = micros(Some(nominal)).unwrap_or_default();
            let fire = PlannedFire::new(
                &schedule,
                nominal,
                FireState::Claimed,
                Some("run now".to_owned()),
            );
            let recorded = self
                .record_fires(&txn, &[fire], Some(owner), lease_until, now)
                .await
                .map_err(db)?;
            if let Some(Some(fire_id)) = recorded.first() {
                let fire_id = *fire_id;
                txn.commit().await.map_err(db)?;
                return Ok(FireClaim::new(fire_id, schedule, nominal, 1, 1));
            }
        }
        Err(db(DbErr::Custom(format!(
            "\"{schedule_id}\" already has a fire at each microsecond of the last millisecond"
        ))))
    }

    async fn start_fire(&self, owner: &str, fire: &FireClaim) -> CoreResult<bool> {
        let lease = lease_micros(self.inner.options.lease);
        let now = self.dialect().now_micros();
        let sql = format!(
            "UPDATE {} SET state = 'running', started_at = {now}, lease_until = {now} + ? \
             WHERE id = ? AND epoch = ? AND owner = ? AND state = 'claimed'",
            self.inner.fires
        );
        let values = vec![
            lease.into(),
            fire.fire_id.into(),
            fire.epoch.into(),
            owner.into(),
        ];
        self.changes_one(&sql, values).await
    }

    async fn finish_fire(
        &self,
        owner: &str,
        fire: &FireClaim,
        outcome: &FireOutcome,
    ) -> CoreResult<bool> {
        let now = self.dialect().now_micros();
        let (state, reason, error) = match outcome {
            FireOutcome::Succeeded => ("succeeded", None, None),
            FireOutcome::Failed(error) => ("failed", None, Some(error.clone())),
            FireOutcome::Panicked(message) => {
                ("failed", Some("panicked".to_owned()), Some(message.clone()))
            }
            FireOutcome::Aborted if fire.schedule.at_most_once() => (
                "aborted",
                Some(format!("aborted at {owner}'s shutdown deadline")),
                None,
            ),
            FireOutcome::Aborted => {
                // At least once: the fire goes back for another instance.
                let reason = format!("aborted at {owner}'s shutdown deadline; to be run again");
                return self.hand_back(owner, fire, "", reason).await;
            }
            FireOutcome::NotStarted => {
                // Never began here: back as a claim, not an attempt.
                let reason = format!("released by {owner} at shutdown before it started");
                return self
                    .hand_back(
                        owner,
                        fire,
                        "state = 'claimed', started_at = NULL, ",
                        reason,
                    )
                    .await;
            }
            _ => ("failed", None, Some(format!("{outcome:?}"))),
        };
        let sql = format!(
            "UPDATE {} SET state = ?, reason = COALESCE(?, reason), error = ?, finished_at = {now}, lease_until = NULL, claim = NULL \
             WHERE id = ? AND epoch = ? AND owner = ? AND state IN ({LIVE})",
            self.inner.fires
        );
        let values = vec![
            state.into(),
            reason.into(),
            error.into(),
            fire.fire_id.into(),
            fire.epoch.into(),
            owner.into(),
        ];
        self.changes_one(&sql, values).await
    }

    async fn renew_leases(&self, owner: &str, fire_ids: &[i64]) -> CoreResult<()> {
        for chunk in fire_ids.chunks(self.dialect().rows_per_statement()) {
            let sql = format!(
                "UPDATE {} SET lease_until = {} + ? WHERE owner = ? AND state IN ({LIVE}) AND id IN ({})",
                self.inner.fires,
                self.dialect().now_micros(),
                placeholders(chunk.len())
            );
            let mut values = vec![lease_micros(self.inner.options.lease).into(), owner.into()];
            values.extend(chunk.iter().map(|&id| Value::from(id)));
            self.execute(&self.inner.db, &sql, values)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    async fn release(&self, owner: &str) -> CoreResult<()> {
        let now = self.dialect().now_micros();
        let sql = format!(
            "UPDATE {} SET lease_until = {now}, reason = ? WHERE owner = ? AND state = 'claimed'",
            self.inner.fires
        );
        let values = vec![
            format!("released by {owner} at shutdown").into(),
            owner.into(),
        ];
        if self
            .execute(&self.inner.db, &sql, values)
            .await
            .map_err(db)?
            > 0
        {
            self.notify_change().await;
        }
        Ok(())
    }

    async fn pause(&self, id: &str) -> CoreResult<Schedule> {
        let txn = self.inner.db.begin().await.map_err(db)?;
        let (schedule, _) = self.locked_schedule(&txn, id).await?;
        if schedule.paused() {
            return Ok(schedule);
        }
        let sql = format!(
            "UPDATE {} SET paused = ?, paused_from = next_run_time, next_run_time = NULL, due_time = NULL, \
             version = version + 1 WHERE id = ?",
            self.inner.schedules
        );
        self.execute(&txn, &sql, vec![true.into(), id.into()])
            .await
            .map_err(db)?;
        txn.commit().await.map_err(db)?;
        self.notify_change().await;
        self.get(id)
            .await?
            .ok_or_else(|| scheduler_core::Error::ScheduleNotFound(id.to_owned()))
    }

    async fn resume(&self, id: &str) -> CoreResult<Schedule> {
        let txn = self.inner.db.begin().await.map_err(db)?;
        let (schedule, paused_from) = self.locked_schedule(&txn, id).await?;
        if !schedule.paused() {
            return Ok(schedule);
        }
        let now = self.now_in(&txn).await.map_err(db)?;
        let now_time = micros(Some(now)).unwrap_or_default();
        let trigger = schedule.trigger();
        // The fires it skipped while paused go in the ledger, so "why did it not run at T?"
        // has an answer.
        let mut skipped = Vec::new();
        let mut t = micros(paused_from);
        while let Some(nominal) = t {
            if nominal > now_time || skipped.len() == CATCH_UP_LIMIT {
                break;
            }
            let reason = Some("schedule paused".to_owned());
            skipped.push(PlannedFire::new(
                &schedule,
                nominal,
                FireState::Skipped,
                reason,
            ));
            t = trigger.next_fire_time(Some(nominal), nominal);
        }
        self.record_fires(&txn, &skipped, None, now, now)
            .await
            .map_err(db)?;
        let next = trigger.next_fire_time(None, now_time);
        match next {
            Some(next) => {
                let sql = format!(
                    "UPDATE {} SET paused = ?, paused_from = NULL, next_run_time = ?, due_time = ?, \
                     version = version + 1 WHERE id = ?",
                    self.inner.schedules
                );
                let due = due_time_of(&schedule, Some(next));
                self.execute(
                    &txn,
                    &sql,
                    vec![false.into(), to_micros(next).into(), due.into(), id.into()],
                )
                .await
                .map_err(db)?;
            }
            None => {
                let sql = format!("DELETE FROM {} WHERE id = ?", self.inner.schedules);
                self.execute(&txn, &sql, vec![id.into()])
                    .await
                    .map_err(db)?;
            }
        }
        txn.commit().await.map_err(db)?;
        self.notify_change().await;
        let mut resumed = schedule;
        if let Some(current) = self.get(id).await? {
            resumed = current;
        }
        Ok(resumed)
    }

    async fn fires(&self, schedule_id: &str, limit: usize) -> CoreResult<Vec<FireRecord>> {
        let sql = format!(
            "SELECT id, schedule_id, nominal_time, state, reason, owner, epoch, attempt, claimed_at, started_at, \
             finished_at, error FROM {} WHERE schedule_id = ? ORDER BY nominal_time DESC LIMIT ?",
            self.inner.fires
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(&self.inner.db, &sql, vec![schedule_id.into(), limit.into()])
            .await
            .map_err(db)?;
        if rows.is_empty() && self.get(schedule_id).await?.is_none() {
            return Err(scheduler_core::Error::ScheduleNotFound(
                schedule_id.to_owned(),
            ));
        }
        rows.iter()
            .map(|row| Self::fire_record(row).map_err(db))
            .collect()
    }

    async fn prune(&self) -> CoreResult<u64> {
        let f = &self.inner.fires;
        let now = self.now_in(&self.inner.db).await.map_err(db)?;
        let age = lease_micros(self.inner.options.keep_fires_for);
        let sql = format!("DELETE FROM {f} WHERE state NOT IN ({LIVE}) AND nominal_time < ?");
        let old = self
            .execute(&self.inner.db, &sql, vec![now.saturating_sub(age).into()])
            .await
            .map_err(db)?;
        let sql = format!(
            "DELETE FROM {f} WHERE state NOT IN ({LIVE}) AND id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
             (PARTITION BY schedule_id ORDER BY nominal_time DESC) AS position FROM {f}) ranked WHERE position > ?)"
        );
        let keep = i64::try_from(self.inner.options.keep_fires).unwrap_or(i64::MAX);
        let extra = self
            .execute(&self.inner.db, &sql, vec![keep.into()])
            .await
            .map_err(db)?;
        Ok(old + extra)
    }

    async fn wait_for_change(&self, timeout: Duration) {
        #[cfg(feature = "postgres")]
        if self.dialect() == Dialect::Postgres {
            if let Some(changed) = self.listener().await {
                let _ = tokio::time::timeout(timeout, changed.notified()).await;
                return;
            }
        }
        tokio::time::sleep(timeout.min(self.inner.options.poll_interval)).await;
    }

    fn lease(&self) -> Duration {
        self.inner.options.lease
    }

    fn recheck_interval(&self) -> Duration {
        match self.dialect() {
            Dialect::Postgres => self.inner.options.safety_recheck,
            Dialect::MySql | Dialect::Sqlite => self.inner.options.poll_interval,
        }
    }
}

impl Store {
    /// The notification listener (PostgreSQL), started on first use; `None` if it cannot
    /// listen (then the store polls).
    #[cfg(feature = "postgres")]
    async fn listener(&self) -> Option<Arc<tokio::sync::Notify>> {
        let slot = &self.inner.listener;
        if let Some(notify) = slot.get() {
            return Some(Arc::clone(notify));
        }
        let pool = self.inner.db.get_postgres_connection_pool();
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for changes; polling instead");
                return None;
            }
        };
        if let Err(error) = listener.listen(&self.channel()).await {
            tracing::warn!(%error, "cannot LISTEN for changes; polling instead");
            return None;
        }
        let notify = Arc::new(tokio::sync::Notify::new());
        if slot.set(Arc::clone(&notify)).is_err() {
            // Another task set it up first.
            return slot.get().cloned();
        }
        let weak = Arc::downgrade(&notify);
        tokio::spawn(async move {
            loop {
                let received = listener.try_recv().await;
                let Some(notify) = weak.upgrade() else { return };
                match received {
                    Ok(Some(_)) => notify.notify_waiters(),
                    // The connection dropped (sqlx reconnects on the next call): look now,
                    // something may have changed meanwhile.
                    Ok(None) => notify.notify_waiters(),
                    Err(error) => {
                        tracing::warn!(%error, "LISTEN connection failed; retrying");
                        notify.notify_waiters();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some(notify)
    }
}
