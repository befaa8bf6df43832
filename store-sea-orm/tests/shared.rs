//! The shared store under real schedulers in one process: runs recorded, reasons for fires
//! that did not run, jobs other instances know, retention, notifications and jitter. What
//! every shared store must do (claims, leases, take-over, fencing) is the conformance suite's
//! (`tests/conformance.rs`).

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scheduler_core::store::ScheduleCatalog;
use scheduler_core::store::{FireClaims, FireHistory, FireState};
use scheduler_core::trigger::{DateTrigger, IntervalTrigger};
use scheduler_core::{
    Error, Event, FirstRun, JobContext, NewSchedule, OnConflict, Scheduler, SchedulerHandle,
};
use store_sea_orm::{Store, StoreOptions};
use support::{Backend, fresh_store, server_url};

/// What each run saw: schedule, nominal time, fire id, epoch, attempt.
type Seen = Arc<
    Mutex<
        Vec<(
            String,
            chrono::DateTime<chrono::Utc>,
            Option<String>,
            Option<i64>,
            u32,
        )>,
    >,
>;

fn options() -> StoreOptions {
    StoreOptions::default()
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
}

async fn instance(store: &Store, name: &str, seen: &Seen, job_time: Duration) -> SchedulerHandle {
    let seen = Arc::clone(seen);
    Scheduler::builder()
        .shared_store(store.clone())
        .instance_name(name)
        .job("work", move |ctx: JobContext| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push((
                    ctx.schedule_id().to_owned(),
                    ctx.nominal_fire_time(),
                    ctx.fire_id().map(str::to_owned),
                    ctx.epoch(),
                    ctx.attempt(),
                ));
                tokio::time::sleep(job_time).await;
            }
        })
        .build()
        .start()
        .await
        .unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

on_backends!(
    [sqlite => Sqlite, postgres => Postgres, mysql => MySql]:
    fires_run_and_are_recorded,
    missed_skipped_and_paused_fires_have_a_reason,
    schedules_of_unknown_jobs_are_left_to_instances_that_know_them,
    the_ledger_is_pruned_by_count_and_age_but_never_live_fires,
    jitter_delays_fires_without_moving_the_grid,
    the_shutdown_report_says_which_fires_run_again,
);

on_backends!([postgres => Postgres]: a_change_anywhere_wakes_idle_postgres_instances);

on_backends!(
    [sqlite => Sqlite, postgres => Postgres, mysql => MySql]:
    three_instances_add_if_absent_at_once,
);

/// Three instances start at once on one database, each with its own connection, and each adds
/// the service's schedule with `OnConflict::Keep`: one schedule, no error, each fire run once.
async fn three_instances_add_if_absent_at_once(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let url = support::fresh_url(backend, &server).await;
    Store::connect_with(&url, options()).await.unwrap(); // migrated once, before the race
    let seen = Seen::default();
    let starts: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let (url, seen) = (url.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let store = Store::connect_with(&url, options()).await.unwrap();
                let scheduler = instance(&store, name, &seen, Duration::ZERO).await;
                let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
                let added = scheduler
                    .add(
                        NewSchedule::for_job("work", every_second)
                            .id("service")
                            .first_run(FirstRun::Now)
                            .on_conflict(OnConflict::Keep),
                    )
                    .await;
                (scheduler, store, added)
            })
        })
        .collect();
    let mut instances = Vec::new();
    for start in starts {
        let (scheduler, store, added) = start.await.unwrap();
        let added = added.unwrap_or_else(|e| panic!("{test}: an instance failed to add: {e}"));
        assert_eq!(added.id(), "service");
        instances.push((scheduler, store));
    }
    wait_for("four runs", || seen.lock().unwrap().len() >= 4).await;
    for (scheduler, _) in &instances {
        scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let store = &instances[0].1;
    let list = ScheduleCatalog::list(store).await.unwrap();
    assert_eq!(list.len(), 1, "{test}: one schedule: {list:?}");
    let seen = seen.lock().unwrap().clone();
    let mut nominal: Vec<_> = seen.iter().map(|(_, t, ..)| *t).collect();
    nominal.sort();
    let runs = nominal.len();
    nominal.dedup();
    assert_eq!(nominal.len(), runs, "{test}: a fire ran twice: {seen:?}");
}

async fn fires_run_and_are_recorded(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, options()).await;
    let seen = Seen::default();
    let scheduler = instance(&store, "a", &seen, Duration::ZERO).await;
    let trigger = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    scheduler
        .add(
            NewSchedule::for_job("work", trigger)
                .id("tick")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    wait_for("three runs", || seen.lock().unwrap().len() >= 3).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    for (i, (id, _, fire_id, epoch, attempt)) in seen.iter().enumerate() {
        assert_eq!(id, "tick");
        assert!(fire_id.is_some(), "run {i} knows its fire");
        assert_eq!((*epoch, *attempt), (Some(1), 1));
    }
    let fires = store.fires("tick", 100).await.unwrap();
    let succeeded: Vec<_> = fires
        .iter()
        .filter(|f| f.state == FireState::Succeeded)
        .collect();
    assert!(succeeded.len() >= seen.len().min(3), "{fires:?}");
    for fire in &succeeded {
        assert_eq!(fire.owner.as_deref(), Some("a"));
        assert!(fire.started_at.is_some() && fire.finished_at.is_some());
    }
    // Consecutive fires one second apart, newest first, each once.
    let times: Vec<_> = fires.iter().map(|f| f.nominal_time).collect();
    assert!(
        times
            .windows(2)
            .all(|w| w[0] - w[1] == chrono::TimeDelta::seconds(1)),
        "{times:?}"
    );
}

async fn missed_skipped_and_paused_fires_have_a_reason(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, options()).await;
    let seen = Seen::default();
    let scheduler = instance(&store, "a", &seen, Duration::from_millis(2500)).await;
    // max_instances 1 with a 2.5 s job every second: fires in between are skipped.
    let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    scheduler
        .add(
            NewSchedule::for_job("work", every_second.clone())
                .id("slow")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    // A fire far in the past with a short grace: missed.
    let long_ago = store.now().await.unwrap() - chrono::TimeDelta::seconds(30);
    scheduler
        .add(
            NewSchedule::for_job("work", DateTrigger::at(long_ago))
                .id("late")
                .misfire_grace_time(Some(Duration::from_secs(5))),
        )
        .await
        .unwrap();
    wait_for("a skipped fire", || {
        futures_ready(store.fires("slow", 20))
            .is_some_and(|f| f.iter().any(|f| f.state == FireState::Skipped))
    })
    .await;
    // Paused for a while: the fires it skipped are recorded when it resumes.
    scheduler
        .add(NewSchedule::for_job("work", every_second).id("paused"))
        .await
        .unwrap();
    scheduler.pause("paused").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    scheduler.resume("paused").await.unwrap();
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let slow = store.fires("slow", 20).await.unwrap();
    let skipped = slow.iter().find(|f| f.state == FireState::Skipped).unwrap();
    assert_eq!(
        skipped.reason.as_deref(),
        Some("max_instances: 1 run(s) going")
    );
    let late = store.fires("late", 5).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].state, FireState::Missed);
    // "misfire: 30.xxx s late, grace 5.000 s": at least the 30 s it was in the past.
    let reason = late[0].reason.as_deref().unwrap();
    let seconds: f64 = reason
        .strip_prefix("misfire: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(
        seconds >= 30.0 && reason.ends_with("late, grace 5.000 s"),
        "{reason}"
    );
    let paused = store.fires("paused", 10).await.unwrap();
    assert!(!paused.is_empty() && paused.iter().all(|f| f.state == FireState::Skipped));
    assert!(
        paused
            .iter()
            .all(|f| f.reason.as_deref() == Some("schedule paused"))
    );
    assert!(matches!(
        store.fires("nope", 5).await,
        Err(Error::ScheduleNotFound(_))
    ));
}

/// Polls a future once from synchronous code: the wait loop's condition is synchronous.
fn futures_ready<T>(
    future: impl std::future::Future<Output = scheduler_core::Result<T>>,
) -> Option<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future)).ok()
}

async fn schedules_of_unknown_jobs_are_left_to_instances_that_know_them(
    backend: Backend,
    test: &str,
) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, options()).await;
    // The schedule exists before the instance that does not know its job starts.
    let seen = Seen::default();
    let knowing = instance(&store, "knowing", &seen, Duration::ZERO).await;
    knowing.pause_all().await.unwrap();
    let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    knowing
        .add(
            NewSchedule::for_job("work", every_second)
                .id("w")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    let unaware = Scheduler::builder()
        .shared_store(store.clone())
        .instance_name("unaware")
        .job("other", |_ctx: JobContext| async {})
        .build();
    let mut events = unaware.handle().subscribe();
    let unaware = unaware.start().await.unwrap();
    let reported = events.try_recv();
    assert!(
        matches!(&reported, Ok(Event::UnknownJob { schedule_id, job }) if &**schedule_id == "w" && &**job == "work"),
        "{reported:?}"
    );
    // The unaware instance never claims it, however long it waits; the knowing one runs it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.fires("w", 10).await.unwrap().is_empty(), "left alone");
    knowing.resume_all().await.unwrap();
    wait_for("the knowing instance's run", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    unaware.shutdown(Duration::from_secs(5)).await.unwrap();
    knowing.shutdown(Duration::from_secs(5)).await.unwrap();
    let fires = store.fires("w", 10).await.unwrap();
    assert!(
        fires.iter().all(|f| f.owner.as_deref() == Some("knowing")),
        "{fires:?}"
    );
}

async fn the_ledger_is_pruned_by_count_and_age_but_never_live_fires(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let retention = options().keep_fires(5, Duration::from_secs(10));
    let store = fresh_store(backend, &server, retention).await;
    let seen = Seen::default();
    // The job outlasts the test: its fire stays live.
    let busy = instance(&store, "busy", &seen, Duration::from_secs(60)).await;
    // 21 fires due at once, one second apart: the latest runs, the 20 before it are
    // coalesced into it; all are rows.
    let now = store.now().await.unwrap();
    let first = now - chrono::TimeDelta::milliseconds(20_100);
    let latest = first + chrono::TimeDelta::seconds(20);
    let every_second = IntervalTrigger::builder()
        .seconds(1)
        .start(first)
        .end(latest)
        .build()
        .unwrap();
    busy.add(
        NewSchedule::for_job("work", every_second)
            .id("busy")
            .first_run(FirstRun::At(first))
            .misfire_grace_time(None),
    )
    .await
    .unwrap();
    wait_for("the latest fire to run", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        seen.lock().unwrap()[0].1,
        latest,
        "the latest fire runs; it stays live"
    );
    assert_eq!(store.fires("busy", 100).await.unwrap().len(), 21);

    let pruned = store.prune().await.unwrap();
    let left = store.fires("busy", 100).await.unwrap();
    // Older than 10 s goes, and beyond the newest 5; the live fire stays.
    let expected: Vec<_> = (16..=20)
        .rev()
        .map(|s| first + chrono::TimeDelta::seconds(s))
        .collect();
    assert_eq!(
        left.iter().map(|f| f.nominal_time).collect::<Vec<_>>(),
        expected,
        "{left:?}"
    );
    assert_eq!(left[0].state, FireState::Running);
    assert_eq!(pruned, 16);
    busy.shutdown(Duration::from_millis(100)).await.unwrap();
}

async fn a_change_anywhere_wakes_idle_postgres_instances(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    // Idle, the instance would not look again for 60 s (its safety re-check): only the
    // notification can make it see the new schedule at once.
    let url = support::fresh_url(backend, &server).await;
    let quiet = StoreOptions::default()
        .lease(Duration::from_secs(30))
        .safety_recheck(Duration::from_secs(60));
    let idle_store = Store::connect_with(&url, quiet.clone()).await.unwrap();
    let seen = Seen::default();
    let idle = instance(&idle_store, "idle", &seen, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elsewhere = Store::connect_with(&url, quiet).await.unwrap();
    let writer = Scheduler::builder()
        .shared_store(elsewhere)
        .job("work", |_ctx: JobContext| async {})
        .build()
        .handle();
    let once = DateTrigger::at(idle_store.now().await.unwrap());
    writer
        .add(NewSchedule::for_job("work", once).id("news"))
        .await
        .unwrap();
    wait_for("the idle instance to run the new schedule", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    writer.shutdown(Duration::from_secs(1)).await.unwrap();
    idle.shutdown(Duration::from_secs(5)).await.unwrap();
}

async fn jitter_delays_fires_without_moving_the_grid(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, options()).await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    let scheduler = Scheduler::builder()
        .shared_store(store.clone())
        .job("work", move |ctx: JobContext| {
            seen.lock().unwrap().push((
                ctx.nominal_fire_time(),
                ctx.started_at() - ctx.nominal_fire_time(),
            ));
            std::future::ready(())
        })
        .build()
        .start()
        .await
        .unwrap();
    let jittery = IntervalTrigger::builder()
        .seconds(1)
        .jitter(Duration::from_millis(900))
        .build()
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("work", jittery).id("j"))
        .await
        .unwrap();
    wait_for("five runs", || runs.lock().unwrap().len() >= 5).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = runs.lock().unwrap().clone();
    let grid: Vec<_> = runs.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        grid.iter().all(|d| *d == chrono::TimeDelta::seconds(1)),
        "{runs:?}"
    );
    let late: Vec<_> = runs.iter().map(|(_, late)| *late).collect();
    // Each starts up to 900 ms after its nominal time, plus the engine's own delay (bounded
    // loosely: the machine is shared). Five offsets all under 100 ms would mean no jitter
    // (by chance: one in 59,049).
    assert!(
        late.iter()
            .all(|l| *l < chrono::TimeDelta::milliseconds(1600)),
        "{late:?}"
    );
    assert!(
        late.iter()
            .any(|l| *l > chrono::TimeDelta::milliseconds(100)),
        "{late:?}"
    );
}

/// At the shutdown deadline: a run that finished is recorded and never run again; one cut
/// off mid-job is reported as such and runs again on the next instance (a new attempt),
/// unless its schedule is at most once.
async fn the_shutdown_report_says_which_fires_run_again(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, options()).await;
    let seen = Seen::default();
    let builder = |name: &str| {
        let seen = Arc::clone(&seen);
        Scheduler::builder()
            .shared_store(store.clone())
            .instance_name(name)
            .job("work", move |ctx: JobContext| {
                let seen = Arc::clone(&seen);
                async move {
                    let id = ctx.schedule_id().to_owned();
                    let stubborn = id != "done" && ctx.attempt() == 1;
                    let run = (id, ctx.nominal_fire_time(), None, None, ctx.attempt());
                    seen.lock().unwrap().push(run);
                    // Ignores its cancellation token: only the deadline ends it.
                    if stubborn {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            })
    };
    let first = builder("first").build().start().await.unwrap();
    let at = first.now() + chrono::TimeDelta::milliseconds(100);
    for (id, at_most_once) in [("done", false), ("again", false), ("once", true)] {
        first
            .add(
                NewSchedule::for_job("work", DateTrigger::at(at))
                    .id(id)
                    .at_most_once(at_most_once),
            )
            .await
            .unwrap();
    }
    wait_for("the three runs", || seen.lock().unwrap().len() == 3).await;
    let report = first.shutdown(Duration::from_millis(300)).await.unwrap();
    let finished: Vec<&str> = report.finished.iter().map(|r| &*r.schedule_id).collect();
    assert!(finished.is_empty() || finished == ["done"], "{finished:?}");
    let mut aborted: Vec<(&str, bool, bool)> = report
        .aborted
        .iter()
        .map(|a| (&*a.run.schedule_id, a.job_returned, a.to_be_run_again))
        .collect();
    aborted.sort_unstable();
    assert_eq!(aborted, [("again", false, true), ("once", false, false)]);

    // The next instance runs again exactly what the report said, as attempt 2.
    let second = builder("second").build().start().await.unwrap();
    wait_for("the fire handed back to run again", || {
        seen.lock().unwrap().len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let first_try = seen.iter().find(|r| r.0 == "again").map(|r| r.1);
    assert_eq!(
        (seen[3].0.as_str(), Some(seen[3].1), seen[3].4),
        ("again", first_try, 2),
        "the same fire, its second attempt"
    );
    let done = store.fires("done", 10).await.unwrap();
    assert!(
        done.iter().all(|f| f.state == FireState::Succeeded),
        "{done:?}"
    );
    assert_eq!(
        store
            .fires("once", 10)
            .await
            .unwrap()
            .first()
            .map(|f| f.state),
        Some(FireState::Aborted)
    );
    second.shutdown(Duration::from_secs(5)).await.unwrap();
}
