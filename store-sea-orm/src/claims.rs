//! Claiming due fires: one transaction reads the due schedules under a lock, records what the
//! engine's planner decided for each, and moves them on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scheduler_core::store::shared::reason;
use scheduler_core::store::{
    ClaimBatch, ClaimedFire, ClaimedRun, Claimer, DueSchedule, FireClaims, FireState, FireToken,
    Planner,
};
use scheduler_core::{Error as CoreError, Schedule};
use sea_orm::sea_query::{
    Alias, CaseStatement, Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, Value};

use crate::ledger::FireRow;
use crate::sql::read_rows;
use crate::sql::{
    COUNTED, F, HELD, S, Transient, UNFINISHED_CONDITION, WAITING, duration_micros, in_strings,
    is_transient, is_waiting, lock_skipping, micros, rolled_back, state, time, transient,
};
use crate::{Store, db};

type CoreResult<T> = scheduler_core::Result<T>;

/// A schedule's fires that count for its overlap: live (claimed or running, lease not run
/// out), and waiting for a run to end.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    live: u32,
    waiting: u32,
}

/// A due schedule as the claim read it.
struct Due {
    schedule: Schedule,
    due_time: DateTime<Utc>,
}

impl Store {
    pub(crate) fn lease_micros(&self) -> i64 {
        duration_micros(self.inner.options.lease)
    }

    /// Live fires (claimed or running, lease not run out) and waiting fires of each of these
    /// schedules.
    async fn counted(
        &self,
        txn: &DatabaseTransaction,
        ids: Vec<String>,
        now: i64,
    ) -> Result<HashMap<String, Counts>, DbErr> {
        let mut counts: HashMap<String, Counts> = HashMap::new();
        for chunk in ids.chunks(self.dialect().rows_per_statement()) {
            // Every unfinished fire, counted here: a condition on the lease in SQL would let
            // the database read the index of every schedule's live fires, dead versions and
            // all, instead of the few fires of these schedules in the partial index.
            let select = Query::select()
                .column(F::ScheduleId)
                .column(F::State)
                .column(F::LeaseUntil)
                .from(self.tables().fires.clone())
                .and_where(in_strings(F::ScheduleId, chunk.iter().cloned()))
                .and_where(Expr::cust(UNFINISHED_CONDITION))
                .to_owned();
            for row in txn.query_all(&select).await? {
                let fire_state: String = row.try_get("", "state")?;
                let lease_until: Option<i64> = row.try_get("", "lease_until")?;
                let live = COUNTED.contains(&fire_state.as_str())
                    && lease_until.is_some_and(|until| until > now);
                if !live && fire_state != WAITING {
                    continue;
                }
                let entry = counts.entry(row.try_get("", "schedule_id")?).or_default();
                if live {
                    entry.live = entry.live.saturating_add(1);
                } else {
                    entry.waiting = entry.waiting.saturating_add(1);
                }
            }
        }
        Ok(counts)
    }

    /// Marks the live fires of these schedules as asked to stop by a newer fire (overlap
    /// policy cancel_running); their owners learn it at their next lease renewal.
    async fn ask_to_stop(
        &self,
        txn: &DatabaseTransaction,
        ids: &[&str],
        now: i64,
    ) -> Result<(), DbErr> {
        for chunk in ids.chunks(self.dialect().rows_per_statement()) {
            let update = Query::update()
                .table(self.tables().fires.clone())
                .value(F::CancelAt, now)
                .and_where(in_strings(F::ScheduleId, chunk.iter().copied()))
                .and_where(in_strings(F::State, HELD))
                .and_where(Expr::col(F::CancelAt).is_null())
                .to_owned();
            txn.execute(&update).await?;
        }
        Ok(())
    }

    /// Claims waiting fires, oldest first, of schedules that have room again: as many as
    /// `max_instances` leaves room for, each as a run of its own. The schedules' rows are
    /// locked (skipping those another instance holds), so two instances never fill one room.
    async fn claim_waiting(
        &self,
        txn: &DatabaseTransaction,
        claimer: &Claimer<'_>,
        now: i64,
        batch: &mut ClaimBatch,
    ) -> Result<(), DbErr> {
        let waiting_schedules = Query::select()
            .distinct()
            .column(F::ScheduleId)
            .from(self.tables().fires.clone())
            .and_where(is_waiting(None))
            .and_where(in_strings(F::Job, claimer.jobs.iter().map(|j| &**j)))
            .limit(u64::try_from(claimer.limit).unwrap_or(u64::MAX))
            .to_owned();
        let ids: Vec<String> = txn
            .query_all(&waiting_schedules)
            .await?
            .iter()
            .map(|row| row.try_get("", "schedule_id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut select = self.select_schedules();
        select
            .and_where(in_strings(S::Id, ids.iter().cloned()))
            .and_where(Expr::col(S::Paused).eq(false));
        lock_skipping(&mut select);
        let schedules = read_rows(&txn.query_all(&select).await?);
        if schedules.is_empty() {
            return Ok(());
        }
        let counts = self
            .counted(
                txn,
                schedules
                    .iter()
                    .map(|v| v.schedule.id().to_owned())
                    .collect(),
                now,
            )
            .await?;
        let lease_until = now.saturating_add(self.lease_micros());
        let held = if claimer.start_at_once {
            FireState::Running
        } else {
            FireState::Claimed
        };
        for v in schedules {
            let schedule = v.schedule;
            let live = counts.get(schedule.id()).map_or(0, |c| c.live);
            let room = schedule.max_instances().saturating_sub(live);
            if room == 0 {
                continue;
            }
            let oldest = Query::select()
                .columns([F::Id, F::NominalTime])
                .from(self.tables().fires.clone())
                .and_where(Expr::col(F::ScheduleId).eq(schedule.id()))
                .and_where(is_waiting(None))
                .order_by(F::NominalTime, Order::Asc)
                .limit(u64::from(room))
                .to_owned();
            for row in txn.query_all(&oldest).await? {
                let fire_id: i64 = row.try_get("", "id")?;
                let nominal: i64 = row.try_get("", "nominal_time")?;
                let update = Query::update()
                    .table(self.tables().fires.clone())
                    .value(F::State, state(held))
                    .value(F::Owner, claimer.owner)
                    .value(F::Attempt, 1)
                    .value(F::LeaseUntil, lease_until)
                    .value(F::ClaimedAt, now)
                    .value(
                        F::StartedAt,
                        Expr::val((held == FireState::Running).then_some(now)),
                    )
                    .value(F::Reason, Expr::val(Value::String(None)))
                    .and_where(Expr::col(F::Id).eq(fire_id))
                    .and_where(Expr::col(F::State).eq(WAITING))
                    .to_owned();
                if txn.execute(&update).await?.rows_affected() == 1 {
                    let fire = ClaimedFire::new(
                        FireToken::new(fire_id.to_string(), 1),
                        time(Some(nominal)).unwrap_or_default(),
                        1,
                        held,
                    );
                    batch
                        .runs
                        .push(ClaimedRun::new(schedule.clone(), vec![fire]));
                }
            }
        }
        Ok(())
    }

    /// Moves schedules to their next run and due times; how many moved. The claim holds their
    /// rows (row locks; SQLite's one writer), so no other write comes between its read and
    /// this. Schedules that move to the same times (many on one grid, the common case) share
    /// one plain statement; the others are written with a `CASE` per column.
    async fn advance(
        &self,
        txn: &DatabaseTransaction,
        advanced: &[(&str, i64, i64)],
    ) -> Result<u64, DbErr> {
        let mut same: BTreeMap<(i64, i64), Vec<&str>> = BTreeMap::new();
        for &(id, next, due) in advanced {
            same.entry((next, due)).or_default().push(id);
        }
        let mut moved = 0;
        let mut mixed = Vec::new();
        for ((next, due), ids) in same {
            if ids.len() < 8 {
                mixed.extend(ids.into_iter().map(|id| (id, next, due)));
                continue;
            }
            for chunk in ids.chunks(self.dialect().rows_per_statement()) {
                let update = Query::update()
                    .table(self.tables().schedules.clone())
                    .value(S::NextRunTime, next)
                    .value(S::DueTime, due)
                    .value(S::Version, Expr::col(S::Version).add(1))
                    .and_where(in_strings(S::Id, chunk.iter().copied()))
                    .to_owned();
                moved += txn.execute(&update).await?.rows_affected();
            }
        }
        for chunk in mixed.chunks(self.dialect().rows_per_statement()) {
            let case = |value: fn(&(&str, i64, i64)) -> i64| {
                chunk.iter().fold(CaseStatement::new(), |case, row| {
                    case.case(Expr::col(S::Id).eq(row.0), value(row))
                })
            };
            let update = Query::update()
                .table(self.tables().schedules.clone())
                .value(S::NextRunTime, case(|r| r.1))
                .value(S::DueTime, case(|r| r.2))
                .value(S::Version, Expr::col(S::Version).add(1))
                .and_where(in_strings(S::Id, chunk.iter().map(|r| r.0)))
                .to_owned();
            moved += txn.execute(&update).await?.rows_affected();
        }
        Ok(moved)
    }

    /// Deletes schedules with no fire left (their rows are the claim's, as above).
    async fn delete_finished(
        &self,
        txn: &DatabaseTransaction,
        finished: &[&str],
    ) -> Result<u64, DbErr> {
        let mut deleted = 0;
        for chunk in finished.chunks(self.dialect().rows_per_statement()) {
            let delete = Query::delete()
                .from_table(self.tables().schedules.clone())
                .and_where(in_strings(S::Id, chunk.iter().copied()))
                .to_owned();
            deleted += txn.execute(&delete).await?.rows_affected();
        }
        Ok(deleted)
    }

    /// One claim; `None` when a schedule it read changed before it was moved on (which the
    /// claim's locks should make impossible): the claim is given up and made again.
    async fn claim_in(
        &self,
        claimer: &Claimer<'_>,
        planner: &Planner,
    ) -> Result<Option<ClaimBatch>, CoreError> {
        let txn = self.write_transaction().await.map_err(db)?;
        let now = self.now_in(&txn).await.map_err(db)?;
        let now_time = time(Some(now)).unwrap_or_default();
        let mut select = self.select_schedules();
        select
            .and_where(Expr::col(S::DueTime).is_not_null())
            .and_where(Expr::col(S::DueTime).lte(micros(claimer.horizon(now_time))))
            .and_where(in_strings(S::Job, claimer.jobs.iter().map(|j| &**j)))
            .order_by(S::DueTime, Order::Asc)
            .limit(u64::try_from(claimer.limit).unwrap_or(u64::MAX));
        lock_skipping(&mut select);
        let rows = txn.query_all(&select).await.map_err(db)?;
        let mut batch = ClaimBatch::default();
        batch.more = rows.len() == claimer.limit;
        let due: Vec<Due> = read_rows(&rows)
            .into_iter()
            .filter_map(|v| {
                Some(Due {
                    due_time: v.due_time?,
                    schedule: v.schedule,
                })
            })
            .collect();
        if due.is_empty() {
            self.claim_waiting(&txn, claimer, now, &mut batch)
                .await
                .map_err(db)?;
            txn.commit().await.map_err(db)?;
            return Ok(Some(batch));
        }
        // Every statement below covers the whole batch: a claim costs a handful of round
        // trips however many schedules are due, and holds its row locks that briefly.
        let live = self
            .counted(
                &txn,
                due.iter().map(|d| d.schedule.id().to_owned()).collect(),
                now,
            )
            .await
            .map_err(db)?;
        let plans: Vec<_> = due
            .iter()
            .map(|d| {
                let counts = live.get(d.schedule.id()).copied().unwrap_or_default();
                planner.plan(
                    DueSchedule::new(&d.schedule, d.due_time, now_time, counts.live)
                        .waiting(counts.waiting),
                )
            })
            .collect();
        if plans.iter().all(|p| p.not_yet) {
            // Due ahead, with runs going: the same claim again would find the same.
            batch.more = false;
        }
        let mut rows = Vec::new();
        let mut advanced = Vec::new();
        let mut finished = Vec::new();
        let mut cancelling = Vec::new();
        for (d, plan) in due.iter().zip(&plans) {
            if plan.not_yet {
                continue;
            }
            let last = plan.next_run_time.is_none();
            for (i, &nominal) in plan.run.iter().enumerate() {
                let state = claimer.held_state(i);
                let mut row = FireRow::held(&d.schedule, nominal, state, claimer.owner);
                row.snapshot = last;
                rows.push(row);
            }
            rows.extend(
                plan.not_run
                    .iter()
                    .map(|fire| FireRow::not_run(&d.schedule, fire, Some(claimer.owner))),
            );
            for &nominal in &plan.queue {
                let mut row =
                    FireRow::held(&d.schedule, nominal, FireState::Waiting, claimer.owner);
                row.reason = Some("waiting for a run of the schedule to end (overlap)".to_owned());
                rows.push(row);
            }
            if plan.cancel {
                cancelling.push(d.schedule.id());
            }
            match (plan.next_run_time, plan.next_due_time) {
                (Some(next), due_time) => advanced.push((
                    d.schedule.id(),
                    micros(next),
                    micros(due_time.unwrap_or(next)),
                )),
                (None, _) => finished.push(d.schedule.id()),
            }
        }
        // Asked to stop before the new fires are written: only the runs going are.
        self.ask_to_stop(&txn, &cancelling, now).await.map_err(db)?;
        let written = self.insert_fires(&txn, &rows, now).await.map_err(db)?;
        let expected = advanced.len() + finished.len();
        let changed = self.advance(&txn, &advanced).await.map_err(db)?
            + self.delete_finished(&txn, &finished).await.map_err(db)?;
        if usize::try_from(changed).ok() != Some(expected) {
            txn.rollback().await.map_err(db)?;
            return Ok(None);
        }
        self.claim_waiting(&txn, claimer, now, &mut batch)
            .await
            .map_err(db)?;
        txn.commit().await.map_err(db)?;
        for (d, plan) in due.iter().zip(plans) {
            let id: Arc<str> = d.schedule.id().into();
            let key = |nominal: DateTime<Utc>| (d.schedule.id().to_owned(), micros(nominal));
            // No row of ours: the fire already had one (its schedule was removed and added
            // again, say); it is not recorded, or run, twice.
            let fires: Vec<ClaimedFire> = plan
                .run
                .iter()
                .enumerate()
                .filter_map(|(i, &nominal)| {
                    let fire_id = written.get(&key(nominal))?;
                    let state = claimer.held_state(i);
                    Some(ClaimedFire::new(
                        FireToken::new(fire_id.to_string(), 1),
                        nominal,
                        1,
                        state,
                    ))
                })
                .collect();
            if !fires.is_empty() {
                batch.runs.push(ClaimedRun::new(d.schedule.clone(), fires));
            }
            for fire in plan.not_run {
                if written.contains_key(&key(fire.nominal_time)) {
                    batch.not_run.push((Arc::clone(&id), fire));
                }
            }
            for nominal in plan.queue {
                if written.contains_key(&key(nominal)) {
                    batch.queued.push((Arc::clone(&id), nominal));
                }
            }
            if plan.next_run_time.is_none() {
                batch.finished.push(id);
            }
        }
        Ok(Some(batch))
    }

    /// Records a held fire lost, with why; false when it changed hands meanwhile.
    async fn mark_lost(
        &self,
        txn: &DatabaseTransaction,
        fire_id: i64,
        epoch: i64,
        why: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let update = Query::update()
            .table(self.tables().fires.clone())
            .value(F::State, state(FireState::Lost))
            .value(F::Reason, why)
            .value(F::FinishedAt, now)
            .value(F::LeaseUntil, Expr::val(Value::BigInt(None)))
            .value(F::Claim, Expr::val(Value::String(None)))
            .and_where(Expr::col(F::Id).eq(fire_id))
            .and_where(Expr::col(F::Epoch).eq(epoch))
            .to_owned();
        Ok(txn.execute(&update).await?.rows_affected() == 1)
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
                ids.push(row.try_get::<String>("", "schedule_id")?);
            }
        }
        let mut schedules = HashMap::new();
        for chunk in ids.chunks(self.dialect().rows_per_statement()) {
            let mut select = self.select_schedules();
            select.and_where(in_strings(S::Id, chunk.iter().cloned()));
            for v in read_rows(&txn.query_all(&select).await?) {
                schedules.insert(v.schedule.id().to_owned(), v.schedule);
            }
        }
        Ok(schedules)
    }

    async fn take_over_in(&self, claimer: &Claimer<'_>) -> Result<ClaimBatch, DbErr> {
        let txn = self.write_transaction().await?;
        let now = self.now_in(&txn).await?;
        let mut select = Query::select();
        select
            .columns([
                F::Id,
                F::ScheduleId,
                F::Claim,
                F::NominalTime,
                F::State,
                F::Epoch,
                F::Attempt,
                F::Owner,
                F::CancelAt,
            ])
            .from(self.tables().fires.clone())
            .and_where(in_strings(F::State, HELD))
            .and_where(Expr::col(F::LeaseUntil).lt(now))
            .and_where(in_strings(F::Job, claimer.jobs.iter().map(|j| &**j)))
            .order_by(F::LeaseUntil, Order::Asc)
            .limit(u64::try_from(claimer.limit).unwrap_or(u64::MAX));
        lock_skipping(&mut select);
        let rows = txn.query_all(&select).await?;
        let lease_until = now.saturating_add(self.lease_micros());
        let mut batch = ClaimBatch::default();
        let current = self.current_schedules(&txn, &rows).await?;
        for row in &rows {
            let fire_id: i64 = row.try_get("", "id")?;
            let schedule_id: String = row.try_get("", "schedule_id")?;
            let claim: Option<String> = row.try_get("", "claim")?;
            let epoch: i64 = row.try_get("", "epoch")?;
            let nominal_time = time(Some(row.try_get("", "nominal_time")?)).unwrap_or_default();
            // The schedule's last fire carries a copy (the claim deleted the schedule); any
            // other runs the schedule as it is now.
            let schedule = match claim.as_deref().map(serde_json::from_str::<Schedule>) {
                Some(Ok(schedule)) => schedule,
                None => match current.get(&schedule_id) {
                    Some(schedule) => schedule.clone(),
                    None => {
                        if self
                            .mark_lost(&txn, fire_id, epoch, reason::SCHEDULE_REMOVED, now)
                            .await?
                        {
                            batch.lost.push((schedule_id.into(), nominal_time));
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
            let held_state: String = row.try_get("", "state")?;
            let attempt: i32 = row.try_get("", "attempt")?;
            let previous: Option<String> = row.try_get("", "owner")?;
            let previous = previous.unwrap_or_else(|| "?".to_owned());
            let started = held_state == state(FireState::Running);
            let asked_to_stop = row.try_get::<Option<i64>>("", "cancel_at")?.is_some();
            if asked_to_stop {
                // A newer fire replaced it (overlap policy cancel_running): not run again.
                let why = format!(
                    "asked to stop for a newer fire, and instance {previous} stopped renewing its lease"
                );
                if self.mark_lost(&txn, fire_id, epoch, &why, now).await? {
                    batch.lost.push((schedule.id().into(), nominal_time));
                }
                continue;
            }
            if started && schedule.at_most_once() {
                if self
                    .mark_lost(&txn, fire_id, epoch, &reason::lost(&previous), now)
                    .await?
                {
                    batch.lost.push((schedule.id().into(), nominal_time));
                }
                continue;
            }
            // A released or never-started claim is not an attempt; a run cut short is.
            let attempts = u32::try_from(attempt).unwrap_or(1) + u32::from(started);
            let new_state = if claimer.start_at_once {
                FireState::Running
            } else {
                FireState::Claimed
            };
            let update = Query::update()
                .table(self.tables().fires.clone())
                .value(F::Attempt, i32::try_from(attempts).unwrap_or(i32::MAX))
                .value(F::Epoch, Expr::col(F::Epoch).add(1))
                .value(F::Owner, claimer.owner)
                .value(F::State, state(new_state))
                .value(F::LeaseUntil, lease_until)
                .value(F::ClaimedAt, now)
                .value(
                    F::StartedAt,
                    // Taken over ahead of its time, it starts then.
                    Expr::val(
                        (new_state == FireState::Running)
                            .then_some(Ord::max(now, micros(nominal_time))),
                    ),
                )
                .value(F::Reason, reason::taken_over(&previous))
                .and_where(Expr::col(F::Id).eq(fire_id))
                .and_where(Expr::col(F::Epoch).eq(epoch))
                .to_owned();
            if txn.execute(&update).await?.rows_affected() == 1 {
                let fire = ClaimedFire::new(
                    FireToken::new(fire_id.to_string(), epoch + 1),
                    nominal_time,
                    attempts,
                    new_state,
                );
                batch.runs.push(ClaimedRun::new(schedule, vec![fire]));
            }
        }
        txn.commit().await?;
        Ok(batch)
    }

    async fn claim_now_in(
        &self,
        claimer: &Claimer<'_>,
        schedule_id: &str,
        planner: &Planner,
    ) -> CoreResult<ClaimedRun> {
        let txn = self.write_transaction().await.map_err(db)?;
        let schedule = self
            .versioned(&txn, schedule_id, true)
            .await?
            .ok_or_else(|| CoreError::ScheduleNotFound(schedule_id.to_owned()))?
            .schedule;
        let now = self.now_in(&txn).await.map_err(db)?;
        let live = self
            .counted(&txn, vec![schedule_id.to_owned()], now)
            .await
            .map_err(db)?
            .get(schedule_id)
            .map_or(0, |c| c.live);
        planner.run_now(&schedule, live)?;
        let held = if claimer.start_at_once {
            FireState::Running
        } else {
            FireState::Claimed
        };
        // Its nominal time is now; two extra runs in the same microsecond: the second takes
        // the next one.
        for nominal in now..now + 1000 {
            let nominal = time(Some(nominal)).unwrap_or_default();
            let mut row = FireRow::held(&schedule, nominal, held, claimer.owner);
            row.reason = Some("run now".to_owned());
            let written = self.insert_fires(&txn, &[row], now).await.map_err(db)?;
            if let Some(fire_id) = written.get(&(schedule_id.to_owned(), micros(nominal))) {
                let token = FireToken::new(fire_id.to_string(), 1);
                txn.commit().await.map_err(db)?;
                return Ok(ClaimedRun::new(
                    schedule,
                    vec![ClaimedFire::new(token, nominal, 1, held)],
                ));
            }
        }
        Err(db(DbErr::Custom(format!(
            "\"{schedule_id}\" already has a fire at each microsecond of the last millisecond"
        ))))
    }
}

#[async_trait]
impl FireClaims for Store {
    async fn now(&self) -> CoreResult<DateTime<Utc>> {
        let now = self.now_in(&self.inner.db).await.map_err(db)?;
        Ok(time(Some(now)).unwrap_or_default())
    }

    async fn next_due(
        &self,
        jobs: &[Arc<str>],
    ) -> CoreResult<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let jobs = || jobs.iter().map(|j| &**j);
        let next = Query::select()
            .expr(Func::min(Expr::col(S::DueTime)))
            .from(self.tables().schedules.clone())
            .and_where(in_strings(S::Job, jobs()))
            .to_owned();
        let lease = Query::select()
            .expr(Func::min(Expr::col(F::LeaseUntil)))
            .from(self.tables().fires.clone())
            // Said, though MIN skips NULLs: so that the partial index of leased fires serves.
            .and_where(Expr::col(F::LeaseUntil).is_not_null())
            .and_where(in_strings(F::State, HELD))
            .and_where(in_strings(F::Job, jobs()))
            .to_owned();
        // A waiting fire whose schedule has room again (fewer live fires than its
        // max_instances) is due now.
        let (w, sc, l) = (Alias::new("w"), Alias::new("sc"), Alias::new("l"));
        let live = Query::select()
            .expr(Func::count(Expr::col((l.clone(), F::Id))))
            .from_as(self.tables().fires.clone(), l.clone())
            .and_where(Expr::col((l.clone(), F::ScheduleId)).equals((w.clone(), F::ScheduleId)))
            .and_where(Expr::col((l.clone(), F::State)).is_in(COUNTED))
            .and_where(Expr::col((l, F::LeaseUntil)).gt(self.dialect().now()))
            .to_owned();
        let waiting = Query::select()
            .expr(Func::min(Expr::col((w.clone(), F::NominalTime))))
            .from_as(self.tables().fires.clone(), w.clone())
            .join_as(
                JoinType::InnerJoin,
                self.tables().schedules.clone(),
                sc.clone(),
                Expr::col((sc.clone(), S::Id)).equals((w.clone(), F::ScheduleId)),
            )
            .and_where(is_waiting(Some("w")))
            .and_where(Expr::col((w, F::Job)).is_in(jobs().map(str::to_owned)))
            .and_where(Expr::col((sc.clone(), S::Paused)).eq(false))
            .and_where(
                Expr::col((sc, S::MaxInstances)).gt(Expr::SubQuery(None, Box::new(live.into()))),
            )
            .to_owned();
        let select: SelectStatement = Query::select()
            .expr_as(self.dialect().now(), Alias::new("now"))
            .expr_as(
                Expr::SubQuery(None, Box::new(next.into())),
                Alias::new("next"),
            )
            .expr_as(
                Expr::SubQuery(None, Box::new(lease.into())),
                Alias::new("lease"),
            )
            .expr_as(
                Expr::SubQuery(None, Box::new(waiting.into())),
                Alias::new("waiting"),
            )
            .to_owned();
        let row = self
            .inner
            .db
            .query_one(&select)
            .await
            .map_err(db)?
            .ok_or_else(|| db(DbErr::RecordNotFound("the next due time".to_owned())))?;
        let now: i64 = row.try_get("", "now").map_err(db)?;
        let next: Option<i64> = row.try_get("", "next").map_err(db)?;
        let lease: Option<i64> = row.try_get("", "lease").map_err(db)?;
        let waiting: Option<i64> = row.try_get("", "waiting").map_err(db)?;
        // A lease runs out when the database's clock passes it: one microsecond later.
        let due = next
            .into_iter()
            .chain(lease.map(|l| l.saturating_add(1)))
            .chain(waiting.map(|_| now))
            .min();
        Ok((time(Some(now)).unwrap_or_default(), time(due)))
    }

    async fn claim_due(&self, claimer: &Claimer<'_>, planner: &Planner) -> CoreResult<ClaimBatch> {
        if claimer.jobs.is_empty() {
            return Ok(ClaimBatch::default());
        }
        match self.claim_in(claimer, planner).await {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => {
                let mut retry = ClaimBatch::default();
                retry.more = true;
                Ok(retry)
            }
            Err(CoreError::Store(error)) => {
                let transient = error.downcast_ref::<crate::Error>().and_then(|e| match e {
                    crate::Error::Database(e) => transient(e),
                    _ => None,
                });
                match transient {
                    // Another process holds SQLite's write lock past the busy timeout: nothing
                    // was written; the next wake claims again.
                    Some(Transient::Locked) => {
                        tracing::debug!(
                            "the database is locked by another process; claiming again soon"
                        );
                        Ok(ClaimBatch::default())
                    }
                    // The server chose this claim as a deadlock's victim and rolled it back:
                    // another instance's claim went through; claim again at once.
                    Some(Transient::RolledBack) => {
                        tracing::debug!(%error, "the claim was rolled back for another instance's; claiming again");
                        let mut retry = ClaimBatch::default();
                        retry.more = true;
                        Ok(retry)
                    }
                    None => Err(CoreError::Store(error)),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn take_over(&self, claimer: &Claimer<'_>) -> CoreResult<ClaimBatch> {
        if claimer.jobs.is_empty() {
            return Ok(ClaimBatch::default());
        }
        match self.take_over_in(claimer).await {
            Ok(batch) => Ok(batch),
            Err(error) if is_transient(&error) => Ok(ClaimBatch::default()),
            Err(error) => Err(db(error)),
        }
    }

    async fn claim_now(
        &self,
        claimer: &Claimer<'_>,
        schedule_id: &str,
        planner: &Planner,
    ) -> CoreResult<ClaimedRun> {
        // A deadlock's victim wrote nothing: try again, a few times, before answering.
        let mut attempts = 0;
        loop {
            match self.claim_now_in(claimer, schedule_id, planner).await {
                Err(CoreError::Store(error)) if attempts < 3 && rolled_back(&*error) => {
                    attempts += 1;
                    tracing::debug!(%error, "run-now claim rolled back for another instance's; again");
                }
                other => return other,
            }
        }
    }
}
