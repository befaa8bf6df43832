//! Framework-free core of [apsched]: triggers, jobs, the scheduling engine, job stores and
//! events. What APScheduler's `BackgroundScheduler` is to Python, for tokio: it never blocks
//! the web server it lives in, a failing job never stops it, it sleeps until something is due,
//! and it stops cleanly.
//!
//! Web services usually depend on the `apsched` facade, which re-exports this crate and adds
//! the axum and warp adapters.
//!
//! # Triggers
//!
//! A trigger says when a job runs; [`next_fire_time`](trigger::Trigger::next_fire_time) takes
//! the previous fire (if any) and the current time:
//!
//! ```
//! use std::time::Duration;
//! use chrono::{TimeZone, Utc};
//! use apsched::trigger::{
//!     AndTrigger, CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, Trigger,
//! };
//!
//! let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(); // a Friday
//! let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap();
//!
//! // Every 90 minutes on a fixed grid from its start.
//! let interval = IntervalTrigger::builder().hours(1).minutes(30).start(at(9, 0)).build()?;
//! assert_eq!(interval.next_fire_time(None, now), Some(at(10, 30)));
//! assert_eq!(interval.next_fire_time(Some(at(10, 30)), now), Some(at(12, 0)));
//!
//! // Crontab (5 fields) or Quartz (6-7 fields, seconds first), in any IANA zone.
//! let cron = CronTrigger::builder("*/20 * * * *").timezone("Asia/Kolkata").build()?;
//! assert_eq!(cron.next_fire_time(None, now), Some(at(10, 10))); // India is UTC+05:30
//! let quartz = CronTrigger::new("30 0 12 ? * FRI")?;
//! assert_eq!(quartz.next_fire_time(None, now), Some(at(12, 0) + chrono::TimeDelta::seconds(30)));
//!
//! // Once.
//! let date = DateTrigger::at(at(18, 0));
//! assert_eq!(date.next_fire_time(None, now), Some(at(18, 0)));
//! assert_eq!(date.next_fire_time(Some(at(18, 0)), now), None);
//!
//! // Union and (bounded) intersection.
//! let or = OrTrigger::new(vec![date.clone().into(), CronTrigger::new("0 11 * * *")?.into()])?;
//! assert_eq!(or.next_fire_time(None, now), Some(at(11, 0)));
//! let and = AndTrigger::new(vec![
//!     CronTrigger::new("0 * * * *")?.into(),
//!     IntervalTrigger::builder().hours(3).start(at(0, 0)).build()?.into(),
//! ])?;
//! assert_eq!(and.next_fire_time(None, now), Some(at(12, 0)));
//! # Ok::<(), apsched::Error>(())
//! ```
//!
//! # Quick start
//!
//! The classic case: a job every 30 seconds, the first run at once, until Ctrl-C.
//!
//! ```no_run
//! use std::time::Duration;
//! use apsched::{FirstRun, JobContext, NewSchedule, Scheduler, trigger::IntervalTrigger};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let scheduler = Scheduler::builder()
//!         .job("update_db", |ctx: JobContext| async move {
//!             println!("database updated for {}", ctx.nominal_fire_time());
//!         })
//!         .build()
//!         .start()
//!         .await?;
//!     scheduler
//!         .add(
//!             NewSchedule::for_job("update_db", IntervalTrigger::every(Duration::from_secs(30))?)
//!                 .id("update-db")
//!                 .first_run(FirstRun::Now),
//!         )
//!         .await?;
//!     tokio::signal::ctrl_c().await?;
//!     let report = scheduler.shutdown(Duration::from_secs(10)).await?;
//!     println!("{} run(s) finished during shutdown", report.finished.len());
//!     Ok(())
//! }
//! ```
//!
//! # Semantics
//!
//! - **First run**: an interval first fires one period after the schedule is added, as in
//!   APScheduler; [`FirstRun::Now`] runs it at once.
//! - **`misfire_grace_time`** (default 60 s, `None` = no limit): a fire dispatched later than
//!   this does not run and is reported [`Event::Missed`]. Lateness is measured when the engine
//!   dispatches, not after the run waited for a concurrency slot.
//! - **`coalesce`** (default true): several due fires of one schedule (after downtime, a
//!   scheduler-wide pause or a clock jump) run once, for the latest; the others are recorded
//!   skipped (coalesced). Without it, each runs, up to 100 in one go; catch-up never loops
//!   over every missed time.
//! - **`max_instances`** (default 1): a fire that finds that many runs of its schedule still
//!   going is skipped and reported [`Event::Skipped`]; the schedule keeps its grid.
//! - **Pausing** one schedule skips its fires; on resume they are recorded skipped and it
//!   runs at its next time from then, with no catch-up. Pausing the whole scheduler keeps
//!   every schedule's time instead.
//! - **History**: every fire, run or not, is recorded with its outcome or the reason it did
//!   not run ([`SchedulerHandle::runs`]), on every store.
//! - A job that fails or panics is reported; its schedule and every other go on.
//! - **Shutdown**: no run starts once it begins; running jobs see their
//!   [`JobContext::cancelled`] and are awaited up to a deadline, then aborted; the call reports
//!   what finished and what was aborted.
//!
//! # Features
//!
//! | Name | Description | Default? |
//! | --- | --- | --- |
//! | `test-util` | The store conformance suites (`store::conformance`), for crates that implement [`JobStore`](store::JobStore) or [`SharedStore`](store::SharedStore) | no |
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.85 (edition 2024).
//!
//! [apsched]: https://github.com/apsched/apsched

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::dbg_macro))]

pub mod clock;
mod context;
mod engine;
mod error;
mod event;
mod fires;
mod job;
mod metrics;
mod policy;
mod schedule;
mod scheduler;
pub mod store;
pub mod trigger;

pub use self::context::JobContext;
pub use self::engine::SchedulerState;
pub use self::error::{BoxError, Error, JobError, Result};
pub use self::event::{
    AbortedRun, Event, EventReceiver, RecvError, RunSummary, ShutdownReport, TryRecvError,
};
pub use self::fires::{FireRecord, FireState, NotRun, SkipReason};
pub use self::job::{ClosureKind, IntoJob, IntoJobResult, Job, JobKind, JobService, ServiceKind};
pub use self::schedule::{
    DEFAULT_MISFIRE_GRACE_TIME, FirstRun, MAX_CANCEL_GRACE, MAX_ID_LEN, MAX_QUEUE_LIMIT,
    NewSchedule, OnConflict, Overlap, Schedule, ScheduleChanges, ScheduleOptions,
};
pub use self::scheduler::{
    DEFAULT_CLAIM_AHEAD, DEFAULT_EVENT_CAPACITY, DEFAULT_HISTORY_LIMIT, Scheduler,
    SchedulerBuilder, SchedulerHandle, host_name,
};
