//! What lives where in Redis: one store's keys stay under its prefix, and deleting them leaves
//! every other prefix alone, however the prefixes look to Redis's glob patterns.

mod support;

use std::time::Duration;

use scheduler_core::store::ScheduleCatalog;
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{JobContext, NewSchedule, Scheduler, SchedulerHandle};
use store_redis::{Store, StoreOptions};

/// A store on `prefix`, and a scheduler that writes to it without running anything.
async fn store_and_writer(url: &str, prefix: &str) -> (Store, SchedulerHandle) {
    let store = Store::connect_with(url, StoreOptions::default().prefix(prefix))
        .await
        .expect("connect to Redis");
    let writer = Scheduler::builder()
        .shared_store(store.clone())
        .job("tick", |_ctx: JobContext| std::future::ready(()))
        .build()
        .handle();
    (store, writer)
}

async fn store_with_one_schedule(url: &str, prefix: &str) -> Store {
    let (store, writer) = store_and_writer(url, prefix).await;
    let every_minute = IntervalTrigger::every(Duration::from_secs(60)).unwrap();
    writer
        .add(NewSchedule::for_job("tick", every_minute).id("s"))
        .await
        .unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_one_prefix_keeps_the_others() {
    let Some(url) = support::redis_url("deleting_one_prefix_keeps_the_others") else {
        return;
    };
    let base = support::unique_prefix();
    // As a glob, `<base>[x]*:*` would match the keys of `<base>x` too: the prefix is matched
    // literally.
    let plain = store_with_one_schedule(&url, &format!("{base}x")).await;
    let glob_like = store_with_one_schedule(&url, &format!("{base}[x]*")).await;

    let deleted = glob_like.delete_all_keys().await.unwrap();
    assert!(deleted > 0, "the schedule's keys were deleted");
    assert!(glob_like.list().await.unwrap().is_empty());
    assert_eq!(
        plain.list().await.unwrap().len(),
        1,
        "the other prefix is untouched"
    );
    assert_eq!(
        glob_like.delete_all_keys().await.unwrap(),
        0,
        "nothing left to delete"
    );
    plain.delete_all_keys().await.unwrap();
}

/// One batch is one script: 50,000 schedules take Redis longer than the Redis client's own
/// response timeout (500 ms), under which the batch was reported failed although applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_50000_schedules_is_added_whole() {
    let Some(url) = support::redis_url("a_batch_of_50000_schedules_is_added_whole") else {
        return;
    };
    let (store, writer) = store_and_writer(&url, &support::unique_prefix()).await;
    let hourly = IntervalTrigger::every(Duration::from_secs(3600)).unwrap();
    let added = writer
        .add_all(
            (0..50_000).map(|i| NewSchedule::for_job("tick", hourly.clone()).id(format!("s{i}"))),
        )
        .await;
    let listed = store.list().await.unwrap().len();
    store.delete_all_keys().await.unwrap();
    assert_eq!(
        added.map(|a| a.len()).map_err(|e| e.to_string()),
        Ok(50_000)
    );
    assert_eq!(listed, 50_000);
}
