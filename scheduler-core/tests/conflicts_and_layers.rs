//! Adding a schedule whose id is taken ([`OnConflict`]), and scheduler-wide tower layers
//! around every job, on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use scheduler_core::clock::TestClock;
use scheduler_core::store::MemoryStore;
use scheduler_core::trigger::{DateTrigger, IntervalTrigger};
use scheduler_core::{
    Error, Event, EventReceiver, JobContext, JobError, NewSchedule, OnConflict, Scheduler,
    SchedulerHandle,
};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n)
}

async fn wait(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

fn drain(events: &mut EventReceiver) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn every(seconds: u64) -> IntervalTrigger {
    IntervalTrigger::every(Duration::from_secs(seconds)).unwrap()
}

async fn scheduler() -> SchedulerHandle {
    Scheduler::builder()
        .clock(TestClock::new(t0()))
        .store(MemoryStore::new())
        .job("a", |_ctx: JobContext| async {})
        .job("b", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap()
}

// ===== OnConflict =====

#[tokio::test(start_paused = true)]
async fn keep_adds_only_when_absent_and_keeps_the_schedule_as_it_is() {
    let handle = scheduler().await;
    let mut events = handle.subscribe();
    let first = handle
        .add(
            NewSchedule::for_job("a", every(60))
                .id("s")
                .on_conflict(OnConflict::Keep),
        )
        .await
        .unwrap();
    handle.pause("s").await.unwrap();
    wait(90.0).await;
    // Another definition, added with Keep: the one there stays, paused, on its grid.
    let kept = handle
        .add(
            NewSchedule::for_job("b", every(5))
                .id("s")
                .args(json!({"x": 1}))
                .on_conflict(OnConflict::Keep),
        )
        .await
        .unwrap();
    assert_eq!(kept.job_name(), Some("a"));
    assert!(kept.paused());
    assert_eq!(kept.trigger(), first.trigger());
    assert_eq!(handle.get("s").await.unwrap(), Some(kept));
    let added: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, Event::Added { .. }))
        .collect();
    assert_eq!(
        added.len(),
        1,
        "only the first add is an addition: {added:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn replace_if_changed_keeps_the_same_definition_and_replaces_another() {
    let handle = scheduler().await;
    let first = handle
        .add(
            NewSchedule::for_job("a", every(60))
                .id("s")
                .on_conflict(OnConflict::ReplaceIfChanged),
        )
        .await
        .unwrap();
    // The same definition a while later: its grid, pinned at the first add, is kept (so a
    // restart does not move it), though this add would pin another.
    wait(25.0).await;
    let again = handle
        .add(
            NewSchedule::for_job("a", every(60))
                .id("s")
                .on_conflict(OnConflict::ReplaceIfChanged),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(again.next_run_time(), Some(secs(60)));
    // A different period, args, job or option: replaced.
    for changed in [
        NewSchedule::for_job("a", every(30)),
        NewSchedule::for_job("a", every(60)).args(json!([1])),
        NewSchedule::for_job("b", every(60)),
        NewSchedule::for_job("a", every(60)).max_instances(2),
    ] {
        let before = handle.get("s").await.unwrap().unwrap();
        let replaced = handle
            .add(changed.id("s").on_conflict(OnConflict::ReplaceIfChanged))
            .await
            .unwrap();
        assert_ne!(replaced, before);
        assert_eq!(handle.get("s").await.unwrap(), Some(replaced));
    }
    // A start given explicitly is part of the definition.
    let start = secs(1000);
    let pinned = IntervalTrigger::builder()
        .seconds(60)
        .start(start)
        .build()
        .unwrap();
    let with_start = handle
        .add(
            NewSchedule::for_job("a", pinned.clone())
                .id("p")
                .on_conflict(OnConflict::ReplaceIfChanged),
        )
        .await
        .unwrap();
    let moved = IntervalTrigger::builder()
        .seconds(60)
        .start(start + TimeDelta::seconds(1))
        .build()
        .unwrap();
    let replaced = handle
        .add(
            NewSchedule::for_job("a", moved)
                .id("p")
                .on_conflict(OnConflict::ReplaceIfChanged),
        )
        .await
        .unwrap();
    assert_ne!(replaced.trigger(), with_start.trigger());
}

#[tokio::test(start_paused = true)]
async fn fail_and_replace_as_before() {
    let handle = scheduler().await;
    handle
        .add(NewSchedule::for_job("a", every(60)).id("s"))
        .await
        .unwrap();
    let refused = handle
        .add(NewSchedule::for_job("b", every(60)).id("s"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::ConflictingId(id) if id == "s"),
        "{refused:?}"
    );
    let replaced = handle
        .add(
            NewSchedule::for_job("b", every(60))
                .id("s")
                .replace_existing(true),
        )
        .await
        .unwrap();
    assert_eq!(replaced.job_name(), Some("b"));
    // Keep in a batch with an id repeated is still a conflict: the batch says two things.
    let twice = handle
        .add_all([
            NewSchedule::for_job("a", every(1))
                .id("t")
                .on_conflict(OnConflict::Keep),
            NewSchedule::for_job("a", every(2))
                .id("t")
                .on_conflict(OnConflict::Keep),
        ])
        .await
        .unwrap_err();
    assert!(matches!(twice, Error::ConflictingId(_)));
    assert_eq!(handle.get("t").await.unwrap(), None);
}

// ===== scheduler-wide layers =====

#[tokio::test(start_paused = true)]
async fn a_scheduler_wide_timeout_fails_a_job_that_runs_too_long() {
    let handle = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(2)))
        .job("slow", |_ctx: JobContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .job("quick", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap();
    let mut events = handle.subscribe();
    handle
        .add(
            NewSchedule::for_job(
                "slow",
                IntervalTrigger::builder()
                    .seconds(1000)
                    .start(secs(1))
                    .build()
                    .unwrap(),
            )
            .id("slow"),
        )
        .await
        .unwrap();
    handle
        .add(NewSchedule::for_job("quick", DateTrigger::at(secs(1))).id("quick"))
        .await
        .unwrap();
    // A job given as a value is wrapped too.
    handle
        .add(
            NewSchedule::with_job(
                |_ctx: JobContext| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<_, JobError>(())
                },
                DateTrigger::at(secs(1)),
            )
            .id("value"),
        )
        .await
        .unwrap();
    wait(10.0).await;
    let mut outcomes: Vec<(String, String)> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            Event::Failed {
                schedule_id,
                error,
                duration,
                ..
            } => {
                assert_eq!(duration, Duration::from_secs(2));
                Some((schedule_id.to_string(), error.to_string()))
            }
            Event::Succeeded { schedule_id, .. } => {
                Some((schedule_id.to_string(), "ok".to_owned()))
            }
            _ => None,
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("quick".to_owned(), "ok".to_owned()),
            ("slow".to_owned(), "request timed out".to_owned()),
            ("value".to_owned(), "request timed out".to_owned()),
        ]
    );
    let history = handle.runs("slow", 10).await.unwrap();
    assert_eq!(history[0].error.as_deref(), Some("request timed out"));
}

#[tokio::test(start_paused = true)]
async fn layers_see_each_runs_context_and_wrap_in_order() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (outer, inner) = (Arc::clone(&seen), Arc::clone(&seen));
    let handle = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .layer(tower::layer::layer_fn(move |service| {
            let seen = Arc::clone(&inner);
            tower::util::MapRequest::new(service, move |ctx: JobContext| {
                seen.lock().unwrap().push(format!(
                    "inner {} {} attempt {}",
                    ctx.schedule_id(),
                    ctx.nominal_fire_time().format("%H:%M:%S"),
                    ctx.attempt()
                ));
                ctx
            })
        }))
        .layer(tower::layer::layer_fn(move |service| {
            let seen = Arc::clone(&outer);
            tower::util::MapRequest::new(service, move |ctx: JobContext| {
                seen.lock()
                    .unwrap()
                    .push(format!("outer {}", ctx.schedule_id()));
                ctx
            })
        }))
        .job("a", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap();
    handle
        .add(NewSchedule::for_job("a", DateTrigger::at(secs(5))).id("s"))
        .await
        .unwrap();
    wait(10.0).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["outer s", "inner s 00:00:05 attempt 1"],
        "the layer added last runs first"
    );
}
