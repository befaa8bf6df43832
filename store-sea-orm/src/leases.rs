//! The leases of held fires: starting, renewing, finishing and releasing them, each a write
//! conditioned on the holder (and its epoch).

use std::time::Duration;

use async_trait::async_trait;
use scheduler_core::store::shared::reason;
use scheduler_core::store::{FireLeases, FireOutcome, FireState, FireToken};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query, UpdateStatement};
use sea_orm::{ConnectionTrait, DbErr, Value};

use crate::sql::{F, HELD, duration_micros, in_strings, state};
use crate::{Store, db};

type CoreResult<T> = scheduler_core::Result<T>;

impl Store {
    /// An update of one held fire, fenced by its id, epoch and holder.
    fn fenced(&self, owner: &str, fire: &FireToken) -> Result<UpdateStatement, DbErr> {
        let id: i64 = fire.id().parse().map_err(|_| {
            DbErr::Custom(format!("\"{}\" is not a fire id of this store", fire.id()))
        })?;
        Ok(Query::update()
            .table(self.tables().fires.clone())
            .and_where(Expr::col(F::Id).eq(id))
            .and_where(Expr::col(F::Epoch).eq(fire.epoch()))
            .and_where(Expr::col(F::Owner).eq(owner))
            .to_owned())
    }

    /// Runs a fenced write: true when it changed the one row it names.
    async fn changes_one(&self, update: &UpdateStatement) -> CoreResult<bool> {
        Ok(self
            .inner
            .db
            .execute(update)
            .await
            .map_err(db)?
            .rows_affected()
            == 1)
    }

    fn lease_from_now(&self) -> Expr {
        self.dialect()
            .now()
            .add(duration_micros(self.inner.options.lease))
    }
}

#[async_trait]
impl FireLeases for Store {
    async fn start(&self, owner: &str, fire: &FireToken) -> CoreResult<bool> {
        let mut update = self.fenced(owner, fire).map_err(db)?;
        update
            .value(F::State, state(FireState::Running))
            .value(F::StartedAt, self.dialect().now())
            .value(F::LeaseUntil, self.lease_from_now())
            .and_where(in_strings(F::State, ["claimed", "queued"]));
        self.changes_one(&update).await
    }

    async fn renew(&self, owner: &str, fires: &[FireToken]) -> CoreResult<Vec<FireToken>> {
        let ids: Vec<i64> = fires.iter().filter_map(|f| f.id().parse().ok()).collect();
        let mut cancelled = Vec::new();
        for chunk in ids.chunks(self.dialect().rows_per_statement()) {
            let update = Query::update()
                .table(self.tables().fires.clone())
                .value(F::LeaseUntil, self.lease_from_now())
                .and_where(Expr::col(F::Owner).eq(owner))
                .and_where(in_strings(F::State, HELD))
                .and_where(Expr::col(F::Id).is_in(chunk.iter().copied()))
                .to_owned();
            self.inner.db.execute(&update).await.map_err(db)?;
            // The ones a newer fire asked to stop (overlap policy cancel_running).
            let asked = Query::select()
                .columns([F::Id, F::Epoch])
                .from(self.tables().fires.clone())
                .and_where(Expr::col(F::Owner).eq(owner))
                .and_where(in_strings(F::State, HELD))
                .and_where(Expr::col(F::Id).is_in(chunk.iter().copied()))
                .and_where(Expr::col(F::CancelAt).is_not_null())
                .to_owned();
            for row in self.inner.db.query_all(&asked).await.map_err(db)? {
                let id: i64 = row.try_get("", "id").map_err(db)?;
                let epoch: i64 = row.try_get("", "epoch").map_err(db)?;
                cancelled.push(FireToken::new(id.to_string(), epoch));
            }
        }
        Ok(cancelled)
    }

    async fn finish(
        &self,
        owner: &str,
        fire: &FireToken,
        outcome: &FireOutcome,
    ) -> CoreResult<bool> {
        let mut update = self.fenced(owner, fire).map_err(db)?;
        update.and_where(in_strings(F::State, HELD));
        let now = self.dialect().now();
        let why = outcome.reason(owner);
        match outcome.final_state() {
            Some(end) => {
                update
                    .value(F::State, state(end))
                    .value(
                        F::Reason,
                        Func::coalesce([Expr::val(why), Expr::col(F::Reason)]),
                    )
                    .value(F::Error, Expr::val(outcome.error().map(str::to_owned)))
                    .value(F::FinishedAt, now)
                    .value(F::LeaseUntil, Expr::val(Value::BigInt(None)))
                    .value(F::Claim, Expr::val(Value::String(None)));
            }
            None => {
                // Handed back: its lease has ended (a microsecond ago: SQLite's clock moves
                // by the millisecond, and a take-over in the same one must see it expired) and
                // another instance takes it over.
                update
                    .value(F::LeaseUntil, self.dialect().now().sub(1))
                    .value(F::Reason, why);
                if *outcome == FireOutcome::NotStarted {
                    // Never began here: back as a claim, not an attempt.
                    update
                        .value(F::State, state(FireState::Claimed))
                        .value(F::StartedAt, Expr::val(Value::BigInt(None)));
                }
            }
        }
        let finished = self.changes_one(&update).await?;
        if finished && outcome.final_state().is_none() {
            self.notify_change().await;
        }
        Ok(finished)
    }

    async fn release(&self, owner: &str) -> CoreResult<()> {
        // Ended a microsecond ago, so that a take-over within the same tick of the clock
        // (SQLite's moves by the millisecond) sees it expired.
        let update = Query::update()
            .table(self.tables().fires.clone())
            .value(F::LeaseUntil, self.dialect().now().sub(1))
            .value(F::Reason, reason::released(owner))
            .and_where(Expr::col(F::Owner).eq(owner))
            .and_where(in_strings(F::State, ["claimed", "queued"]))
            .to_owned();
        if self
            .inner
            .db
            .execute(&update)
            .await
            .map_err(db)?
            .rows_affected()
            > 0
        {
            self.notify_change().await;
        }
        Ok(())
    }

    fn lease(&self) -> Duration {
        self.inner.options.lease
    }
}
