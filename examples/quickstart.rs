//! The README's quick start: a job every 30 seconds, the first run at once, until Ctrl-C.

use std::time::Duration;

use apsched::trigger::IntervalTrigger;
use apsched::{FirstRun, JobContext, NewSchedule, Scheduler};

const THIRTY_SECONDS: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Register the job by name, so a stored schedule finds its code after a restart.
    let scheduler = Scheduler::builder()
        .job("update_db", |ctx: JobContext| async move {
            println!("Data updated at {}", ctx.nominal_fire_time());
        })
        .build()
        .start()
        .await?;

    // Every 30 seconds, the first run at once (not after a whole interval).
    scheduler
        .add(
            NewSchedule::for_job("update_db", IntervalTrigger::every(THIRTY_SECONDS)?)
                .id("update-db")
                .first_run(FirstRun::Now),
        )
        .await?;

    // The scheduler runs on tokio's runtime: this task (or a web server) is free meanwhile.
    tokio::signal::ctrl_c().await?;
    let report = scheduler.shutdown(Duration::from_secs(10)).await?;
    println!(
        "stopped; {} run(s) ended during shutdown",
        report.finished.len()
    );
    Ok(())
}
