//! A shared job store for [apsched] on Redis: the article's "distributed lock on Redis", as a
//! store several scheduler processes share, each fire run on one of them.
//!
//! ```
//! use apsched::redis::{Store, StoreOptions};
//! use apsched::{JobContext, NewSchedule, OnConflict, Scheduler, trigger::IntervalTrigger};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // Runs where a Redis server is given (as CI gives one), compiles everywhere.
//! # let Ok(url) = std::env::var("TEST_REDIS_URL") else { return Ok(()) };
//! # let prefix = format!("apsched-doc-{}", std::process::id());
//! let store = Store::connect_with(&url, StoreOptions::default().prefix(prefix)).await?;
//! let scheduler = Scheduler::builder()
//!     .shared_store(store)
//!     .job("report", |_ctx: JobContext| async {})
//!     .build()
//!     .start()
//!     .await?;
//! let every_minute = IntervalTrigger::every(std::time::Duration::from_secs(60))?;
//! scheduler
//!     .add(NewSchedule::for_job("report", every_minute).id("report").on_conflict(OnConflict::Keep))
//!     .await?;
//! assert_eq!(scheduler.list().await?.len(), 1);
//! # scheduler.remove("report").await?;
//! # scheduler.shutdown(std::time::Duration::from_secs(1)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How it holds
//!
//! - Every read-decide-write is one Lua script, which Redis runs atomically: a claim reads
//!   the due schedules (a sorted set by due time per job), the engine's planner decides in
//!   Rust, and one script records the fires and moves each schedule on only if its version is
//!   still the one read (a compare-and-set: another instance's claim of the same schedule
//!   wins, and this one tries again). Each fire is unique per (schedule, nominal time).
//! - Due times and leases are judged by the Redis server's clock (`TIME`), not the instances'.
//! - A running fire holds a lease with an epoch; an instance that dies stops renewing it, and
//!   another takes the fire over with the epoch raised (`HINCRBY`), which fences the dead
//!   owner's late writes.
//! - Changes are published on `<prefix>:changes`; idle instances subscribe and wake at once.
//! - Keys live under a prefix (default `apsched`), so several schedulers share one Redis.
//!
//! # What Redis promises, and what it does not
//!
//! Redis keeps its data in memory. With persistence off (no AOF, no RDB snapshots), a restart
//! of Redis loses every schedule and the history; with RDB snapshots alone, the changes since
//! the last snapshot. For schedules that must survive, run Redis with `appendonly yes` and
//! `appendfsync everysec` (at most a second of changes lost in a crash) or `always`.
//!
//! One primary is assumed (standalone Redis or one shard; not Redis Cluster, whose scripts
//! cannot reach keys in other slots). With replication and a failover, writes the old primary
//! acknowledged but did not pass on are lost: a lease may then be granted twice, and a fire run
//! twice. The fencing epoch is what protects the job's own writes then: a job that writes
//! somewhere else should pass [`JobContext::epoch`](scheduler_core::JobContext::epoch) along
//! and have the write refused when a higher epoch was seen.
//!
//! [apsched]: https://github.com/apsched/apsched

mod catalog;
mod claims;
mod feed;
mod history;
mod leases;
mod scripts;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use self::scripts::Scripts;

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis refused or could not be reached.
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored schedule or fire that cannot be read.
    #[error("{what} in Redis cannot be read: {reason}")]
    Corrupt {
        /// What it is.
        what: String,
        /// Why.
        reason: String,
    },
    /// A schedule of a job given as a value: a shared store keeps only schedules of jobs
    /// registered by name, which any instance can run.
    #[error(
        "schedule \"{0}\" runs a job given as a value; a shared store takes only jobs registered by name"
    )]
    UnnamedJob(String),
}

/// The store's settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreOptions {
    prefix: String,
    lease: Duration,
    keep_fires: usize,
    keep_fires_for: Duration,
    safety_recheck: Duration,
    response_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            prefix: "apsched".to_owned(),
            lease: Duration::from_secs(30),
            keep_fires: 1000,
            keep_fires_for: Duration::from_secs(7 * 24 * 3600),
            safety_recheck: Duration::from_secs(60),
            response_timeout: Duration::from_secs(10),
        }
    }
}

impl StoreOptions {
    /// The prefix of every key (default `apsched`): schedulers with different prefixes share
    /// one Redis without seeing each other.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a held fire is its instance's without a renewal (default 30 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How many fires of each schedule the history keeps (default 1000) and for how long
    /// (default 7 days); unfinished fires are always kept.
    #[must_use]
    pub fn keep_fires(mut self, count: usize, age: Duration) -> Self {
        self.keep_fires = count;
        self.keep_fires_for = age;
        self
    }

    /// How long an idle instance sleeps without a change notification before it looks again
    /// (default 60 s).
    #[must_use]
    pub fn safety_recheck(mut self, every: Duration) -> Self {
        self.safety_recheck = every;
        self
    }

    /// How long the store waits for Redis to answer one command or script before it gives
    /// the call up as failed (default 10 s). Adding a batch of 100,000 schedules is one script
    /// that runs for seconds; with the Redis client's own default, 500 ms, it was reported
    /// failed although Redis went on to apply it.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }
}

struct Inner {
    conn: ConnectionManager,
    options: StoreOptions,
    scripts: Scripts,
    /// Raised by the subscription to `<prefix>:changes` at each notification.
    changes: watch::Receiver<u64>,
    subscription: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscription.abort();
    }
}

/// The store: cheap to clone, one connection (reconnecting by itself) and one subscription
/// shared by the clones.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects with the default options.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the URL is not a Redis URL or Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects with these options.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the URL is not a Redis URL or Redis cannot be reached.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, Error> {
        let client = redis::Client::open(url)?;
        let config =
            ConnectionManagerConfig::new().set_response_timeout(Some(options.response_timeout));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let (changes, subscription) =
            feed::subscribe(client, format!("{}:changes", options.prefix));
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                options,
                scripts: Scripts::new(),
                changes,
                subscription,
            }),
        })
    }

    /// Deletes every key under this store's prefix (schedules, fires, history): what dropping
    /// the tables is to a SQL store, for tests and teardown. Instances still running on the
    /// prefix find an empty store. Returns how many keys were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be reached; keys deleted before the failure stay
    /// deleted.
    pub async fn delete_all_keys(&self) -> Result<u64, Error> {
        let pattern = format!("{}:*", glob_escape(self.prefix()));
        let mut conn = self.conn();
        let mut cursor = 0_u64;
        let mut deleted = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn prefix(&self) -> &str {
        &self.inner.options.prefix
    }

    fn lease_micros(&self) -> i64 {
        i64::try_from(self.inner.options.lease.as_micros()).unwrap_or(i64::MAX)
    }
}

/// The prefix as a SCAN pattern that matches it literally.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A store error as the core reports it.
pub(crate) fn store_error(error: impl Into<Error>) -> scheduler_core::Error {
    scheduler_core::Error::Store(Box::new(error.into()))
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

pub(crate) fn parse_micros(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(|f| f as i64))
}
