//! The schedules: add, read, change (conditioned on their version) and remove.

use async_trait::async_trait;
use scheduler_core::store::{NotRunFire, OnConflict, ScheduleCatalog, ScheduleWrite, Versioned};
use scheduler_core::{Error as CoreError, Schedule};
use sea_orm::sea_query::OnConflict as SqlOnConflict;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, SqlErr};

use crate::ledger::FireRow;
use crate::sql::rolled_back;
use crate::sql::{F, S, is_waiting, read_rows, schedule_from_row, schedule_values};
use crate::{Store, db};
use scheduler_core::store::FireState;
use scheduler_core::store::shared::reason;

type CoreResult<T> = scheduler_core::Result<T>;

impl Store {
    pub(crate) fn select_schedules(&self) -> SelectStatement {
        Query::select()
            .columns(S::ALL)
            .from(self.tables().schedules.clone())
            .to_owned()
    }

    async fn insert_in(
        &self,
        conn: &impl ConnectionTrait,
        write: &ScheduleWrite,
    ) -> CoreResult<()> {
        let values = schedule_values(write)?;
        let mut insert = Query::insert();
        insert
            .into_table(self.tables().schedules.clone())
            .columns(values.iter().map(|(c, _)| *c).chain([S::Version]))
            .values_panic(
                values
                    .into_iter()
                    .map(|(_, v)| Expr::val(v))
                    .chain([Expr::val(1_i64)]),
            );
        match conn.execute(&insert).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(CoreError::ConflictingId(write.schedule.id().to_owned()))
            }
            Err(e) => Err(db(e)),
        }
    }

    /// One try at [`ScheduleCatalog::insert`], in one transaction.
    async fn insert_batch(&self, batch: &[(ScheduleWrite, OnConflict)]) -> CoreResult<()> {
        let txn = self.write_transaction().await.map_err(db)?;
        for (write, on_conflict) in batch {
            let id = write.schedule.id();
            // An error drops the transaction: nothing of the batch is written.
            match on_conflict {
                OnConflict::Replace => {
                    self.delete_in(&txn, id).await?;
                    self.insert_in(&txn, write).await?;
                }
                OnConflict::Keep => self.insert_if_absent(&txn, write).await?,
                OnConflict::ReplaceIfChanged => {
                    // Absent, it is added, unless another instance adds it meanwhile; then
                    // theirs is judged as if it had been there. Locked when read, so no other
                    // instance changes it between the look and the write.
                    self.insert_if_absent(&txn, write).await?;
                    match self.versioned(&txn, id, true).await? {
                        Some(stored) if !write.same_definition(&stored.schedule) => {
                            self.delete_in(&txn, id).await?;
                            self.insert_in(&txn, write).await?;
                        }
                        _ => {}
                    }
                }
                _ => self.insert_in(&txn, write).await?,
            }
        }
        txn.commit().await.map_err(db)?;
        self.notify_change().await;
        Ok(())
    }

    /// Inserts a schedule unless one with its id exists. Atomic on every backend (`ON
    /// CONFLICT DO NOTHING`, MySQL's `ON DUPLICATE KEY UPDATE id = id`), so instances adding
    /// one schedule at once never fail on each other.
    async fn insert_if_absent(
        &self,
        conn: &impl ConnectionTrait,
        write: &ScheduleWrite,
    ) -> CoreResult<()> {
        let values = schedule_values(write)?;
        let mut insert = Query::insert();
        insert
            .into_table(self.tables().schedules.clone())
            .columns(values.iter().map(|(c, _)| *c).chain([S::Version]))
            .values_panic(
                values
                    .into_iter()
                    .map(|(_, v)| Expr::val(v))
                    .chain([Expr::val(1_i64)]),
            )
            .on_conflict(
                SqlOnConflict::column(S::Id)
                    .do_nothing_on([S::Id])
                    .to_owned(),
            );
        conn.execute(&insert).await.map_err(db)?;
        Ok(())
    }

    async fn delete_in(&self, conn: &impl ConnectionTrait, id: &str) -> CoreResult<()> {
        let delete = Query::delete()
            .from_table(self.tables().schedules.clone())
            .and_where(Expr::col(S::Id).eq(id))
            .to_owned();
        conn.execute(&delete).await.map_err(db)?;
        Ok(())
    }

    /// Records the fires waiting for a run of a schedule that goes (all schedules: `None`) as
    /// skipped: nothing will run them.
    async fn skip_waiting(&self, id: Option<&str>) -> CoreResult<()> {
        let mut update = Query::update();
        update
            .table(self.tables().fires.clone())
            .value(F::State, FireState::Skipped.as_str())
            .value(F::Reason, reason::SCHEDULE_REMOVED)
            .value(F::FinishedAt, self.dialect().now())
            .and_where(is_waiting(None));
        if let Some(id) = id {
            update.and_where(Expr::col(F::ScheduleId).eq(id));
        }
        self.inner.db.execute(&update).await.map_err(db)?;
        Ok(())
    }

    /// Reads one schedule row; a row that cannot be read is an error naming it.
    pub(crate) async fn versioned(
        &self,
        conn: &impl ConnectionTrait,
        id: &str,
        lock: bool,
    ) -> CoreResult<Option<Versioned>> {
        let mut select = self.select_schedules();
        select.and_where(Expr::col(S::Id).eq(id));
        if lock {
            select.lock_exclusive();
        }
        match conn.query_one(&select).await.map_err(db)? {
            None => Ok(None),
            Some(row) => Ok(Some(schedule_from_row(&row)?)),
        }
    }
}

#[async_trait]
impl ScheduleCatalog for Store {
    async fn get(&self, id: &str) -> CoreResult<Option<Versioned>> {
        self.versioned(&self.inner.db, id, false).await
    }

    async fn list(&self) -> CoreResult<Vec<Schedule>> {
        let mut select = self.select_schedules();
        select
            .order_by_expr(Expr::col(S::NextRunTime).is_null(), Order::Asc)
            .order_by(S::NextRunTime, Order::Asc)
            .order_by(S::Id, Order::Asc);
        let rows = self.inner.db.query_all(&select).await.map_err(db)?;
        Ok(read_rows(&rows).into_iter().map(|v| v.schedule).collect())
    }

    async fn insert(&self, batch: &[(ScheduleWrite, OnConflict)]) -> CoreResult<()> {
        // Instances that add one schedule at once can deadlock on its key (MariaDB's gap
        // locks): the server rolls the loser back, and its next try finds the winner's row.
        let mut attempts = 0;
        loop {
            match self.insert_batch(batch).await {
                Err(CoreError::Store(error)) if attempts < 5 && rolled_back(&*error) => {
                    attempts += 1;
                    tracing::debug!(%error, "adding schedules rolled back for another instance's; again");
                }
                other => return other,
            }
        }
    }

    async fn replace(
        &self,
        write: &ScheduleWrite,
        version: i64,
        not_run: &[NotRunFire],
    ) -> CoreResult<bool> {
        let id = write.schedule.id();
        let values = schedule_values(write)?;
        let mut update = Query::update();
        update
            .table(self.tables().schedules.clone())
            .values(
                values
                    .into_iter()
                    .filter(|(c, _)| !matches!(c, S::Id))
                    .map(|(c, v)| (c, Expr::val(v))),
            )
            .value(S::Version, Expr::col(S::Version).add(1))
            .and_where(Expr::col(S::Id).eq(id))
            .and_where(Expr::col(S::Version).eq(version));
        let txn = self.write_transaction().await.map_err(db)?;
        if txn.execute(&update).await.map_err(db)?.rows_affected() == 0 {
            return match self.versioned(&txn, id, false).await? {
                Some(_) => Ok(false),
                None => Err(CoreError::ScheduleNotFound(id.to_owned())),
            };
        }
        let now = self.now_in(&txn).await.map_err(db)?;
        let rows: Vec<FireRow<'_>> = not_run
            .iter()
            .map(|fire| FireRow::not_run(&write.schedule, fire, None))
            .collect();
        self.insert_fires(&txn, &rows, now).await.map_err(db)?;
        txn.commit().await.map_err(db)?;
        self.notify_change().await;
        Ok(true)
    }

    async fn remove(&self, id: &str) -> CoreResult<()> {
        self.skip_waiting(Some(id)).await?;
        let delete = Query::delete()
            .from_table(self.tables().schedules.clone())
            .and_where(Expr::col(S::Id).eq(id))
            .to_owned();
        if self
            .inner
            .db
            .execute(&delete)
            .await
            .map_err(db)?
            .rows_affected()
            == 0
        {
            return Err(CoreError::ScheduleNotFound(id.to_owned()));
        }
        self.notify_change().await;
        Ok(())
    }

    async fn remove_all(&self) -> CoreResult<()> {
        self.skip_waiting(None).await?;
        let delete = Query::delete()
            .from_table(self.tables().schedules.clone())
            .to_owned();
        self.inner.db.execute(&delete).await.map_err(db)?;
        self.notify_change().await;
        Ok(())
    }
}
