//! A scheduler in an axum service, on axum's own server: started before the first connection
//! is accepted, stopped with it on SIGTERM or Ctrl-C within one deadline (a second signal
//! ends the wait at once).
//!
//! ```sh
//! cargo run --example axum_service --features axum
//! ```

use std::process::ExitCode;
use std::time::Duration;

use apsched::api::{Api, Lifecycle};
use apsched::trigger::IntervalTrigger;
use apsched::{FirstRun, JobContext, NewSchedule, Scheduler, SchedulerHandle};
use axum::Router;
use axum::extract::State;
use axum::routing::get;

async fn tick(ctx: JobContext) {
    println!("tick for {}", ctx.nominal_fire_time());
}

async fn index(State(scheduler): State<SchedulerHandle>) -> String {
    format!("the scheduler is {:?}", scheduler.state())
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let scheduler = Scheduler::builder().job("tick", tick).build();
    let handle = scheduler.handle();
    let every_30s = IntervalTrigger::every(Duration::from_secs(30))?;
    handle
        .add(NewSchedule::for_job("tick", every_30s).first_run(FirstRun::Now))
        .await?;
    let token = std::env::var("SCHEDULER_API_TOKEN").unwrap_or_else(|_| "s3cret".to_owned());
    // [readme]
    let api = Api::with_bearer_token(handle.clone(), &token);
    let app = Router::new()
        .route("/", get(index))
        .merge(apsched::axum::api_routes(api))
        .with_state(handle.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;

    // Starts the scheduler and watches SIGTERM and Ctrl-C; requests in flight and running
    // jobs get 10 s from the first signal.
    let lifecycle = Lifecycle::start(handle, Duration::from_secs(10)).await?;
    let server = axum::serve(listener, app).with_graceful_shutdown(lifecycle.shutdown_signal());
    let stopped = lifecycle.serve(server).await?.transpose()?;
    for cut_off in &stopped.report.aborted {
        eprintln!("cut off: {cut_off:?}");
    }
    // A second signal cut the shutdown short: say so to whoever sent it.
    Ok(ExitCode::from(if stopped.forced { 130 } else { 0 }))
    // [/readme]
}
