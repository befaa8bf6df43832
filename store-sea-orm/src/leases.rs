//! The leases of held fires: starting, renewing, finishing and releasing them, each a write
//! conditioned on the holder (and its epoch).

use std::collections::HashMap;
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

    /// Whether each fire (id, epoch) now stands as `owner`'s, at that epoch, in state `end`:
    /// how it ended, whoever wrote it (this call, or an earlier one whose answer was lost).
    async fn ended_as(
        &self,
        owner: &str,
        fires: &[(i64, i64, FireState)],
    ) -> CoreResult<Vec<bool>> {
        let mut found: HashMap<i64, (Option<String>, i64, String)> = HashMap::new();
        for chunk in fires.chunks(self.dialect().rows_per_statement()) {
            let select = Query::select()
                .columns([F::Id, F::Owner, F::Epoch, F::State])
                .from(self.tables().fires.clone())
                .and_where(Expr::col(F::Id).is_in(chunk.iter().map(|(id, _, _)| *id)))
                .to_owned();
            for row in self.inner.db.query_all(&select).await.map_err(db)? {
                let id: i64 = row.try_get("", "id").map_err(db)?;
                let owner: Option<String> = row.try_get("", "owner").map_err(db)?;
                let epoch: i64 = row.try_get("", "epoch").map_err(db)?;
                let state: String = row.try_get("", "state").map_err(db)?;
                found.insert(id, (owner, epoch, state));
            }
        }
        Ok(fires
            .iter()
            .map(|(id, epoch, end)| {
                found.get(id).is_some_and(|(o, e, s)| {
                    o.as_deref() == Some(owner) && e == epoch && s == end.as_str()
                })
            })
            .collect())
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
        match outcome.final_state() {
            // Nothing written: perhaps this end was written already (a retry).
            Some(end) if !finished => {
                let id = fire.id().parse().map_err(|_| {
                    db(DbErr::Custom(format!(
                        "\"{}\" is not a fire id of this store",
                        fire.id()
                    )))
                })?;
                Ok(self.ended_as(owner, &[(id, fire.epoch(), end)]).await? == [true])
            }
            _ => Ok(finished),
        }
    }

    async fn finish_many(
        &self,
        owner: &str,
        fires: &[(FireToken, FireOutcome)],
    ) -> CoreResult<Vec<bool>> {
        // One UPDATE per kind of end (state, reason, error) and epoch, each over many ids,
        // then one read of how they stand: a thousand successes are a few statements.
        type Kind = (FireState, Option<String>, Option<String>, i64);
        let mut answers = vec![false; fires.len()];
        let mut kinds: Vec<(Kind, Vec<i64>)> = Vec::new();
        let mut ended: Vec<(usize, (i64, i64, FireState))> = Vec::new();
        for (i, (fire, outcome)) in fires.iter().enumerate() {
            let Some(end) = outcome.final_state() else {
                // Handed back (at shutdown, rare): on its own, as it notifies the others.
                answers[i] = self.finish(owner, fire, outcome).await?;
                continue;
            };
            let Ok(id) = fire.id().parse::<i64>() else {
                continue; // not a fire of this store, so not this owner's
            };
            let kind = (
                end,
                outcome.reason(owner),
                outcome.error().map(str::to_owned),
                fire.epoch(),
            );
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, ids)) => ids.push(id),
                None => kinds.push((kind, vec![id])),
            }
            ended.push((i, (id, fire.epoch(), end)));
        }
        for ((end, why, error, epoch), ids) in &kinds {
            for chunk in ids.chunks(self.dialect().rows_per_statement()) {
                let update = Query::update()
                    .table(self.tables().fires.clone())
                    .value(F::State, state(*end))
                    .value(
                        F::Reason,
                        Func::coalesce([Expr::val(why.clone()), Expr::col(F::Reason)]),
                    )
                    .value(F::Error, Expr::val(error.clone()))
                    .value(F::FinishedAt, self.dialect().now())
                    .value(F::LeaseUntil, Expr::val(Value::BigInt(None)))
                    .value(F::Claim, Expr::val(Value::String(None)))
                    .and_where(Expr::col(F::Owner).eq(owner))
                    .and_where(Expr::col(F::Epoch).eq(*epoch))
                    .and_where(in_strings(F::State, HELD))
                    .and_where(Expr::col(F::Id).is_in(chunk.iter().copied()))
                    .to_owned();
                self.inner.db.execute(&update).await.map_err(db)?;
            }
        }
        let fenced: Vec<(i64, i64, FireState)> = ended.iter().map(|(_, f)| *f).collect();
        let stand = self.ended_as(owner, &fenced).await?;
        for ((i, _), ok) in ended.iter().zip(stand) {
            answers[*i] = ok;
        }
        Ok(answers)
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
