//! The article's demo done right: a database row every `UPDATE_INTERVAL_SECS` (default 30),
//! the first one at once, written by a scheduled job while the web server answers; the latest
//! 10 rows at `/`; the scheduler's REST API at `/scheduler`. It runs on axum (default) or warp.
//!
//! ```sh
//! cargo run -p demo-app                                          # axum, SQLite file demo.db
//! cargo run -p demo-app --no-default-features --features warp    # warp
//! ```

pub mod config;
pub mod db;
pub mod pages;
#[cfg(feature = "axum")]
pub mod web_axum;
#[cfg(feature = "warp")]
pub mod web_warp;

use apsched::api::{Api, Lifecycle, Stopped};
use apsched::sea_orm::{Store, StoreOptions};
use apsched::trigger::IntervalTrigger;
use apsched::{FirstRun, JobContext, JobError, NewSchedule, OnConflict, Scheduler};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::config::{Config, Framework, SchedulerStore, redact};
use crate::pages::AppState;

/// The id of the update schedule (for the REST API: `/scheduler/jobs/update-db`).
pub const SCHEDULE_ID: &str = "update-db";

/// The database, as the job reaches it through the scheduler's state.
#[derive(Clone, Debug)]
pub struct Db(pub DatabaseConnection);

/// The job: writes `Data updated at <time>` for its fire.
///
/// # Errors
///
/// The database's error; the run is reported failed and the next one happens as planned.
pub async fn update_db(ctx: JobContext) -> Result<(), JobError> {
    let Db(db) = ctx.state::<Db>()?;
    tracing::info!(nominal_time = %ctx.nominal_fire_time(), "update started");
    match db::record_update(db, ctx.nominal_fire_time(), ctx.started_at()).await {
        Ok(true) => {
            tracing::debug!(nominal_time = %ctx.nominal_fire_time(), "database updated");
            Ok(())
        }
        Ok(false) => {
            tracing::info!(nominal_time = %ctx.nominal_fire_time(), "this fire was already written");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, nominal_time = %ctx.nominal_fire_time(), "database update failed");
            Err(error.into())
        }
    }
}

/// Runs the demo until Ctrl-C or SIGTERM; returns how it stopped ([`Stopped::forced`] after a
/// second signal).
///
/// # Errors
///
/// One line saying what failed: the database, the listener, the scheduler or the server.
pub async fn run(config: Config) -> Result<Stopped<()>, String> {
    tracing::info!("{}", config.summary());
    let db = db::connect(&config.database_url).await.map_err(|e| {
        format!(
            "DATABASE_URL={}: cannot connect: {e}",
            redact(&config.database_url)
        )
    })?;
    // By default the schedule lives in the database, and every instance of the demo on it
    // (processes sharing a SQLite file, or replicas sharing a server) claims its fires from
    // there: each update runs once, on one of them.
    let mut builder = Scheduler::builder()
        .timezone(&config.timezone)
        .map_err(|e| format!("SCHEDULER_TIMEZONE: {e}"))?
        .state(Db(db.clone()))
        .job("update_db", update_db);
    match &config.scheduler_store {
        SchedulerStore::Database => {
            let options = StoreOptions::default().lease(config.lease);
            let store = Store::from_connection(db.clone(), options)
                .await
                .map_err(|e| {
                    format!(
                        "DATABASE_URL={}: cannot set up the scheduler's tables: {e}",
                        redact(&config.database_url)
                    )
                })?;
            builder = builder.shared_store(store);
        }
        SchedulerStore::Redis { url, prefix } => {
            let options = apsched::redis::StoreOptions::default()
                .lease(config.lease)
                .prefix(prefix.clone());
            let store = apsched::redis::Store::connect_with(url, options)
                .await
                .map_err(|e| format!("SCHEDULER_STORE={}: cannot connect: {e}", redact(url)))?;
            builder = builder.shared_store(store);
        }
        SchedulerStore::Memory => tracing::warn!(
            "SCHEDULER_STORE=memory: the schedule lives in this process; every process started \
             like this runs every update"
        ),
    }
    let scheduler = builder.build();
    let handle = scheduler.handle();
    let trigger = IntervalTrigger::every(config.update_interval).map_err(|e| e.to_string())?;
    // No grace limit: after downtime (every instance stopped) the update runs once at start,
    // for the latest fire it slept through, however long that was.
    let schedule = NewSchedule::for_job("update_db", trigger.clone())
        .id(SCHEDULE_ID)
        .name("Database update")
        .first_run(FirstRun::Now)
        .misfire_grace_time(None);
    // Added once, by whichever instance comes first; the others (and restarts) find it there
    // and keep it, so its fires and pauses carry on.
    let schedule = handle
        .add(schedule.on_conflict(OnConflict::Keep))
        .await
        .map_err(|e| format!("cannot schedule the update: {e}"))?;
    let kept_period = match schedule.trigger() {
        apsched::trigger::TriggerSpec::Interval(interval) => Some(interval.period()),
        _ => None,
    };
    if kept_period != Some(trigger.period()) {
        tracing::warn!(
            id = SCHEDULE_ID,
            kept = ?schedule.trigger(),
            "the update schedule in the database differs from UPDATE_INTERVAL_SECS; it is kept \
             as it is (change it with PATCH /scheduler/jobs/update-db)"
        );
    }
    let api = match &config.api_token {
        Some(token) => Api::with_bearer_token(handle.clone(), token),
        None => {
            tracing::warn!(
                "SCHEDULER_API_TOKEN is not set: the scheduler API at /scheduler is read-only (GET only)"
            );
            Api::without_auth(handle.clone()).read_only(true)
        }
    };
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| {
            format!(
                "HOST={} PORT={}: cannot listen: {e}",
                config.host, config.port
            )
        })?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!("listening on http://{address}");
    }
    let state = AppState {
        db,
        scheduler: handle.clone(),
        metrics: metrics_recorder(),
    };
    // Started before the server accepts; from SIGTERM on, no update starts, and requests and
    // the update going share the deadline.
    let lifecycle = Lifecycle::start(handle, config.shutdown_deadline)
        .await
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    let stopped = match config.framework {
        #[cfg(feature = "axum")]
        Framework::Axum => web_axum::serve(listener, state, api, lifecycle).await,
        #[cfg(feature = "warp")]
        Framework::Warp => web_warp::serve(listener, state, api, lifecycle).await,
        #[allow(unreachable_patterns)]
        other => Err(format!("this build has no {other}")),
    }?;
    log_report(&stopped);
    Ok(stopped)
}

/// The scheduler's metrics, recorded from now on for `/metrics`.
#[cfg(feature = "metrics")]
fn metrics_recorder() -> Option<pages::MetricsRender> {
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(pages::MetricsRender(std::sync::Arc::new(move || {
            handle.render()
        }))),
        Err(error) => {
            tracing::warn!(%error, "metrics are not recorded");
            None
        }
    }
}

#[cfg(not(feature = "metrics"))]
fn metrics_recorder() -> Option<pages::MetricsRender> {
    None
}

/// The shutdown report in the log, one line per run: what finished, what was cut off and
/// whether it runs again elsewhere.
fn log_report(stopped: &Stopped<()>) {
    let report = &stopped.report;
    for run in &report.finished {
        tracing::info!(
            schedule_id = %run.schedule_id,
            nominal_time = %run.nominal_time,
            run_id = %run.run_id,
            "shutdown report: finished"
        );
    }
    for aborted in &report.aborted {
        let run = &aborted.run;
        tracing::warn!(
            schedule_id = %run.schedule_id,
            nominal_time = %run.nominal_time,
            run_id = %run.run_id,
            job_returned = aborted.job_returned,
            to_be_run_again = aborted.to_be_run_again,
            "shutdown report: aborted"
        );
    }
    tracing::info!(
        finished = report.finished.len(),
        aborted = report.aborted.len(),
        forced = stopped.forced,
        server_drained = stopped.server.is_some(),
        "stopped"
    );
}
