//! Schedules declared in configuration: loaded at start, idempotently across restarts.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use scheduler_api::Error;
use scheduler_api::{load_jobs, load_jobs_file};
use scheduler_core::clock::TestClock;
use scheduler_core::store::MemoryStore;
use scheduler_core::{JobContext, Scheduler, SchedulerHandle};
use serde_json::json;

async fn boot(store: &MemoryStore) -> SchedulerHandle {
    Scheduler::builder()
        .clock(TestClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ))
        .store(store.clone())
        .job("update_db", |_ctx: JobContext| async {})
        .job("report", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap()
}

const TOML: &str = r#"
[[jobs]]
id = "update-db"
func = "update_db"
trigger = "interval"
seconds = 30
next_run_time = "now"

[[jobs]]
id = "nightly-report"
func = "report"
trigger = "cron"
expr = "0 2 * * *"
timezone = "Europe/Berlin"
"#;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("apsched-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn a_second_boot_with_a_durable_store_neither_fails_nor_resets_the_schedules() {
    let store = MemoryStore::new();
    let path = write("jobs.toml", TOML);

    let first = boot(&store).await;
    let report = load_jobs_file(&first, &path).await.unwrap();
    assert_eq!(report.added, ["update-db", "nightly-report"]);
    tokio::time::sleep(Duration::from_secs(95)).await;
    let place = first
        .get("update-db")
        .await
        .unwrap()
        .unwrap()
        .next_run_time();
    first.shutdown(Duration::from_secs(1)).await.unwrap();

    let second = boot(&store).await;
    let report = load_jobs_file(&second, &path).await.unwrap();
    assert_eq!(report.unchanged, ["update-db", "nightly-report"]);
    assert!(report.added.is_empty() && report.replaced.is_empty());
    assert_eq!(
        second
            .get("update-db")
            .await
            .unwrap()
            .unwrap()
            .next_run_time(),
        place,
        "the grid kept its place"
    );

    // A changed definition replaces the stored one.
    let changed = write(
        "jobs-changed.json",
        &json!({"jobs": [
            {"id": "update-db", "func": "update_db", "trigger": "interval", "seconds": 60}
        ]})
        .to_string(),
    );
    let report = load_jobs_file(&second, &changed).await.unwrap();
    assert_eq!(report.replaced, ["update-db"]);
    assert_eq!(
        second
            .get("update-db")
            .await
            .unwrap()
            .unwrap()
            .trigger()
            .to_value()["minutes"],
        1
    );
}

#[tokio::test]
async fn one_bad_entry_adds_nothing_and_says_which() {
    let scheduler = boot(&MemoryStore::new()).await;
    let err = load_jobs(
        &scheduler,
        json!([
            {"id": "ok", "func": "update_db", "trigger": "interval", "seconds": 5},
            {"id": "bad", "func": "update_db", "trigger": "cron", "expr": "* * * 13 *"}
        ]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidJob(_)));
    assert_eq!(
        err.to_string(),
        "invalid job definition: job 2 (\"bad\"): month field: 13 is outside 1-12 in \"* * * 13 *\""
    );
    assert!(scheduler.list().await.unwrap().is_empty());

    let path = write("broken.toml", "[[jobs]]\nid = \"x\"\nfunc = ");
    let err = load_jobs_file(&scheduler, &path).await.unwrap_err();
    assert!(err.to_string().contains("broken.toml"), "{err}");
    let err = load_jobs_file(&scheduler, "/nonexistent/jobs.toml")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid job definition: cannot read /nonexistent/jobs.toml"),
        "{err}"
    );
}
