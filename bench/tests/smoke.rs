//! CI's check of the bench: the binary runs small workloads (`many`, a burst on a shared
//! SQLite file, `compare`) and loses no fire of its own. This asserts completeness only; speed
//! is for the release-build runs in BENCHMARKS.md.

use std::process::Command;

#[test]
fn many_100_for_2_seconds_loses_nothing() {
    let report = report(&["many", "100", "--seconds", "2"]);
    assert_eq!(report["workload"], "many");
    assert_eq!(report["fires"], 200, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let output = Command::new(env!("CARGO_BIN_EXE_scheduler-bench"))
        .args(["many", "lots"])
        .output()
        .expect("run scheduler-bench");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("N: \"lots\" is not a whole number"));
}

fn report(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_scheduler-bench"))
        .args(args)
        .output()
        .expect("run scheduler-bench");
    assert!(
        output.status.success(),
        "{args:?}: stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).expect("utf-8");
    serde_json::from_str(line.trim()).expect("one JSON line")
}

#[test]
fn a_burst_on_shared_sqlite_runs_every_fire_once() {
    let report = report(&[
        "shared-burst",
        "200",
        "--processes",
        "2",
        "--url",
        "sqlite:",
    ]);
    assert_eq!(report["workload"], "shared-burst", "{report}");
    assert_eq!(report["store"], "sqlite", "{report}");
    assert_eq!(report["fires"], 200, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["not_run"], 0, "{report}");
}

#[test]
fn compare_runs_apsched_and_its_peers_on_one_workload() {
    let report = report(&["compare", "100", "--seconds", "2"]);
    let results = report["results"].as_array().expect("results");
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["scheduler"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names[0], "apsched", "{report}");
    assert!(
        names[1].starts_with("tokio-cron-scheduler 0.15"),
        "{report}"
    );
    assert!(names[2].starts_with("APScheduler 3"), "{report}");
    assert_eq!(results[0]["fires"], 200, "{report}");
    assert_eq!(results[0]["lost"], 0, "{report}");
    // The peers ran (tokio-cron-scheduler loses some fires by design), or APScheduler was
    // skipped for a reason given.
    assert!(results[1]["fires"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        results[2]["fires"].as_u64().unwrap_or(0) > 0 || results[2]["skipped"].is_string(),
        "{report}"
    );
}
