//! Scheduler processes sharing one store: a database (store-sea-orm) or Redis (store-redis),
//! chosen by the URL's scheme.
//!
//! A node ([`run_node`]) is a scheduler on a shared store with two jobs: `tick`, which does
//! nothing, and `slow`, which sleeps `args.ms` milliseconds. It prints a [`NodeLine`] per run
//! start, run end and rejected result, and shuts down gracefully when its standard input
//! closes. [`Node`] starts one as a child process and collects its lines.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scheduler_core::store::SharedStore;
use scheduler_core::{Event, JobContext, NewSchedule, Scheduler};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a node prints, one JSON object per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeLine {
    /// The scheduler started: the node claims fires from now on.
    Ready {
        /// The node's instance name.
        name: String,
    },
    /// A run began.
    Started {
        /// Schedule id.
        schedule: String,
        /// Nominal fire time, microseconds since the Unix epoch.
        nominal_us: i64,
        /// The fire's ledger id.
        fire: String,
        /// The fire's epoch.
        epoch: i64,
        /// The fire's attempt.
        attempt: u32,
        /// How late the run started, in microseconds.
        late_us: i64,
    },
    /// A run's job returned (the ledger may still refuse its result: see `Rejected`).
    Ended {
        /// Schedule id.
        schedule: String,
        /// Nominal fire time, microseconds since the Unix epoch.
        nominal_us: i64,
        /// The fire's epoch.
        epoch: i64,
    },
    /// The ledger refused a run's start or result: another node had taken the fire over.
    Rejected {
        /// Schedule id.
        schedule: String,
        /// Nominal fire time, microseconds since the Unix epoch.
        nominal_us: i64,
        /// The stale epoch.
        epoch: i64,
    },
    /// The store failed (a node goes on and tries again).
    StoreFailed {
        /// What the scheduler was doing.
        operation: String,
        /// The store's error.
        error: String,
    },
    /// The store works again after failing.
    StoreRecovered,
    /// The node shut down.
    Stopped,
}

/// How a node connects and times its leases.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Database or Redis URL.
    pub url: String,
    /// Key prefix (Redis only; the store's default when `None`).
    pub prefix: Option<String>,
    /// Instance name in the ledger.
    pub name: String,
    /// Lease of a claimed or running fire.
    pub lease: Duration,
    /// Poll interval (backends without notifications).
    pub poll: Duration,
    /// How long before their due time fires are claimed (the scheduler's default when `None`).
    pub claim_ahead: Option<Duration>,
}

impl NodeConfig {
    /// A node on `url` named `name`, with a 3 s lease and a 100 ms poll.
    #[must_use]
    pub fn new(url: &str, name: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: None,
            name: name.to_owned(),
            lease: Duration::from_secs(3),
            poll: Duration::from_millis(100),
            claim_ahead: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "node".to_owned(),
            "--url".to_owned(),
            self.url.clone(),
            "--name".to_owned(),
            self.name.clone(),
            "--lease-ms".to_owned(),
            self.lease.as_millis().to_string(),
            "--poll-ms".to_owned(),
            self.poll.as_millis().to_string(),
        ];
        if let Some(prefix) = &self.prefix {
            args.extend(["--prefix".to_owned(), prefix.clone()]);
        }
        if let Some(ahead) = self.claim_ahead {
            args.extend(["--claim-ahead-ms".to_owned(), ahead.as_millis().to_string()]);
        }
        args
    }

    /// Reads `--url U --name N [--lease-ms L] [--poll-ms P] [--prefix P] [--claim-ahead-ms A]`.
    ///
    /// # Errors
    /// A missing or malformed option, named.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut url = None;
        let mut name = None;
        let mut config = Self::new("", "");
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let millis = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{flag}: \"{value}\" is not a whole number"))
            };
            match flag.as_str() {
                "--url" => url = Some(value.clone()),
                "--name" => name = Some(value.clone()),
                "--lease-ms" => config.lease = millis()?,
                "--poll-ms" => config.poll = millis()?,
                "--prefix" => config.prefix = Some(value.clone()),
                "--claim-ahead-ms" => config.claim_ahead = Some(millis()?),
                other => return Err(format!("node: unknown option \"{other}\"")),
            }
        }
        config.url = url.ok_or("node: --url is required")?;
        config.name = name.ok_or("node: --name is required")?;
        Ok(config)
    }
}

fn print(line: &NodeLine) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the harness is gone; the node stops with its stdin anyway.
    let _ = serde_json::to_writer(&mut out, line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Whether `url` names a Redis server rather than a database.
#[must_use]
pub fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix:")
}

/// Connects to the Redis store of `config` (its URL is a Redis URL).
///
/// # Errors
/// Redis cannot be reached.
pub async fn redis_store(config: &NodeConfig) -> Result<store_redis::Store, BoxError> {
    let mut options = store_redis::StoreOptions::default().lease(config.lease);
    if let Some(prefix) = &config.prefix {
        options = options.prefix(prefix.clone());
    }
    Ok(store_redis::Store::connect_with(&config.url, options).await?)
}

/// Connects to the database store of `config`.
///
/// # Errors
/// The database cannot be reached or migrated.
pub async fn sql_store(config: &NodeConfig) -> Result<store_sea_orm::Store, BoxError> {
    let options = store_sea_orm::StoreOptions::default()
        .lease(config.lease)
        .poll_interval(config.poll);
    Ok(store_sea_orm::Store::connect_with(&config.url, options).await?)
}

/// Runs a node until its standard input closes.
///
/// # Errors
/// The store cannot be reached or the scheduler cannot start.
pub async fn run_node(config: NodeConfig) -> Result<(), BoxError> {
    if is_redis(&config.url) {
        let store = redis_store(&config).await?;
        run_node_on(store, config).await
    } else {
        let store = sql_store(&config).await?;
        run_node_on(store, config).await
    }
}

async fn run_node_on(store: impl SharedStore, config: NodeConfig) -> Result<(), BoxError> {
    let started = |ctx: &JobContext| {
        print(&NodeLine::Started {
            schedule: ctx.schedule_id().to_owned(),
            nominal_us: micros(ctx.nominal_fire_time()),
            fire: ctx.fire_id().unwrap_or_default().to_owned(),
            epoch: ctx.epoch().unwrap_or_default(),
            attempt: ctx.attempt(),
            late_us: (ctx.started_at() - ctx.nominal_fire_time())
                .num_microseconds()
                .unwrap_or(i64::MAX),
        });
    };
    let ended = |ctx: &JobContext| {
        print(&NodeLine::Ended {
            schedule: ctx.schedule_id().to_owned(),
            nominal_us: micros(ctx.nominal_fire_time()),
            epoch: ctx.epoch().unwrap_or_default(),
        });
    };
    let mut builder = Scheduler::builder();
    if let Some(ahead) = config.claim_ahead {
        builder = builder.claim_ahead(ahead);
    }
    let scheduler = builder
        .shared_store(store)
        .instance_name(&config.name)
        .job("tick", move |ctx: JobContext| {
            started(&ctx);
            ended(&ctx);
            std::future::ready(())
        })
        .job("slow", move |ctx: JobContext| async move {
            started(&ctx);
            let ms = ctx.args()["ms"].as_u64().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ended(&ctx);
        })
        .build();
    let mut events = scheduler.handle().subscribe();
    let scheduler = scheduler.start().await?;
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::Rejected {
                    schedule_id,
                    nominal_time,
                    epoch,
                    ..
                } => print(&NodeLine::Rejected {
                    schedule: schedule_id.to_string(),
                    nominal_us: micros(nominal_time),
                    epoch,
                }),
                Event::StoreFailed { operation, error } => print(&NodeLine::StoreFailed {
                    operation: operation.to_owned(),
                    error: error.to_string(),
                }),
                Event::StoreRecovered => print(&NodeLine::StoreRecovered),
                _ => {}
            }
        }
    });
    print(&NodeLine::Ready { name: config.name });
    // Standard input closing is the harness's "stop".
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    scheduler.shutdown(Duration::from_secs(10)).await?;
    print(&NodeLine::Stopped);
    Ok(())
}

/// A node running as a child process.
#[derive(Debug)]
pub struct Node {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<NodeLine>>>,
    reader: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts `exe node ...` (`exe` being the `scheduler-bench` binary).
    ///
    /// # Errors
    /// The process cannot be started.
    pub fn spawn(exe: &Path, config: &NodeConfig) -> std::io::Result<Self> {
        let mut child = Command::new(exe)
            .args(config.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match serde_json::from_str(&line) {
                    Ok(parsed) => sink.lock().unwrap_or_else(|e| e.into_inner()).push(parsed),
                    Err(_) => eprintln!("node printed something else: {line}"),
                }
            }
        });
        Ok(Self {
            name: config.name.clone(),
            stdin: child.stdin.take(),
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// The node's instance name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the node printed so far.
    #[must_use]
    pub fn lines(&self) -> Vec<NodeLine> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a printed line matches, up to `timeout`; whether one did.
    pub fn wait_for(&self, timeout: Duration, mut matches: impl FnMut(&NodeLine) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lines().iter().any(&mut matches) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the process where it is (SIGSTOP), as a long pause would: it neither runs nor
    /// renews its leases until [`thaw`](Self::thaw).
    ///
    /// # Errors
    /// The process cannot be signalled.
    pub fn freeze(&self) -> std::io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen process go on (SIGCONT).
    ///
    /// # Errors
    /// The process cannot be signalled.
    pub fn thaw(&self) -> std::io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> std::io::Result<()> {
        // kill(1) rather than kill(2): the workspace forbids unsafe code.
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill {signal} {} failed: {status}",
                self.child.id()
            )))
        }
    }

    /// Kills the process at once (SIGKILL): no shutdown, no release, leases left to run out.
    ///
    /// # Errors
    /// The process cannot be signalled.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        // Every line it printed before it died is read.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(())
    }

    /// Closes the node's standard input and waits for its graceful shutdown; its lines.
    ///
    /// # Errors
    /// The process cannot be waited for.
    pub fn stop(mut self) -> std::io::Result<Vec<NodeLine>> {
        drop(self.stdin.take());
        self.child.wait()?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(self.lines())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A harness that panicked leaves no process behind.
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes schedules for the `tick` and `slow` jobs into a shared store, through a scheduler
/// that never starts (so this process claims nothing).
///
/// # Errors
/// The store's error, or a schedule the scheduler refuses.
pub async fn add_schedules<S: SharedStore + Clone>(
    store: &S,
    schedules: impl IntoIterator<Item = NewSchedule>,
) -> Result<(), scheduler_core::Error> {
    let writer = Scheduler::builder()
        .shared_store(store.clone())
        .job("tick", |_ctx: JobContext| std::future::ready(()))
        .job("slow", |_ctx: JobContext| std::future::ready(()))
        .build()
        .handle();
    writer.add_all(schedules).await?;
    writer.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

/// Runs that ended with their result accepted: `Ended` lines without a `Rejected` line for
/// the same (schedule, nominal time, epoch), over all nodes' lines.
#[must_use]
pub fn accepted_runs<'a>(lines: impl IntoIterator<Item = &'a NodeLine>) -> Vec<(String, i64)> {
    let mut ended = Vec::new();
    let mut rejected = std::collections::HashSet::new();
    for line in lines {
        match line {
            NodeLine::Ended {
                schedule,
                nominal_us,
                epoch,
            } => ended.push((schedule.clone(), *nominal_us, *epoch)),
            NodeLine::Rejected {
                schedule,
                nominal_us,
                epoch,
            } => {
                rejected.insert((schedule.clone(), *nominal_us, *epoch));
            }
            _ => {}
        }
    }
    ended
        .into_iter()
        .filter(|run| !rejected.contains(run))
        .map(|(schedule, nominal, _)| (schedule, nominal))
        .collect()
}
