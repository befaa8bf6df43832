//! The engine's behaviour on tokio's paused clock: exact fire times, misfire, coalesce,
//! max_instances, failures, shutdown, and every handle operation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use scheduler_core::EventReceiver;
use scheduler_core::clock::TestClock;
use scheduler_core::store::{JobStore, MemoryStore};
use scheduler_core::trigger::{CronTrigger, DateTrigger, IntervalTrigger};
use scheduler_core::{
    Error, Event, FireState, FirstRun, JobContext, JobError, NewSchedule, Schedule,
    ScheduleChanges, Scheduler, SchedulerHandle, SchedulerState, SkipReason,
};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n)
}

fn every(period: Duration) -> IntervalTrigger {
    IntervalTrigger::every(period).unwrap()
}

/// What each run saw: schedule id, nominal fire time, actual start.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<(String, DateTime<Utc>, DateTime<Utc>)>>>);

impl Runs {
    fn record(&self, ctx: &JobContext) {
        self.0.lock().unwrap().push((
            ctx.schedule_id().to_owned(),
            ctx.nominal_fire_time(),
            ctx.started_at(),
        ));
    }

    fn all(&self) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        self.0.lock().unwrap().clone()
    }

    fn nominal_times(&self, id: &str) -> Vec<DateTime<Utc>> {
        self.all()
            .into_iter()
            .filter(|(s, ..)| s == id)
            .map(|(_, n, _)| n)
            .collect()
    }
}

/// A scheduler on a test clock at `t0()`, with a job "record" that records its runs.
async fn started(runs: &Runs) -> (SchedulerHandle, TestClock) {
    started_with(runs, MemoryStore::new()).await
}

async fn started_with(runs: &Runs, store: MemoryStore) -> (SchedulerHandle, TestClock) {
    let clock = TestClock::new(t0());
    let recorder = runs.clone();
    let handle = Scheduler::builder()
        .clock(clock.clone())
        .store(store)
        .event_capacity(100_000)
        .job("record", move |ctx: JobContext| {
            let recorder = recorder.clone();
            async move { recorder.record(&ctx) }
        })
        .build()
        .start()
        .await
        .unwrap();
    (handle, clock)
}

/// A schedule as the store has it.
async fn stored(store: &MemoryStore, id: &str) -> Schedule {
    store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id() == id)
        .unwrap_or_else(|| panic!("{id} is not in the store"))
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

fn missed(events: &[Event]) -> Vec<(DateTime<Utc>, Duration)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Missed {
                nominal_time,
                lateness,
                ..
            } => Some((*nominal_time, *lateness)),
            _ => None,
        })
        .collect()
}

// ===== fire times =====

#[tokio::test(start_paused = true)]
async fn first_run_now_then_every_hour() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let added = scheduler
        .add(
            NewSchedule::for_job("record", every(Duration::from_secs(3600)))
                .id("hourly")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    assert_eq!(added.next_run_time(), Some(t0()));
    wait(2.0 * 3600.0 + 0.5).await;
    let hour = |h| t0() + TimeDelta::hours(h);
    assert_eq!(
        runs.all(),
        [
            ("hourly".to_owned(), hour(0), hour(0)),
            ("hourly".to_owned(), hour(1), hour(1)),
            ("hourly".to_owned(), hour(2), hour(2)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn hourly_interval_runs_720_times_in_30_days_each_on_its_grid_time() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(3600))).id("h"))
        .await
        .unwrap();
    wait(30.0 * 24.0 * 3600.0 + 1.0).await;
    let all = runs.all();
    assert_eq!(all.len(), 720);
    for (k, (_, nominal, started)) in all.iter().enumerate() {
        let expected = t0() + TimeDelta::hours(k as i64 + 1);
        assert_eq!((*nominal, *started), (expected, expected), "run {k}");
    }
}

#[tokio::test(start_paused = true)]
async fn cron_and_date_schedules_fire_at_their_times() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    scheduler
        .add(NewSchedule::for_job("record", CronTrigger::new("*/20 * * * *").unwrap()).id("cron"))
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("record", DateTrigger::at(secs(3000))).id("once"))
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    wait(3600.0 + 0.5).await;
    // Added at 00:00:00, which matches: a cron trigger fires at or after now.
    assert_eq!(
        runs.nominal_times("cron"),
        [secs(0), secs(1200), secs(2400), secs(3600)]
    );
    assert_eq!(runs.nominal_times("once"), [secs(3000)]);
    // The date schedule is done after its fire.
    assert!(scheduler.get("once").await.unwrap().is_none());
    assert!(drain(&mut events).contains(&Event::Removed {
        schedule_id: "once".into()
    }));
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_runs_within_its_bound_and_never_moves_the_grid() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let trigger = IntervalTrigger::builder()
        .seconds(10)
        .jitter(Duration::from_secs(3))
        .build()
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("record", trigger).id("j"))
        .await
        .unwrap();
    wait(199.0).await;
    let all = runs.all();
    assert_eq!(
        all.len(),
        19,
        "fires at 10..=190; the 200 s fire is not due yet"
    );
    for (k, (_, nominal, started)) in all.iter().enumerate() {
        assert_eq!(
            *nominal,
            secs(10 * (k as i64 + 1)),
            "the grid does not drift"
        );
        let delay = *started - *nominal;
        assert!(
            delay >= TimeDelta::zero() && delay <= TimeDelta::seconds(3),
            "run {k} delayed {delay}"
        );
    }
}

// ===== misfire and coalesce =====

/// A one-minute interval from t0 (first fire at 00:01), the scheduler paused at 00:00:30 and
/// resumed at 00:10:30: ten fires (00:01 ... 00:10) came due while paused.
async fn ten_fires_while_paused(coalesce: bool, grace: Option<Duration>) -> (Runs, Vec<Event>) {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let mut events = scheduler.subscribe();
    scheduler
        .add(
            NewSchedule::for_job("record", every(Duration::from_secs(60)))
                .id("m")
                .coalesce(coalesce)
                .misfire_grace_time(grace),
        )
        .await
        .unwrap();
    wait(30.0).await;
    scheduler.pause_all().await.unwrap();
    assert_eq!(scheduler.state(), SchedulerState::Paused);
    wait(600.0).await;
    assert!(
        runs.all().is_empty(),
        "nothing runs while the scheduler is paused"
    );
    assert_eq!(
        scheduler.get("m").await.unwrap().unwrap().next_run_time(),
        Some(secs(60)),
        "times are kept"
    );
    scheduler.resume_all().await.unwrap();
    wait(1.0).await;
    (runs, drain(&mut events))
}

#[tokio::test(start_paused = true)]
async fn coalesce_runs_once_for_the_latest_after_a_scheduler_pause() {
    let (runs, events) = ten_fires_while_paused(true, Some(Duration::from_secs(3600))).await;
    assert_eq!(runs.all(), [("m".to_owned(), secs(600), secs(630))]);
    assert!(missed(&events).is_empty());
}

#[tokio::test(start_paused = true)]
async fn coalesced_fire_later_than_its_grace_is_missed_not_run() {
    let (runs, events) = ten_fires_while_paused(true, Some(Duration::from_secs(20))).await;
    assert!(runs.all().is_empty());
    assert_eq!(missed(&events), [(secs(600), Duration::from_secs(30))]);
}

#[tokio::test(start_paused = true)]
async fn without_coalesce_each_fire_within_grace_runs_in_order() {
    let (runs, events) = ten_fires_while_paused(false, Some(Duration::from_secs(3600))).await;
    let expected: Vec<_> = (1..=10).map(|m| secs(60 * m)).collect();
    assert_eq!(runs.nominal_times("m"), expected);
    assert!(missed(&events).is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_coalesce_fires_beyond_grace_are_each_missed_with_their_lateness() {
    // Grace 4 min at 00:10:30: 00:01 ... 00:06 are missed (9.5 to 4.5 min late), 00:07 ... 00:10 run.
    let (runs, events) = ten_fires_while_paused(false, Some(Duration::from_secs(240))).await;
    let expected_missed: Vec<_> = (1..=6)
        .map(|m| (secs(60 * m), Duration::from_secs(630 - 60 * m as u64)))
        .collect();
    assert_eq!(missed(&events), expected_missed);
    assert_eq!(
        runs.nominal_times("m"),
        [secs(420), secs(480), secs(540), secs(600)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_clock_jump_past_a_fire_beyond_its_grace_reports_it_missed() {
    let runs = Runs::default();
    let (scheduler, clock) = started(&runs).await;
    let mut events = scheduler.subscribe();
    scheduler
        .add(
            NewSchedule::for_job("record", every(Duration::from_secs(3600)))
                .id("j")
                .misfire_grace_time(Some(Duration::from_secs(60))),
        )
        .await
        .unwrap();
    wait(10.0).await;
    // The wall clock jumps to 05:02:10 (suspend and resume, an NTP step). The engine notices
    // at once, not after sleeping out the hour it had planned.
    clock.jump(TimeDelta::hours(5) + TimeDelta::minutes(2));
    wait(1.0).await;
    assert!(runs.all().is_empty());
    // Five fires came due; coalesced into 05:00, which is 130 s late: beyond the grace.
    assert_eq!(
        missed(&drain(&mut events)),
        [(t0() + TimeDelta::hours(5), Duration::from_secs(130))]
    );
    // And the schedule goes on at its grid time.
    assert_eq!(
        scheduler.get("j").await.unwrap().unwrap().next_run_time(),
        Some(t0() + TimeDelta::hours(6))
    );
    wait(3600.0).await;
    assert_eq!(runs.nominal_times("j"), [t0() + TimeDelta::hours(6)]);
}

#[tokio::test(start_paused = true)]
async fn a_paused_schedule_skips_its_fires_and_resumes_on_its_grid_without_catch_up() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let mut events = scheduler.subscribe();
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(60))).id("p"))
        .await
        .unwrap();
    wait(30.0).await;
    let paused = scheduler.pause("p").await.unwrap();
    assert!(paused.paused());
    assert_eq!(paused.next_run_time(), None);
    wait(300.0).await; // 00:05:30
    assert!(runs.all().is_empty());
    let resumed = scheduler.resume("p").await.unwrap();
    assert_eq!(
        resumed.next_run_time(),
        Some(secs(360)),
        "the next grid time, not a replay"
    );
    wait(91.0).await; // 00:07:01
    assert_eq!(runs.nominal_times("p"), [secs(360), secs(420)]);
    let events = drain(&mut events);
    assert!(events.contains(&Event::Paused {
        schedule_id: "p".into()
    }));
    assert!(events.contains(&Event::Resumed {
        schedule_id: "p".into()
    }));
    assert!(missed(&events).is_empty());
}

// ===== overlap, failures =====

#[tokio::test(start_paused = true)]
async fn max_instances_skips_overlapping_fires_and_keeps_the_grid() {
    let runs = Runs::default();
    let recorder = runs.clone();
    let clock = TestClock::new(t0());
    let scheduler = Scheduler::builder()
        .clock(clock)
        .event_capacity(10_000)
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    let slow = move |ctx: JobContext| {
        let recorder = recorder.clone();
        async move {
            recorder.record(&ctx);
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    };
    scheduler
        .add(NewSchedule::with_job(slow, every(Duration::from_secs(1))).id("slow"))
        .await
        .unwrap();
    wait(7.5).await;
    // Runs at 1 (until 3.5), 4 (until 6.5) and 7; 2, 3, 5 and 6 find one still going.
    assert_eq!(runs.nominal_times("slow"), [secs(1), secs(4), secs(7)]);
    let skipped: Vec<_> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            Event::Skipped {
                nominal_time,
                reason: SkipReason::MaxInstances { running },
                ..
            } => Some((nominal_time, running)),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [(secs(2), 1), (secs(3), 1), (secs(5), 1), (secs(6), 1)]
    );
    assert_eq!(
        scheduler
            .get("slow")
            .await
            .unwrap()
            .unwrap()
            .next_run_time(),
        Some(secs(8))
    );
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_jobs_are_reported_and_nothing_else_stops() {
    let runs = Runs::default();
    let recorder = runs.clone();
    let clock = TestClock::new(t0());
    let scheduler = Scheduler::builder()
        .clock(clock)
        .job("fails", |_ctx: JobContext| async {
            Err::<(), _>(JobError::msg("database is down"))
        })
        .job("panics", |_ctx: JobContext| async {
            if true {
                panic!("index out of bounds");
            }
        })
        .job("works", move |ctx: JobContext| {
            let recorder = recorder.clone();
            async move { recorder.record(&ctx) }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    for id in ["fails", "panics", "works"] {
        scheduler
            .add(NewSchedule::for_job(id, every(Duration::from_secs(10))).id(id))
            .await
            .unwrap();
    }
    wait(30.5).await;
    let events = drain(&mut events);
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed {
                schedule_id,
                nominal_time,
                error,
                ..
            } => Some((schedule_id.to_string(), *nominal_time, error.to_string())),
            _ => None,
        })
        .collect();
    let panicked: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Panicked {
                nominal_time,
                message,
                ..
            } => Some((*nominal_time, message.to_string())),
            _ => None,
        })
        .collect();
    let times = [secs(10), secs(20), secs(30)];
    assert_eq!(
        failed,
        times.map(|t| ("fails".to_owned(), t, "database is down".to_owned()))
    );
    assert_eq!(
        panicked,
        times.map(|t| (t, "index out of bounds".to_owned()))
    );
    assert_eq!(runs.nominal_times("works"), times);
    assert_eq!(scheduler.state(), SchedulerState::Running);
    assert_eq!(
        scheduler
            .get("panics")
            .await
            .unwrap()
            .unwrap()
            .next_run_time(),
        Some(secs(40))
    );
}

#[tokio::test(start_paused = true)]
async fn runs_get_their_context_and_events_pair_up() {
    #[derive(Debug, PartialEq)]
    struct Config(&'static str);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .state(Config("sqlite://demo.db"))
        .job("ctx", move |ctx: JobContext| {
            let sink = Arc::clone(&sink);
            async move {
                let config = ctx.state::<Config>()?;
                sink.lock().unwrap().push((
                    config.0,
                    ctx.args().clone(),
                    ctx.run_id(),
                    ctx.lateness(),
                ));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    scheduler
        .add(
            NewSchedule::for_job("ctx", DateTrigger::at(secs(5)))
                .id("c")
                .args(json!({"table": "my_data"})),
        )
        .await
        .unwrap();
    wait(6.0).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (config, args, run_id, lateness) = &seen[0];
    assert_eq!(
        (*config, args, *lateness),
        (
            "sqlite://demo.db",
            &json!({"table": "my_data"}),
            TimeDelta::zero()
        )
    );
    let events: Vec<Event> = drain(&mut events)
        .into_iter()
        .filter(|e| !matches!(e, Event::Removed { .. }))
        .collect();
    assert_eq!(
        events,
        [
            Event::Added {
                schedule_id: "c".into()
            },
            Event::Submitted {
                schedule_id: "c".into(),
                run_id: *run_id,
                nominal_time: secs(5)
            },
            Event::Succeeded {
                schedule_id: "c".into(),
                run_id: *run_id,
                nominal_time: secs(5),
                duration: Duration::ZERO
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_tower_timeout_wraps_a_job() {
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    let job = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(2))
        .service_fn(|_ctx: JobContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, JobError>(())
        });
    scheduler
        .add(NewSchedule::with_job(job, DateTrigger::at(secs(1))).id("t"))
        .await
        .unwrap();
    wait(5.0).await;
    let failed = drain(&mut events).into_iter().find_map(|e| match e {
        Event::Failed {
            error, duration, ..
        } => Some((error.to_string(), duration)),
        _ => None,
    });
    assert_eq!(
        failed,
        Some(("request timed out".to_owned(), Duration::from_secs(2)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_global_concurrency_limit_makes_runs_wait_for_a_slot() {
    let running = Arc::new(Mutex::new((0usize, 0usize))); // (now, most at once)
    let gauge = Arc::clone(&running);
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .max_concurrency(2)
        .job("busy", move |_ctx: JobContext| {
            let gauge = Arc::clone(&gauge);
            async move {
                {
                    let mut g = gauge.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                gauge.lock().unwrap().0 -= 1;
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    for i in 0..6 {
        scheduler
            .add(NewSchedule::for_job("busy", DateTrigger::at(secs(1))).id(format!("b{i}")))
            .await
            .unwrap();
    }
    wait(10.0).await;
    let succeeded = drain(&mut events)
        .iter()
        .filter(|e| matches!(e, Event::Succeeded { .. }))
        .count();
    assert_eq!(succeeded, 6, "all ran, none was missed for waiting");
    assert_eq!(running.lock().unwrap().1, 2);
}

// ===== shutdown =====

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_cooperative_jobs_aborts_the_rest_and_starts_nothing_new() {
    let runs = Runs::default();
    let (r1, r2) = (runs.clone(), runs.clone());
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("cooperative", move |ctx: JobContext| {
            let r = r1.clone();
            async move {
                r.record(&ctx);
                tokio::select! {
                    () = ctx.cancelled() => tokio::time::sleep(Duration::from_secs(1)).await, // wraps up
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
            }
        })
        .job("stubborn", move |ctx: JobContext| {
            let r = r2.clone();
            async move {
                r.record(&ctx);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    scheduler
        .add(NewSchedule::for_job("cooperative", DateTrigger::at(secs(1))).id("co"))
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("stubborn", DateTrigger::at(secs(1))).id("st"))
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("cooperative", DateTrigger::at(secs(10))).id("later"))
        .await
        .unwrap();
    wait(5.0).await;
    let report = scheduler.shutdown(Duration::from_secs(30)).await.unwrap();
    // Back at 00:00:35: the deadline passed for the stubborn job, the cooperative one was done at 6.
    assert_eq!(scheduler.now(), secs(35));
    let ids = |runs: &[scheduler_core::RunSummary]| {
        runs.iter()
            .map(|r| r.schedule_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&report.finished), ["co"]);
    let aborted: Vec<_> = report.aborted.iter().map(|a| a.run.clone()).collect();
    assert_eq!(ids(&aborted), ["st"]);
    assert_eq!(aborted[0].nominal_time, secs(1));
    // Cut off mid-run; the engine's own timetable never runs a fire twice.
    assert!(!report.aborted[0].job_returned && !report.aborted[0].to_be_run_again);
    // The fire due at 10 s, after shutdown began, never started.
    assert_eq!(runs.nominal_times("later"), Vec::<DateTime<Utc>>::new());
    let events = drain(&mut events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Aborted { schedule_id, .. } if &**schedule_id == "st"))
    );
    assert!(matches!(events.last(), Some(Event::Shutdown(r)) if **r == report));
    assert_eq!(scheduler.state(), SchedulerState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn abort_ends_a_shutdown_before_its_deadline() {
    let runs = Runs::default();
    let r = runs.clone();
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("stubborn", move |ctx: JobContext| {
            let r = r.clone();
            async move {
                r.record(&ctx);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("stubborn", DateTrigger::at(secs(1))).id("st"))
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("stubborn", DateTrigger::at(secs(4))).id("later"))
        .await
        .unwrap();
    wait(2.0).await;
    let stopping = scheduler.clone();
    let shutdown = tokio::spawn(async move { stopping.shutdown(Duration::from_secs(60)).await });
    wait(3.0).await;
    assert!(!shutdown.is_finished(), "the shutdown waits for the job");
    scheduler.abort();
    let report = shutdown.await.unwrap().unwrap();
    // At 00:00:05, when it was aborted: not at the deadline (00:01:02).
    assert_eq!(scheduler.now(), secs(5));
    let aborted: Vec<(String, bool)> = report
        .aborted
        .iter()
        .map(|a| (a.run.schedule_id.to_string(), a.job_returned))
        .collect();
    assert_eq!(aborted, [("st".to_owned(), false)]);
    // Due at 4 s, after the shutdown began: never started.
    assert_eq!(runs.nominal_times("later"), Vec::<DateTime<Utc>>::new());
    // Abort before any shutdown stops the scheduler too.
    let idle = Scheduler::builder().build().start().await.unwrap();
    idle.abort();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(idle.state(), SchedulerState::Stopped);
    assert!(
        idle.shutdown(Duration::ZERO)
            .await
            .unwrap_err()
            .is_stopped()
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_that_calls_its_scheduler_while_it_stops_is_answered_at_once() {
    let slot: Arc<std::sync::OnceLock<SchedulerHandle>> = Arc::default();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (handle, seen) = (Arc::clone(&slot), Arc::clone(&answers));
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("caller", move |ctx: JobContext| {
            let (handle, seen) = (Arc::clone(&handle), Arc::clone(&seen));
            async move {
                ctx.cancelled().await;
                let answer = handle.get().unwrap().list().await.map(|l| l.len());
                seen.lock().unwrap().push(answer);
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let _ = slot.set(scheduler.clone());
    scheduler
        .add(NewSchedule::for_job("caller", DateTrigger::at(secs(1))).id("c"))
        .await
        .unwrap();
    wait(2.0).await;
    let report = scheduler.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(
        scheduler.now() < secs(3),
        "the stop did not wait out its deadline: {}",
        scheduler.now()
    );
    let answers = answers.lock().unwrap();
    assert!(
        matches!(answers[..], [Err(Error::SchedulerStopped)]),
        "{answers:?}"
    );
    assert_eq!(report.finished.len(), 1);
    assert!(report.aborted.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_scheduler_answers_every_call_with_a_clear_error() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(5))).id("x"))
        .await
        .unwrap();
    scheduler.shutdown(Duration::from_secs(1)).await.unwrap();
    let stopped =
        |r: Result<(), Error>| assert!(matches!(r, Err(Error::SchedulerStopped)), "{r:?}");
    stopped(
        scheduler
            .add(NewSchedule::for_job(
                "record",
                every(Duration::from_secs(5)),
            ))
            .await
            .map(drop),
    );
    stopped(scheduler.get("x").await.map(drop));
    stopped(scheduler.list().await.map(drop));
    stopped(
        scheduler
            .modify("x", ScheduleChanges::new().name("y"))
            .await
            .map(drop),
    );
    stopped(
        scheduler
            .reschedule("x", every(Duration::from_secs(9)))
            .await
            .map(drop),
    );
    stopped(scheduler.pause("x").await.map(drop));
    stopped(scheduler.resume("x").await.map(drop));
    stopped(scheduler.pause_all().await);
    stopped(scheduler.resume_all().await);
    stopped(scheduler.remove("x").await);
    stopped(scheduler.remove_all().await);
    stopped(scheduler.run_now("x").await);
    stopped(scheduler.next_fire_times("x", 3).await.map(drop));
    stopped(scheduler.start().await);
    stopped(scheduler.shutdown(Duration::from_secs(1)).await.map(drop));
    assert_eq!(
        Error::SchedulerStopped.to_string(),
        "the scheduler has been shut down"
    );
    let before = runs.all().len();
    wait(60.0).await;
    assert_eq!(runs.all().len(), before, "nothing runs after shutdown");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_engine() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(1))).id("d"))
        .await
        .unwrap();
    wait(3.5).await;
    assert_eq!(runs.all().len(), 3);
    drop(scheduler);
    wait(10.0).await;
    assert_eq!(
        runs.all().len(),
        3,
        "no run after the last handle is dropped"
    );
}

// ===== handle operations =====

#[tokio::test(start_paused = true)]
async fn add_get_list_conflicts_and_replace() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let a = scheduler
        .add(
            NewSchedule::for_job("record", every(Duration::from_secs(30)))
                .id("a")
                .name("Update DB"),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.id(), a.name(), a.job_name()),
        ("a", "Update DB", Some("record"))
    );
    assert_eq!(
        a.next_run_time(),
        Some(secs(30)),
        "an interval first fires one period after it is added"
    );
    assert_eq!(
        (a.misfire_grace_time(), a.coalesce(), a.max_instances()),
        (Some(Duration::from_secs(60)), true, 1)
    );

    let err = scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(5))).id("a"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ConflictingId(ref id) if id == "a"),
        "{err}"
    );
    assert_eq!(err.to_string(), "a schedule with id \"a\" already exists");
    assert_eq!(
        scheduler.get("a").await.unwrap().unwrap().next_run_time(),
        Some(secs(30)),
        "nothing changed"
    );

    let replaced = scheduler
        .add(
            NewSchedule::for_job("record", every(Duration::from_secs(5)))
                .id("a")
                .replace_existing(true),
        )
        .await
        .unwrap();
    assert_eq!(replaced.next_run_time(), Some(secs(5)));

    let err = scheduler
        .add(NewSchedule::for_job("nope", every(Duration::from_secs(5))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no job named \"nope\" is registered on the scheduler"
    );
    let err = scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(5))).max_instances(0))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidOption {
            option: "max_instances",
            ..
        }
    ));
    let ended = IntervalTrigger::builder()
        .seconds(1)
        .start(secs(-100))
        .end(secs(-50))
        .build()
        .unwrap();
    let err = scheduler
        .add(NewSchedule::for_job("record", ended))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NeverFires(_)), "{err}");

    // Ids are generated when not given; paused schedules list last.
    let generated = scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(1))).paused(true))
        .await
        .unwrap();
    assert_eq!(generated.id().len(), 32);
    assert_eq!(generated.next_run_time(), None);
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(2))).id("b"))
        .await
        .unwrap();
    let ids: Vec<String> = scheduler
        .list()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["b".to_owned(), "a".to_owned(), generated.id().to_owned()]
    );
    assert!(scheduler.get("missing").await.unwrap().is_none());

    // A batch is all or nothing.
    let err = scheduler
        .add_all([
            NewSchedule::for_job("record", every(Duration::from_secs(1))).id("n1"),
            NewSchedule::for_job("record", every(Duration::from_secs(1))).id("n1"),
        ])
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(scheduler.get("n1").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn modify_reschedule_remove_and_their_errors() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let mut events = scheduler.subscribe();
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(10))).id("m"))
        .await
        .unwrap();

    let modified = scheduler
        .modify(
            "m",
            ScheduleChanges::new()
                .name("renamed")
                .args(json!([1, 2]))
                .misfire_grace_time(None)
                .coalesce(false)
                .max_instances(3),
        )
        .await
        .unwrap();
    assert_eq!(
        (modified.name(), modified.args()),
        ("renamed", &json!([1, 2]))
    );
    assert_eq!(
        (
            modified.misfire_grace_time(),
            modified.coalesce(),
            modified.max_instances()
        ),
        (None, false, 3)
    );
    assert_eq!(
        modified.next_run_time(),
        Some(secs(10)),
        "options do not move the schedule"
    );
    let err = scheduler
        .modify("m", ScheduleChanges::new().max_instances(0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid schedule option max_instances: must be at least 1, got 0"
    );
    assert_eq!(
        scheduler.get("m").await.unwrap().unwrap().max_instances(),
        3,
        "a failed modify changes nothing"
    );

    wait(1.0).await;
    let rescheduled = scheduler
        .reschedule("m", CronTrigger::new("0 * * * *").unwrap())
        .await
        .unwrap();
    assert_eq!(rescheduled.next_run_time(), Some(secs(3600)));
    assert_eq!(
        scheduler.next_fire_times("m", 3).await.unwrap(),
        [secs(3600), secs(7200), secs(10800)]
    );

    scheduler.remove("m").await.unwrap();
    assert!(scheduler.get("m").await.unwrap().is_none());
    for result in [
        scheduler
            .modify("m", ScheduleChanges::new().name("x"))
            .await
            .map(drop),
        scheduler
            .reschedule("m", every(Duration::from_secs(1)))
            .await
            .map(drop),
        scheduler.pause("m").await.map(drop),
        scheduler.resume("m").await.map(drop),
        scheduler.remove("m").await,
        scheduler.run_now("m").await,
        scheduler.next_fire_times("m", 1).await.map(drop),
    ] {
        let err = result.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(err.to_string(), "no schedule with id \"m\"");
    }

    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(10))).id("r1"))
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("record", every(Duration::from_secs(10))).id("r2"))
        .await
        .unwrap();
    scheduler.remove_all().await.unwrap();
    assert!(scheduler.list().await.unwrap().is_empty());
    let events = drain(&mut events);
    for expected in [
        Event::Modified {
            schedule_id: "m".into(),
        },
        Event::Removed {
            schedule_id: "m".into(),
        },
        Event::AllRemoved,
    ] {
        assert!(events.contains(&expected), "{expected:?} in {events:?}");
    }
    wait(60.0).await;
    assert!(runs.all().is_empty());
}

#[tokio::test(start_paused = true)]
async fn run_now_adds_one_run_and_honours_max_instances() {
    let runs = Runs::default();
    let recorder = runs.clone();
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("slow", move |ctx: JobContext| {
            let recorder = recorder.clone();
            async move {
                recorder.record(&ctx);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    scheduler
        .add(NewSchedule::for_job("slow", every(Duration::from_secs(3600))).id("s"))
        .await
        .unwrap();
    wait(1.0).await;
    scheduler.run_now("s").await.unwrap();
    tokio::task::yield_now().await;
    let err = scheduler.run_now("s").await.unwrap_err();
    assert!(
        matches!(err, Error::MaxInstancesReached { running: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "schedule \"s\" is already running 1 time(s), its max_instances"
    );
    wait(10.0).await;
    assert_eq!(runs.nominal_times("s"), [secs(1)]);
    assert_eq!(
        scheduler.get("s").await.unwrap().unwrap().next_run_time(),
        Some(secs(3600)),
        "run_now does not move the schedule"
    );
    scheduler.run_now("s").await.unwrap();
    wait(1.0).await;
    assert_eq!(runs.nominal_times("s"), [secs(1), secs(11)]);
}

#[tokio::test(start_paused = true)]
async fn schedules_added_before_start_run_only_after_it() {
    let runs = Runs::default();
    let recorder = runs.clone();
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("record", move |ctx: JobContext| {
            let recorder = recorder.clone();
            async move { recorder.record(&ctx) }
        })
        .build();
    let handle = scheduler.handle();
    assert_eq!(handle.state(), SchedulerState::NotStarted);
    handle
        .add(NewSchedule::for_job("record", every(Duration::from_secs(1))).id("early"))
        .await
        .unwrap();
    assert!(matches!(
        handle.run_now("early").await,
        Err(Error::NotStarted)
    ));
    assert!(matches!(handle.pause_all().await, Err(Error::NotStarted)));
    wait(2.5).await;
    assert!(runs.all().is_empty());
    let handle = scheduler.start().await.unwrap();
    assert!(matches!(handle.start().await, Err(Error::AlreadyRunning)));
    wait(1.0).await;
    // 1 s was missed long ago... within the 60 s grace: coalesced into 2 s, then 3 s.
    assert_eq!(runs.nominal_times("early"), [secs(2), secs(3)]);
}

// ===== stores =====

#[tokio::test(start_paused = true)]
async fn a_restarted_scheduler_picks_its_schedules_up_from_the_store() {
    let store = MemoryStore::new();
    let runs = Runs::default();
    let (first, _clock) = started_with(&runs, store.clone()).await;
    first
        .add(NewSchedule::for_job("record", every(Duration::from_secs(10))).id("durable"))
        .await
        .unwrap();
    wait(25.0).await;
    first.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        stored(&store, "durable").await.next_run_time(),
        Some(secs(30)),
        "the store has its place"
    );

    // A new process, 2 s later on the clock (the new TestClock restarts at t0, so jump).
    let (second, clock) = started_with(&runs, store.clone()).await;
    clock.jump(TimeDelta::seconds(27));
    wait(15.0).await;
    assert_eq!(
        runs.nominal_times("durable"),
        [secs(10), secs(20), secs(30), secs(40)]
    );
    second.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stored_schedule_with_an_unknown_job_is_kept_and_reported() {
    let store = MemoryStore::new();
    let orphan = scheduler_core::Schedule::from_parts(
        "orphan",
        "orphan",
        Some("renamed_job"),
        json!(null),
        every(Duration::from_secs(5)).into(),
        Some(secs(5)),
        scheduler_core::ScheduleOptions::default(),
    )
    .unwrap();
    store.add(&orphan, false).await.unwrap();
    let runs = Runs::default();
    let clock = TestClock::new(t0());
    let scheduler = Scheduler::builder()
        .clock(clock)
        .store(store.clone())
        .build();
    let mut events = scheduler.handle().subscribe();
    let scheduler = scheduler.start().await.unwrap();
    wait(20.0).await;
    assert!(runs.all().is_empty());
    assert!(drain(&mut events).contains(&Event::UnknownJob {
        schedule_id: "orphan".into(),
        job: "renamed_job".into()
    }));
    assert_eq!(
        scheduler.get("orphan").await.unwrap().unwrap(),
        orphan,
        "kept as it was, never deleted"
    );
    assert!(matches!(
        scheduler.run_now("orphan").await,
        Err(Error::UnknownJob(_))
    ));
    assert_eq!(stored(&store, "orphan").await, orphan);
}

#[tokio::test(start_paused = true)]
async fn modified_args_reach_the_next_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let scheduler = Scheduler::builder()
        .clock(TestClock::new(t0()))
        .job("args", move |ctx: JobContext| {
            let sink = Arc::clone(&sink);
            async move { sink.lock().unwrap().push(ctx.args().clone()) }
        })
        .build()
        .start()
        .await
        .unwrap();
    scheduler
        .add(
            NewSchedule::for_job("args", every(Duration::from_secs(10)))
                .id("a")
                .args(json!({"v": 1})),
        )
        .await
        .unwrap();
    wait(15.0).await;
    scheduler
        .modify("a", ScheduleChanges::new().args(json!({"v": 2})))
        .await
        .unwrap();
    wait(10.0).await;
    assert_eq!(*seen.lock().unwrap(), [json!({"v": 1}), json!({"v": 2})]);
}

// ===== history: every fire that does not run has a record =====

/// The reasons recorded in a schedule's history for fires that did not run, oldest first.
async fn not_run(scheduler: &SchedulerHandle, id: &str) -> Vec<(DateTime<Utc>, FireState, String)> {
    let mut records: Vec<_> = scheduler
        .runs(id, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.state, FireState::Missed | FireState::Skipped))
        .map(|r| (r.nominal_time, r.state, r.reason.unwrap_or_default()))
        .collect();
    records.reverse();
    records
}

#[tokio::test(start_paused = true)]
async fn every_fire_that_does_not_run_is_in_the_history_with_its_reason() {
    let runs = Runs::default();
    let (scheduler, _clock) = started(&runs).await;
    let minute = Duration::from_secs(60);
    let slow = |ctx: JobContext| async move {
        let _ = ctx;
        tokio::time::sleep(Duration::from_secs(150)).await;
    };
    scheduler
        .add_all([
            NewSchedule::for_job("record", every(minute)).id("coalesced"),
            NewSchedule::for_job("record", every(minute))
                .id("missed")
                .coalesce(false)
                .misfire_grace_time(Some(Duration::from_secs(200))),
            NewSchedule::with_job(slow, every(minute)).id("busy"),
            NewSchedule::for_job("record", every(minute)).id("paused"),
        ])
        .await
        .unwrap();
    // 00:01 runs everywhere; "busy" runs until 00:03:30.
    wait(70.0).await;
    scheduler.pause("paused").await.unwrap();
    // The whole scheduler paused from 00:01:10 to 00:05:30: 00:02 ... 00:05 came due.
    scheduler.pause_all().await.unwrap();
    wait(260.0).await;
    scheduler.resume_all().await.unwrap();
    wait(1.0).await;
    scheduler.resume("paused").await.unwrap();

    let coalesced = |t| format!("coalesced into the fire at {t}");
    assert_eq!(
        not_run(&scheduler, "coalesced").await,
        [
            (
                secs(120),
                FireState::Skipped,
                coalesced("2026-01-01T00:05:00Z")
            ),
            (
                secs(180),
                FireState::Skipped,
                coalesced("2026-01-01T00:05:00Z")
            ),
            (
                secs(240),
                FireState::Skipped,
                coalesced("2026-01-01T00:05:00Z")
            ),
        ]
    );
    assert_eq!(runs.nominal_times("coalesced"), [secs(60), secs(300)]);
    // Without coalesce each fire is judged: 00:02 was 210 s late at 00:05:30, past its 200 s.
    let missed = not_run(&scheduler, "missed").await;
    assert_eq!(
        missed,
        [(
            secs(120),
            FireState::Missed,
            "misfire: 210.000 s late, grace 200.000 s".to_owned()
        )]
    );
    assert_eq!(
        runs.nominal_times("missed"),
        [secs(60), secs(180), secs(240), secs(300)]
    );
    // "busy" ran 00:01 until 00:03:30; the due fires it found still going were skipped.
    let busy = not_run(&scheduler, "busy").await;
    assert_eq!(
        busy.first(),
        Some(&(
            secs(120),
            FireState::Skipped,
            "coalesced into the fire at 2026-01-01T00:05:00Z".to_owned()
        ))
    );
    assert!(
        busy.iter()
            .all(|(_, state, _)| *state == FireState::Skipped),
        "{busy:?}"
    );
    // The schedule paused at 00:01:10 skipped 00:02 ... 00:05 (recorded when it resumed).
    let paused = not_run(&scheduler, "paused").await;
    assert_eq!(
        paused,
        [120, 180, 240, 300].map(|s| (secs(s), FireState::Skipped, "schedule paused".to_owned()))
    );
    // And runs are there too, with how they ended.
    let history = scheduler.runs("coalesced", 1).await.unwrap();
    assert_eq!(history[0].nominal_time, secs(300));
    assert_eq!(history[0].state, FireState::Succeeded);
    assert_eq!(history[0].started_at, Some(secs(330)));
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_skips_the_next_fire_for_max_instances() {
    let (scheduler, _clock) = started(&Runs::default()).await;
    let slow = |_ctx: JobContext| tokio::time::sleep(Duration::from_secs(90));
    scheduler
        .add(NewSchedule::with_job(slow, every(Duration::from_secs(60))).id("busy"))
        .await
        .unwrap();
    // The 00:01 run goes on until 00:02:30, over the 00:02 fire.
    wait(130.0).await;
    let going = scheduler.runs("busy", 10).await.unwrap();
    assert_eq!(going[1].state, FireState::Running, "{going:?}");
    wait(30.0).await;
    assert_eq!(
        not_run(&scheduler, "busy").await,
        [(
            secs(120),
            FireState::Skipped,
            "max_instances: 1 run(s) going".to_owned()
        )]
    );
    let history = scheduler.runs("busy", 10).await.unwrap();
    assert_eq!(history[0].state, FireState::Skipped);
    assert_eq!(history[1].nominal_time, secs(60));
    assert_eq!(history[1].state, FireState::Succeeded);
}
