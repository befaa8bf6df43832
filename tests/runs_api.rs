//! `GET /scheduler/jobs/{id}/runs`: a schedule's recent fires, newest first, from a shared
//! store's ledger or the scheduler's own history; a bad limit is a 400 that says why; an
//! unknown id a 404.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apsched::api::Api;
use apsched::sea_orm::{Store, StoreOptions};
use apsched::trigger::IntervalTrigger;
use apsched::{FirstRun, JobContext, NewSchedule, Scheduler};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tower::ServiceExt;

async fn get(api: &Api, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path).body(Empty::<Bytes>::new()).unwrap();
    let Ok(response) = api.clone().oneshot(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join("apsched-runs-api");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{}-{:?}.db",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&file);
    format!("sqlite://{}?mode=rwc", file.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_recent_fires_newest_first() {
    let options = StoreOptions::default().poll_interval(Duration::from_millis(100));
    let store = Store::connect_with(&temp_sqlite(), options).await.unwrap();
    let count = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&count);
    let scheduler = Scheduler::builder()
        .shared_store(store)
        .instance_name("web-1")
        .job("tick", move |_ctx: JobContext| {
            *counter.lock().unwrap() += 1;
            std::future::ready(())
        })
        .build()
        .start()
        .await
        .unwrap();
    let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    scheduler
        .add(
            NewSchedule::for_job("tick", every_second)
                .id("tick")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        if *count.lock().unwrap() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = Api::without_auth(scheduler.clone());

    let (status, all) = get(&api, "/scheduler/jobs/tick/runs").await;
    assert_eq!(status, StatusCode::OK);
    let all = all.as_array().unwrap();
    assert!(all.len() >= 3, "{all:?}");
    let times: Vec<&str> = all
        .iter()
        .map(|f| f["nominal_time"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "newest first: {times:?}"
    );
    let oldest = all.last().unwrap();
    assert_eq!(oldest["schedule_id"], "tick");
    assert_eq!(oldest["state"], "succeeded");
    assert_eq!(oldest["owner"], "web-1");
    assert_eq!(
        (oldest["epoch"].as_i64(), oldest["attempt"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(oldest["fire_id"].is_string() && oldest["finished_at"].is_string());

    let (status, one) = get(&api, "/scheduler/jobs/tick/runs?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["nominal_time"], all[0]["nominal_time"]);

    let (status, error) = get(&api, "/scheduler/jobs/tick/runs?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["error_message"],
        "invalid request: limit must be a whole number from 1 to 1000, got \"0\""
    );
    let (status, _) = get(&api, "/scheduler/jobs/tick/runs?limit=lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, error) = get(&api, "/scheduler/jobs/nope/runs").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_in_memory_scheduler_answers_from_its_own_history() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let scheduler = Scheduler::builder()
        .clock(apsched::clock::TestClock::new(start))
        .instance_name("web-1")
        .job("tick", |_ctx: JobContext| std::future::ready(()))
        .job("fail", |_ctx: JobContext| {
            std::future::ready(Err::<(), _>(apsched::JobError::msg("disk full")))
        })
        .build()
        .start()
        .await
        .unwrap();
    let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    scheduler
        .add_all([
            NewSchedule::for_job("tick", every_second.clone()).id("tick"),
            NewSchedule::for_job("fail", every_second).id("fail"),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let api = Api::without_auth(scheduler.clone());
    let (status, runs) = get(&api, "/scheduler/jobs/tick/runs").await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    let times: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["nominal_time"].as_str().unwrap())
        .collect();
    // Successes are summed up by the latest; every failure is there.
    assert_eq!(times, ["2026-01-01T00:00:03+00:00"]);
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["owner"], "web-1");
    let (_, failed) = get(&api, "/scheduler/jobs/fail/runs").await;
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|f| f["state"] == "failed" && f["error"] == "disk full")
    );
    let (_, one) = get(&api, "/scheduler/jobs/fail/runs?limit=1").await;
    assert_eq!(one[0]["nominal_time"], "2026-01-01T00:00:03+00:00");
    let (status, _) = get(&api, "/scheduler/jobs/nope/runs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
}
