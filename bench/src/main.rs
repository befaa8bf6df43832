//! `scheduler-bench`: load workloads for the apsched engine (DESIGN.md, "Performance
//! workloads"). No-op jobs on the in-memory store (`shared-many` and `shared-burst`: on
//! PostgreSQL, MariaDB/MySQL, SQLite or Redis, in several processes); build with `--release`.
//! Each run prints one JSON line.
//!
//! ```text
//! cargo run --release -p scheduler-bench -- many 10000 --seconds 10
//! cargo run --release -p scheduler-bench -- burst 1000000
//! cargo run --release -p scheduler-bench -- idle --seconds 30
//! cargo run --release -p scheduler-bench -- memory 100000
//! cargo run --release -p scheduler-bench -- add 100000
//! cargo run --release -p scheduler-bench -- shared-many 1000 --seconds 30 --processes 3
//! cargo run --release -p scheduler-bench -- shared-many 1000 --url redis://127.0.0.1:6379
//! cargo run --release -p scheduler-bench -- compare 10000 --seconds 10
//! cargo run --release -p scheduler-bench -- shared-burst 100000 --processes 3
//! cargo run --release -p scheduler-bench -- shared-burst 100000 --url sqlite: --processes 2
//! ```

mod compare;
mod measure;
mod shared_many;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use scheduler_core::clock::{Clock, SleepFuture, SystemClock};
use scheduler_core::trigger::{DateTrigger, IntervalTrigger};
use scheduler_core::{JobContext, NewSchedule, Scheduler, SchedulerHandle};
use serde_json::{Value, json};

use scheduler_bench::cluster::{NodeConfig, run_node};

use crate::measure::{Recorder, current_rss_kib, lateness_json, mib, usage};

const USAGE: &str = "usage: scheduler-bench \
                     <many|burst|idle|memory|add|spawn|shared-many|shared-burst|compare> [N] \
                     [--seconds D] [--processes P] [--url URL] [--history H] [--claim-ahead-ms A]
       scheduler-bench node --url URL --name NAME [--lease-ms L] [--poll-ms P] [--prefix P]";

struct Args {
    workload: String,
    n: usize,
    seconds: u64,
    processes: usize,
    url: Option<String>,
    /// Fires kept per schedule in the engine's history (`many`, `burst`); default the
    /// scheduler's.
    history: Option<usize>,
    /// How long before their due time nodes claim fires (`shared-many`); default the
    /// scheduler's.
    claim_ahead: Option<Duration>,
}

fn whole_number<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{what}: \"{value}\" is not a whole number"))
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut args = args.iter();
    let workload = args.next().ok_or_else(|| USAGE.to_owned())?.clone();
    let mut n = None;
    let mut seconds = None;
    let mut processes = 3;
    let mut url = None;
    let mut history = None;
    let mut claim_ahead_ms = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => seconds = Some(whole_number("--seconds", value()?)?),
            "--processes" => processes = whole_number("--processes", value()?)?,
            "--url" => url = Some(value()?.clone()),
            "--history" => history = Some(whole_number("--history", value()?)?),
            "--claim-ahead-ms" => {
                claim_ahead_ms = Some(whole_number("--claim-ahead-ms", value()?)?);
            }
            _ if n.is_none() => n = Some(whole_number("N", arg)?),
            _ => return Err(format!("unexpected argument \"{arg}\"\n{USAGE}")),
        }
    }
    let (default_n, default_seconds) = match workload.as_str() {
        "many" => (1000, 10),
        // `tokio-cron-many` is `compare`'s run of the peer, in a process of its own.
        "compare" | "tokio-cron-many" => (10_000, 10),
        "burst" => (100_000, 0),
        "idle" => (1, 30),
        "memory" | "add" => (100_000, 0),
        "spawn" => (10_000, 0),
        // `sql-many` is the name it had when it ran on PostgreSQL only.
        "shared-many" | "sql-many" => (1000, 30),
        "shared-burst" => (100_000, 0),
        other => return Err(format!("unknown workload \"{other}\"\n{USAGE}")),
    };
    Ok(Args {
        workload,
        n: n.unwrap_or(default_n),
        seconds: seconds.unwrap_or(default_seconds),
        processes,
        url,
        history,
        claim_ahead: claim_ahead_ms.map(Duration::from_millis),
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if argv.first().map(String::as_str) == Some("node") {
        return match NodeConfig::from_args(&argv[1..]) {
            Ok(config) => match runtime.block_on(run_node(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("scheduler-bench node: {error}");
                    ExitCode::FAILURE
                }
            },
            Err(message) => {
                eprintln!("{message}");
                ExitCode::from(2)
            }
        };
    }
    let args = match parse_args(&argv) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match args.workload.as_str() {
            "many" => many(args.n, args.seconds, args.history).await,
            "compare" => compare::run(args.n, args.seconds).await,
            "tokio-cron-many" => compare::tokio_cron_many(args.n, args.seconds).await,
            "burst" => burst(args.n, args.history).await,
            "idle" => idle(args.seconds).await,
            "memory" => memory(args.n).await,
            "spawn" => spawn(args.n).await,
            "shared-many" | "sql-many" | "shared-burst" => {
                let nodes = shared_many::Nodes {
                    processes: args.processes,
                    claim_ahead: args.claim_ahead,
                };
                let workload = if args.workload == "shared-burst" {
                    shared_many::Workload::Burst { n: args.n }
                } else {
                    shared_many::Workload::Many {
                        n: args.n,
                        seconds: args.seconds,
                    }
                };
                shared_many::run(workload, nodes, args.url).await
            }
            _ => add(args.n).await,
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            // The whole chain: a store's error says what failed only in its sources.
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            eprintln!("scheduler-bench {}: {message}", args.workload);
            ExitCode::FAILURE
        }
    }
}

pub(crate) type BenchResult = Result<Value, Box<dyn std::error::Error + Send + Sync>>;

#[allow(clippy::disallowed_methods)] // the bench measures against the real clock
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A scheduler whose job "noop" records its lateness, keeping `history` fires per schedule.
async fn recording_scheduler(
    recorder: &Arc<Recorder>,
    history: Option<usize>,
) -> Result<SchedulerHandle, scheduler_core::Error> {
    let recorder = Arc::clone(recorder);
    Scheduler::builder()
        .history_limit(history.unwrap_or(scheduler_core::DEFAULT_HISTORY_LIMIT))
        .job("noop", move |ctx: JobContext| {
            let lateness = (ctx.started_at() - ctx.nominal_fire_time())
                .num_nanoseconds()
                .unwrap_or(i64::MAX);
            recorder.record(lateness);
            std::future::ready(())
        })
        .build()
        .start()
        .await
}

pub(crate) async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

pub(crate) fn whole_second_after(t: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t) + TimeDelta::seconds(seconds)
}

/// N interval schedules, period 1 s, all on one grid, for D seconds.
async fn many(n: usize, seconds: u64, history: Option<usize>) -> BenchResult {
    let recorder = Arc::new(Recorder::new(n * seconds.max(1) as usize, workers()));
    let scheduler = recording_scheduler(&recorder, history).await?;
    let seconds_i = i64::try_from(seconds.max(1))?;
    // Far enough ahead that adding N schedules finishes before the first fire.
    let lead = 2 + i64::try_from(n / 200_000)?;
    let start = whole_second_after(now(), lead);
    let end = start + TimeDelta::seconds(seconds_i - 1);
    let trigger = IntervalTrigger::builder()
        .seconds(1)
        .start(start)
        .end(end)
        .build()?;
    let schedules =
        (0..n).map(|i| NewSchedule::for_job("noop", trigger.clone()).id(format!("many-{i}")));
    scheduler.add_all(schedules).await?;
    sleep_until(start - TimeDelta::milliseconds(200)).await;
    let before = usage();
    sleep_until(end + TimeDelta::milliseconds(800)).await;
    let after = usage();
    let expected = n as u64 * seconds.max(1);
    let lateness = recorder.collect();
    scheduler.shutdown(Duration::from_secs(5)).await?;
    Ok(json!({
        "workload": "many",
        "n": n,
        "seconds": seconds.max(1),
        "history": history.unwrap_or(scheduler_core::DEFAULT_HISTORY_LIMIT),
        "fires": lateness.len(),
        "lost": expected.saturating_sub(lateness.len() as u64),
        "lateness_ms": lateness_json(&lateness),
        "cpu_seconds": round3((after.cpu - before.cpu).as_secs_f64()),
        "max_rss_mib": mib(after.max_rss_kib),
    }))
}

/// N date schedules due at one instant: how long until all have started.
async fn burst(n: usize, history: Option<usize>) -> BenchResult {
    let recorder = Arc::new(Recorder::new(n, workers()));
    let scheduler = recording_scheduler(&recorder, history).await?;
    let lead = 2 + i64::try_from(n / 100_000)?;
    let due = whole_second_after(now(), lead);
    let schedules =
        (0..n).map(|i| NewSchedule::for_job("noop", DateTrigger::at(due)).id(format!("burst-{i}")));
    let added = Instant::now();
    scheduler.add_all(schedules).await?;
    let add_seconds = added.elapsed().as_secs_f64();
    if now() >= due {
        return Err(
            format!("adding {n} schedules took {add_seconds:.2} s, past the due time").into(),
        );
    }
    sleep_until(due).await;
    let before = usage();
    // Poll for completion; the polling costs nothing next to the work measured.
    let deadline = due + TimeDelta::seconds(120);
    while recorder.count() < n && now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = usage();
    let lateness = recorder.collect();
    scheduler.shutdown(Duration::from_secs(5)).await?;
    Ok(json!({
        "workload": "burst",
        "n": n,
        "fires": lateness.len(),
        "lost": n.saturating_sub(lateness.len()),
        "all_started_within_s": lateness.last().map(|&ns| round3(ns as f64 / 1e9)),
        "lateness_ms": lateness_json(&lateness),
        "add_seconds": round3(add_seconds),
        "cpu_seconds": round3((after.cpu - before.cpu).as_secs_f64()),
        "max_rss_mib": mib(after.max_rss_kib),
    }))
}

/// The system clock, counting how often the engine's sleeps end.
#[derive(Debug, Default)]
struct CountingClock {
    wakeups: Arc<AtomicU64>,
}

impl Clock for CountingClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let wakeups = Arc::clone(&self.wakeups);
        Box::pin(async move {
            loop {
                let Ok(remaining) = (deadline - SystemClock.now()).to_std() else {
                    return;
                };
                if remaining.is_zero() {
                    return;
                }
                tokio::time::sleep(remaining.min(scheduler_core::clock::MAX_SLEEP)).await;
                wakeups.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}

/// One hourly schedule for D seconds: CPU per second and wake-ups.
async fn idle(seconds: u64) -> BenchResult {
    let clock = CountingClock::default();
    let wakeups = Arc::clone(&clock.wakeups);
    let scheduler = Scheduler::builder()
        .clock(clock)
        .job("noop", |_ctx: JobContext| std::future::ready(()))
        .build()
        .start()
        .await?;
    scheduler
        .add(NewSchedule::for_job(
            "noop",
            IntervalTrigger::every(Duration::from_secs(3600))?,
        ))
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = usage();
    let wakeups_before = wakeups.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = usage();
    let engine_wakeups = wakeups.load(Ordering::Relaxed) - wakeups_before;
    scheduler.shutdown(Duration::from_secs(1)).await?;
    let cpu_ms_per_s = (after.cpu - before.cpu).as_secs_f64() * 1000.0 / seconds.max(1) as f64;
    Ok(json!({
        "workload": "idle",
        "n": 1,
        "seconds": seconds,
        "cpu_ms_per_second": round3(cpu_ms_per_s),
        "engine_wakeups": engine_wakeups,
        // Every thread of the process going to sleep (the benchmark's own timer included).
        "thread_sleeps": after.voluntary_switches - before.voluntary_switches,
        "max_rss_mib": mib(after.max_rss_kib),
    }))
}

fn hourly_schedules(n: usize, prefix: &str) -> Result<Vec<NewSchedule>, scheduler_core::Error> {
    let trigger = IntervalTrigger::every(Duration::from_secs(3600))?;
    Ok((0..n)
        .map(|i| NewSchedule::for_job("noop", trigger.clone()).id(format!("{prefix}-{i}")))
        .collect())
}

/// Resident memory after adding N interval schedules.
async fn memory(n: usize) -> BenchResult {
    let recorder = Arc::new(Recorder::new(0, 0));
    let scheduler = recording_scheduler(&recorder, None).await?;
    let baseline = current_rss_kib().unwrap_or(0);
    // In batches of 1000, as an application adds schedules: one batch of N would also measure
    // the transient copies of the request, which the allocator keeps resident afterwards.
    let trigger = IntervalTrigger::every(Duration::from_secs(3600))?;
    for batch in 0..n.div_ceil(1000) {
        let schedules = (batch * 1000..((batch + 1) * 1000).min(n))
            .map(|i| NewSchedule::for_job("noop", trigger.clone()).id(format!("memory-{i}")));
        scheduler.add_all(schedules).await?;
    }
    let rss = current_rss_kib().unwrap_or(0);
    let max = usage().max_rss_kib;
    scheduler.shutdown(Duration::from_secs(1)).await?;
    Ok(json!({
        "workload": "memory",
        "n": n,
        "rss_mib": mib(rss),
        "baseline_rss_mib": mib(baseline),
        "bytes_per_schedule": (rss.saturating_sub(baseline) * 1024) / n.max(1) as u64,
        "max_rss_mib": mib(max),
    }))
}

/// Seconds to add N schedules: in one batch (`add_all`), and one `add` call at a time.
async fn add(n: usize) -> BenchResult {
    let recorder = Arc::new(Recorder::new(0, 0));
    let scheduler = recording_scheduler(&recorder, None).await?;
    let batch = hourly_schedules(n, "batch")?;
    let started = Instant::now();
    scheduler.add_all(batch).await?;
    let batch_seconds = started.elapsed().as_secs_f64();
    let single = hourly_schedules(n, "single")?;
    let started = Instant::now();
    for schedule in single {
        scheduler.add(schedule).await?;
    }
    let single_seconds = started.elapsed().as_secs_f64();
    scheduler.shutdown(Duration::from_secs(1)).await?;
    Ok(json!({
        "workload": "add",
        "n": n,
        "seconds": round3(batch_seconds),
        "one_by_one_seconds": round3(single_seconds),
        "max_rss_mib": mib(usage().max_rss_kib),
    }))
}

/// The floor under `many` and `burst`: no scheduler, one task spawning N no-op tasks on the
/// same runtime, each recording how long after the first spawn it started.
async fn spawn(n: usize) -> BenchResult {
    // Three rounds, keep the median by p99: the first also warms the allocator up.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let recorder = Arc::new(Recorder::new(n, workers()));
        let origin = Instant::now();
        let spawner = Arc::clone(&recorder);
        tokio::spawn(async move {
            for _ in 0..n {
                let recorder = Arc::clone(&spawner);
                tokio::spawn(async move {
                    recorder.record(i64::try_from(origin.elapsed().as_nanos()).unwrap_or(i64::MAX));
                });
            }
        })
        .await?;
        while recorder.count() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rounds.push(recorder.collect());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rounds.sort_by_key(|r| r.get(r.len() * 99 / 100).copied().unwrap_or(0));
    let lateness = rounds.swap_remove(1);
    Ok(json!({
        "workload": "spawn",
        "n": n,
        "started_after_ms": lateness_json(&lateness),
    }))
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
