//! Middleware for every job at once: a scheduler-wide timeout and concurrency limit, and a
//! layer of your own that sees each run's context.
//!
//! ```sh
//! cargo run --example job_layers
//! ```

use std::time::Duration;

use apsched::trigger::IntervalTrigger;
use apsched::{FirstRun, JobContext, NewSchedule, Scheduler};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;

async fn report(ctx: JobContext) {
    println!("report for {}", ctx.nominal_fire_time());
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn stuck(_ctx: JobContext) {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // [readme]
    let scheduler = Scheduler::builder()
        // Every run of every job: failed with "request timed out" after 5 s...
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        // ...and at most 2 runs at once, of all jobs together.
        .layer(GlobalConcurrencyLimitLayer::new(2))
        // A layer of your own sees each run's JobContext as its request.
        .layer(tower::layer::layer_fn(|job| {
            tower::util::MapRequest::new(job, |ctx: JobContext| {
                println!("starting {}", ctx.schedule_id());
                ctx
            })
        }))
        .job("report", report)
        .job("stuck", stuck)
        .build()
        .start()
        .await?;
    // [/readme]
    let every_10s = IntervalTrigger::every(Duration::from_secs(10))?;
    for job in ["report", "stuck"] {
        scheduler
            .add(NewSchedule::for_job(job, every_10s.clone()).first_run(FirstRun::Now))
            .await?;
    }
    let mut events = scheduler.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            println!("{event:?}");
        }
    });
    tokio::signal::ctrl_c().await?;
    scheduler.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
