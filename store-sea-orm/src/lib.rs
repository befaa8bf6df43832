//! A shared job store for [apsched] on [sea-orm] 2: SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Schedules live in `<prefix>schedules` (with their place in time), so they survive restarts;
//! every fire is a row in the fire ledger `<prefix>fires`, unique per (schedule, nominal time).
//! Several scheduler processes can share one database, each fire running on one of them:
//! processes on one host can share a SQLite file, processes anywhere a PostgreSQL or MariaDB
//! database (see the capabilities of `apsched::store::shared`).
//!
//! ```
//! use apsched::{JobContext, NewSchedule, Scheduler, trigger::IntervalTrigger};
//! use apsched::sea_orm::Store;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("apsched-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let url = format!("sqlite://{}?mode=rwc", dir.join("lib.db").display());
//! let store = Store::connect(&url).await?; // migrations run here
//! let scheduler = Scheduler::builder()
//!     .shared_store(store.clone())
//!     .job("report", |_ctx: JobContext| async {})
//!     .build()
//!     .start()
//!     .await?;
//! let every_minute = IntervalTrigger::every(std::time::Duration::from_secs(60))?;
//! scheduler
//!     .add(NewSchedule::for_job("report", every_minute).id("r").replace_existing(true))
//!     .await?;
//! assert_eq!(scheduler.list().await?.len(), 1);
//! # scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The store coordinates instances, so it is given to `SchedulerBuilder::shared_store` and
//! nowhere else: `SchedulerBuilder::store` (a timetable of the scheduler's own, which runs every
//! fire in its process) does not take it.
//!
//! ```compile_fail,E0277
//! # async fn wrong(store: apsched::sea_orm::Store) {
//! let scheduler = apsched::Scheduler::builder().store(store); // not a JobStore
//! # }
//! ```
//!
//! # How it holds
//!
//! - A claim is one transaction: due schedules are locked (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL and MariaDB/MySQL, so instances never wait for each other; on SQLite, `BEGIN
//!   IMMEDIATE` makes the claim the file's one writer), decided by the engine's planner,
//!   recorded, and moved on. A fire row is unique per (schedule, nominal time), so no two instances can
//!   both record a fire.
//! - Due times are judged by the database's clock. A trigger's jitter is drawn once, when the
//!   next run time is written (`due_time`), so every instance agrees on when a fire is due.
//! - A claimed fire is its instance's for a lease (default 30 s), renewed while the instance
//!   lives. Starting and finishing a fire are writes conditioned on its epoch and owner.
//! - On PostgreSQL every change to the schedules sends a notification that wakes idle
//!   instances at once; SQLite and MariaDB are polled.
//! - SQLite runs in WAL mode with a busy timeout; "database is locked" is recognised by its
//!   error code, and a claim that meets it is simply made again.
//!
//! [apsched]: https://github.com/apsched/apsched
//! [sea-orm]: https://www.sea-ql.org/SeaORM/

mod catalog;
mod claims;
mod feed;
mod leases;
mod ledger;
mod schema;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Alias, SelectStatement};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::sql::{Dialect, Tables};

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
    /// A schedule whose job was given as a value: a shared store must find the code again by
    /// name, in any instance and after a restart.
    #[error(
        "schedule \"{0}\" runs a job given as a value; a shared store needs a job registered \
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
    /// How long a claimed or running fire is its instance's without a renewal (default 30 s):
    /// an instance that dies loses its fires after this.
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

/// Switches a SQLite database file to WAL mode; the file keeps it, so every connection of
/// every process uses it from then on. The switch needs the file to itself and SQLite refuses
/// it at once (busy) while another connection writes, as when instances start together: it is
/// tried again until it goes through. Once in WAL mode it is a no-op that never waits.
async fn use_wal(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut delay = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    loop {
        match db.execute_unprepared("PRAGMA journal_mode=WAL").await {
            Ok(_) => return Ok(()),
            Err(error) if sql::is_transient(&error) && waited < Duration::from_secs(10) => {
                tracing::debug!(%error, "SQLite is busy; switching it to WAL mode again soon");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The store: cheap to clone, all clones share one connection pool. Give it to
/// `SchedulerBuilder::shared_store`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    dialect: Dialect,
    options: StoreOptions,
    tables: Tables,
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

    /// Uses an application's own connection (pool) and brings the tables up to date. On
    /// SQLite it switches the database file to WAL mode, so that readers never wait for the
    /// one writer and several processes can share the file.
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
        let dialect = Dialect::of(db.get_database_backend());
        if dialect == Dialect::Sqlite {
            use_wal(&db).await?;
        }
        schema::migrate(&db, prefix).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                tables: Tables::new(prefix),
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

    fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    fn tables(&self) -> &Tables {
        &self.inner.tables
    }

    /// A transaction that writes: on SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction that reads before it writes cannot fail halfway because
    /// another process wrote in between; the busy timeout makes it wait its turn instead.
    async fn write_transaction(&self) -> Result<DatabaseTransaction, DbErr> {
        let mut options = TransactionOptions::default();
        if self.dialect() == Dialect::Sqlite {
            options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
        }
        let txn = self.inner.db.begin_with_options(options).await?;
        if self.dialect() == Dialect::Postgres {
            // Each statement planned for its own values. The pool's prepared statements
            // otherwise settle on one generic plan, made when the fires table was small and
            // kept until an analyze: a sequential scan of every fire ever recorded, or a
            // bitmap scan of an index full of dead versions, per claim (40-120 ms each at
            // 10,000 fires a second, and growing).
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
                .await?;
        }
        Ok(txn)
    }

    /// The database's clock now, in microseconds.
    async fn now_in(&self, conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
        let mut select = SelectStatement::new();
        select.expr_as(self.dialect().now(), Alias::new("now"));
        let row = conn
            .query_one(&select)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the database's clock".to_owned()))?;
        row.try_get("", "now")
    }
}
