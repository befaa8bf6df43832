//! The conformance suite every [`JobStore`] runs.
//!
//! ```
//! use scheduler_core::store::{MemoryStore, conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a store crate's tests: a fresh, empty store for each check.
//! conformance::run(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! `make_store` is called once per check and must return an empty store each time. A failed
//! check panics with a message naming the check and what differed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use super::JobStore;
use crate::error::Error;
use crate::schedule::{Schedule, ScheduleOptions};
use crate::trigger::{CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, TriggerSpec};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// A schedule with every field set to something a store must keep exactly.
pub fn sample_schedule(id: &str, next_run_time: Option<DateTime<Utc>>) -> Schedule {
    let trigger: TriggerSpec = CronTrigger::builder("0 */5 9-17 * * MON-FRI")
        .timezone("Europe/Berlin")
        .start(t0())
        .jitter(Duration::from_millis(1500))
        .build()
        .expect("valid cron")
        .into();
    Schedule::from_parts(
        id,
        &format!("name of {id}"),
        Some("job"),
        json!({"table": "my_data", "ids": [1, 2, 3], "nested": {"ok": true}}),
        trigger,
        next_run_time,
        ScheduleOptions {
            misfire_grace_time: Some(Duration::from_millis(2500)),
            coalesce: false,
            max_instances: 3,
            paused: next_run_time.is_none(),
            at_most_once: true,
        },
    )
    .expect("valid schedule")
}

fn at(minutes: i64) -> Option<DateTime<Utc>> {
    Some(t0() + TimeDelta::minutes(minutes))
}

/// Runs every check against fresh stores from `make_store`.
pub async fn run<S, F, Fut>(make_store: F)
where
    S: JobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    add_get_round_trips_every_field(&make_store().await).await;
    every_trigger_kind_round_trips(&make_store().await).await;
    add_existing_id_conflicts_unless_replace(&make_store().await).await;
    update_overwrites_and_needs_an_existing_id(&make_store().await).await;
    remove_and_remove_all(&make_store().await).await;
    list_orders_by_next_run_time_paused_last(&make_store().await).await;
    due_is_ordered_bounded_and_limited(&make_store().await).await;
    set_next_run_times_moves_schedules(&make_store().await).await;
}

async fn add_get_round_trips_every_field(store: &impl JobStore) {
    let schedule = sample_schedule("round-trip", at(5));
    store.add(&schedule, false).await.expect("add");
    let got = store.get("round-trip").await.expect("get");
    assert_eq!(got.as_ref(), Some(&schedule), "get returns what add stored");
    assert_eq!(store.get("missing").await.expect("get missing"), None);
    let paused = sample_schedule("paused", None);
    store.add(&paused, false).await.expect("add paused");
    assert_eq!(
        store.get("paused").await.expect("get").as_ref(),
        Some(&paused)
    );
}

async fn every_trigger_kind_round_trips(store: &impl JobStore) {
    let triggers: Vec<TriggerSpec> = vec![
        IntervalTrigger::builder()
            .minutes(5)
            .milliseconds(250)
            .start(t0())
            .end(t0() + TimeDelta::days(30))
            .jitter(Duration::from_secs(2))
            .build()
            .expect("interval")
            .into(),
        DateTrigger::parse("2030-01-01 10:00:00", "Asia/Tokyo")
            .expect("date")
            .into(),
        OrTrigger::new(vec![
            CronTrigger::new("@daily").expect("cron").into(),
            CronTrigger::new("0 0 12 ? * 6#L").expect("cron").into(),
        ])
        .expect("or")
        .with_jitter(Some(Duration::from_secs(1)))
        .into(),
    ];
    for (i, trigger) in triggers.into_iter().enumerate() {
        let id = format!("trigger-{i}");
        let schedule = Schedule::from_parts(
            &id,
            &id,
            Some("job"),
            json!(null),
            trigger,
            at(i as i64),
            ScheduleOptions::default(),
        )
        .expect("schedule");
        store.add(&schedule, false).await.expect("add");
        assert_eq!(
            store.get(&id).await.expect("get").as_ref(),
            Some(&schedule),
            "{id} round-trips"
        );
    }
}

async fn add_existing_id_conflicts_unless_replace(store: &impl JobStore) {
    store
        .add(&sample_schedule("dup", at(1)), false)
        .await
        .expect("first add");
    let err = store
        .add(&sample_schedule("dup", at(2)), false)
        .await
        .expect_err("second add conflicts");
    assert!(
        matches!(err, Error::ConflictingId(ref id) if id == "dup"),
        "conflict error, got {err:?}"
    );
    assert_eq!(
        store
            .get("dup")
            .await
            .expect("get")
            .and_then(|s| s.next_run_time),
        at(1),
        "conflict changes nothing"
    );
    store
        .add(&sample_schedule("dup", at(2)), true)
        .await
        .expect("replace");
    assert_eq!(
        store
            .get("dup")
            .await
            .expect("get")
            .and_then(|s| s.next_run_time),
        at(2),
        "replace overwrites"
    );
    assert_eq!(
        store.list().await.expect("list").len(),
        1,
        "replace keeps one row"
    );
}

async fn update_overwrites_and_needs_an_existing_id(store: &impl JobStore) {
    store
        .add(&sample_schedule("u", at(1)), false)
        .await
        .expect("add");
    let mut changed = sample_schedule("u", at(9));
    changed.name = "renamed".into();
    changed.args = Arc::new(json!([1]));
    store.update(&changed).await.expect("update");
    assert_eq!(store.get("u").await.expect("get").as_ref(), Some(&changed));
    assert_eq!(
        store.next_run_time().await.expect("next"),
        at(9),
        "update re-indexes the time"
    );
    let err = store
        .update(&sample_schedule("nope", at(1)))
        .await
        .expect_err("update missing");
    assert!(err.is_not_found(), "not-found error, got {err:?}");
}

async fn remove_and_remove_all(store: &impl JobStore) {
    for id in ["r1", "r2", "r3"] {
        store
            .add(&sample_schedule(id, at(1)), false)
            .await
            .expect("add");
    }
    store.remove("r2").await.expect("remove");
    assert_eq!(store.get("r2").await.expect("get"), None);
    let err = store.remove("r2").await.expect_err("remove twice");
    assert!(err.is_not_found(), "not-found error, got {err:?}");
    assert_eq!(store.list().await.expect("list").len(), 2);
    store.remove_all().await.expect("remove all");
    assert!(store.list().await.expect("list").is_empty());
    assert_eq!(store.next_run_time().await.expect("next"), None);
}

async fn list_orders_by_next_run_time_paused_last(store: &impl JobStore) {
    for (id, time) in [
        ("c", at(3)),
        ("p2", None),
        ("a", at(1)),
        ("b2", at(2)),
        ("p1", None),
        ("b1", at(2)),
    ] {
        store
            .add(&sample_schedule(id, time), false)
            .await
            .expect("add");
    }
    let ids: Vec<String> = store
        .list()
        .await
        .expect("list")
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["a", "b1", "b2", "c", "p1", "p2"],
        "by time, ties by id, paused last"
    );
}

async fn due_is_ordered_bounded_and_limited(store: &impl JobStore) {
    for (id, time) in [
        ("late", at(30)),
        ("d3", at(3)),
        ("d1", at(1)),
        ("paused", None),
        ("d2", at(2)),
    ] {
        store
            .add(&sample_schedule(id, time), false)
            .await
            .expect("add");
    }
    let ids = |list: Vec<Schedule>| list.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.due(at(3).unwrap(), 10).await.expect("due")),
        ["d1", "d2", "d3"],
        "at or before now, earliest first"
    );
    assert_eq!(
        ids(store.due(at(3).unwrap(), 2).await.expect("due")),
        ["d1", "d2"],
        "limited"
    );
    assert!(
        store.due(at(0).unwrap(), 10).await.expect("due").is_empty(),
        "nothing due before the first"
    );
    assert_eq!(store.next_run_time().await.expect("next"), at(1));
}

async fn set_next_run_times_moves_schedules(store: &impl JobStore) {
    for (id, time) in [("m1", at(1)), ("m2", at(2))] {
        store
            .add(&sample_schedule(id, time), false)
            .await
            .expect("add");
    }
    store
        .set_next_run_times(&[
            ("m1".into(), at(10)),
            ("m2".into(), None),
            ("unknown".into(), at(0)),
        ])
        .await
        .expect("set next run times");
    assert_eq!(
        store
            .get("m1")
            .await
            .expect("get")
            .and_then(|s| s.next_run_time),
        at(10)
    );
    assert_eq!(
        store
            .get("m2")
            .await
            .expect("get")
            .and_then(|s| s.next_run_time),
        None
    );
    assert_eq!(
        store.get("unknown").await.expect("get"),
        None,
        "unknown ids are ignored"
    );
    assert_eq!(store.next_run_time().await.expect("next"), at(10));
    let due: Vec<String> = store
        .due(at(10).unwrap(), 10)
        .await
        .expect("due")
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    assert_eq!(due, ["m1"]);
}
