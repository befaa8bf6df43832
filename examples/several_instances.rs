//! One of several processes sharing a schedule through PostgreSQL: start it three times and
//! each minute's report runs once, on one of them. (For MariaDB: `--features postgres,mysql`
//! and a `mysql://` URL.)
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example several_instances --features postgres
//! ```

use std::time::Duration;

use apsched::trigger::CronTrigger;
use apsched::{JobContext, NewSchedule, OnConflict, Scheduler};

async fn report(ctx: JobContext) {
    // The fire's epoch is a fencing token: pass it to writes that must not come from a stale run.
    println!(
        "report for {} (epoch {:?})",
        ctx.nominal_fire_time(),
        ctx.epoch()
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url = std::env::var("DATABASE_URL")?;
    // [readme]
    use apsched::sea_orm::{Store, StoreOptions};

    let store = Store::connect_with(&database_url, StoreOptions::default()).await?; // runs its migrations
    let scheduler = Scheduler::builder()
        .shared_store(store)
        .job("report", report) // schedules name their job, so any instance can run them
        .build()
        .start()
        .await?;
    // The first instance to start adds it; the others (and restarts) keep the one there.
    let every_minute = NewSchedule::for_job("report", CronTrigger::new("* * * * *")?)
        .id("report")
        .on_conflict(OnConflict::Keep);
    scheduler.add(every_minute).await?;
    // [/readme]
    tokio::signal::ctrl_c().await?;
    scheduler.shutdown(Duration::from_secs(10)).await?;
    Ok(())
}
