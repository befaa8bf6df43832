//! Overlap policies on the engine's own timetable, on tokio's paused clock: what a fire does
//! when `max_instances` runs of its schedule are still going.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use scheduler_core::clock::TestClock;
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{
    Event, EventReceiver, FireState, JobContext, NewSchedule, Overlap, Scheduler, SchedulerHandle,
    SkipReason,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn at(seconds: f64) -> DateTime<Utc> {
    t0() + TimeDelta::microseconds((seconds * 1e6) as i64)
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

/// Each run: (nominal, started, ended), in seconds from t0.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<(f64, f64, Option<f64>)>>>);

impl Runs {
    fn all(&self) -> Vec<(f64, f64, Option<f64>)> {
        self.0.lock().unwrap().clone()
    }

    /// The most runs that were going at once.
    fn most_at_once(&self) -> usize {
        let runs = self.all();
        runs.iter()
            .map(|&(_, start, _)| {
                runs.iter()
                    .filter(|&&(_, s, e)| s <= start && e.is_none_or(|e| e > start))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

fn secs(t: DateTime<Utc>) -> f64 {
    (t - t0()).num_microseconds().unwrap() as f64 / 1e6
}

/// A scheduler whose job "work" takes `job_time` seconds (or less, if `honours` its token
/// and the token fires).
async fn scheduler(runs: &Runs, job_time: f64, honours: bool) -> SchedulerHandle {
    let runs = runs.clone();
    let clock = TestClock::new(t0());
    let job_clock = clock.clone();
    Scheduler::builder()
        .clock(clock)
        .event_capacity(10_000)
        .job("work", move |ctx: JobContext| {
            let (runs, clock) = (runs.clone(), job_clock.clone());
            async move {
                let index = {
                    let mut all = runs.0.lock().unwrap();
                    all.push((secs(ctx.nominal_fire_time()), secs(ctx.started_at()), None));
                    all.len() - 1
                };
                let work = tokio::time::sleep(Duration::from_secs_f64(job_time));
                if honours {
                    tokio::select! {
                        () = work => {}
                        () = ctx.cancelled() => {}
                    }
                } else {
                    work.await;
                }
                runs.0.lock().unwrap()[index].2 =
                    Some(secs(scheduler_core::clock::Clock::now(&clock)));
            }
        })
        .build()
        .start()
        .await
        .unwrap()
}

fn every(seconds: i64) -> IntervalTrigger {
    IntervalTrigger::builder()
        .seconds(seconds)
        .start(at(seconds as f64))
        .build()
        .unwrap()
}

fn skipped(events: &[Event]) -> Vec<(f64, SkipReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Skipped {
                nominal_time,
                reason,
                ..
            } => Some((secs(*nominal_time), *reason)),
            _ => None,
        })
        .collect()
}

fn queued(events: &[Event]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Queued { nominal_time, .. } => Some(secs(*nominal_time)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn skip_is_apscheduler_max_instances() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 2.5, false).await;
    let mut events = handle.subscribe();
    handle
        .add(NewSchedule::for_job("work", every(1)).id("s"))
        .await
        .unwrap();
    wait(5.2).await;
    let events = drain(&mut events);
    let starts: Vec<_> = runs.all().iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(starts, [(1.0, 1.0), (4.0, 4.0)]);
    assert_eq!(
        skipped(&events),
        [
            (2.0, SkipReason::MaxInstances { running: 1 }),
            (3.0, SkipReason::MaxInstances { running: 1 }),
            (5.0, SkipReason::MaxInstances { running: 1 }),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn queue_one_runs_once_more_right_after() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 2.5, false).await;
    let mut events = handle.subscribe();
    handle
        .add(
            NewSchedule::for_job("work", every(1))
                .id("s")
                .overlap(Overlap::QueueOne),
        )
        .await
        .unwrap();
    wait(8.2).await;
    let events = drain(&mut events);
    // 1 runs until 3.5; 2 waits and starts then; 3 finds 2 waiting: skipped; 4 waits for
    // 2 (until 6.0); 5 skipped; 6 waits for 4 (until 8.5).
    let starts: Vec<_> = runs.all().iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(starts, [(1.0, 1.0), (2.0, 3.5), (4.0, 6.0)]);
    assert_eq!(queued(&events), [2.0, 4.0, 6.0]);
    let full = SkipReason::QueueFull { limit: 1 };
    assert_eq!(
        skipped(&events),
        [(3.0, full), (5.0, full), (7.0, full), (8.0, full)]
    );
    assert_eq!(runs.most_at_once(), 1, "never two at once");
    // The history says why 3 did not run, and that 6 waits.
    let history = handle.runs("s", 20).await.unwrap();
    let waiting: Vec<_> = history
        .iter()
        .filter(|f| f.state == FireState::Waiting)
        .map(|f| secs(f.nominal_time))
        .collect();
    assert_eq!(waiting, [6.0]);
    let three = history
        .iter()
        .find(|f| secs(f.nominal_time) == 3.0)
        .unwrap();
    assert_eq!(three.state, FireState::Skipped);
    assert_eq!(
        three.reason.as_deref(),
        Some("overlap: max_instances runs going and 1 fire(s) waiting already")
    );
}

#[tokio::test(start_paused = true)]
async fn queue_all_runs_each_in_turn_up_to_its_limit() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 2.5, false).await;
    let mut events = handle.subscribe();
    handle
        .add(
            NewSchedule::for_job("work", every(1))
                .id("s")
                .overlap(Overlap::QueueAll { limit: 2 }),
        )
        .await
        .unwrap();
    wait(9.2).await;
    let events = drain(&mut events);
    // One at a time, oldest first, 2.5 s each: 1 at 1.0, 2 at 3.5, 3 at 6.0, 4 at 8.5 (at
    // 4.0 only 3 waited, as 2 had started); 5 found 3 and 4 waiting: skipped.
    let starts: Vec<_> = runs.all().iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(starts, [(1.0, 1.0), (2.0, 3.5), (3.0, 6.0), (4.0, 8.5)]);
    let full = SkipReason::QueueFull { limit: 2 };
    assert_eq!(skipped(&events)[0], (5.0, full));
    assert_eq!(runs.most_at_once(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_running_with_a_job_that_honours_its_token() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 100.0, true).await;
    let mut events = handle.subscribe();
    handle
        .add(
            NewSchedule::for_job("work", every(10))
                .id("s")
                .overlap(Overlap::CancelRunning {
                    grace: Duration::from_secs(5),
                }),
        )
        .await
        .unwrap();
    wait(25.0).await;
    let events = drain(&mut events);
    // 10 runs; at 20 its token fires, it stops at once, and 20 starts at once.
    let all = runs.all();
    assert_eq!(all[0], (10.0, 10.0, Some(20.0)));
    assert_eq!((all[1].0, all[1].1), (20.0, 20.0));
    let cancelled: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Cancelled { nominal_time, .. } => Some(secs(*nominal_time)),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, [10.0]);
    // It ended as it returned: a success.
    let history = handle.runs("s", 10).await.unwrap();
    let ten = history
        .iter()
        .find(|f| secs(f.nominal_time) == 10.0)
        .unwrap();
    assert_eq!(ten.state, FireState::Succeeded);
    // The scheduler's own shutdown still reaches the new run's token.
    assert!(
        !handle
            .shutdown(Duration::from_secs(1))
            .await
            .unwrap()
            .finished
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_running_cuts_off_a_job_that_does_not_honour_its_token() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 100.0, false).await;
    let mut events = handle.subscribe();
    handle
        .add(
            NewSchedule::for_job("work", every(10))
                .id("s")
                .overlap(Overlap::CancelRunning {
                    grace: Duration::from_secs(5),
                }),
        )
        .await
        .unwrap();
    wait(27.0).await;
    let events = drain(&mut events);
    // 10 runs; at 20 it is asked to stop and does not; at 25 it is cut off and 20 starts.
    let all = runs.all();
    assert_eq!(
        all[0],
        (10.0, 10.0, None),
        "cut off: its job never returned"
    );
    assert_eq!((all[1].0, all[1].1), (20.0, 25.0));
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Aborted { nominal_time, .. } if secs(*nominal_time) == 10.0)
        )
    );
    let history = handle.runs("s", 10).await.unwrap();
    let ten = history
        .iter()
        .find(|f| secs(f.nominal_time) == 10.0)
        .unwrap();
    assert_eq!(ten.state, FireState::Failed);
    assert_eq!(
        ten.error.as_deref(),
        Some(
            "cancelled for a newer fire (overlap: cancel_running), and cut off when its grace was over"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn allow_all_runs_every_fire_whatever_is_going() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 2.5, false).await;
    handle
        .add(
            NewSchedule::for_job("work", every(1))
                .id("s")
                .overlap(Overlap::AllowAll),
        )
        .await
        .unwrap();
    wait(5.2).await;
    let starts: Vec<_> = runs.all().iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        starts,
        [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0), (5.0, 5.0)]
    );
    assert_eq!(runs.most_at_once(), 3);
    // run_now too.
    handle.run_now("s").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_policy_changes_with_modify_and_is_checked() {
    let runs = Runs::default();
    let handle = scheduler(&runs, 0.0, false).await;
    handle
        .add(NewSchedule::for_job("work", every(1)).id("s"))
        .await
        .unwrap();
    let changed = handle
        .modify(
            "s",
            scheduler_core::ScheduleChanges::new().overlap(Overlap::QueueAll { limit: 3 }),
        )
        .await
        .unwrap();
    assert_eq!(changed.overlap(), Overlap::QueueAll { limit: 3 });
    let refused = handle
        .modify(
            "s",
            scheduler_core::ScheduleChanges::new().overlap(Overlap::QueueAll { limit: 0 }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "invalid schedule option overlap: queue_all's limit must be from 1 to 10000, got 0"
    );
}
