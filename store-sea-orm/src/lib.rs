//! A durable job store for [apsched] on [sea-orm] 2: SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Schedules live in `<prefix>schedules` (with their place in time), so they survive restarts;
//! every fire is a row in the fire ledger `<prefix>fires`, unique per (schedule, nominal time).
//! Several processes can share one PostgreSQL or MariaDB database: each fire runs on one of
//! them (see [`shared`], and `SchedulerBuilder::shared_store`).
//!
//! ```
//! use scheduler_core::{JobContext, NewSchedule, Scheduler, trigger::IntervalTrigger};
//! use store_sea_orm::Store;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::connect("sqlite::memory:").await?; // migrations run here
//! let scheduler = Scheduler::builder()
//!     .store(store.clone())
//!     .job("report", |_ctx: JobContext| async {})
//!     .build()
//!     .start()
//!     .await?;
//! scheduler
//!     .add(NewSchedule::for_job("report", IntervalTrigger::every(std::time::Duration::from_secs(60))?).id("r"))
//!     .await?;
//! assert_eq!(scheduler_core::store::JobStore::list(&store).await?.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! [apsched]: https://github.com/apsched/apsched
//! [sea-orm]: https://www.sea-ql.org/SeaORM/

mod dialect;
mod schema;
pub mod shared;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scheduler_core::store::JobStore;
use scheduler_core::trigger::{Trigger, TriggerSpec, apply_jitter};
use scheduler_core::{Schedule, ScheduleOptions};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, QueryResult, SqlErr,
    TransactionTrait, Value,
};

use crate::dialect::Dialect;

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed or refused.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// A stored schedule that cannot be read back (say, written by a newer version). It is
    /// left in the table, never deleted.
    #[error("stored schedule \"{id}\" cannot be read: {reason}")]
    Corrupt {
        /// The schedule.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schedule whose job was given as a value: a durable store must find the code again by
    /// name after a restart.
    #[error(
        "schedule \"{0}\" runs a job given as a value; a durable store needs a job registered \
         by name (SchedulerBuilder::job and NewSchedule::for_job)"
    )]
    UnnamedJob(String),
    /// A table prefix that is not letters, digits and `_`.
    #[error("table prefix \"{0}\" may only hold ASCII letters, digits and _")]
    BadPrefix(String),
}

impl From<Error> for scheduler_core::Error {
    fn from(error: Error) -> Self {
        Self::store(error)
    }
}

pub(crate) fn db(error: DbErr) -> scheduler_core::Error {
    Error::Database(error).into()
}

/// How the store names its tables and times its leases.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Put before every table name (default `apsched_`), so several applications can share a
    /// database.
    pub table_prefix: String,
    /// How long a claimed or running fire is its instance's without a heartbeat (default
    /// 30 s): an instance that dies loses its fires after this.
    pub lease: Duration,
    /// How often an idle instance looks for due fires on a backend without notifications
    /// (SQLite, MariaDB/MySQL; default 1 s).
    pub poll_interval: Duration,
    /// With PostgreSQL notifications, the longest an idle instance sleeps without looking
    /// (default 60 s).
    pub safety_recheck: Duration,
    /// Ledger rows kept per schedule, newest first (default 1000).
    pub keep_fires: usize,
    /// Ledger rows older than this are pruned (default 7 days).
    pub keep_fires_for: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            table_prefix: "apsched_".to_owned(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            safety_recheck: Duration::from_secs(60),
            keep_fires: 1000,
            keep_fires_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl StoreOptions {
    /// Tables named `<prefix>schedules`, `<prefix>fires`, `<prefix>migrations`.
    #[must_use]
    pub fn table_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.table_prefix);
        self
    }

    /// The lease of a claimed or running fire.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often an idle instance polls without notifications.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// With PostgreSQL notifications, the longest an idle instance sleeps without looking.
    #[must_use]
    pub fn safety_recheck(mut self, interval: Duration) -> Self {
        self.safety_recheck = interval;
        self
    }

    /// Ledger retention: rows per schedule, and age.
    #[must_use]
    pub fn keep_fires(mut self, count: usize, age: Duration) -> Self {
        self.keep_fires = count;
        self.keep_fires_for = age;
        self
    }
}

/// The store: cheap to clone, all clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    dialect: Dialect,
    options: StoreOptions,
    schedules: String,
    fires: String,
    /// Wakes idle instances when another one changes the schedules (PostgreSQL LISTEN).
    #[cfg(feature = "postgres")]
    listener: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.inner.dialect)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

pub(crate) const COLUMNS: &str = "id, name, job, args, trigger_spec, misfire_grace_ms, coalesce_fires, \
                       max_instances, paused, at_most_once, next_run_time, due_time, version";

impl Store {
    /// Connects to `url` (`sqlite://file.db?mode=rwc`, `postgres://...`, `mysql://...`) and
    /// brings the tables up to date.
    ///
    /// # Errors
    ///
    /// The database's error: unreachable, refused, or a migration that failed.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), or [`Error::BadPrefix`].
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, Error> {
        let mut connect = ConnectOptions::new(url.to_owned());
        connect
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        Self::from_connection(Database::connect(connect).await?, options).await
    }

    /// Uses an application's own connection (pool) and brings the tables up to date.
    ///
    /// # Errors
    ///
    /// A migration that failed, or [`Error::BadPrefix`].
    pub async fn from_connection(
        db: DatabaseConnection,
        options: StoreOptions,
    ) -> Result<Self, Error> {
        let prefix = &options.table_prefix;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::BadPrefix(prefix.clone()));
        }
        schema::migrate(&db, prefix).await?;
        let dialect = Dialect::of(db.get_database_backend());
        Ok(Self {
            inner: Arc::new(Inner {
                schedules: format!("{prefix}schedules"),
                fires: format!("{prefix}fires"),
                db,
                dialect,
                options,
                #[cfg(feature = "postgres")]
                listener: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The connection the store uses.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The options the store was made with.
    #[must_use]
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> sea_orm::Statement {
        self.inner.dialect.statement(sql, values)
    }

    async fn query(
        &self,
        conn: &impl ConnectionTrait,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        conn.query_all_raw(self.statement(sql, values)).await
    }

    async fn execute(
        &self,
        conn: &impl ConnectionTrait,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, DbErr> {
        Ok(conn
            .execute_raw(self.statement(sql, values))
            .await?
            .rows_affected())
    }

    fn schedule_values(schedule: &Schedule) -> Result<Vec<Value>, Error> {
        let job = schedule
            .job_name()
            .ok_or_else(|| Error::UnnamedJob(schedule.id().to_owned()))?;
        Ok(vec![
            schedule.id().into(),
            schedule.name().into(),
            job.into(),
            schedule.args().to_string().into(),
            schedule.trigger().to_value().to_string().into(),
            schedule
                .misfire_grace_time()
                .map(|g| i64::try_from(g.as_millis()).unwrap_or(i64::MAX))
                .into(),
            schedule.coalesce().into(),
            i32::try_from(schedule.max_instances())
                .unwrap_or(i32::MAX)
                .into(),
            schedule.paused().into(),
            schedule.at_most_once().into(),
            schedule
                .next_run_time()
                .map(|t| t.timestamp_micros())
                .into(),
            due_time_of(schedule, schedule.next_run_time()).into(),
        ])
    }

    async fn insert(
        &self,
        conn: &impl ConnectionTrait,
        schedule: &Schedule,
    ) -> scheduler_core::Result<()> {
        let values = Self::schedule_values(schedule)?;
        let sql = format!(
            "INSERT INTO {} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            self.inner.schedules
        );
        match self.execute(conn, &sql, values).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
                scheduler_core::Error::ConflictingId(schedule.id().to_owned()),
            ),
            Err(e) => Err(db(e)),
        }
    }
}

/// When a schedule's next fire is due: its next run time plus the trigger's jitter, drawn
/// once when the time is written, so every instance agrees on it.
pub(crate) fn due_time_of(schedule: &Schedule, next: Option<DateTime<Utc>>) -> Option<i64> {
    next.map(|t| apply_jitter(t, schedule.trigger().jitter()).timestamp_micros())
}

pub(crate) fn micros(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(DateTime::from_timestamp_micros)
}

/// Reads a schedule row; a row that cannot be read is reported, not deleted.
pub(crate) fn schedule_from_row(row: &QueryResult) -> Result<Schedule, Error> {
    let id: String = row.try_get("", "id")?;
    let corrupt = |reason: String| Error::Corrupt {
        id: id.clone(),
        reason,
    };
    let args: String = row.try_get("", "args")?;
    let args = serde_json::from_str(&args).map_err(|e| corrupt(format!("args: {e}")))?;
    let trigger: String = row.try_get("", "trigger_spec")?;
    let trigger: TriggerSpec =
        serde_json::from_str(&trigger).map_err(|e| corrupt(format!("trigger: {e}")))?;
    let grace: Option<i64> = row.try_get("", "misfire_grace_ms")?;
    let max_instances: i32 = row.try_get("", "max_instances")?;
    let name: String = row.try_get("", "name")?;
    let job: Option<String> = row.try_get("", "job")?;
    let mut options = ScheduleOptions::default();
    options.misfire_grace_time =
        grace.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    options.coalesce = row.try_get("", "coalesce_fires")?;
    options.max_instances = u32::try_from(max_instances).unwrap_or(1);
    options.paused = row.try_get("", "paused")?;
    options.at_most_once = row.try_get("", "at_most_once")?;
    let next: Option<i64> = row.try_get("", "next_run_time")?;
    Schedule::from_parts(
        &id,
        &name,
        job.as_deref(),
        args,
        trigger,
        micros(next),
        options,
    )
    .map_err(|e| corrupt(e.to_string()))
}

impl Store {
    fn read_rows(rows: &[QueryResult]) -> Vec<Schedule> {
        rows.iter()
            .filter_map(|row| match schedule_from_row(row) {
                Ok(schedule) => Some(schedule),
                Err(error) => {
                    tracing::error!(%error, "skipping a stored schedule that cannot be read");
                    None
                }
            })
            .collect()
    }
}

#[async_trait]
impl JobStore for Store {
    async fn add(&self, schedule: &Schedule, replace: bool) -> scheduler_core::Result<()> {
        if replace {
            let txn = self.inner.db.begin().await.map_err(db)?;
            let sql = format!("DELETE FROM {} WHERE id = ?", self.inner.schedules);
            self.execute(&txn, &sql, vec![schedule.id().into()])
                .await
                .map_err(db)?;
            self.insert(&txn, schedule).await?;
            txn.commit().await.map_err(db)?;
        } else {
            self.insert(&self.inner.db, schedule).await?;
        }
        self.notify_change().await;
        Ok(())
    }

    async fn get(&self, id: &str) -> scheduler_core::Result<Option<Schedule>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE id = ?",
            self.inner.schedules
        );
        let rows = self
            .query(&self.inner.db, &sql, vec![id.into()])
            .await
            .map_err(db)?;
        match rows.first() {
            None => Ok(None),
            Some(row) => schedule_from_row(row).map(Some).map_err(Into::into),
        }
    }

    async fn update(&self, schedule: &Schedule) -> scheduler_core::Result<()> {
        let mut values = Self::schedule_values(schedule)?;
        let id = values.remove(0);
        values.push(id);
        let sql = format!(
            "UPDATE {} SET name = ?, job = ?, args = ?, trigger_spec = ?, misfire_grace_ms = ?, \
             coalesce_fires = ?, max_instances = ?, paused = ?, at_most_once = ?, next_run_time = ?, \
             due_time = ?, version = version + 1 WHERE id = ?",
            self.inner.schedules
        );
        if self
            .execute(&self.inner.db, &sql, values)
            .await
            .map_err(db)?
            == 0
        {
            return Err(scheduler_core::Error::ScheduleNotFound(
                schedule.id().to_owned(),
            ));
        }
        self.notify_change().await;
        Ok(())
    }

    async fn remove(&self, id: &str) -> scheduler_core::Result<()> {
        let sql = format!("DELETE FROM {} WHERE id = ?", self.inner.schedules);
        if self
            .execute(&self.inner.db, &sql, vec![id.into()])
            .await
            .map_err(db)?
            == 0
        {
            return Err(scheduler_core::Error::ScheduleNotFound(id.to_owned()));
        }
        self.notify_change().await;
        Ok(())
    }

    async fn remove_all(&self) -> scheduler_core::Result<()> {
        let sql = format!("DELETE FROM {}", self.inner.schedules);
        self.execute(&self.inner.db, &sql, Vec::new())
            .await
            .map_err(db)?;
        self.notify_change().await;
        Ok(())
    }

    async fn list(&self) -> scheduler_core::Result<Vec<Schedule>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} ORDER BY CASE WHEN next_run_time IS NULL THEN 1 ELSE 0 END, \
             next_run_time, id",
            self.inner.schedules
        );
        let rows = self
            .query(&self.inner.db, &sql, Vec::new())
            .await
            .map_err(db)?;
        Ok(Self::read_rows(&rows))
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> scheduler_core::Result<Vec<Schedule>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE next_run_time IS NOT NULL AND next_run_time <= ? \
             ORDER BY next_run_time, id LIMIT ?",
            self.inner.schedules
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let values = vec![now.timestamp_micros().into(), limit.into()];
        let rows = self.query(&self.inner.db, &sql, values).await.map_err(db)?;
        Ok(Self::read_rows(&rows))
    }

    async fn next_run_time(&self) -> scheduler_core::Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT MIN(next_run_time) AS next FROM {}",
            self.inner.schedules
        );
        let rows = self
            .query(&self.inner.db, &sql, Vec::new())
            .await
            .map_err(db)?;
        let next: Option<i64> = match rows.first() {
            Some(row) => row.try_get("", "next").map_err(db)?,
            None => None,
        };
        Ok(micros(next))
    }

    async fn set_next_run_times(
        &self,
        updates: &[(Arc<str>, Option<DateTime<Utc>>)],
    ) -> scheduler_core::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE {} SET next_run_time = ?, due_time = ?, version = version + 1 WHERE id = ?",
            self.inner.schedules
        );
        let txn = self.inner.db.begin().await.map_err(db)?;
        for (id, next) in updates {
            // The engine applies jitter itself on this path: due when nominal.
            let next = next.map(|t| t.timestamp_micros());
            let values = vec![next.into(), next.into(), (**id).into()];
            self.execute(&txn, &sql, values).await.map_err(db)?;
        }
        txn.commit().await.map_err(db)
    }
}
