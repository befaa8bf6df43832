//! Overlap policies on a shared store, with real schedulers: two instances share one
//! database, and what a fire does when `max_instances` runs are going is the same as on the
//! engine's own timetable (scheduler-core/tests/overlap.rs), whichever instance runs what.

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use scheduler_core::clock::{Clock, SystemClock};
use scheduler_core::store::{FireHistory, FireState};
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{Event, JobContext, NewSchedule, Overlap, Scheduler, SchedulerHandle};
use store_sea_orm::{Store, StoreOptions};
use support::{Backend, fresh_url, server_url};

on_backends!(
    [sqlite => Sqlite, postgres => Postgres, mysql => MySql]:
    skip_queue_one_and_queue_all,
    cancel_running_with_a_job_that_honours_its_token_and_one_that_does_not,
    allow_all_runs_fires_side_by_side,
);

/// Each run: (schedule, nominal, started, ended) on the store's clock.
type Runs = Arc<Mutex<Vec<(String, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>)>>>;

fn options() -> StoreOptions {
    StoreOptions::default()
        .lease(Duration::from_millis(900))
        .poll_interval(Duration::from_millis(50))
}

/// An instance whose job "work" takes `job_time`, or stops early when its token fires if
/// `honours`.
async fn instance(
    url: &str,
    name: &str,
    runs: &Runs,
    job_time: Duration,
    honours: bool,
) -> SchedulerHandle {
    let store = Store::connect_with(url, options()).await.unwrap();
    let runs = Arc::clone(runs);
    Scheduler::builder()
        .shared_store(store)
        .instance_name(name)
        .job("work", move |ctx: JobContext| {
            let runs = Arc::clone(&runs);
            async move {
                let index = {
                    let mut all = runs.lock().unwrap();
                    all.push((
                        ctx.schedule_id().to_owned(),
                        ctx.nominal_fire_time(),
                        ctx.started_at(),
                        None,
                    ));
                    all.len() - 1
                };
                let work = tokio::time::sleep(job_time);
                if honours {
                    tokio::select! {
                        () = work => {}
                        () = ctx.cancelled() => {}
                    }
                } else {
                    work.await;
                }
                runs.lock().unwrap()[index].3 = Some(SystemClock.now());
            }
        })
        .event_capacity(10_000)
        .build()
        .start()
        .await
        .unwrap()
}

fn every_second() -> IntervalTrigger {
    IntervalTrigger::every(Duration::from_secs(1)).unwrap()
}

/// The most runs of `id` going at once.
fn most_at_once(runs: &Runs, id: &str) -> usize {
    let runs: Vec<_> = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == id)
        .cloned()
        .collect();
    runs.iter()
        .map(|(_, _, start, _)| {
            runs.iter()
                .filter(|(_, _, s, e)| s <= start && e.is_none_or(|e| e > *start))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn skip_queue_one_and_queue_all(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let url = fresh_url(backend, &server).await;
    let runs = Runs::default();
    let a = instance(&url, "a", &runs, Duration::from_millis(1600), false).await;
    let b = instance(&url, "b", &runs, Duration::from_millis(1600), false).await;
    for (id, overlap) in [
        ("skip", Overlap::Skip),
        ("one", Overlap::QueueOne),
        ("all", Overlap::QueueAll { limit: 10 }),
    ] {
        a.add(
            NewSchedule::for_job("work", every_second())
                .id(id)
                .overlap(overlap)
                .misfire_grace_time(None),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(6500)).await;
    for handle in [&a, &b] {
        handle.pause_all().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let store = Store::connect_with(&url, options()).await.unwrap();
    for id in ["skip", "one", "all"] {
        assert_eq!(most_at_once(&runs, id), 1, "{test}: {id} ran two at once");
        let mut nominal: Vec<_> = runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == id)
            .map(|r| r.1)
            .collect();
        let n = nominal.len();
        nominal.dedup();
        assert_eq!(nominal.len(), n, "{test}: {id}: a fire ran twice");
        assert!(
            nominal.windows(2).all(|w| w[0] < w[1]),
            "{test}: {id}: out of order"
        );
    }
    let reasons = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .fires(id, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.state, f.reason))
                .collect::<Vec<_>>()
        }
    };
    // Skip: the fires in between are skipped for max_instances, and none waited.
    let skip = reasons("skip").await;
    assert!(
        skip.iter().any(|(s, r)| *s == FireState::Skipped
            && r.as_deref() == Some("max_instances: 1 run(s) going")),
        "{test}: {skip:?}"
    );
    // QueueOne: fires waited (one ran later than its time) and others found the queue full.
    let one = reasons("one").await;
    assert!(
        one.iter().any(|(s, r)| *s == FireState::Skipped
            && r.as_deref()
                == Some("overlap: max_instances runs going and 1 fire(s) waiting already")),
        "{test}: {one:?}"
    );
    let waited = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == "one")
        .any(|r| (r.2 - r.1).num_milliseconds() > 400);
    assert!(waited, "{test}: a queued fire started after a run ended");
    // QueueAll: nothing skipped within its limit; every fire of the window ran in turn.
    let all = reasons("all").await;
    assert!(
        all.iter().all(|(s, _)| *s != FireState::Skipped),
        "{test}: {all:?}"
    );
    let ran_all = runs.lock().unwrap().iter().filter(|r| r.0 == "all").count();
    assert!(ran_all >= 4, "{test}: {ran_all} runs of all");
    for handle in [a, b] {
        handle.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

async fn cancel_running_with_a_job_that_honours_its_token_and_one_that_does_not(
    backend: Backend,
    test: &str,
) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let url = fresh_url(backend, &server).await;
    // "honours" stops when asked; "stubborn" runs on until cut off after a 1 s grace.
    let runs = Runs::default();
    let honours = instance(&url, "honours", &runs, Duration::from_secs(100), true).await;
    let mut events = honours.subscribe();
    let trigger = IntervalTrigger::every(Duration::from_secs(3)).unwrap();
    honours
        .add(
            NewSchedule::for_job("work", trigger.clone())
                .id("refresh")
                .overlap(Overlap::CancelRunning {
                    grace: Duration::from_secs(30),
                }),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(7500)).await;
    honours.shutdown(Duration::from_secs(5)).await.unwrap();
    let refresh: Vec<_> = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == "refresh")
        .cloned()
        .collect();
    assert!(refresh.len() >= 2, "{test}: {refresh:?}");
    // The first stopped soon after the second fire's time (its owner learns at a lease
    // renewal, a third of the 0.9 s lease), and the second started once it had.
    let (first, second) = (&refresh[0], &refresh[1]);
    let stopped = first.3.expect("the first run ended");
    assert!(
        (stopped - second.1).num_milliseconds() < 1500,
        "{test}: stopped {stopped}, second due {}",
        second.1
    );
    assert!(
        second.2 >= stopped,
        "{test}: the second waited for the first"
    );
    let mut cancelled = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, Event::Cancelled { .. }) {
            cancelled += 1;
        }
    }
    assert!(cancelled >= 1, "{test}: no Cancelled event");

    let runs = Runs::default();
    let url = fresh_url(backend, &server).await;
    let stubborn = instance(&url, "stubborn", &runs, Duration::from_secs(100), false).await;
    stubborn
        .add(
            NewSchedule::for_job("work", trigger)
                .id("stuck")
                .overlap(Overlap::CancelRunning {
                    grace: Duration::from_secs(1),
                }),
        )
        .await
        .unwrap();
    // Fires at 3 s and 6 s; the first is asked to stop at about 6.3 s and cut off 1 s later.
    tokio::time::sleep(Duration::from_millis(9000)).await;
    stubborn.shutdown(Duration::ZERO).await.unwrap();
    let stuck: Vec<_> = runs.lock().unwrap().clone();
    assert!(stuck.len() >= 2, "{test}: {stuck:?}");
    assert_eq!(stuck[0].3, None, "{test}: cut off, its job never returned");
    let waited = (stuck[1].2 - stuck[1].1).num_milliseconds();
    assert!(
        (900..3000).contains(&waited),
        "{test}: the second started {waited} ms late, after the grace"
    );
    let store = Store::connect_with(&url, options()).await.unwrap();
    let fires = store.fires("stuck", 100).await.unwrap();
    let first = fires.iter().find(|f| f.nominal_time == stuck[0].1).unwrap();
    assert_eq!(first.state, FireState::Failed, "{test}: {first:?}");
    assert_eq!(
        first.error.as_deref(),
        Some(
            "cancelled for a newer fire (overlap: cancel_running), and cut off when its grace was over"
        ),
        "{test}"
    );
}

async fn allow_all_runs_fires_side_by_side(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let url = fresh_url(backend, &server).await;
    let runs = Runs::default();
    let a = instance(&url, "a", &runs, Duration::from_millis(2500), false).await;
    a.add(
        NewSchedule::for_job("work", every_second())
            .id("many")
            .overlap(Overlap::AllowAll),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(
        most_at_once(&runs, "many") >= 2,
        "{test}: {:?}",
        runs.lock().unwrap()
    );
}
