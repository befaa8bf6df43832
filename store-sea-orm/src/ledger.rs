//! Writing fires to the ledger: many rows per statement, each unique per (schedule, nominal
//! time), so a fire that already has a row is never recorded twice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use scheduler_core::Schedule;
use scheduler_core::store::{FireState, NotRunFire};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Value};

use crate::Store;
use crate::sql::{Dialect, F, micros, state};

/// One row of the ledger to write.
pub(crate) struct FireRow<'a> {
    schedule: &'a Schedule,
    nominal: DateTime<Utc>,
    state: FireState,
    pub(crate) reason: Option<String>,
    owner: Option<&'a str>,
    /// Keep a copy of the schedule with the fire: the claim deletes the schedule (no fires
    /// left), and whoever takes the fire over must still know it.
    pub(crate) snapshot: bool,
}

impl<'a> FireRow<'a> {
    pub(crate) fn not_run(
        schedule: &'a Schedule,
        fire: &NotRunFire,
        owner: Option<&'a str>,
    ) -> Self {
        Self {
            schedule,
            nominal: fire.nominal_time,
            state: fire.reason.state(),
            reason: Some(fire.reason.to_string()),
            owner,
            snapshot: false,
        }
    }

    pub(crate) fn held(
        schedule: &'a Schedule,
        nominal: DateTime<Utc>,
        state: FireState,
        owner: &'a str,
    ) -> Self {
        Self {
            schedule,
            nominal,
            state,
            reason: None,
            owner: Some(owner),
            snapshot: false,
        }
    }
}

impl Store {
    /// Inserts ledger rows, many per statement; a row whose (schedule, nominal time) is taken
    /// is skipped.
    /// Returns the ids of the rows it wrote, by (schedule, nominal time): a fire missing there
    /// already had a row.
    pub(crate) async fn insert_fires(
        &self,
        txn: &DatabaseTransaction,
        rows: &[FireRow<'_>],
        now: i64,
    ) -> Result<HashMap<(String, i64), i64>, DbErr> {
        let lease_until = now.saturating_add(self.lease_micros());
        let mut written = HashMap::new();
        for chunk in rows.chunks(self.dialect().rows_per_statement()) {
            let mut insert = Query::insert();
            insert.into_table(self.tables().fires.clone()).columns([
                F::ScheduleId,
                F::Job,
                F::Claim,
                F::NominalTime,
                F::State,
                F::Reason,
                F::Owner,
                F::Epoch,
                F::Attempt,
                F::LeaseUntil,
                F::ClaimedAt,
                F::StartedAt,
                F::FinishedAt,
            ]);
            for row in chunk {
                let held = row.state.is_live();
                let snapshot = (held && row.snapshot)
                    .then(|| serde_json::to_string(row.schedule).unwrap_or_default());
                let values: [Value; 13] = [
                    row.schedule.id().into(),
                    row.schedule.job_name().map(str::to_owned).into(),
                    snapshot.into(),
                    micros(row.nominal).into(),
                    state(row.state).into(),
                    row.reason.clone().into(),
                    row.owner.map(str::to_owned).into(),
                    1_i64.into(),
                    i32::from(held).into(),
                    held.then_some(lease_until).into(),
                    now.into(),
                    // Claimed ahead, it starts at its time.
                    (row.state == FireState::Running)
                        .then_some(Ord::max(now, micros(row.nominal)))
                        .into(),
                    // A waiting fire has not ended: it has not even begun.
                    (!held && row.state != FireState::Waiting)
                        .then_some(now)
                        .into(),
                ];
                insert.values_panic(values.map(Expr::val));
            }
            insert.on_conflict(
                OnConflict::columns([F::ScheduleId, F::NominalTime])
                    .do_nothing_on([F::Id])
                    .to_owned(),
            );
            if self.dialect() == Dialect::MySql {
                // No RETURNING: the rows are found again by who wrote them, and when.
                txn.execute(&insert).await?;
                if let Some(owner) = chunk.first().and_then(|r| r.owner) {
                    written.extend(self.written(txn, chunk, owner, now).await?);
                }
            } else {
                insert.returning(Query::returning().columns([
                    F::Id,
                    F::ScheduleId,
                    F::NominalTime,
                ]));
                for row in txn.query_all(&insert).await? {
                    written.insert(
                        (
                            row.try_get("", "schedule_id")?,
                            row.try_get("", "nominal_time")?,
                        ),
                        row.try_get("", "id")?,
                    );
                }
            }
        }
        Ok(written)
    }

    /// Which of `rows` this transaction wrote, by (schedule, nominal time): those with its
    /// owner, its instant and the first epoch. The others already had a row.
    async fn written(
        &self,
        txn: &DatabaseTransaction,
        rows: &[FireRow<'_>],
        owner: &str,
        now: i64,
    ) -> Result<HashMap<(String, i64), i64>, DbErr> {
        let mut written = HashMap::new();
        for chunk in rows.chunks(self.dialect().rows_per_statement()) {
            let keys: Vec<(String, i64)> = chunk
                .iter()
                .map(|r| (r.schedule.id().to_owned(), micros(r.nominal)))
                .collect();
            let select = Query::select()
                .columns([F::Id, F::ScheduleId, F::NominalTime])
                .from(self.tables().fires.clone())
                .and_where(
                    Expr::tuple([Expr::col(F::ScheduleId), Expr::col(F::NominalTime)])
                        .in_tuples(keys),
                )
                .and_where(Expr::col(F::Owner).eq(owner))
                .and_where(Expr::col(F::ClaimedAt).eq(now))
                .and_where(Expr::col(F::Epoch).eq(1))
                .to_owned();
            for row in txn.query_all(&select).await? {
                written.insert(
                    (
                        row.try_get("", "schedule_id")?,
                        row.try_get("", "nominal_time")?,
                    ),
                    row.try_get("", "id")?,
                );
            }
        }
        Ok(written)
    }
}
