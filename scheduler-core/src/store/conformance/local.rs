//! The conformance suite every [`JobStore`] runs.
//!
//! ```
//! use scheduler_core::store::{MemoryStore, conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a store crate's tests: a fresh, empty store for each check.
//! conformance::local::run(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! `make_store` is called once per check and must return an empty store each time. A failed
//! check panics with a message naming the check and what differed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;

use super::{at, sample_schedule, t0};
use crate::error::Error;
use crate::schedule::{Schedule, ScheduleOptions};
use crate::store::JobStore;
use crate::trigger::{CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, TriggerSpec};

async fn get(store: &impl JobStore, id: &str) -> Option<Schedule> {
    store
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|s| s.id() == id)
}

/// Runs every check against fresh stores from `make_store`.
pub async fn run<S, F, Fut>(make_store: F)
where
    S: JobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    add_then_list_round_trips_every_field(&make_store().await).await;
    every_trigger_kind_round_trips(&make_store().await).await;
    add_existing_id_conflicts_unless_replace(&make_store().await).await;
    update_overwrites_and_needs_an_existing_id(&make_store().await).await;
    remove_and_remove_all(&make_store().await).await;
    list_orders_by_next_run_time_paused_last(&make_store().await).await;
    set_next_run_times_moves_schedules(&make_store().await).await;
}

async fn add_then_list_round_trips_every_field(store: &impl JobStore) {
    let schedule = sample_schedule("round-trip", at(5));
    store.add(&schedule, false).await.expect("add");
    let got = get(store, "round-trip").await;
    assert_eq!(
        got.as_ref(),
        Some(&schedule),
        "list returns what add stored"
    );
    let paused = sample_schedule("paused", None).with_paused_from(at(7));
    store.add(&paused, false).await.expect("add paused");
    let got = get(store, "paused").await;
    assert_eq!(
        got.as_ref(),
        Some(&paused),
        "a pause keeps where it started"
    );
    assert_eq!(got.and_then(|s| s.paused_from()), at(7));
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
            get(store, &id).await.as_ref(),
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
        get(store, "dup").await.and_then(|s| s.next_run_time),
        at(1),
        "conflict changes nothing"
    );
    store
        .add(&sample_schedule("dup", at(2)), true)
        .await
        .expect("replace");
    assert_eq!(
        get(store, "dup").await.and_then(|s| s.next_run_time),
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
    assert_eq!(get(store, "u").await.as_ref(), Some(&changed));
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
    assert_eq!(get(store, "r2").await, None);
    let err = store.remove("r2").await.expect_err("remove twice");
    assert!(err.is_not_found(), "not-found error, got {err:?}");
    assert_eq!(store.list().await.expect("list").len(), 2);
    store.remove_all().await.expect("remove all");
    assert!(store.list().await.expect("list").is_empty());
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
    assert_eq!(get(store, "m1").await.and_then(|s| s.next_run_time), at(10));
    assert_eq!(get(store, "m2").await.and_then(|s| s.next_run_time), None);
    assert_eq!(get(store, "unknown").await, None, "unknown ids are ignored");
    let ids: Vec<String> = store
        .list()
        .await
        .expect("list")
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    assert_eq!(ids, ["m1", "m2"], "the moved times order the list");
}
