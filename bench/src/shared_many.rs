//! `shared-many` (formerly `sql-many`): N interval schedules at 1 s on a shared store
//! (PostgreSQL, or Redis when the URL is `redis://`), run by P node processes for D seconds.
//! Reports fires per second, lateness, duplicates and gaps (both must be 0).

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use scheduler_bench::cluster::{
    Node, NodeConfig, NodeLine, accepted_runs, add_schedules, is_redis, redis_store, sql_store,
};
use scheduler_core::NewSchedule;
use scheduler_core::store::SharedStore;
use scheduler_core::trigger::IntervalTrigger;
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::measure::{lateness_json, process_cpu_seconds};
use crate::{BenchResult, now, round3, sleep_until, whole_second_after};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How many node processes, and how they claim.
pub(crate) struct Nodes {
    pub(crate) processes: usize,
    pub(crate) claim_ahead: Option<Duration>,
}

pub(crate) async fn run(n: usize, seconds: u64, nodes: Nodes, url: Option<String>) -> BenchResult {
    // Nodes' settings: a lease longer than any run, a poll of 1 s where there are no
    // notifications.
    let node_config = |url: &str| {
        let mut config = NodeConfig::new(url, "");
        config.lease = Duration::from_secs(30);
        config.poll = Duration::from_secs(1);
        config.claim_ahead = nodes.claim_ahead;
        config
    };
    let processes = nodes.processes;
    let server = url
        .or_else(|| std::env::var("BENCH_POSTGRES_URL").ok())
        .or_else(|| std::env::var("TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let (seconds, processes) = (seconds.max(1), processes.max(1));
    // A key prefix or schema of its own, deleted at the end: the bench never touches other
    // schedules.
    let own = format!(
        "apsched_bench_{}_{:04x}",
        std::process::id(),
        fastrand::u16(..)
    );
    if is_redis(&server) {
        let mut config = node_config(&server);
        config.prefix = Some(own);
        let store = redis_store(&config).await?;
        let result = measure(&store, &config, n, seconds, processes).await;
        store.delete_all_keys().await?;
        return result.map(|mut line| {
            line["store"] = json!("redis");
            line
        });
    }
    if !server.starts_with("postgres") {
        return Err(format!(
            "shared-many runs on PostgreSQL or Redis; \"{server}\" is neither a postgres:// \
             nor a redis:// URL"
        )
        .into());
    }
    let admin = Database::connect(&server).await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {own}"))
        .await?;
    let separator = if server.contains('?') { '&' } else { '?' };
    let config = node_config(&format!(
        "{server}{separator}options=-c%20search_path%3D{own}"
    ));
    let result = match sql_store(&config).await {
        Ok(store) => measure(&store, &config, n, seconds, processes).await,
        Err(error) => Err(error),
    };
    admin
        .execute_unprepared(&format!("DROP SCHEMA {own} CASCADE"))
        .await?;
    result.map(|mut line| {
        line["store"] = json!("postgres");
        line
    })
}

async fn measure<S: SharedStore + Clone>(
    store: &S,
    config: &NodeConfig,
    n: usize,
    seconds: u64,
    processes: usize,
) -> BenchResult {
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::with_capacity(processes);
    for i in 0..processes {
        let mut config = config.clone();
        config.name = format!("node-{i}");
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
        store,
        (0..n).map(|i| NewSchedule::for_job("tick", trigger.clone()).id(format!("shared-{i}"))),
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
            if !runs.contains_key(&(format!("shared-{i}"), t.timestamp_micros())) {
                gaps += 1;
            }
            t += TimeDelta::seconds(1);
        }
    }
    let fires: u32 = runs.values().sum();
    let cpu: f64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).sum();
    Ok(json!({
        "workload": "shared-many",
        "claim_ahead_ms": config.claim_ahead.map(|a| a.as_millis()),
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
