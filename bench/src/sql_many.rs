//! `sql-many`: N interval schedules at 1 s on PostgreSQL, run by P node processes for D
//! seconds. Reports fires per second, lateness, duplicates and gaps (both must be 0).

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use scheduler_bench::cluster::{Node, NodeConfig, NodeLine, accepted_runs, add_schedules};
use scheduler_core::NewSchedule;
use scheduler_core::trigger::IntervalTrigger;
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use store_sea_orm::{Store, StoreOptions};

use crate::measure::{lateness_json, process_cpu_seconds};
use crate::{BenchResult, now, round3, sleep_until, whole_second_after};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub(crate) async fn run(
    n: usize,
    seconds: u64,
    processes: usize,
    url: Option<String>,
) -> BenchResult {
    let server = url
        .or_else(|| std::env::var("BENCH_POSTGRES_URL").ok())
        .or_else(|| std::env::var("TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    if !server.starts_with("postgres") {
        return Err(
            format!("sql-many runs on PostgreSQL; \"{server}\" is not a postgres:// URL").into(),
        );
    }
    // A schema of its own, dropped at the end: the bench never touches other tables.
    let schema = format!(
        "apsched_bench_{}_{:04x}",
        std::process::id(),
        fastrand::u16(..)
    );
    let admin = Database::connect(&server).await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
    let result = measure(&url, n, seconds.max(1), processes.max(1)).await;
    admin
        .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    result
}

async fn measure(url: &str, n: usize, seconds: u64, processes: usize) -> BenchResult {
    let store = Store::connect_with(url, StoreOptions::default()).await?;
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::with_capacity(processes);
    for i in 0..processes {
        let mut config = NodeConfig::new(url, &format!("node-{i}"));
        config.lease = Duration::from_secs(30);
        config.poll = Duration::from_secs(1);
        nodes.push(Node::spawn(&exe, &config)?);
    }
    for node in &nodes {
        if !node.wait_for(Duration::from_secs(30), |l| {
            matches!(l, NodeLine::Ready { .. })
        }) {
            return Err(format!("{} did not start within 30 s", node.name()).into());
        }
    }
    let lead = 3 + i64::try_from(n / 250)?;
    let start = whole_second_after(now(), lead);
    let seconds_i = i64::try_from(seconds)?;
    let end = start + TimeDelta::seconds(seconds_i - 1);
    let trigger = IntervalTrigger::builder()
        .seconds(1)
        .start(start)
        .end(end)
        .build()?;
    add_schedules(
        &store,
        (0..n).map(|i| NewSchedule::for_job("tick", trigger.clone()).id(format!("sql-{i}"))),
    )
    .await?;
    if now() >= start {
        return Err(format!("adding {n} schedules took past the first fire at {start}").into());
    }
    let cpu_before: Vec<f64> = nodes
        .iter()
        .map(|n| process_cpu_seconds(n.pid()).unwrap_or(0.0))
        .collect();
    sleep_until(end + TimeDelta::seconds(2)).await;
    let cpu_after: Vec<f64> = nodes
        .iter()
        .map(|n| process_cpu_seconds(n.pid()).unwrap_or(0.0))
        .collect();
    let mut lines = Vec::new();
    for node in nodes {
        lines.extend(node.stop()?);
    }

    let mut lateness: Vec<i64> = lines
        .iter()
        .filter_map(|l| match l {
            NodeLine::Started { late_us, .. } => Some(late_us.saturating_mul(1000)),
            _ => None,
        })
        .collect();
    lateness.sort_unstable();
    let mut runs: HashMap<(String, i64), u32> = HashMap::new();
    for run in accepted_runs(&lines) {
        *runs.entry(run).or_default() += 1;
    }
    let duplicates: u32 = runs.values().map(|&c| c - 1).sum();
    let mut gaps = 0;
    for i in 0..n {
        let mut t = start;
        while t <= end {
            if !runs.contains_key(&(format!("sql-{i}"), t.timestamp_micros())) {
                gaps += 1;
            }
            t += TimeDelta::seconds(1);
        }
    }
    let fires: u32 = runs.values().sum();
    let cpu: f64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).sum();
    Ok(json!({
        "workload": "sql-many",
        "n": n,
        "seconds": seconds,
        "processes": processes,
        "fires": fires,
        "fires_per_second": round3(f64::from(fires) / seconds as f64),
        "duplicates": duplicates,
        "gaps": gaps,
        "lateness_ms": lateness_json(&lateness),
        "node_cpu_seconds": round3(cpu),
    }))
}
