//! `compare`: the `many` workload on apsched and on its peers, each in a process of its own,
//! one after the other, in one run: apsched, tokio-cron-scheduler (a dependency of the bench)
//! and, when a Python with APScheduler 3 is found, APScheduler. Prints every result and the
//! peers' figures as multiples of apsched's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta};
use serde_json::{Value, json};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::measure::{Recorder, lateness_json, mib, usage};
use crate::{BenchResult, now, round3, sleep_until, whole_second_after, workers};

/// The APScheduler side, run with `python -c`.
const APSCHEDULER_MANY: &str = include_str!("../peers/apscheduler_many.py");

pub(crate) async fn run(n: usize, seconds: u64) -> BenchResult {
    let exe = std::env::current_exe()?;
    let (n_arg, seconds_arg) = (n.to_string(), seconds.to_string());
    let mut results = vec![labelled(
        run_json(Command::new(&exe).args(["many", &n_arg, "--seconds", &seconds_arg]))?,
        "apsched",
    )];
    results.push(labelled(
        run_json(Command::new(&exe).args(["tokio-cron-many", &n_arg, "--seconds", &seconds_arg]))?,
        &format!("tokio-cron-scheduler {}", tokio_cron_version()),
    ));
    match python_with_apscheduler(&exe) {
        Ok(python) => results.push(run_json(Command::new(python).args([
            "-c",
            APSCHEDULER_MANY,
            &n_arg,
            &seconds_arg,
        ]))?),
        Err(why) => results.push(json!({ "scheduler": "APScheduler 3", "skipped": why })),
    }
    let ours = &results[0];
    let ratios: Vec<Value> = results[1..]
        .iter()
        .filter(|r| r.get("skipped").is_none())
        .map(|peer| {
            json!({
                "scheduler": peer["scheduler"],
                "p50": ratio(&peer["lateness_ms"]["p50"], &ours["lateness_ms"]["p50"]),
                "p99": ratio(&peer["lateness_ms"]["p99"], &ours["lateness_ms"]["p99"]),
                "cpu": ratio(&peer["cpu_seconds"], &ours["cpu_seconds"]),
                "lost": peer["lost"],
            })
        })
        .collect();
    Ok(json!({
        "workload": "compare",
        "n": n,
        "seconds": seconds.max(1),
        "results": results,
        "peer_over_apsched": ratios,
    }))
}

fn labelled(mut line: Value, scheduler: &str) -> Value {
    line["scheduler"] = json!(scheduler);
    line
}

fn ratio(peer: &Value, ours: &Value) -> Value {
    match (peer.as_f64(), ours.as_f64()) {
        (Some(peer), Some(ours)) if ours > 0.0 => json!((peer / ours * 10.0).round() / 10.0),
        _ => Value::Null,
    }
}

/// Runs a command that prints one JSON line, and reads it.
fn run_json(command: &mut Command) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| {
        format!(
            "{:?} printed \"{last}\", not a JSON line: {e}",
            command.get_program()
        )
        .into()
    })
}

/// The version of tokio-cron-scheduler the bench was built with, from Cargo.lock.
fn tokio_cron_version() -> &'static str {
    let lock = include_str!("../../Cargo.lock");
    lock.split("[[package]]")
        .find(|p| p.contains("name = \"tokio-cron-scheduler\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map_or("(unknown version)", |v| v.trim_matches('"'))
}

/// A Python that imports APScheduler 3: `BENCH_PYTHON`, else the venv CI builds for the peer
/// tests (`target/peer-venv`), else `python3`. Why none, when none does.
fn python_with_apscheduler(exe: &Path) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(python) = std::env::var_os("BENCH_PYTHON") {
        candidates.push(PathBuf::from(python));
    }
    // target/release/scheduler-bench -> target/peer-venv/bin/python
    if let Some(target) = exe.parent().and_then(Path::parent) {
        candidates.push(target.join("peer-venv/bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    let check = "import importlib.metadata as m, sys; \
                 sys.exit(0 if m.version('apscheduler').startswith('3.') else 1)";
    candidates
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", check])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or_else(|| {
            "no Python with APScheduler 3 (set BENCH_PYTHON, or pip install -r \
             peer/requirements.txt into target/peer-venv)"
                .to_owned()
        })
}

/// The `many` workload on tokio-cron-scheduler: N jobs on the cron "every second". It does
/// not tell a job its fire time; the whole second a run started in is taken as its fire time,
/// which is right while runs start less than a second late (they start 0.2-0.6 s late).
pub(crate) async fn tokio_cron_many(n: usize, seconds: u64) -> BenchResult {
    let seconds = seconds.max(1);
    let recorder = Arc::new(Recorder::new(n * seconds as usize, workers()));
    let scheduler = JobScheduler::new().await?;
    // The jobs fire every second from the start; only runs in the window count.
    let lead = 2 + i64::try_from(n / 20_000)?;
    let start = whole_second_after(now(), lead);
    let end = start + TimeDelta::seconds(i64::try_from(seconds)? - 1);
    for _ in 0..n {
        let recorder = Arc::clone(&recorder);
        let job = Job::new_async("* * * * * *", move |_id, _scheduler| {
            let recorder = Arc::clone(&recorder);
            Box::pin(async move {
                let started = now();
                let Ok(nominal) = started.duration_trunc(TimeDelta::seconds(1)) else {
                    return;
                };
                if nominal >= start && nominal <= end {
                    let late = (started - nominal).num_nanoseconds().unwrap_or(i64::MAX);
                    recorder.record(late);
                }
            })
        })?;
        scheduler.add(job).await?;
    }
    scheduler.start().await?;
    if now() >= start {
        return Err(format!("adding {n} jobs took past the first fire at {start}").into());
    }
    sleep_until(start - TimeDelta::milliseconds(200)).await;
    let before = usage();
    sleep_until(end + TimeDelta::milliseconds(800)).await;
    let after = usage();
    // Runs of the last second that start late still count, as late.
    sleep_until(end + TimeDelta::seconds(1)).await;
    let lateness = recorder.collect();
    let mut scheduler = scheduler;
    // Its shutdown can wait on jobs in flight; the measurement is over either way.
    let _ = tokio::time::timeout(Duration::from_secs(5), scheduler.shutdown()).await;
    let expected = n as u64 * seconds;
    Ok(json!({
        "workload": "many",
        "n": n,
        "seconds": seconds,
        "fires": lateness.len(),
        "lost": expected.saturating_sub(lateness.len() as u64),
        "lateness_ms": lateness_json(&lateness),
        "cpu_seconds": round3((after.cpu - before.cpu).as_secs_f64()),
        "max_rss_mib": mib(after.max_rss_kib),
    }))
}
