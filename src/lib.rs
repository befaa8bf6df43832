//! apsched: interval, cron and date schedules for Rust web services. What APScheduler and
//! Flask-APScheduler are to Flask, for axum and warp (and any tokio program).
//!
//! This crate re-exports [`scheduler_core`] (the scheduler, its triggers, jobs, stores and
//! events) and, behind features, the web adapters:
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `axum` | `apsched::axum`: serve with graceful shutdown, state, the REST API as a router |
//! | `warp` | `apsched::warp`: serve with graceful shutdown, filters, the REST API as a filter |
//! | `api` | `apsched::api`: the REST API as an `http` request handler, configuration files, `Lifecycle` (signals and deadlines) for another framework |
//! | `sea-orm` + `sqlite`, `postgres`, `mysql` | `apsched::sea_orm`: durable schedules in a database, shared by several processes with each fire run once |
//! | `redis` | `apsched::redis`: the same on Redis |
//! | `metrics` | the scheduler's metrics through the `metrics` facade |
//!
//! # Example
//!
//! A job every 30 seconds, the first run at once; the scheduler runs on tokio beside whatever
//! else the program does.
//!
//! ```
//! use std::time::Duration;
//! use apsched::trigger::IntervalTrigger;
//! use apsched::{FirstRun, JobContext, NewSchedule, Scheduler};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = Scheduler::builder()
//!     .job("update_db", |ctx: JobContext| async move {
//!         println!("Data updated at {}", ctx.nominal_fire_time());
//!     })
//!     .build()
//!     .start()
//!     .await?;
//! let schedule = scheduler
//!     .add(
//!         NewSchedule::for_job("update_db", IntervalTrigger::every(Duration::from_secs(30))?)
//!             .id("update-db")
//!             .first_run(FirstRun::Now),
//!     )
//!     .await?;
//! assert!(schedule.next_run_time().is_some_and(|t| t <= scheduler.now()), "due at once");
//! scheduler.shutdown(Duration::from_secs(10)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The README has the quick start (`examples/quickstart.rs`), the web adapters and the demo.

pub use scheduler_core::*;

/// The REST API (Flask-APScheduler's routes and job JSON), configuration files and the server
/// lifecycle (crate `scheduler-api`), for the adapters and for another framework.
#[cfg(feature = "api")]
pub mod api {
    pub use scheduler_api::*;
}

/// The scheduler in an axum service (crate `adapter-axum`).
#[cfg(feature = "axum")]
pub mod axum {
    pub use adapter_axum::*;
}

/// The scheduler in a warp service (crate `adapter-warp`).
#[cfg(feature = "warp")]
pub mod warp {
    pub use adapter_warp::*;
}

/// The durable job store on sea-orm (crate `store-sea-orm`): schedules in SQLite, PostgreSQL
/// or MariaDB/MySQL, and one run per fire across several processes.
#[cfg(feature = "sea-orm")]
pub mod sea_orm {
    pub use store_sea_orm::*;
}

/// The shared store on Redis (crate `store-redis`): schedules and the fire ledger in Redis,
/// each fire run once across processes.
#[cfg(feature = "redis")]
pub mod redis {
    pub use store_redis::*;
}
