//! Several scheduler processes on one PostgreSQL or MariaDB database, one SQLite file, or one
//! Redis: each fire runs once, whichever processes are alive; a killed process's fire is taken
//! over with the next epoch; a paused process's late result is refused; a restart coalesces and
//! honours the grace; Redis itself restarted under load loses no schedule and runs no fire
//! twice.
//!
//! The paused (SIGSTOP) case does not run on SQLite: a process frozen in the middle of a write
//! holds the file's one write lock, and every other process waits until it resumes or dies
//! (README, "Running several instances").
//!
//! Each test starts `scheduler-bench node` processes on a fresh schema, database or key prefix
//! and judges by two witnesses: the lines the nodes printed (what each ran) and the fire
//! ledger.

#![cfg(unix)]

#[path = "../../store-redis/tests/support/mod.rs"]
mod redis_support;
#[path = "../../store-sea-orm/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use scheduler_bench::cluster::{
    Node, NodeConfig, NodeLine, accepted_runs, add_schedules, is_redis, redis_store, sql_store,
};
use scheduler_core::NewSchedule;
use scheduler_core::store::shared::reason;
use scheduler_core::store::{
    FireHistory, FireLeases, FireOutcome, FireRecord, FireState, FireToken, NotRun,
    ScheduleCatalog, SkipReason,
};
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{Result as CoreResult, Schedule};
use support::{Backend, fresh_url, server_url};

const LEASE: Duration = Duration::from_secs(3);

/// Seconds from now to the first fire: time to write the schedules, on a loaded machine.
const LEAD: i64 = 5;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_scheduler-bench"))
}

#[allow(clippy::disallowed_methods)] // the test paces real processes by the wall clock
fn wall_now() -> DateTime<Utc> {
    Utc::now()
}

fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - wall_now()).to_std() {
        std::thread::sleep(d);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A whole second far enough ahead for the nodes to be ready.
fn first_fire(lead: i64) -> DateTime<Utc> {
    let now = wall_now();
    now.duration_trunc(TimeDelta::seconds(1)).unwrap() + TimeDelta::seconds(lead)
}

fn every(seconds: i64, start: DateTime<Utc>, end: DateTime<Utc>) -> IntervalTrigger {
    IntervalTrigger::builder()
        .seconds(seconds)
        .start(start)
        .end(end)
        .build()
        .unwrap()
}

/// Where the nodes keep their schedules.
#[derive(Clone, Copy, Debug)]
enum Target {
    Sql(Backend),
    Redis,
}

/// The test's own handle on the nodes' store: to write schedules and read the ledger.
enum AnyStore {
    Sql(store_sea_orm::Store),
    Redis(store_redis::Store),
}

impl AnyStore {
    async fn add(&self, schedules: Vec<NewSchedule>) -> CoreResult<()> {
        match self {
            Self::Sql(store) => add_schedules(store, schedules).await,
            Self::Redis(store) => add_schedules(store, schedules).await,
        }
    }

    async fn fires(&self, schedule_id: &str) -> CoreResult<Vec<FireRecord>> {
        match self {
            Self::Sql(store) => store.fires(schedule_id, 1000).await,
            Self::Redis(store) => store.fires(schedule_id, 1000).await,
        }
    }

    async fn list(&self) -> CoreResult<Vec<Schedule>> {
        match self {
            Self::Sql(store) => store.list().await,
            Self::Redis(store) => store.list().await,
        }
    }

    async fn finish(&self, owner: &str, token: &FireToken, outcome: &FireOutcome) -> bool {
        match self {
            Self::Sql(store) => store.finish(owner, token, outcome).await,
            Self::Redis(store) => store.finish(owner, token, outcome).await,
        }
        .unwrap()
    }
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    store: AnyStore,
    config: NodeConfig,
}

impl Cluster {
    fn new(target: Target, test: &str) -> Option<Self> {
        match target {
            Target::Sql(backend) => {
                let server = server_url(backend, test)?;
                let rt = runtime();
                let url = rt.block_on(fresh_url(backend, &server));
                Some(Self::on(rt, &url))
            }
            Target::Redis => Some(Self::on(runtime(), &redis_support::redis_url(test)?)),
        }
    }

    /// A cluster on `url`, in a key prefix of its own when that is Redis.
    fn on(rt: tokio::runtime::Runtime, url: &str) -> Self {
        let mut config = NodeConfig::new(url, "");
        config.lease = LEASE;
        config.poll = Duration::from_millis(100);
        let store = if is_redis(url) {
            config.prefix = Some(redis_support::unique_prefix());
            AnyStore::Redis(rt.block_on(redis_store(&config)).unwrap())
        } else {
            AnyStore::Sql(rt.block_on(sql_store(&config)).unwrap())
        };
        Self { rt, store, config }
    }

    /// How many schedules the store holds. The first request after a Redis restart fails on
    /// the dead connection (and the connection is made again): a second try is allowed.
    fn schedule_count(&self) -> usize {
        let listed = self.rt.block_on(self.store.list());
        listed
            .or_else(|_| self.rt.block_on(self.store.list()))
            .unwrap()
            .len()
    }

    fn nodes(&self, names: &[&str]) -> Vec<Node> {
        let nodes: Vec<Node> = names
            .iter()
            .map(|name| {
                let mut config = self.config.clone();
                (*name).clone_into(&mut config.name);
                Node::spawn(exe(), &config).unwrap()
            })
            .collect();
        for node in &nodes {
            assert!(
                node.wait_for(Duration::from_secs(30), |l| matches!(
                    l,
                    NodeLine::Ready { .. }
                )),
                "{} did not start",
                node.name()
            );
        }
        nodes
    }

    /// Writes the schedules, all before `first` (else the test's window would start late).
    fn add(&self, first: DateTime<Utc>, schedules: Vec<NewSchedule>) {
        self.rt.block_on(self.store.add(schedules)).unwrap();
        assert!(
            wall_now() < first,
            "writing the schedules took past their first fire at {first}"
        );
    }

    fn ledger(&self, schedule_id: &str) -> Vec<FireRecord> {
        self.rt.block_on(self.store.fires(schedule_id)).unwrap()
    }

    /// Succeeded ledger rows of a schedule, by nominal time.
    fn succeeded(&self, schedule_id: &str) -> HashMap<DateTime<Utc>, FireRecord> {
        self.ledger(schedule_id)
            .into_iter()
            .filter(|f| f.state == FireState::Succeeded)
            .map(|f| (f.nominal_time, f))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The shared Redis keeps no test's keys; SQL tests leave their schema for a post-mortem.
        if let AnyStore::Redis(store) = &self.store {
            let _ = self.rt.block_on(store.delete_all_keys());
        }
    }
}

fn nominal_times(start: DateTime<Utc>, end: DateTime<Utc>, step: i64) -> Vec<DateTime<Utc>> {
    let mut times = Vec::new();
    let mut t = start;
    while t <= end {
        times.push(t);
        t += TimeDelta::seconds(step);
    }
    times
}

fn started_by<'a>(
    lines: &'a [NodeLine],
    schedule_id: &str,
    nominal: DateTime<Utc>,
) -> Vec<&'a NodeLine> {
    lines
        .iter()
        .filter(|l| {
            matches!(l, NodeLine::Started { schedule, nominal_us, .. }
                if schedule == schedule_id && *nominal_us == nominal.timestamp_micros())
        })
        .collect()
}

/// No (schedule, nominal time) has two accepted results among these nodes' lines.
fn assert_no_duplicates(lines: &[NodeLine]) {
    let mut seen = HashMap::new();
    for run in accepted_runs(lines) {
        *seen.entry(run).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "fires run to success more than once: {twice:?}"
    );
}

macro_rules! on_targets {
    (@one [$($backend:ident => $target:expr),*] $name:ident) => {
        mod $name {
            use super::*;
            $(
                #[test]
                fn $backend() {
                    super::$name(
                        $target,
                        concat!(stringify!($name), "::", stringify!($backend)),
                    );
                }
            )*
        }
    };
    ($targets:tt: $($name:ident),* $(,)?) => {
        $(on_targets!(@one $targets $name);)*
    };
}

on_targets!(
    [
        sqlite => Target::Sql(Backend::Sqlite),
        postgres => Target::Sql(Backend::Postgres),
        mysql => Target::Sql(Backend::MySql),
        redis => Target::Redis
    ]:
    three_processes_run_each_fire_once,
    a_killed_process_fire_is_taken_over_once,
    a_restart_coalesces_and_honours_the_grace_time,
);

on_targets!(
    [
        postgres => Target::Sql(Backend::Postgres),
        mysql => Target::Sql(Backend::MySql),
        redis => Target::Redis
    ]:
    a_paused_process_late_result_is_rejected,
);

/// 3 processes, 20 schedules at 1 s for 30 s: exactly one success per fire, none missing.
fn three_processes_run_each_fire_once(target: Target, test: &str) {
    let Some(cluster) = Cluster::new(target, test) else {
        return;
    };
    let nodes = cluster.nodes(&["a", "b", "c"]);
    let start = first_fire(LEAD);
    let end = start + TimeDelta::seconds(29);
    cluster.add(
        start,
        (0..20)
            .map(|i| NewSchedule::for_job("tick", every(1, start, end)).id(format!("tick-{i}")))
            .collect(),
    );
    sleep_until(end + TimeDelta::seconds(2));
    let lines: Vec<NodeLine> = nodes.into_iter().flat_map(|n| n.stop().unwrap()).collect();

    assert_no_duplicates(&lines);
    let accepted: HashMap<(String, i64), ()> =
        accepted_runs(&lines).into_iter().map(|r| (r, ())).collect();
    for i in 0..20 {
        let id = format!("tick-{i}");
        let succeeded = cluster.succeeded(&id);
        for t in nominal_times(start, end, 1) {
            assert!(
                succeeded.contains_key(&t),
                "{id} at {t}: no succeeded fire in the ledger"
            );
            assert!(
                accepted.contains_key(&(id.clone(), t.timestamp_micros())),
                "{id} at {t}: no node ran it"
            );
            assert_eq!(
                started_by(&lines, &id, t).len(),
                1,
                "{id} at {t} started more than once"
            );
        }
        assert_eq!(
            cluster.ledger(&id).len(),
            30,
            "{id}: a ledger row per fire, no more"
        );
    }
}

/// A process killed (SIGKILL) while running a 2 s job: a survivor re-runs that fire once,
/// with epoch and attempt 2; the dead owner's late completion is refused; every other fire
/// still succeeds once, but for the fires of a schedule whose next fire the dead process had
/// claimed ahead: skipped by max_instances until its lease runs out and that fire is taken
/// over.
fn a_killed_process_fire_is_taken_over_once(target: Target, test: &str) {
    let Some(cluster) = Cluster::new(target, test) else {
        return;
    };
    let mut nodes = cluster.nodes(&["a", "b", "c"]);
    let start = first_fire(LEAD);
    let end = start + TimeDelta::seconds(29);
    let mut schedules: Vec<NewSchedule> = (0..20)
        .map(|i| NewSchedule::for_job("tick", every(1, start, end)).id(format!("tick-{i}")))
        .collect();
    schedules.push(
        NewSchedule::for_job("slow", every(3, start, end))
            .id("slow")
            .args(serde_json::json!({"ms": 2000})),
    );
    cluster.add(start, schedules);

    // The fire at +9 s runs until +11 s; whoever runs it dies at +10 s.
    let doomed_fire = start + TimeDelta::seconds(9);
    sleep_until(start + TimeDelta::seconds(10));
    let victim = nodes
        .iter()
        .position(|n| !started_by(&n.lines(), "slow", doomed_fire).is_empty())
        .expect("some node runs the slow fire at +9 s");
    let mut dead = nodes.remove(victim);
    let Some(NodeLine::Started {
        fire: fire_id,
        epoch: 1,
        attempt: 1,
        ..
    }) = started_by(&dead.lines(), "slow", doomed_fire)
        .first()
        .copied()
        .cloned()
    else {
        panic!("the first run of the fire is epoch 1, attempt 1");
    };
    dead.kill().unwrap();
    let dead_lines = dead.lines();
    sleep_until(end + TimeDelta::seconds(3));
    let lines: Vec<NodeLine> = nodes.into_iter().flat_map(|n| n.stop().unwrap()).collect();

    // A survivor ran the fire again, once, as its second attempt.
    let reruns = started_by(&lines, "slow", doomed_fire);
    assert_eq!(reruns.len(), 1, "{reruns:?}");
    assert!(
        matches!(reruns[0], NodeLine::Started { fire, epoch: 2, attempt: 2, .. } if *fire == fire_id),
        "{reruns:?}"
    );
    let record = &cluster.succeeded("slow")[&doomed_fire];
    assert_eq!((record.epoch, record.attempt), (2, 2));
    assert_ne!(record.owner.as_deref(), Some(dead.name()));
    assert!(
        record
            .reason
            .as_deref()
            .unwrap()
            .contains(&format!("taken over from {}", dead.name()))
    );

    // The dead owner's result, arriving late, is refused and changes nothing.
    let stale = FireToken::new(fire_id, 1);
    let outcome = FireOutcome::Failed("late".into());
    assert!(
        !cluster
            .rt
            .block_on(cluster.store.finish(dead.name(), &stale, &outcome))
    );
    assert_eq!(cluster.succeeded("slow")[&doomed_fire], *record);

    // No fire succeeded twice; no fire is missing. The dead process's own successes count
    // only where the ledger recorded them.
    assert_no_duplicates(&lines);
    let kill = start + TimeDelta::seconds(10);
    let after_lease = kill + TimeDelta::from_std(LEASE).unwrap();
    let taken_from_dead = reason::taken_over(dead.name());
    for i in 0..20 {
        let id = format!("tick-{i}");
        let succeeded = cluster.succeeded(&id);
        let ledger = cluster.ledger(&id);
        // A fire the dead process had claimed ahead is its until the lease runs out, then
        // taken over: meanwhile it counts against max_instances, and the fires of its
        // schedule in that window are skipped (recorded so).
        let held_by_dead = ledger
            .iter()
            .find(|f| f.reason.as_deref() == Some(taken_from_dead.as_str()))
            .map(|f| f.nominal_time);
        for t in nominal_times(start, end, 1) {
            let skipped_while_held = held_by_dead
                .is_some_and(|held| t > held && t <= after_lease + TimeDelta::seconds(1))
                && ledger.iter().any(|f| {
                    f.nominal_time == t
                        && f.state == FireState::Skipped
                        && f.reason.as_deref() == Some("max_instances: 1 run(s) going")
                });
            assert!(
                succeeded.contains_key(&t) || skipped_while_held,
                "{id} at +{} s: no succeeded fire: {:?}",
                (t - start).num_seconds(),
                cluster
                    .ledger(&id)
                    .iter()
                    .filter(|f| (f.nominal_time - t).num_seconds().abs() <= 2)
                    .collect::<Vec<_>>()
            );
        }
    }
    let slow = cluster.ledger("slow");
    for t in nominal_times(start, end, 3) {
        let fire = slow.iter().find(|f| f.nominal_time == t);
        match fire.map(|f| f.state) {
            Some(FireState::Succeeded) => {}
            // While the dead run's lease held, and while its re-run (2 s) went on,
            // max_instances = 1 counted it as running.
            Some(FireState::Skipped)
                if t > kill
                    && t <= after_lease + TimeDelta::seconds(3)
                    && fire.and_then(|f| f.reason.as_deref())
                        == Some("max_instances: 1 run(s) going") => {}
            other => panic!("slow at {t}: {other:?}; ledger {slow:?}"),
        }
    }
    // Every success in the ledger was reported by the run that owned it.
    for i in 0..20 {
        let id = format!("tick-{i}");
        for (t, record) in cluster.succeeded(&id) {
            let owner_lines = if record.owner.as_deref() == Some(dead.name()) {
                &dead_lines
            } else {
                &lines
            };
            assert!(
                !started_by(owner_lines, &id, t).is_empty(),
                "{id} at {t}: {record:?}"
            );
        }
    }
}

/// A process frozen (SIGSTOP) mid-run past its lease: another takes the fire over; when the
/// frozen one wakes and finishes, its result is refused.
fn a_paused_process_late_result_is_rejected(target: Target, test: &str) {
    let Some(cluster) = Cluster::new(target, test) else {
        return;
    };
    let nodes = cluster.nodes(&["a", "b"]);
    let start = first_fire(LEAD);
    let end = start + TimeDelta::seconds(8);
    cluster.add(
        start,
        vec![
            NewSchedule::for_job("slow", every(8, start, end))
                .id("slow")
                .args(serde_json::json!({"ms": 2000})),
        ],
    );
    let mut frozen = None;
    for _ in 0..500 {
        frozen = nodes
            .iter()
            .position(|n| !started_by(&n.lines(), "slow", start).is_empty());
        if frozen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let frozen = frozen.expect("a node runs the first fire");
    nodes[frozen].freeze().unwrap();
    let other = &nodes[1 - frozen];
    assert!(
        other.wait_for(Duration::from_secs(15), |l| matches!(
            l,
            NodeLine::Ended { epoch: 2, .. }
        )),
        "the other node takes the fire over and runs it"
    );
    nodes[frozen].thaw().unwrap();
    assert!(
        nodes[frozen].wait_for(Duration::from_secs(10), |l| matches!(
            l,
            NodeLine::Rejected { epoch: 1, .. }
        )),
        "the woken node's result is refused: {:?}",
        nodes[frozen].lines()
    );
    let frozen_name = nodes[frozen].name().to_owned();
    sleep_until(end + TimeDelta::seconds(3));
    let lines: Vec<NodeLine> = nodes.into_iter().flat_map(|n| n.stop().unwrap()).collect();
    assert_no_duplicates(&lines);
    let first = &cluster.succeeded("slow")[&start];
    assert_eq!((first.epoch, first.attempt), (2, 2));
    assert_ne!(first.owner.as_deref(), Some(frozen_name.as_str()));
    assert!(
        cluster.succeeded("slow").contains_key(&end),
        "the next fire runs as usual"
    );
}

/// Every process stopped across two fires, then one started: a coalescing schedule runs
/// once for the fires it slept through and records the others coalesced; one with a 1 s
/// grace records them missed.
fn a_restart_coalesces_and_honours_the_grace_time(target: Target, test: &str) {
    let Some(cluster) = Cluster::new(target, test) else {
        return;
    };
    let node = cluster.nodes(&["first"]).pop().unwrap();
    let start = first_fire(LEAD);
    let end = start + TimeDelta::seconds(16);
    cluster.add(
        start,
        vec![
            NewSchedule::for_job("tick", every(4, start, end)).id("coalesced"),
            NewSchedule::for_job("tick", every(4, start, end))
                .id("strict")
                .misfire_grace_time(Some(Duration::from_secs(1))),
        ],
    );
    // Runs at +0 and +4; down for +8 and +12; back at +14.
    sleep_until(start + TimeDelta::milliseconds(5500));
    let before = node.stop().unwrap();
    assert_eq!(accepted_runs(&before).len(), 4, "{before:?}");
    sleep_until(start + TimeDelta::seconds(14));
    let node = cluster.nodes(&["second"]).pop().unwrap();
    sleep_until(end + TimeDelta::seconds(2));
    let after = node.stop().unwrap();

    let (at_8, at_12, at_16) = (
        start + TimeDelta::seconds(8),
        start + TimeDelta::seconds(12),
        end,
    );
    // Coalesced: one run for +8 and +12, as the latest of them; then +16 as usual.
    let coalesced: Vec<_> = accepted_runs(&after)
        .into_iter()
        .filter(|(s, _)| s == "coalesced")
        .collect();
    assert_eq!(
        coalesced,
        vec![
            ("coalesced".to_owned(), at_12.timestamp_micros()),
            ("coalesced".to_owned(), at_16.timestamp_micros())
        ]
    );
    // The fire it coalesced away has a row that says so.
    let ledger = cluster.ledger("coalesced");
    let folded = ledger
        .iter()
        .find(|f| f.nominal_time == at_8)
        .unwrap_or_else(|| panic!("a row for +8: {ledger:?}"));
    assert_eq!(folded.state, FireState::Skipped);
    assert_eq!(
        folded.reason,
        Some(NotRun::Skipped(SkipReason::Coalesced { into: at_12 }).to_string())
    );
    // Strict: +12 was 2 s late with a 1 s grace: missed, recorded with why, not run.
    let strict = cluster.ledger("strict");
    let missed = strict
        .iter()
        .find(|f| f.nominal_time == at_12)
        .expect("a row for +12");
    assert_eq!(missed.state, FireState::Missed);
    assert!(
        missed.reason.as_deref().unwrap().contains("grace 1.000 s"),
        "{missed:?}"
    );
    assert!(started_by(&after, "strict", at_12).is_empty());
    assert!(started_by(&after, "strict", at_8).is_empty());
    assert!(cluster.succeeded("strict").contains_key(&at_16));
}

#[test]
fn redis_restarted_under_load_loses_nothing_and_runs_nothing_twice() {
    let test = "redis_restarted_under_load_loses_nothing_and_runs_nothing_twice";
    let Some(mut server) = RedisServer::start(test) else {
        return;
    };
    let cluster = Cluster::on(runtime(), &server.url());
    let nodes = cluster.nodes(&["a", "b", "c"]);
    let start = first_fire(LEAD);
    let end = start + TimeDelta::seconds(24);
    cluster.add(
        start,
        (0..10)
            .map(|i| NewSchedule::for_job("tick", every(1, start, end)).id(format!("tick-{i}")))
            .collect(),
    );
    // Down from +8 s to +11 s: killed outright, as a crash would.
    let (down, up) = (
        start + TimeDelta::seconds(8),
        start + TimeDelta::seconds(11),
    );
    sleep_until(down);
    server.kill();
    sleep_until(up);
    server.restart();
    // The schedules were written to the append-only file, so Redis came back with them.
    assert_eq!(cluster.schedule_count(), 10);
    sleep_until(end + TimeDelta::seconds(2));
    let per_node: Vec<(String, Vec<NodeLine>)> = nodes
        .into_iter()
        .map(|n| (n.name().to_owned(), n.stop().unwrap()))
        .collect();
    let lines: Vec<NodeLine> = per_node.iter().flat_map(|(_, l)| l.clone()).collect();

    // Each node saw the outage and then the store working again.
    for (name, lines) in &per_node {
        let failed = lines
            .iter()
            .rposition(|l| matches!(l, NodeLine::StoreFailed { .. }));
        let recovered = lines
            .iter()
            .rposition(|l| matches!(l, NodeLine::StoreRecovered));
        assert!(
            failed.is_some() && recovered > failed,
            "{name} reports the outage, then the recovery: {lines:?}"
        );
    }
    assert_no_duplicates(&lines);
    // Before the outage and from a moment after it, every fire ran once; the fires of the
    // outage ran late or were coalesced, never twice (above).
    let settled = up + TimeDelta::seconds(3);
    for i in 0..10 {
        let id = format!("tick-{i}");
        let succeeded = cluster.succeeded(&id);
        for t in nominal_times(start, end, 1) {
            if t < down - TimeDelta::seconds(1) || t >= settled {
                assert!(
                    succeeded.contains_key(&t),
                    "{id} at +{} s: no succeeded fire: {:?}",
                    (t - start).num_seconds(),
                    cluster.ledger(&id)
                );
            }
        }
    }
}

/// A Redis server of the test's own, on a free port, persisting to an append-only file that
/// is flushed at every write: it can be killed and restarted without touching the shared one.
struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// `None` (the test skipped) when `redis-server` is not installed, unless
    /// REQUIRE_SERVICES=1 makes that a failure.
    fn start(test: &str) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: redis-server is not installed, and REQUIRE_SERVICES=1 requires it"
            );
            println!("{test}: skipped: redis-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("apsched-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.restart();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.display().to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
