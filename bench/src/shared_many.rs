//! The workloads on a shared store, run by P node processes: `shared-many` (formerly
//! `sql-many`), N interval schedules at 1 s for D seconds, and `shared-burst`, N date
//! schedules due at one instant. The store is PostgreSQL, MariaDB/MySQL, SQLite or Redis, by
//! the URL's scheme. Both report duplicates (must be 0); `shared-many` reports gaps, fires not
//! run in the window, and `shared-burst` fires not run at all (both must be 0).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use scheduler_bench::cluster::{
    Node, NodeConfig, NodeLine, accepted_runs, add_schedules, is_redis, redis_store, sql_store,
};
use scheduler_core::NewSchedule;
use scheduler_core::store::SharedStore;
use scheduler_core::trigger::{DateTrigger, IntervalTrigger};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

use crate::measure::{lateness_json, process_cpu_seconds};
use crate::{BenchResult, now, round3, sleep_until, whole_second_after};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What the nodes run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Workload {
    /// N interval schedules at 1 s, for D seconds.
    Many { n: usize, seconds: u64 },
    /// N date schedules due at one instant.
    Burst { n: usize },
}

/// How many node processes, and how they claim.
pub(crate) struct Nodes {
    pub(crate) processes: usize,
    pub(crate) claim_ahead: Option<Duration>,
}

/// The store the nodes share, in a namespace of the bench's own (a schema, a database, a
/// file or a key prefix), so that it never touches other schedules; removed at the end.
enum Own {
    Postgres {
        admin: DatabaseConnection,
        schema: String,
    },
    MySql {
        admin: DatabaseConnection,
        database: String,
    },
    Sqlite {
        file: PathBuf,
    },
    Redis,
}

impl Own {
    fn store_name(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::MySql { .. } => "mysql",
            Self::Sqlite { .. } => "sqlite",
            Self::Redis => "redis",
        }
    }

    /// Creates the namespace; returns it with the URL the nodes connect to.
    async fn create(
        server: &str,
        name: &str,
    ) -> Result<(Self, String), Box<dyn std::error::Error + Send + Sync>> {
        if is_redis(server) {
            return Ok((Self::Redis, server.to_owned()));
        }
        if server.starts_with("postgres") {
            let admin = Database::connect(server).await?;
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {name}"))
                .await?;
            let separator = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
            return Ok((
                Self::Postgres {
                    admin,
                    schema: name.to_owned(),
                },
                url,
            ));
        }
        if server.starts_with("mysql") || server.starts_with("mariadb") {
            let admin = Database::connect(server).await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let url = with_database(server, name)?;
            return Ok((
                Self::MySql {
                    admin,
                    database: name.to_owned(),
                },
                url,
            ));
        }
        if server.starts_with("sqlite:") {
            let file = std::env::temp_dir().join(format!("{name}.sqlite"));
            let url = format!("sqlite://{}?mode=rwc", file.display());
            return Ok((Self::Sqlite { file }, url));
        }
        Err(format!(
            "\"{server}\" is not a postgres://, mysql://, sqlite: or redis:// URL; the shared \
             workloads run on those stores"
        )
        .into())
    }

    async fn remove(
        self,
        config: &NodeConfig,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Self::Postgres { admin, schema } => {
                admin
                    .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await?;
            }
            Self::MySql { admin, database } => {
                admin
                    .execute_unprepared(&format!("DROP DATABASE {database}"))
                    .await?;
            }
            Self::Sqlite { file } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = file.clone().into_os_string();
                    path.push(suffix);
                    // Absent is fine: SQLite removes its side files itself when it can.
                    let _ = std::fs::remove_file(path);
                }
            }
            Self::Redis => {
                redis_store(config).await?.delete_all_keys().await?;
            }
        }
        Ok(())
    }
}

/// `url` with its database (the path after the host) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let host_start = base.find("://").map(|i| i + 3).ok_or_else(|| {
        format!("\"{url}\" is not a URL with a host (scheme://user@host:port/database)")
    })?;
    let host_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

pub(crate) async fn run(workload: Workload, nodes: Nodes, url: Option<String>) -> BenchResult {
    let server = url
        .or_else(|| std::env::var("BENCH_POSTGRES_URL").ok())
        .or_else(|| std::env::var("TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let name = format!(
        "apsched_bench_{}_{:04x}",
        std::process::id(),
        fastrand::u16(..)
    );
    let (own, node_url) = Own::create(&server, &name).await?;
    // Nodes' settings: a lease longer than any run, a poll of 1 s where there are no
    // notifications.
    let mut config = NodeConfig::new(&node_url, "");
    config.lease = Duration::from_secs(30);
    config.poll = Duration::from_secs(1);
    config.claim_ahead = nodes.claim_ahead;
    if matches!(own, Own::Redis) {
        config.prefix = Some(name);
    }
    let processes = nodes.processes.max(1);
    let result = if matches!(own, Own::Redis) {
        match redis_store(&config).await {
            Ok(store) => measure(&store, &config, workload, processes).await,
            Err(error) => Err(error),
        }
    } else {
        match sql_store(&config).await {
            Ok(store) => measure(&store, &config, workload, processes).await,
            Err(error) => Err(error),
        }
    };
    let store = own.store_name();
    own.remove(&config).await?;
    result.map(|mut line| {
        line["store"] = json!(store);
        line
    })
}

/// Started node processes, stopped (and their output read) at the end.
struct Running {
    nodes: Vec<Node>,
    cpu_before: Vec<f64>,
}

impl Running {
    async fn start(
        config: &NodeConfig,
        processes: usize,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
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
        Ok(Self {
            nodes,
            cpu_before: Vec::new(),
        })
    }

    fn cpu(&self) -> Vec<f64> {
        self.nodes
            .iter()
            .map(|n| process_cpu_seconds(n.pid()).unwrap_or(0.0))
            .collect()
    }

    fn started(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                n.lines()
                    .iter()
                    .filter(|l| matches!(l, NodeLine::Started { .. }))
                    .count()
            })
            .sum()
    }

    /// Stops the nodes: their lines, and the CPU seconds they used since `cpu_before`.
    fn stop(self) -> Result<(Vec<NodeLine>, f64), Box<dyn std::error::Error + Send + Sync>> {
        let cpu_after = self.cpu();
        let cpu = cpu_after
            .iter()
            .zip(&self.cpu_before)
            .map(|(a, b)| a - b)
            .sum();
        let mut lines = Vec::new();
        for node in self.nodes {
            lines.extend(node.stop()?);
        }
        Ok((lines, cpu))
    }
}

/// What the lines say: lateness (sorted, in ns) and how often each fire ran.
fn read_lines(lines: &[NodeLine]) -> (Vec<i64>, HashMap<(String, i64), u32>) {
    let mut lateness: Vec<i64> = lines
        .iter()
        .filter_map(|l| match l {
            NodeLine::Started { late_us, .. } => Some(late_us.saturating_mul(1000)),
            _ => None,
        })
        .collect();
    lateness.sort_unstable();
    let mut runs: HashMap<(String, i64), u32> = HashMap::new();
    for run in accepted_runs(lines) {
        *runs.entry(run).or_default() += 1;
    }
    (lateness, runs)
}

async fn measure<S: SharedStore + Clone>(
    store: &S,
    config: &NodeConfig,
    workload: Workload,
    processes: usize,
) -> BenchResult {
    let mut running = Running::start(config, processes).await?;
    match workload {
        Workload::Many { n, seconds } => {
            let seconds = seconds.max(1);
            let lead = 3 + i64::try_from(n / 250)?;
            let start = whole_second_after(now(), lead);
            let end = start + TimeDelta::seconds(i64::try_from(seconds)? - 1);
            let trigger = IntervalTrigger::builder()
                .seconds(1)
                .start(start)
                .end(end)
                .build()?;
            add_schedules(
                store,
                (0..n).map(|i| {
                    NewSchedule::for_job("tick", trigger.clone()).id(format!("shared-{i}"))
                }),
            )
            .await?;
            if now() >= start {
                return Err(
                    format!("adding {n} schedules took past the first fire at {start}").into(),
                );
            }
            running.cpu_before = running.cpu();
            sleep_until(end + TimeDelta::seconds(2)).await;
            let (lines, cpu) = running.stop()?;
            let (lateness, runs) = read_lines(&lines);
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
            Ok(json!({
                "workload": "shared-many",
                "claim_ahead_ms": config.claim_ahead.map(|a| a.as_millis()),
                "n": n,
                "seconds": seconds,
                "processes": processes,
                "fires": fires,
                "fires_per_second": round3(f64::from(fires) / seconds as f64),
                "duplicates": duplicates(&runs),
                "gaps": gaps,
                "lateness_ms": lateness_json(&lateness),
                "node_cpu_seconds": round3(cpu),
            }))
        }
        Workload::Burst { n } => {
            let added = Instant::now();
            // Due when adding is surely over: the burst measures the claim, not the add.
            let lead = 3 + i64::try_from(n / 5000)?;
            let due = whole_second_after(now(), lead);
            add_schedules(
                store,
                (0..n).map(|i| {
                    NewSchedule::for_job("tick", DateTrigger::at(due)).id(format!("burst-{i}"))
                }),
            )
            .await?;
            let add_seconds = added.elapsed().as_secs_f64();
            if now() >= due {
                return Err(format!(
                    "adding {n} schedules took {add_seconds:.1} s, past their due time"
                )
                .into());
            }
            sleep_until(due).await;
            running.cpu_before = running.cpu();
            // Until every fire has started, or a minute: the lines are read twice a second,
            // which costs the harness, not the nodes.
            let deadline = Instant::now() + Duration::from_secs(60);
            while running.started() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            // The last runs end and are recorded.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (lines, cpu) = running.stop()?;
            let (lateness, runs) = read_lines(&lines);
            let not_run = (0..n)
                .filter(|i| !runs.contains_key(&(format!("burst-{i}"), due.timestamp_micros())))
                .count();
            Ok(json!({
                "workload": "shared-burst",
                "claim_ahead_ms": config.claim_ahead.map(|a| a.as_millis()),
                "n": n,
                "processes": processes,
                "fires": runs.values().sum::<u32>(),
                "duplicates": duplicates(&runs),
                "not_run": not_run,
                "all_started_within_s": lateness.last().map(|&ns| round3(ns as f64 / 1e9)),
                "lateness_ms": lateness_json(&lateness),
                "add_seconds": round3(add_seconds),
                "node_cpu_seconds": round3(cpu),
            }))
        }
    }
}

fn duplicates(runs: &HashMap<(String, i64), u32>) -> u32 {
    runs.values().map(|&c| c - 1).sum()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_options_kept() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test", "own").unwrap(),
            "mysql://root@127.0.0.1:3306/own"
        );
        assert_eq!(
            with_database("mysql://root@localhost?ssl-mode=disabled", "own").unwrap(),
            "mysql://root@localhost/own?ssl-mode=disabled"
        );
        assert!(with_database("not a url", "own").is_err());
    }
}
