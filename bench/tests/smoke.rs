//! CI's check of the bench: the binary runs a small `many` workload and loses no fire. This
//! asserts completeness only; speed is for the release-build runs in BENCHMARKS.md.

use std::process::Command;

#[test]
fn many_100_for_2_seconds_loses_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_scheduler-bench"))
        .args(["many", "100", "--seconds", "2"])
        .output()
        .expect("run scheduler-bench");
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).expect("utf-8");
    let report: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
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
