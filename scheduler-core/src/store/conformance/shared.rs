//! The conformance suite every [`SharedStore`] runs: what any store that several scheduler
//! processes share must do, whatever it is built on.
//!
//! In a store crate's tests, with a fresh, empty store of the given lease for each check:
//!
//! ```text
//! conformance::shared::run(|lease| async move { MyStore::fresh(lease).await }).await;
//! ```
//!
//! The checks talk to the store as several instances would (claimers named `a`, `b`, ...;
//! jobs named `work`), and through a [`Scheduler`] where the engine's part
//! matters. Leases are short (about a second) and some checks wait one out, so the suite
//! takes several seconds: it runs against a real database.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::context::JobContext;
use crate::error::Error;
use crate::fires::{FireRecord, FireState, NotRun, SkipReason};
use crate::schedule::{NewSchedule, Overlap, Schedule, ScheduleOptions};
use crate::scheduler::Scheduler;
use crate::store::shared::reason;
use crate::store::{
    ClaimBatch, ClaimedFire, Claimer, FireOutcome, FireToken, OnConflict, Planner, ScheduleWrite,
    SharedStore,
};
use crate::trigger::{DateTrigger, IntervalTrigger, TriggerSpec};

/// The job name every schedule of the suite runs.
const JOB: &str = "work";

/// The lease most checks use: short, so a take-over comes quickly.
const LEASE: Duration = Duration::from_millis(1000);

/// Runs every check against fresh stores from `make_store`, which is given the lease the
/// check needs and must return an empty store each time.
pub async fn run<S, F, Fut>(make_store: F)
where
    S: SharedStore + Clone,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = S>,
{
    the_catalog_keeps_schedules_with_versions(&make_store(LEASE).await).await;
    inserts_are_all_or_none(&make_store(LEASE).await).await;
    keep_and_replace_if_changed(&make_store(LEASE).await).await;
    instances_adding_one_schedule_at_once_agree(&make_store(LEASE).await).await;
    concurrent_claimers_never_claim_one_fire_twice(&make_store(LEASE).await).await;
    claims_record_coalesced_and_missed_fires(&make_store(LEASE).await).await;
    a_catch_up_is_one_run_whose_later_fires_queue(&make_store(LEASE).await).await;
    max_instances_counts_live_fires_across_instances(&make_store(LEASE).await).await;
    queued_fires_wait_and_are_claimed_when_there_is_room(&make_store(LEASE).await).await;
    cancelled_fires_are_told_to_their_owner_and_not_run_again(&make_store(LEASE).await).await;
    paused_schedules_and_other_jobs_are_never_claimed(&make_store(LEASE).await).await;
    a_fire_already_recorded_is_not_run_again(&make_store(LEASE).await).await;
    an_expired_lease_is_taken_over_and_the_stale_owner_fenced(&make_store(LEASE).await).await;
    renewed_leases_are_not_taken_over(&make_store(LEASE).await).await;
    released_claims_are_taken_over_at_once(&make_store(Duration::from_secs(3600)).await).await;
    at_most_once_fires_of_a_dead_instance_are_lost(&make_store(LEASE).await).await;
    outcomes_are_recorded_and_hand_backs_rerun(&make_store(LEASE).await).await;
    ends_are_recorded_many_at_once(&make_store(LEASE).await).await;
    claims_ahead_take_what_falls_due_within_the_window(&make_store(LEASE).await).await;
    run_now_claims_one_extra_fire(&make_store(LEASE).await).await;
    next_due_sees_due_times_and_expiring_leases(&make_store(LEASE).await).await;
    pause_and_resume_record_the_skipped_fires(make_store(LEASE).await).await;
    fires_claimed_ahead_start_on_time_and_go_back_when_paused(
        make_store(Duration::from_secs(30)).await,
    )
    .await;
}

fn jobs() -> Vec<Arc<str>> {
    vec![JOB.into()]
}

async fn now(store: &impl SharedStore) -> DateTime<Utc> {
    store.now().await.expect("the store's clock")
}

/// A schedule of `JOB`, due at `next` (no jitter).
fn schedule(id: &str, trigger: impl Into<TriggerSpec>, next: DateTime<Utc>) -> Schedule {
    let mut schedule = Schedule::from_parts(
        id,
        id,
        Some(JOB),
        json!({"id": id}),
        trigger.into(),
        Some(next),
        ScheduleOptions::default(),
    )
    .expect("valid schedule");
    schedule.next_run_time = Some(next);
    schedule
}

/// Every second, on a grid through `first`.
fn every_second(id: &str, first: DateTime<Utc>) -> Schedule {
    let trigger = IntervalTrigger::builder()
        .seconds(1)
        .start(first)
        .build()
        .expect("interval");
    schedule(id, trigger, first)
}

/// Once, at `at`.
fn once(id: &str, at: DateTime<Utc>) -> Schedule {
    schedule(id, DateTrigger::at(at), at)
}

/// Adds one-off schedules `ids` due at `due` and claims them all, started at once, for
/// instance "a": each one's fire, by schedule id.
async fn claim_running(
    store: &impl SharedStore,
    ids: &[&str],
    due: DateTime<Utc>,
    jobs: &[Arc<str>],
) -> HashMap<String, ClaimedFire> {
    insert(store, ids.iter().map(|id| once(id, due)).collect()).await;
    let mut claimer = Claimer::new("a", jobs, 100);
    claimer.start_at_once = true;
    let batch = store
        .claim_due(&claimer, &Planner::new())
        .await
        .expect("claim_due");
    let held: HashMap<String, ClaimedFire> = batch
        .runs
        .iter()
        .map(|run| (run.schedule.id.to_string(), run.fires[0].clone()))
        .collect();
    assert_eq!(held.len(), ids.len(), "every one claimed: {batch:?}");
    held
}

async fn insert(store: &impl SharedStore, schedules: Vec<Schedule>) {
    let batch: Vec<_> = schedules
        .into_iter()
        .map(|s| (ScheduleWrite::new(s, false), OnConflict::Fail))
        .collect();
    store.insert(&batch).await.expect("insert");
}

async fn claim(store: &impl SharedStore, owner: &str) -> ClaimBatch {
    let jobs = jobs();
    store
        .claim_due(&Claimer::new(owner, &jobs, 100), &Planner::new())
        .await
        .expect("claim_due")
}

async fn take_over(store: &impl SharedStore, owner: &str) -> ClaimBatch {
    let jobs = jobs();
    store
        .take_over(&Claimer::new(owner, &jobs, 100))
        .await
        .expect("take_over")
}

fn fires(batch: &ClaimBatch) -> Vec<&ClaimedFire> {
    batch.runs.iter().flat_map(|run| &run.fires).collect()
}

fn only_fire(batch: &ClaimBatch, what: &str) -> ClaimedFire {
    let fires = fires(batch);
    assert_eq!(fires.len(), 1, "{what}: one fire, got {batch:?}");
    fires[0].clone()
}

async fn history(store: &impl SharedStore, id: &str) -> Vec<FireRecord> {
    store.fires(id, 1000).await.expect("fires")
}

async fn record(store: &impl SharedStore, id: &str, nominal: DateTime<Utc>) -> FireRecord {
    let records = history(store, id).await;
    records
        .iter()
        .find(|r| r.nominal_time == nominal)
        .cloned()
        .unwrap_or_else(|| panic!("no record of {id} at {nominal}: {records:?}"))
}

async fn wait_out_the_lease() {
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
}

async fn the_catalog_keeps_schedules_with_versions(store: &impl SharedStore) {
    let t = now(store).await + TimeDelta::hours(1);
    let mut paused = super::sample_schedule("paused", None).with_paused_from(Some(t));
    paused.job = Some(JOB.into());
    let mut full = super::sample_schedule("full", Some(t));
    full.job = Some(JOB.into());
    insert(store, vec![full.clone(), paused.clone()]).await;
    let got = store.get("full").await.expect("get").expect("stored");
    assert_eq!(got.schedule, full, "get returns what insert stored");
    assert_eq!(got.due_time, Some(t), "with its due time");
    assert_eq!(
        store.get("paused").await.expect("get").map(|v| v.schedule),
        Some(paused),
        "a pause keeps where it started"
    );
    assert_eq!(store.get("missing").await.expect("get"), None);

    let mut renamed = full.clone();
    renamed.name = "renamed".into();
    let write = ScheduleWrite::new(renamed.clone(), false);
    assert!(
        !store
            .replace(&write, got.version + 1, &[])
            .await
            .expect("replace"),
        "a write at another version is refused"
    );
    assert_eq!(
        store.get("full").await.expect("get").map(|v| v.schedule),
        Some(full),
        "and writes nothing"
    );
    assert!(
        store
            .replace(&write, got.version, &[])
            .await
            .expect("replace"),
        "a write at the version read goes through"
    );
    let after = store.get("full").await.expect("get").expect("stored");
    assert_eq!(after.schedule, renamed);
    assert_ne!(after.version, got.version, "and raises the version");
    let ids: Vec<String> = store
        .list()
        .await
        .expect("list")
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    assert_eq!(ids, ["full", "paused"], "by next run time, paused last");
    store.remove("full").await.expect("remove");
    assert!(
        store
            .remove("full")
            .await
            .expect_err("twice")
            .is_not_found()
    );
    store.remove_all().await.expect("remove_all");
    assert!(store.list().await.expect("list").is_empty());
}

async fn inserts_are_all_or_none(store: &impl SharedStore) {
    let t = now(store).await + TimeDelta::hours(1);
    insert(store, vec![once("taken", t)]).await;
    let batch = vec![
        (ScheduleWrite::new(once("new", t), false), OnConflict::Fail),
        (
            ScheduleWrite::new(once("taken", t), false),
            OnConflict::Fail,
        ),
    ];
    let error = store.insert(&batch).await.expect_err("a taken id");
    assert!(
        matches!(&error, Error::ConflictingId(id) if id == "taken"),
        "{error:?}"
    );
    assert_eq!(
        store.get("new").await.expect("get"),
        None,
        "a failed batch writes none of it"
    );
    let later = t + TimeDelta::hours(1);
    let batch = vec![(
        ScheduleWrite::new(once("taken", later), false),
        OnConflict::Replace,
    )];
    store.insert(&batch).await.expect("replace");
    let replaced = store.get("taken").await.expect("get").expect("stored");
    assert_eq!(replaced.schedule.next_run_time, Some(later));
    assert_eq!(store.list().await.expect("list").len(), 1);
}

async fn keep_and_replace_if_changed(store: &impl SharedStore) {
    let t = now(store).await + TimeDelta::hours(1);
    insert(store, vec![every_second("s", t)]).await;
    let stored = store.get("s").await.expect("get").expect("stored");
    // Keep: another definition leaves the stored one as it is.
    let other = once("s", t + TimeDelta::hours(5));
    store
        .insert(&[(ScheduleWrite::new(other.clone(), false), OnConflict::Keep)])
        .await
        .expect("keep");
    let after = store.get("s").await.expect("get").expect("stored");
    assert_eq!(after, stored, "kept, its version too");
    // Keep of an absent id adds it.
    store
        .insert(&[(ScheduleWrite::new(once("k", t), false), OnConflict::Keep)])
        .await
        .expect("keep an absent one");
    assert!(store.get("k").await.expect("get").is_some());
    // ReplaceIfChanged: the same definition with another next run time is kept...
    let mut moved = every_second("s", t);
    moved.next_run_time = Some(t + TimeDelta::minutes(3));
    store
        .insert(&[(
            ScheduleWrite::new(moved, false),
            OnConflict::ReplaceIfChanged,
        )])
        .await
        .expect("unchanged");
    assert_eq!(store.get("s").await.expect("get").expect("stored"), stored);
    // ...another definition replaces it, in the batch's one atomic write.
    store
        .insert(&[
            (
                ScheduleWrite::new(other.clone(), false),
                OnConflict::ReplaceIfChanged,
            ),
            (
                ScheduleWrite::new(once("fresh", t), false),
                OnConflict::ReplaceIfChanged,
            ),
        ])
        .await
        .expect("changed");
    assert_eq!(
        store.get("s").await.expect("get").expect("stored").schedule,
        other
    );
    assert!(store.get("fresh").await.expect("get").is_some());
    // A batch that fails on one id writes none of the others.
    let error = store
        .insert(&[
            (
                ScheduleWrite::new(once("s", t), false),
                OnConflict::ReplaceIfChanged,
            ),
            (ScheduleWrite::new(once("k", t), false), OnConflict::Fail),
        ])
        .await
        .expect_err("k is taken");
    assert!(matches!(error, Error::ConflictingId(_)), "{error:?}");
    assert_eq!(
        store.get("s").await.expect("get").expect("stored").schedule,
        other,
        "the batch wrote nothing"
    );
}

async fn instances_adding_one_schedule_at_once_agree<S: SharedStore + Clone>(store: &S) {
    let t = now(store).await + TimeDelta::hours(1);
    let adders: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                // Each with its own idea of the next run time, as instances started apart.
                let mut schedule = every_second("shared", t);
                schedule.next_run_time = Some(t + TimeDelta::seconds(i));
                let on_conflict = if i % 2 == 0 {
                    OnConflict::Keep
                } else {
                    OnConflict::ReplaceIfChanged
                };
                store
                    .insert(&[(ScheduleWrite::new(schedule, false), on_conflict)])
                    .await
            })
        })
        .collect();
    for adder in adders {
        adder.await.expect("adder").expect("no instance fails");
    }
    let list = store.list().await.expect("list");
    assert_eq!(list.len(), 1, "one schedule: {list:?}");
    assert_eq!(
        list[0].trigger(),
        every_second("shared", t).trigger(),
        "the definition all of them gave"
    );
}

async fn concurrent_claimers_never_claim_one_fire_twice<S: SharedStore + Clone>(store: &S) {
    let start = now(store).await - TimeDelta::milliseconds(200);
    let schedules = (0..60).map(|i| once(&format!("s{i}"), start)).collect();
    insert(store, schedules).await;
    let claimers: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|owner| {
            let store = store.clone();
            tokio::spawn(async move {
                let jobs = jobs();
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_due(&Claimer::new(owner, &jobs, 7), &Planner::new())
                        .await
                        .expect("claim_due");
                    let more = batch.more;
                    for run in batch.runs {
                        for fire in run.fires {
                            got.push((run.schedule.id.to_string(), fire.nominal_time, owner));
                        }
                    }
                    if !more {
                        return got;
                    }
                }
            })
        })
        .collect();
    let mut claimed: HashMap<(String, DateTime<Utc>), &str> = HashMap::new();
    let mut take = |id: String, nominal, owner| {
        if let Some(first) = claimed.insert((id.clone(), nominal), owner) {
            panic!("{id} at {nominal} claimed by {first} and {owner}");
        }
    };
    for claimer in claimers {
        for (id, nominal, owner) in claimer.await.expect("claimer") {
            take(id, nominal, owner);
        }
    }
    // A claim that skipped rows another claim held comes back short, and its claimer stops
    // though the other may not have taken every row it held (InnoDB can lock rows it reads
    // past what it returns). An instance takes such a fire at its next poll; so does this.
    let jobs = jobs();
    loop {
        let batch = store
            .claim_due(&Claimer::new("next-poll", &jobs, 7), &Planner::new())
            .await
            .expect("claim_due");
        if batch.runs.is_empty() && !batch.more {
            break;
        }
        for run in batch.runs {
            for fire in run.fires {
                take(run.schedule.id.to_string(), fire.nominal_time, "next-poll");
            }
        }
    }
    assert_eq!(claimed.len(), 60, "every fire claimed once");
    for i in 0..60 {
        let records = history(store, &format!("s{i}")).await;
        assert_eq!(records.len(), 1, "one record per fire: {records:?}");
    }
}

async fn claims_record_coalesced_and_missed_fires(store: &impl SharedStore) {
    let now = now(store).await;
    // Due for the last 3.5 s: fires at -3.5, -2.5, -1.5, -0.5 s; coalesce runs the latest.
    let first = now - TimeDelta::milliseconds(3500);
    let behind = every_second("behind", first);
    // Due 30 s ago with a 5 s grace: missed.
    let mut late = once("late", now - TimeDelta::seconds(30));
    late.misfire_grace_time = Some(Duration::from_secs(5));
    insert(store, vec![behind, late]).await;
    let batch = claim(store, "a").await;
    let latest = first + TimeDelta::seconds(3);
    let fire = only_fire(&batch, "the latest fire of behind");
    assert_eq!(fire.nominal_time, latest);
    assert_eq!((fire.token.epoch(), fire.attempt), (1, 1));
    let coalesced = NotRun::Skipped(SkipReason::Coalesced { into: latest });
    for k in 0..3 {
        let nominal = first + TimeDelta::seconds(k);
        let record = record(store, "behind", nominal).await;
        assert_eq!(record.state, FireState::Skipped, "{record:?}");
        assert_eq!(record.reason, Some(coalesced.to_string()), "{record:?}");
        assert!(
            batch
                .not_run
                .iter()
                .any(|(id, f)| &**id == "behind" && f.nominal_time == nominal),
            "the claim says so too: {batch:?}"
        );
    }
    assert_eq!(
        record(store, "behind", latest).await.state,
        FireState::Claimed
    );
    let missed = record(store, "late", now - TimeDelta::seconds(30)).await;
    assert_eq!(missed.state, FireState::Missed);
    let reason = missed.reason.unwrap_or_default();
    assert!(
        reason.starts_with("misfire: 3") && reason.ends_with("late, grace 5.000 s"),
        "{reason}"
    );
    assert_eq!(batch.finished.as_slice(), [Arc::from("late")]);
    assert_eq!(store.get("late").await.expect("get"), None, "done: gone");
    let behind = store.get("behind").await.expect("get").expect("stored");
    assert_eq!(
        behind.schedule.next_run_time,
        Some(latest + TimeDelta::seconds(1)),
        "moved on past the fires decided"
    );
}

async fn a_catch_up_is_one_run_whose_later_fires_queue(store: &impl SharedStore) {
    let first = now(store).await - TimeDelta::milliseconds(2500);
    let mut behind = every_second("catch-up", first);
    behind.coalesce = false;
    behind.misfire_grace_time = None;
    insert(store, vec![behind]).await;
    let batch = claim(store, "a").await;
    assert_eq!(batch.runs.len(), 1, "one run: {batch:?}");
    let run = &batch.runs[0];
    let times: Vec<_> = run.fires.iter().map(|f| f.nominal_time).collect();
    assert_eq!(
        times,
        (0..3)
            .map(|k| first + TimeDelta::seconds(k))
            .collect::<Vec<_>>()
    );
    let states: Vec<_> = run.fires.iter().map(|f| f.state).collect();
    assert_eq!(
        states,
        [FireState::Claimed, FireState::Queued, FireState::Queued]
    );
    for fire in &run.fires {
        assert!(store.start("a", &fire.token).await.expect("start"));
        assert!(
            store
                .finish("a", &fire.token, &FireOutcome::Succeeded)
                .await
                .expect("finish")
        );
    }
    let records = history(store, "catch-up").await;
    assert!(
        records.iter().all(|r| r.state == FireState::Succeeded),
        "{records:?}"
    );
}

async fn max_instances_counts_live_fires_across_instances(store: &impl SharedStore) {
    let first = now(store).await - TimeDelta::milliseconds(900);
    insert(store, vec![every_second("busy", first)]).await;
    let held = only_fire(&claim(store, "a").await, "the first fire");
    assert!(store.start("a", &held.token).await.expect("start"));
    // The next fire comes due while "a" still runs the first: "b" records it skipped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = claim(store, "b").await;
    assert!(fires(&batch).is_empty(), "{batch:?}");
    let next = first + TimeDelta::seconds(1);
    let skipped = record(store, "busy", next).await;
    assert_eq!(skipped.state, FireState::Skipped);
    assert_eq!(
        skipped.reason.as_deref(),
        Some("max_instances: 1 run(s) going")
    );
    assert!(
        batch.not_run.iter().any(|(_, f)| f.nominal_time == next
            && f.reason == NotRun::Skipped(SkipReason::MaxInstances { running: 1 })),
        "{batch:?}"
    );
    assert!(
        store
            .finish("a", &held.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
}

/// Every second from `first`, with an overlap policy.
fn with_overlap(id: &str, first: DateTime<Utc>, overlap: Overlap) -> Schedule {
    let mut schedule = every_second(id, first);
    schedule.overlap = overlap;
    schedule
}

async fn queued_fires_wait_and_are_claimed_when_there_is_room(store: &impl SharedStore) {
    let first = now(store).await - TimeDelta::milliseconds(900);
    insert(store, vec![with_overlap("q", first, Overlap::QueueOne)]).await;
    let held = only_fire(&claim(store, "a").await, "the first fire");
    // The next fire comes due while "a" runs the first: it waits, held by no one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = first + TimeDelta::seconds(1);
    let batch = claim(store, "b").await;
    assert!(fires(&batch).is_empty(), "{batch:?}");
    assert_eq!(batch.queued, vec![("q".into(), second)], "{batch:?}");
    let waiting = record(store, "q", second).await;
    assert_eq!(waiting.state, FireState::Waiting);
    // Not due while the first runs (its lease renewed); a third fire finds the queue full.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store
            .renew("a", std::slice::from_ref(&held.token))
            .await
            .expect("renew");
    }
    let third = second + TimeDelta::seconds(1);
    let batch = claim(store, "b").await;
    assert!(fires(&batch).is_empty(), "{batch:?}");
    assert!(
        batch.not_run.iter().any(|(_, f)| f.nominal_time == third
            && f.reason == NotRun::Skipped(SkipReason::QueueFull { limit: 1 })),
        "{batch:?}"
    );
    // The first ends: the waiting fire is due now, and whoever claims gets it as a run.
    assert!(
        store
            .finish("a", &held.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    let (clock, due) = store.next_due(&jobs()).await.expect("next_due");
    assert!(
        due.is_some_and(|due| due <= clock),
        "due now: {due:?} at {clock}"
    );
    let batch = claim(store, "c").await;
    let claimed = only_fire(&batch, "the waiting fire");
    assert_eq!(claimed.nominal_time, second);
    assert_eq!(claimed.token.epoch(), 1);
    let taken = record(store, "q", second).await;
    assert_eq!(taken.owner.as_deref(), Some("c"));
    assert!(taken.state.is_live(), "{taken:?}");
    // One at a time: with it live, nothing else of "q" is claimed.
    assert!(fires(&claim(store, "d").await).is_empty());
    // A removed schedule's waiting fires are recorded skipped.
    let later = now(store).await - TimeDelta::milliseconds(50);
    insert(
        store,
        vec![with_overlap("gone", later, Overlap::QueueAll { limit: 3 })],
    )
    .await;
    let busy = only_fire(&claim(store, "a").await, "gone's first");
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(550)).await;
        store
            .renew("a", std::slice::from_ref(&busy.token))
            .await
            .expect("renew");
    }
    let batch = claim(store, "b").await;
    assert_eq!(batch.queued.len(), 1, "{batch:?}");
    store.remove("gone").await.expect("remove");
    let waited = record(store, "gone", later + TimeDelta::seconds(1)).await;
    assert_eq!(waited.state, FireState::Skipped);
    assert_eq!(waited.reason.as_deref(), Some(reason::SCHEDULE_REMOVED));
    store
        .finish("a", &busy.token, &FireOutcome::Succeeded)
        .await
        .expect("finish");
}

async fn cancelled_fires_are_told_to_their_owner_and_not_run_again(store: &impl SharedStore) {
    let first = now(store).await - TimeDelta::milliseconds(900);
    let cancel = Overlap::CancelRunning {
        grace: Duration::from_secs(1),
    };
    insert(store, vec![with_overlap("c", first, cancel)]).await;
    let held = only_fire(&claim(store, "a").await, "the first fire");
    assert!(
        store
            .renew("a", std::slice::from_ref(&held.token))
            .await
            .expect("renew")
            .is_empty(),
        "not asked to stop yet"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = first + TimeDelta::seconds(1);
    let batch = claim(store, "b").await;
    assert_eq!(batch.queued, vec![("c".into(), second)], "{batch:?}");
    // "a" learns at its next renewal that a newer fire asked its run to stop.
    assert_eq!(
        store
            .renew("a", std::slice::from_ref(&held.token))
            .await
            .expect("renew"),
        vec![held.token.clone()]
    );
    assert!(
        store
            .finish("a", &held.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    let replacement = only_fire(&claim(store, "b").await, "the newer fire");
    assert_eq!(replacement.nominal_time, second);
    // A fire asked to stop whose instance died is not run again: it is recorded lost.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(550)).await;
        store
            .renew("b", std::slice::from_ref(&replacement.token))
            .await
            .expect("renew");
    }
    let third = second + TimeDelta::seconds(1);
    let batch = claim(store, "c").await;
    assert_eq!(batch.queued, vec![("c".into(), third)], "{batch:?}");
    // "b" dies holding the second: its lease runs out.
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    let taken = store
        .take_over(&Claimer::new("d", &jobs(), 100))
        .await
        .expect("take_over");
    assert!(fires(&taken).is_empty(), "{taken:?}");
    assert!(taken.lost.iter().any(|(_, t)| *t == second), "{taken:?}");
    let lost = record(store, "c", second).await;
    assert_eq!(lost.state, FireState::Lost);
    assert!(
        lost.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("asked to stop for a newer fire")),
        "{lost:?}"
    );
    // And the third, waiting for it, runs.
    let third_run = only_fire(&claim(store, "d").await, "the third");
    assert_eq!(third_run.nominal_time, third);
}

async fn paused_schedules_and_other_jobs_are_never_claimed(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    let mut paused = once("paused", due);
    paused.paused = true;
    paused.next_run_time = None;
    let mut other = once("other", due);
    other.job = Some("another job".into());
    insert(store, vec![paused, other]).await;
    let batch = claim(store, "a").await;
    assert!(batch.is_empty(), "{batch:?}");
    let (_, next) = store.next_due(&jobs()).await.expect("next_due");
    assert_eq!(next, None, "nothing is due for this instance");
    assert!(history(store, "other").await.is_empty());
}

async fn a_fire_already_recorded_is_not_run_again(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    insert(store, vec![once("again", due)]).await;
    let fire = only_fire(&claim(store, "a").await, "the fire");
    assert!(
        store
            .finish("a", &fire.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    // Added again with the same fire time (removed and re-added, a second instance's add):
    // that fire has run; it is not claimed again.
    insert(store, vec![once("again", due)]).await;
    let batch = claim(store, "b").await;
    assert!(fires(&batch).is_empty(), "{batch:?}");
    assert_eq!(history(store, "again").await.len(), 1);
}

async fn an_expired_lease_is_taken_over_and_the_stale_owner_fenced(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    insert(store, vec![once("job", due), once("unstarted", due)]).await;
    let batch = claim(store, "dead").await;
    let stale = fires(&batch)
        .into_iter()
        .find(|f| f.nominal_time == due)
        .cloned()
        .expect("claimed");
    let mut tokens: HashMap<String, ClaimedFire> = HashMap::new();
    for run in &batch.runs {
        tokens.insert(run.schedule.id.to_string(), run.fires[0].clone());
    }
    let started = tokens["job"].clone();
    assert!(store.start("dead", &started.token).await.expect("start"));
    wait_out_the_lease().await;
    let batch = take_over(store, "survivor").await;
    let taken: HashMap<String, ClaimedFire> = batch
        .runs
        .iter()
        .map(|run| (run.schedule.id.to_string(), run.fires[0].clone()))
        .collect();
    let job = &taken["job"];
    assert_eq!(job.nominal_time, stale.nominal_time);
    assert_eq!(job.token.epoch(), started.token.epoch() + 1, "epoch + 1");
    assert_eq!(job.attempt, 2, "a run cut short is an attempt");
    assert_eq!(
        taken["unstarted"].attempt, 1,
        "a claim never started is not"
    );
    assert_eq!(taken["unstarted"].token.epoch(), 2);
    // The dead instance wakes up: everything it tries is refused and writes nothing.
    assert!(
        !store
            .start("dead", &tokens["unstarted"].token)
            .await
            .expect("start")
    );
    assert!(
        !store
            .finish("dead", &started.token, &FireOutcome::Failed("late".into()))
            .await
            .expect("finish")
    );
    store
        .renew("dead", std::slice::from_ref(&started.token))
        .await
        .expect("renew");
    assert!(store.start("survivor", &job.token).await.expect("start"));
    assert!(
        store
            .finish("survivor", &job.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    let record = record(store, "job", due).await;
    assert_eq!(
        (record.state, record.epoch, record.attempt),
        (FireState::Succeeded, 2, 2)
    );
    assert_eq!(record.owner.as_deref(), Some("survivor"));
    assert_eq!(record.error, None);
    assert_eq!(record.reason, Some(reason::taken_over("dead")));
    assert!(take_over(store, "third").await.is_empty(), "taken once");
}

async fn renewed_leases_are_not_taken_over(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    insert(store, vec![once("kept", due)]).await;
    let fire = only_fire(&claim(store, "alive").await, "the fire");
    for _ in 0..5 {
        tokio::time::sleep(LEASE / 3).await;
        store
            .renew("alive", std::slice::from_ref(&fire.token))
            .await
            .expect("renew");
        assert!(
            take_over(store, "other").await.is_empty(),
            "a renewed lease is not taken over"
        );
    }
    assert!(store.start("alive", &fire.token).await.expect("start"));
}

async fn released_claims_are_taken_over_at_once(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    insert(store, vec![once("released", due)]).await;
    let fire = only_fire(&claim(store, "leaving").await, "the fire");
    store.release("leaving").await.expect("release");
    let taken = only_fire(&take_over(store, "other").await, "the released fire");
    assert_eq!(taken.nominal_time, fire.nominal_time);
    assert_eq!(
        (taken.token.epoch(), taken.attempt),
        (2, 1),
        "not an attempt"
    );
    assert!(!store.start("leaving", &fire.token).await.expect("start"));
}

async fn at_most_once_fires_of_a_dead_instance_are_lost(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    let mut at_most_once = once("once", due);
    at_most_once.at_most_once = true;
    insert(store, vec![at_most_once]).await;
    let fire = only_fire(&claim(store, "dead").await, "the fire");
    assert!(store.start("dead", &fire.token).await.expect("start"));
    wait_out_the_lease().await;
    let batch = take_over(store, "survivor").await;
    assert!(fires(&batch).is_empty(), "not run again: {batch:?}");
    assert_eq!(batch.lost, vec![(Arc::from("once"), due)]);
    let record = record(store, "once", due).await;
    assert_eq!(record.state, FireState::Lost);
    assert_eq!(record.reason, Some(reason::lost("dead")));
}

async fn outcomes_are_recorded_and_hand_backs_rerun(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    let ids = [
        "ok",
        "failed",
        "panicked",
        "aborted",
        "interrupted",
        "not-started",
    ];
    let mut jobs = jobs();
    jobs.push("unused".into());
    let held = claim_running(store, &ids, due, &jobs).await;
    assert!(
        held.values().all(|f| f.state == FireState::Running),
        "started at once: {held:?}"
    );
    for (id, outcome) in [
        ("ok", FireOutcome::Succeeded),
        ("failed", FireOutcome::Failed("disk full".into())),
        ("panicked", FireOutcome::Panicked("oops".into())),
        ("aborted", FireOutcome::Aborted),
        ("interrupted", FireOutcome::Interrupted),
        ("not-started", FireOutcome::NotStarted),
    ] {
        assert!(
            store
                .finish("a", &held[id].token, &outcome)
                .await
                .expect("finish"),
            "{id}"
        );
    }
    let state = |r: &FireRecord| (r.state, r.error.clone(), r.reason.clone());
    assert_eq!(
        state(&record(store, "ok", due).await),
        (FireState::Succeeded, None, None)
    );
    assert_eq!(
        state(&record(store, "failed", due).await),
        (FireState::Failed, Some("disk full".into()), None)
    );
    assert_eq!(
        state(&record(store, "panicked", due).await),
        (
            FireState::Failed,
            Some("oops".into()),
            Some("panicked".into())
        )
    );
    assert_eq!(
        state(&record(store, "aborted", due).await),
        (FireState::Aborted, None, FireOutcome::Aborted.reason("a"))
    );
    let done = record(store, "ok", due).await;
    assert!(
        done.started_at.is_some() && done.finished_at.is_some(),
        "{done:?}"
    );
    // Handed back: another instance takes them over at once.
    let taken: HashMap<String, ClaimedFire> = take_over(store, "b")
        .await
        .runs
        .iter()
        .map(|run| (run.schedule.id.to_string(), run.fires[0].clone()))
        .collect();
    let mut ids: Vec<&String> = taken.keys().collect();
    ids.sort();
    assert_eq!(ids, ["interrupted", "not-started"]);
    assert_eq!(
        taken["interrupted"].attempt, 2,
        "an interrupted run was an attempt"
    );
    assert_eq!(taken["not-started"].attempt, 1, "one never started was not");
    assert!(
        store
            .finish("a", &held["ok"].token, &FireOutcome::Succeeded)
            .await
            .expect("finish"),
        "the same end again (a retry after a lost answer) is recorded already"
    );
    assert!(
        !store
            .finish("a", &held["ok"].token, &FireOutcome::Failed("late".into()))
            .await
            .expect("finish"),
        "a fire ends once"
    );
    assert_eq!(
        state(&record(store, "ok", due).await),
        (FireState::Succeeded, None, None)
    );
}

async fn ends_are_recorded_many_at_once(store: &impl SharedStore) {
    let due = now(store).await - TimeDelta::milliseconds(100);
    let ids = ["ok", "failed", "again", "stale", "twice"];
    let held: HashMap<String, FireToken> = claim_running(store, &ids, due, &jobs())
        .await
        .into_iter()
        .map(|(id, fire)| (id, fire.token))
        .collect();
    assert!(
        store
            .finish("a", &held["again"], &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    assert!(
        store
            .finish("a", &held["twice"], &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    let stale = FireToken::new(held["stale"].id().to_owned(), held["stale"].epoch() + 1);
    let ends = [
        (held["ok"].clone(), FireOutcome::Succeeded),
        (
            held["failed"].clone(),
            FireOutcome::Failed("disk full".into()),
        ),
        // Recorded before with this end: a retry.
        (held["again"].clone(), FireOutcome::Succeeded),
        // An epoch this owner does not hold.
        (stale, FireOutcome::Succeeded),
        // Recorded before with another end.
        (held["twice"].clone(), FireOutcome::Panicked("late".into())),
    ];
    assert_eq!(
        store.finish_many("a", &ends).await.expect("finish_many"),
        [true, true, true, false, false]
    );
    assert_eq!(
        store.finish_many("a", &[]).await.expect("finish_many"),
        Vec::<bool>::new()
    );
    let state = |r: &FireRecord| (r.state, r.error.clone());
    assert_eq!(
        state(&record(store, "ok", due).await),
        (FireState::Succeeded, None)
    );
    assert_eq!(
        state(&record(store, "failed", due).await),
        (FireState::Failed, Some("disk full".into()))
    );
    assert_eq!(
        state(&record(store, "twice", due).await),
        (FireState::Succeeded, None)
    );
    let stale = record(store, "stale", due).await;
    assert_eq!(stale.state, FireState::Running, "untouched: {stale:?}");
    // Another owner's ends are refused, whatever the epoch.
    assert_eq!(
        store
            .finish_many("b", &[(held["stale"].clone(), FireOutcome::Succeeded)])
            .await
            .expect("finish_many"),
        [false]
    );
}

async fn claims_ahead_take_what_falls_due_within_the_window(store: &impl SharedStore) {
    let start = now(store).await;
    let soon = start + TimeDelta::milliseconds(400);
    let later = start + TimeDelta::seconds(30);
    insert(store, vec![once("soon", soon), once("later", later)]).await;
    let jobs = jobs();
    let mut claimer = Claimer::new("a", &jobs, 100);
    claimer.start_at_once = true;
    claimer.ahead = Duration::from_secs(5);
    let batch = store
        .claim_due(&claimer, &Planner::new())
        .await
        .expect("claim_due");
    // Decided as at its due time: run, not missed or late; recorded starting then.
    let fire = only_fire(&batch, "the fire due within the window");
    assert_eq!(fire.nominal_time, soon);
    assert_eq!(fire.state, FireState::Running);
    assert!(batch.not_run.is_empty(), "{batch:?}");
    let recorded = record(store, "soon", soon).await;
    assert_eq!(recorded.started_at, Some(soon), "{recorded:?}");
    assert!(
        recorded.claimed_at.is_some_and(|at| at < soon),
        "claimed ahead: {recorded:?}"
    );
    assert!(
        store.get("later").await.expect("get").is_some(),
        "the one due past the window is left"
    );
    assert!(history(store, "later").await.is_empty());

    // Due within the window while a run of it is going: left, unwritten, for the claim at its
    // due time, which judges `max_instances` then.
    let first = now(store).await - TimeDelta::milliseconds(500);
    insert(store, vec![every_second("busy", first)]).await;
    let held = only_fire(&claim(store, "b").await, "busy's first fire");
    let before = store.get("busy").await.expect("get").expect("busy");
    let batch = store
        .claim_due(&claimer, &Planner::new())
        .await
        .expect("claim_due");
    assert!(batch.is_empty(), "{batch:?}");
    assert!(!batch.more, "the same claim would find the same: {batch:?}");
    let after = store.get("busy").await.expect("get").expect("busy");
    assert_eq!(after.version, before.version, "not written");
    assert!(
        store
            .finish("b", &held.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    // Its run over, the next fire is claimed ahead too.
    let batch = store
        .claim_due(&claimer, &Planner::new())
        .await
        .expect("claim_due");
    let next = only_fire(&batch, "busy's next fire");
    assert_eq!(next.nominal_time, first + TimeDelta::seconds(1));
    store
        .finish("a", &next.token, &FireOutcome::Succeeded)
        .await
        .expect("finish");
    store
        .finish("a", &fire.token, &FireOutcome::Succeeded)
        .await
        .expect("finish");
}

async fn run_now_claims_one_extra_fire(store: &impl SharedStore) {
    let later = now(store).await + TimeDelta::hours(1);
    insert(store, vec![once("manual", later)]).await;
    let jobs = jobs();
    let claimer = Claimer::new("a", &jobs, 100);
    let run = store
        .claim_now(&claimer, "manual", &Planner::new())
        .await
        .expect("claim_now");
    assert_eq!(run.fires.len(), 1);
    let fire = run.fires[0].clone();
    let error = store
        .claim_now(&claimer, "manual", &Planner::new())
        .await
        .expect_err("max_instances 1 with one live");
    assert!(
        matches!(error, Error::MaxInstancesReached { running: 1, .. }),
        "{error:?}"
    );
    assert!(
        store
            .finish("a", &fire.token, &FireOutcome::Succeeded)
            .await
            .expect("finish")
    );
    let second = store
        .claim_now(&claimer, "manual", &Planner::new())
        .await
        .expect("claim_now");
    assert_ne!(
        second.fires[0].nominal_time, fire.nominal_time,
        "each extra fire its own"
    );
    let error = store
        .claim_now(&claimer, "nope", &Planner::new())
        .await
        .expect_err("unknown");
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(
        store
            .get("manual")
            .await
            .expect("get")
            .and_then(|v| v.schedule.next_run_time),
        Some(later),
        "an extra run does not move the schedule"
    );
}

async fn next_due_sees_due_times_and_expiring_leases(store: &impl SharedStore) {
    let now = now(store).await;
    let (clock, none) = store.next_due(&jobs()).await.expect("next_due");
    assert_eq!(none, None);
    assert!(
        (clock - now).abs() < TimeDelta::seconds(5),
        "the store's clock"
    );
    let soon = now + TimeDelta::seconds(30);
    insert(store, vec![once("soon", soon)]).await;
    let (_, next) = store.next_due(&jobs()).await.expect("next_due");
    assert_eq!(next, Some(soon));
    insert(store, vec![once("now", now - TimeDelta::milliseconds(10))]).await;
    claim(store, "a").await;
    let (_, next) = store.next_due(&jobs()).await.expect("next_due");
    let next = next.expect("a lease to run out");
    assert!(
        next > now && next <= now + TimeDelta::from_std(LEASE).unwrap() + TimeDelta::seconds(1),
        "when the live fire's lease runs out: {next}"
    );
}

/// Schedulers on the store, claiming 5 s ahead (a 30 s lease allows it): what each ran, and
/// when it started.
type Started = Arc<Mutex<Vec<(String, DateTime<Utc>, DateTime<Utc>)>>>;

async fn ahead_instance<S: SharedStore + Clone>(
    store: &S,
    name: &'static str,
    started: &Started,
) -> crate::scheduler::SchedulerHandle {
    let started = Arc::clone(started);
    Scheduler::builder()
        .shared_store(store.clone())
        .instance_name(name)
        .claim_ahead(Duration::from_secs(5))
        .job(JOB, move |ctx: JobContext| {
            started.lock().unwrap().push((
                name.to_owned(),
                ctx.nominal_fire_time(),
                ctx.started_at(),
            ));
            std::future::ready(())
        })
        .build()
        .start()
        .await
        .expect("start")
}

async fn fires_claimed_ahead_start_on_time_and_go_back_when_paused<S: SharedStore + Clone>(
    store: S,
) {
    let started: Started = Arc::default();
    let a = ahead_instance(&store, "a", &started).await;
    let at = now(&store).await + TimeDelta::seconds(2);
    a.add(NewSchedule::for_job(JOB, DateTrigger::at(at)).id("on-time"))
        .await
        .expect("add");
    // Claimed at once (it falls due within 5 s), started at its time and not before.
    let claimed = wait_for_record(&store, "on-time", at).await;
    assert_eq!(claimed.owner.as_deref(), Some("a"));
    assert!(claimed.claimed_at.is_some_and(|t| t < at), "{claimed:?}");
    while started.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (who, nominal, began) = started.lock().unwrap()[0].clone();
    assert_eq!((who.as_str(), nominal), ("a", at));
    assert!(began >= at, "started {began}, before its time {at}");

    // Paused with a fire claimed ahead: it goes back, and another instance runs it.
    let at = now(&store).await + TimeDelta::seconds(3);
    a.add(NewSchedule::for_job(JOB, DateTrigger::at(at)).id("handed-back"))
        .await
        .expect("add");
    let claimed = wait_for_record(&store, "handed-back", at).await;
    assert_eq!(claimed.owner.as_deref(), Some("a"));
    a.pause_all().await.expect("pause");
    let back = record(&store, "handed-back", at).await;
    assert_eq!(back.state, FireState::Claimed, "{back:?}");
    assert_eq!(back.reason, FireOutcome::NotStarted.reason("a"));
    let b = ahead_instance(&store, "b", &started).await;
    while started.lock().unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (who, nominal, began) = started.lock().unwrap()[1].clone();
    assert_eq!((who.as_str(), nominal), ("b", at));
    assert!(began >= at, "started {began}, before its time {at}");
    let ran = record(&store, "handed-back", at).await;
    assert_eq!(
        (ran.owner.as_deref(), ran.attempt),
        (Some("b"), 1),
        "{ran:?}"
    );
    for scheduler in [a, b] {
        scheduler
            .shutdown(Duration::from_secs(5))
            .await
            .expect("shutdown");
    }
    assert_eq!(started.lock().unwrap().len(), 2, "each fire ran once");
}

/// The ledger's record of a fire, once there is one.
async fn wait_for_record(store: &impl SharedStore, id: &str, nominal: DateTime<Utc>) -> FireRecord {
    for _ in 0..500 {
        if let Some(found) = history(store, id)
            .await
            .into_iter()
            .find(|r| r.nominal_time == nominal)
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no record of {id} at {nominal}");
}

async fn pause_and_resume_record_the_skipped_fires<S: SharedStore>(store: S) {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    let scheduler = Scheduler::builder()
        .shared_store(store)
        .instance_name("a")
        .job(JOB, move |ctx: JobContext| {
            seen.lock().unwrap().push(ctx.nominal_fire_time());
            std::future::ready(())
        })
        .build()
        .start()
        .await
        .expect("start");
    let every = IntervalTrigger::every(Duration::from_secs(1)).expect("interval");
    scheduler
        .add(NewSchedule::for_job(JOB, every).id("paused"))
        .await
        .expect("add");
    let paused = scheduler.pause("paused").await.expect("pause");
    assert!(paused.paused() && paused.next_run_time().is_none());
    let from = paused.paused_from().expect("where the pause starts");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let resumed = scheduler.resume("paused").await.expect("resume");
    assert!(!resumed.paused());
    let history = scheduler.runs("paused", 100).await.expect("runs");
    let skipped: Vec<_> = history
        .iter()
        .filter(|r| r.state == FireState::Skipped)
        .map(|r| r.nominal_time)
        .collect();
    assert!(
        skipped.len() >= 2 && skipped.iter().all(|t| *t >= from),
        "the fires the pause skipped: {history:?}"
    );
    assert!(
        history
            .iter()
            .filter(|r| r.state == FireState::Skipped)
            .all(|r| r.reason.as_deref() == Some("schedule paused")),
        "{history:?}"
    );
    assert!(runs.lock().unwrap().is_empty(), "nothing ran while paused");
    assert!(
        resumed.next_run_time().is_some_and(|t| t > skipped[0]),
        "resumed on its grid after the pause"
    );
    scheduler
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}
