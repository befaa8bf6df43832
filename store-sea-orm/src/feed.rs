//! What happened to each fire (the ledger read back and pruned), and how idle instances hear
//! of changes: PostgreSQL notifications, or polling.

use std::time::Duration;

use async_trait::async_trait;
use scheduler_core::Error as CoreError;
use scheduler_core::store::{ChangeFeed, FireHistory, FireRecord, FireState};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Order, Query, WindowStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::sql::{F, UNFINISHED, duration_micros, in_strings, time};
use crate::{Store, db};

type CoreResult<T> = scheduler_core::Result<T>;

fn fire_record(row: &QueryResult) -> Result<FireRecord, DbErr> {
    let state: String = row.try_get("", "state")?;
    let attempt: i32 = row.try_get("", "attempt")?;
    let at = |column: &str| -> Result<_, DbErr> { Ok(time(row.try_get("", column)?)) };
    let id: i64 = row.try_get("", "id")?;
    Ok(FireRecord::new(
        id.to_string(),
        row.try_get::<String>("", "schedule_id")?,
        time(Some(row.try_get("", "nominal_time")?)).unwrap_or_default(),
        FireState::parse(&state).unwrap_or(FireState::Failed),
    )
    .reason(row.try_get("", "reason")?)
    .owner(row.try_get("", "owner")?)
    .epoch(
        row.try_get("", "epoch")?,
        u32::try_from(attempt).unwrap_or(0),
    )
    .times([at("claimed_at")?, at("started_at")?, at("finished_at")?])
    .error(row.try_get("", "error")?))
}

impl Store {
    /// Tells the other instances that the schedules changed (PostgreSQL NOTIFY): called after
    /// writes that move a schedule in time or hand a fire back.
    pub(crate) async fn notify_change(&self) {
        #[cfg(feature = "postgres")]
        if self.dialect() == crate::sql::Dialect::Postgres {
            let notify = Query::select()
                .expr(
                    Func::cust(Alias::new("pg_notify"))
                        .arg(self.channel())
                        .arg(""),
                )
                .to_owned();
            if let Err(error) = self.inner.db.query_one(&notify).await {
                tracing::warn!(%error, "could not notify the other instances of a change");
            }
        }
    }

    #[cfg(feature = "postgres")]
    fn channel(&self) -> String {
        format!("{}changes", self.inner.options.table_prefix)
    }

    /// The notification listener (PostgreSQL), started on first use; `None` if it cannot
    /// listen (then the store polls).
    #[cfg(feature = "postgres")]
    async fn listener(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let slot = &self.inner.listener;
        if let Some(notify) = slot.get() {
            return Some(std::sync::Arc::clone(notify));
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
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        if slot.set(std::sync::Arc::clone(&notify)).is_err() {
            // Another task set it up first.
            return slot.get().cloned();
        }
        let weak = std::sync::Arc::downgrade(&notify);
        tokio::spawn(async move {
            loop {
                let received = listener.try_recv().await;
                let Some(notify) = weak.upgrade() else { return };
                match received {
                    // The connection dropped (sqlx reconnects on the next call): look now,
                    // something may have changed meanwhile.
                    Ok(Some(_) | None) => notify.notify_waiters(),
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

#[async_trait]
impl FireHistory for Store {
    async fn fires(&self, schedule_id: &str, limit: usize) -> CoreResult<Vec<FireRecord>> {
        let select = Query::select()
            .columns([
                F::Id,
                F::ScheduleId,
                F::NominalTime,
                F::State,
                F::Reason,
                F::Owner,
                F::Epoch,
                F::Attempt,
                F::ClaimedAt,
                F::StartedAt,
                F::FinishedAt,
                F::Error,
            ])
            .from(self.tables().fires.clone())
            .and_where(Expr::col(F::ScheduleId).eq(schedule_id))
            .order_by(F::NominalTime, Order::Desc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        let mut rows = self.inner.db.query_all(&select).await.map_err(db)?;
        if rows.is_empty()
            && self
                .versioned(&self.inner.db, schedule_id, false)
                .await?
                .is_none()
        {
            // A claim may have written its last fire and deleted it between the two reads
            // (one transaction): its fires are there now, or it never was.
            rows = self.inner.db.query_all(&select).await.map_err(db)?;
            if rows.is_empty() {
                return Err(CoreError::ScheduleNotFound(schedule_id.to_owned()));
            }
        }
        rows.iter()
            .map(|row| fire_record(row).map_err(db))
            .collect()
    }

    async fn prune(&self) -> CoreResult<u64> {
        let conn = &self.inner.db;
        let fires = self.tables().fires.clone();
        let now = self.now_in(conn).await.map_err(db)?;
        let age = duration_micros(self.inner.options.keep_fires_for);
        let old = Query::delete()
            .from_table(fires.clone())
            .and_where(in_strings(F::State, UNFINISHED).not())
            .and_where(Expr::col(F::NominalTime).lt(now.saturating_sub(age)))
            .to_owned();
        let old = conn.execute(&old).await.map_err(db)?.rows_affected();
        // Beyond the newest `keep_fires` of each schedule. The ranking is a derived table, so
        // MySQL lets the delete read the table it deletes from.
        let ranked = Query::select()
            .column(F::Id)
            .expr_window_as(
                Func::cust(Alias::new("ROW_NUMBER")),
                WindowStatement::partition_by(F::ScheduleId)
                    .order_by(F::NominalTime, Order::Desc)
                    .to_owned(),
                Alias::new("position"),
            )
            .from(fires.clone())
            .to_owned();
        let keep = i64::try_from(self.inner.options.keep_fires).unwrap_or(i64::MAX);
        let beyond = Query::select()
            .column(F::Id)
            .from_subquery(ranked, Alias::new("ranked"))
            .and_where(Expr::col(Alias::new("position")).gt(keep))
            .to_owned();
        let extra = Query::delete()
            .from_table(fires)
            .and_where(in_strings(F::State, UNFINISHED).not())
            .and_where(Expr::col(F::Id).in_subquery(beyond))
            .to_owned();
        let extra = conn.execute(&extra).await.map_err(db)?.rows_affected();
        Ok(old + extra)
    }
}

#[async_trait]
impl ChangeFeed for Store {
    async fn wait_for_change(&self, timeout: Duration) {
        #[cfg(feature = "postgres")]
        if self.dialect() == crate::sql::Dialect::Postgres
            && let Some(changed) = self.listener().await
        {
            let _ = tokio::time::timeout(timeout, changed.notified()).await;
            return;
        }
        tokio::time::sleep(timeout.min(self.inner.options.poll_interval)).await;
    }

    fn recheck_interval(&self) -> Duration {
        match self.dialect() {
            crate::sql::Dialect::Postgres => self.inner.options.safety_recheck,
            crate::sql::Dialect::MySql | crate::sql::Dialect::Sqlite => {
                self.inner.options.poll_interval
            }
        }
    }
}
