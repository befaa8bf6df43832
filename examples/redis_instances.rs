//! One of several processes sharing a schedule through Redis: start it three times and each
//! minute's report runs once, on one of them. The keys live under the prefix `billing`.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example redis_instances --features redis
//! ```

use std::time::Duration;

use apsched::trigger::CronTrigger;
use apsched::{JobContext, NewSchedule, OnConflict, Scheduler};

async fn report(ctx: JobContext) {
    println!(
        "report for {} (epoch {:?})",
        ctx.nominal_fire_time(),
        ctx.epoch()
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis_url = std::env::var("REDIS_URL")?;
    // [readme]
    use apsched::redis::{Store, StoreOptions};

    let store = Store::connect_with(&redis_url, StoreOptions::default().prefix("billing")).await?;
    // [/readme]
    let scheduler = Scheduler::builder()
        .shared_store(store)
        .job("report", report)
        .build()
        .start()
        .await?;
    let every_minute = NewSchedule::for_job("report", CronTrigger::new("* * * * *")?)
        .id("report")
        .on_conflict(OnConflict::Keep);
    scheduler.add(every_minute).await?;
    tokio::signal::ctrl_c().await?;
    scheduler.shutdown(Duration::from_secs(10)).await?;
    Ok(())
}
