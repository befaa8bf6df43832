//! The real binary, on a free port with a temporary SQLite file and a 1 s interval, for each
//! framework compiled in: the first row comes at once, rows keep coming, `/` lists the latest
//! 10, pausing through the API stops the rows and resuming restarts them, the API refuses
//! requests without the token, and SIGTERM exits 0 with every row whole.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

const TOKEN: &str = "e2e-token";

struct Demo {
    child: Child,
    port: u16,
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("apsched-demo-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    path
}

#[allow(clippy::disallowed_methods)] // the test compares with the demo's own clock: the wall clock
fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Demo {
    fn start(framework: &str, db: &Path) -> Self {
        let url = format!("sqlite://{}", db.display());
        Self::start_with(framework, &url, "1", "warn", Stdio::null())
    }

    fn start_with(
        framework: &str,
        database_url: &str,
        interval_secs: &str,
        log_level: &str,
        log: Stdio,
    ) -> Self {
        Self::start_on(framework, database_url, None, interval_secs, log_level, log)
    }

    /// With `redis` (URL, key prefix), the schedule lives in Redis; the rows in `database_url`.
    fn start_on(
        framework: &str,
        database_url: &str,
        redis: Option<&RedisStore>,
        interval_secs: &str,
        log_level: &str,
        log: Stdio,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_demo-app"));
        if let Some(redis) = redis {
            command
                .env("SCHEDULER_STORE", &redis.url)
                .env("SCHEDULER_REDIS_PREFIX", &redis.prefix);
        }
        let child = command
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            .env("UPDATE_INTERVAL_SECS", interval_secs)
            .env("SCHEDULER_API_TOKEN", TOKEN)
            .env("DEMO_FRAMEWORK", framework)
            .env("SCHEDULER_LEASE_SECS", "2")
            .env("RUST_LOG", log_level)
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start demo-app");
        Self { child, port }
    }

    fn request(&self, method: &str, path: &str, token: Option<&str>) -> Option<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        // Small bodies come in one chunk when chunked encoding is used: strip its framing.
        let body = if response
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body.lines().skip(1).step_by(2).collect::<Vec<_>>().join("")
        } else {
            body.to_owned()
        };
        Some(Reply { status, body })
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
            .unwrap_or_else(|| panic!("GET {path} failed"))
    }

    fn updates(&self) -> Vec<Value> {
        self.get("/api/updates?limit=100")
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "demo-app did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn time(row: &Value, field: &str) -> DateTime<Utc> {
    row[field]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {row}"))
}

/// Rows written before the demo starts, older than anything it writes.
fn seed_old_rows(db: &Path, count: i64) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let connection = demo_app::db::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let start = wall_clock() - TimeDelta::days(1);
        for i in 0..count {
            let at = start + TimeDelta::minutes(i);
            assert!(
                demo_app::db::record_update(&connection, at, at)
                    .await
                    .unwrap()
            );
        }
        connection.close().await.unwrap();
    });
}

fn the_demo_works(framework: &str) {
    let db = temp_db(framework);
    seed_old_rows(&db, 15);
    let demo = Demo::start(framework, &db);

    // The server answers, and the first update is there within 1 s of that: it ran at once,
    // not after a whole interval.
    let answered = poll("the server to answer", Duration::from_secs(60), || {
        demo.request("GET", "/healthz", None)
            .filter(|r| r.status == 200)
            .map(|_| wall_clock())
    });
    let first_new = poll("the first update", Duration::from_secs(30), || {
        demo.updates()
            .into_iter()
            .find(|row| time(row, "timestamp") > answered - TimeDelta::hours(1))
    });
    assert!(
        time(&first_new, "timestamp") <= answered + TimeDelta::seconds(1),
        "first update {first_new} vs answer at {answered}"
    );
    assert!(
        first_new["value"]
            .as_str()
            .unwrap()
            .starts_with("Data updated at ")
    );

    // Rows keep coming.
    poll("three new updates", Duration::from_secs(30), || {
        (demo.updates().len() >= 15 + 3).then_some(())
    });

    // `/metrics`: the run counter grows with the runs.
    let succeeded_runs = || -> f64 {
        let page = demo.get("/metrics");
        assert_eq!(page.status, 200);
        page.body
            .lines()
            .find(|l| {
                l.starts_with("apsched_runs_total{")
                    && l.contains("outcome=\"succeeded\"")
                    && l.contains("schedule=\"update-db\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let before = succeeded_runs();
    assert!(before >= 1.0, "the runs so far are counted");
    poll("the run counter to grow", Duration::from_secs(30), || {
        (succeeded_runs() > before).then_some(())
    });
    let metrics = demo.get("/metrics").body;
    for name in [
        "apsched_run_duration_seconds",
        "apsched_run_lateness_seconds",
        "apsched_claim_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // `/` shows the latest 10, newest first.
    let page = demo.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Latest 10 database updates"),
        "{}",
        page.body
    );
    let shown: Vec<&str> = page.body.split("<li class=\"update\"").skip(1).collect();
    assert_eq!(shown.len(), 10);
    let latest = demo.updates();
    for (item, row) in shown.iter().zip(&latest) {
        assert!(
            item.starts_with(&format!(
                " data-value=\"{}\"",
                row["value"].as_str().unwrap()
            )),
            "{item} should show {row}"
        );
    }
    assert!(page.body.contains("every 1 s"), "the schedule in words");
    assert!(
        page.body.contains("href=\"/scheduler/ui\""),
        "a link to the dashboard"
    );
    let times: Vec<_> = latest.iter().map(|r| time(r, "nominal_time")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(demo.get("/api/updates?limit=abc").status, 400);

    // Without the token the API refuses changes; with it, pausing stops the rows.
    let refused = demo
        .request("POST", "/scheduler/jobs/update-db/pause", None)
        .unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json()["error_message"],
        "missing or wrong credentials"
    );
    let paused = demo
        .request("POST", "/scheduler/jobs/update-db/pause", Some(TOKEN))
        .unwrap();
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json()["paused"], true);
    // A run already started may still land; after that, nothing for 2.5 intervals.
    std::thread::sleep(Duration::from_millis(600));
    let count = demo.updates().len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(demo.updates().len(), count, "no rows while paused");
    let resumed = demo
        .request("POST", "/scheduler/jobs/update-db/resume", Some(TOKEN))
        .unwrap();
    assert_eq!(resumed.status, 200);
    poll("rows after resuming", Duration::from_secs(30), || {
        (demo.updates().len() > count).then_some(())
    });

    // SIGTERM: exit 0, and every row whole (one per fire).
    let status = demo.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let connection = demo_app::db::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = demo_app::db::latest(&connection, 1000).await.unwrap();
        assert!(rows.len() >= 15 + 4);
        for row in &rows {
            assert_eq!(
                row.value,
                format!(
                    "Data updated at {}",
                    row.nominal_time.format("%Y-%m-%d %H:%M:%S")
                )
            );
        }
        let mut fires: Vec<_> = rows.iter().map(|r| r.nominal_time).collect();
        fires.dedup();
        assert_eq!(fires.len(), rows.len(), "one row per fire");
    });
}

#[cfg(feature = "axum")]
#[test]
fn the_demo_works_on_axum() {
    the_demo_works("axum");
}

#[cfg(feature = "warp")]
#[test]
fn the_demo_works_on_warp() {
    the_demo_works("warp");
}

#[test]
fn bad_settings_exit_with_one_clear_line() {
    let cases = [
        (
            vec![("PORT", "abc")],
            2,
            "demo-app: PORT=\"abc\" (--port): not a port number (1-65535)\n",
        ),
        (
            vec![("UPDATE_INTERVAL_SECS", "0")],
            2,
            "demo-app: UPDATE_INTERVAL_SECS=\"0\" (--update-interval-secs): must be a whole number of seconds, from 1 to a year\n",
        ),
    ];
    for (env, code, message) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .envs(env)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code));
        assert_eq!(String::from_utf8_lossy(&output.stderr), message);
    }
    // An unreachable database: port 1 refuses at once.
    let output = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .env("DATABASE_URL", "postgres://app:secret@127.0.0.1:1/app")
        .env("PORT", free_port().to_string())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "demo-app: DATABASE_URL=postgres://app:***@127.0.0.1:1/app: cannot connect"
        ),
        "{stderr}"
    );
}

/// The PostgreSQL server for the multi-instance test, or `None` to skip it.
fn postgres_server(test: &str) -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: TEST_POSTGRES_URL is not set, and REQUIRE_SERVICES=1 requires the server"
            );
            println!("{test}: skipped: TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Where the demo keeps its schedule when it is not `DATABASE_URL`: Redis, under a key prefix
/// of the test's own.
struct RedisStore {
    url: String,
    prefix: String,
}

/// `instances` demo processes on one database (`url`), 1 s interval, for `seconds` s: one
/// `my_data` row per fire time, none missing, and no run that found its row already written
/// (the scheduler, not the unique constraint, keeps the fires apart). With `redis`, the
/// schedule (and the fire ledger) is there instead. With `kill_at`, the first process is
/// SIGKILLed that long after they all answer, just after it could have finished a fire: the
/// others carry on without a gap.
fn instances_write_each_update_once(
    url: &str,
    redis: Option<&RedisStore>,
    instances: usize,
    seconds: u64,
    kill_at: Option<Duration>,
    name: &str,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let logs: Vec<PathBuf> = (0..instances)
        .map(|i| temp_db(&format!("{name}-instance-{i}")).with_extension("log"))
        .collect();
    let mut demos: Vec<Demo> = logs
        .iter()
        .map(|log| {
            let file = std::fs::File::create(log).unwrap();
            Demo::start_on("axum", url, redis, "1", "info", Stdio::from(file))
        })
        .collect();
    for demo in &demos {
        poll("each instance to answer", Duration::from_secs(60), || {
            demo.request("GET", "/healthz", None)
                .filter(|r| r.status == 200)
        });
    }
    let started = Instant::now();
    let mut killed = None;
    if let Some(kill_at) = kill_at {
        std::thread::sleep(kill_at);
        // Just after a fire's row lands, before the next fire is due.
        let count = demos[0].updates().len();
        poll("the next update", Duration::from_secs(5), || {
            (demos[0].updates().len() > count).then_some(())
        });
        std::thread::sleep(Duration::from_millis(200));
        let mut victim = demos.remove(0);
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        killed = Some(wall_clock());
    }
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(started.elapsed()));
    for demo in demos {
        assert!(demo.terminate().success());
    }

    let (rows, fires) = rt.block_on(async {
        let db = demo_app::db::connect(url).await.unwrap();
        let rows = demo_app::db::latest(&db, 1000).await.unwrap();
        let fires = if let Some(redis) = redis {
            let options = apsched::redis::StoreOptions::default().prefix(redis.prefix.clone());
            let store = apsched::redis::Store::connect_with(&redis.url, options)
                .await
                .unwrap();
            let fires = apsched::store::FireHistory::fires(&store, demo_app::SCHEDULE_ID, 1000)
                .await
                .unwrap();
            store.delete_all_keys().await.unwrap();
            fires
        } else {
            let store = apsched::sea_orm::Store::from_connection(db, Default::default())
                .await
                .unwrap();
            apsched::store::FireHistory::fires(&store, demo_app::SCHEDULE_ID, 1000)
                .await
                .unwrap()
        };
        (rows, fires)
    });
    // A fire claimed as the last instance stopped was handed back, never run: only fires up
    // to the newest row are settled.
    let newest = rows.first().map(|r| r.nominal_time).expect("some rows");
    let fires: Vec<_> = fires
        .into_iter()
        .filter(|f| f.nominal_time <= newest)
        .collect();
    let expected = usize::try_from(seconds).unwrap() - 2;
    assert!(
        rows.len() >= expected,
        "an update a second for {seconds} s, got {}",
        rows.len()
    );
    let times: Vec<_> = rows.iter().rev().map(|r| r.nominal_time).collect();
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] == TimeDelta::seconds(1)),
        "one row per second, none missing: {times:?}"
    );
    assert_eq!(
        fires.len(),
        rows.len(),
        "a ledger row per update: {fires:?}"
    );
    assert!(
        fires
            .iter()
            .all(|f| f.state == apsched::store::FireState::Succeeded),
        "{fires:?}"
    );
    let owners: std::collections::HashSet<_> =
        fires.iter().filter_map(|f| f.owner.clone()).collect();
    assert!(owners.len() > 1, "the instances share the work: {owners:?}");
    if let Some(killed) = killed {
        let after: Vec<_> = rows.iter().filter(|r| r.timestamp > killed).collect();
        assert!(after.len() >= 5, "updates go on after the kill: {after:?}");
    }
    for log in &logs {
        let log = std::fs::read_to_string(log).unwrap();
        assert!(!log.contains("already written"), "a fire ran twice: {log}");
        assert!(!log.contains("database update failed"), "{log}");
    }
}

/// Two, then three, demo processes started in one directory on one SQLite file (the default
/// configuration started twice: a reloader, two workers, a rolling restart).
#[test]
fn two_and_three_instances_on_one_sqlite_file_write_each_update_once() {
    for instances in [2, 3] {
        let db = temp_db(&format!("shared-{instances}"));
        let url = format!("sqlite://{}", db.display());
        instances_write_each_update_once(
            &url,
            None,
            instances,
            20,
            None,
            &format!("sqlite-{instances}"),
        );
    }
}

/// Three processes on one SQLite file, one of them SIGKILLed after 8 s.
#[test]
fn a_killed_instance_on_a_shared_sqlite_file_leaves_no_gap() {
    let db = temp_db("shared-killed");
    let url = format!("sqlite://{}", db.display());
    instances_write_each_update_once(
        &url,
        None,
        3,
        22,
        Some(Duration::from_secs(8)),
        "sqlite-killed",
    );
}

/// Three demo processes on one PostgreSQL database.
#[test]
fn three_instances_on_one_postgres_database_write_each_update_once() {
    let test = "three_instances_on_one_postgres_database_write_each_update_once";
    let Some(server) = postgres_server(test) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let schema = format!(
        "apsched_demo_{}_{}",
        std::process::id(),
        wall_clock().timestamp_micros()
    );
    rt.block_on(async {
        let admin = sea_orm::Database::connect(&server).await.unwrap();
        sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
    });
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
    instances_write_each_update_once(&url, None, 3, 30, None, "postgres");
}

/// Three demo processes with their schedule in one Redis (`SCHEDULER_STORE=redis://...`), the
/// rows in one SQLite file.
#[test]
fn three_instances_on_one_redis_write_each_update_once() {
    let test = "three_instances_on_one_redis_write_each_update_once";
    let url = match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: TEST_REDIS_URL is not set, and REQUIRE_SERVICES=1 requires the server"
            );
            println!("{test}: skipped: TEST_REDIS_URL is not set");
            return;
        }
    };
    let redis = RedisStore {
        url,
        prefix: format!(
            "apsched_demo_{}_{}",
            std::process::id(),
            wall_clock().timestamp_micros()
        ),
    };
    let db = temp_db("redis-rows");
    let rows = format!("sqlite://{}", db.display());
    instances_write_each_update_once(&rows, Some(&redis), 3, 25, None, "redis");
}

/// A process that keeps its schedule in memory while the environment says the service runs
/// as several processes (`WEB_CONCURRENCY`, as gunicorn and Heroku set it) says at start that
/// each of them will run every update.
#[test]
fn a_memory_schedule_in_a_service_of_several_processes_is_warned_about() {
    let db = temp_db("memory-warned");
    let log = db.with_extension("log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("PORT", port.to_string())
        .env("SCHEDULER_STORE", "memory")
        .env("WEB_CONCURRENCY", "4")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let demo = Demo { child, port };
    // The warning comes when the scheduler starts, before the server listens.
    let warned = poll("the server to listen", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("listening on").then_some(text)
    });
    assert!(
        warned.contains("WEB_CONCURRENCY=4") && warned.contains("each of them runs every fire"),
        "{warned}"
    );
    // Its history answers without a shared store: the first update, run at start.
    let runs = poll(
        "the first run in the history",
        Duration::from_secs(10),
        || {
            let reply = demo.get("/scheduler/jobs/update-db/runs");
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json().as_array().filter(|r| !r.is_empty()).cloned()
        },
    );
    assert!(
        matches!(runs[0]["state"].as_str(), Some("running" | "succeeded")),
        "{runs:?}"
    );
}

/// With an hour between updates, the first is there at start all the same: it runs at once,
/// not after a whole interval (the article's complaint).
#[test]
fn the_first_update_comes_at_start_not_after_an_interval() {
    let db = temp_db("hourly");
    let url = format!("sqlite://{}", db.display());
    let demo = Demo::start_with("axum", &url, "3600", "warn", Stdio::null());
    poll("the server to answer", Duration::from_secs(60), || {
        demo.request("GET", "/healthz", None)
            .filter(|r| r.status == 200)
    });
    let rows = poll("the first update", Duration::from_secs(10), || {
        Some(demo.updates()).filter(|rows| !rows.is_empty())
    });
    assert_eq!(rows.len(), 1, "one update, the one at start: {rows:?}");
    assert!(demo.terminate().success());
}

// ===== shutdown =====

/// The log without its colours.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The log lines that say `message`, with the time each was written.
fn log_lines(log: &Path, message: &str) -> Vec<(DateTime<Utc>, String)> {
    let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
    text.lines()
        .filter(|line| line.contains(message))
        .filter_map(|line| {
            let at = line.split_whitespace().next()?.parse().ok()?;
            Some((at, line.to_owned()))
        })
        .collect()
}

/// The value of `field=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    line[start..].split_whitespace().next()
}

/// A client that sent part of a request and stalls with its connection open.
fn stalled(port: u16, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(bytes.as_bytes()).expect("write");
    stream
}

/// A demo with its schedule in memory, updating every second, whose next update is held
/// going (the test holds SQLite's write lock, so the update waits for it) while two clients
/// stall, one halfway through its headers and one halfway through its body.
struct StalledDemo {
    demo: Demo,
    db: PathBuf,
    log: PathBuf,
    runtime: tokio::runtime::Runtime,
    lock: Option<sea_orm::DatabaseTransaction>,
    _clients: [TcpStream; 2],
}

impl StalledDemo {
    fn start(framework: &str, name: &str, deadline_secs: &str) -> Self {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let db = temp_db(name);
        let log = db.with_extension("log");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("UPDATE_INTERVAL_SECS", "1")
            .env("SCHEDULER_API_TOKEN", TOKEN)
            .env("DEMO_FRAMEWORK", framework)
            .env("SCHEDULER_STORE", "memory")
            .env("SHUTDOWN_DEADLINE_SECS", deadline_secs)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start demo-app");
        let demo = Demo { child, port };
        poll("the first update", Duration::from_secs(60), || {
            Some(demo.request("GET", "/api/updates", None)?)
                .filter(|r| r.status == 200 && r.json().as_array().is_some_and(|a| !a.is_empty()))
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = format!("sqlite://{}", db.display());
        let lock = runtime.block_on(async {
            let connection = demo_app::db::connect(&url).await.unwrap();
            let lock = connection.begin().await.unwrap();
            // A write takes SQLite's write lock until the transaction ends.
            lock.execute_unprepared("CREATE TABLE e2e_write_lock (x INTEGER)")
                .await
                .unwrap();
            lock
        });
        let locked_at = wall_clock();
        poll("an update to be going", Duration::from_secs(10), || {
            log_lines(&log, "update started")
                .iter()
                .any(|(at, _)| *at > locked_at)
                .then_some(())
        });
        let clients = [
            stalled(port, "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Half: "),
            stalled(
                port,
                &format!(
                    "POST /scheduler/jobs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\": \"ha"
                ),
            ),
        ];
        // Let the server read what they sent.
        std::thread::sleep(Duration::from_millis(300));
        Self {
            demo,
            db,
            log,
            runtime,
            lock: Some(lock),
            _clients: clients,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.demo.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the exit: its status and how long it took.
    fn wait_for_exit(
        &mut self,
        since: Instant,
        at_most: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        loop {
            if let Some(status) = self.demo.child.try_wait().unwrap() {
                return (status, since.elapsed());
            }
            assert!(
                since.elapsed() < at_most,
                "demo-app still running {at_most:?} after the signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets the database go, then checks that nothing started after `signalled`: in the run
    /// log, and in the rows (whose nominal times are their fires').
    fn nothing_started_after(&mut self, signalled: DateTime<Utc>) {
        if let Some(lock) = self.lock.take() {
            self.runtime.block_on(lock.rollback()).unwrap();
        }
        let started = log_lines(&self.log, "update started");
        assert!(!started.is_empty());
        for (at, line) in &started {
            assert!(*at < signalled, "a run started after the signal: {line}");
        }
        let url = format!("sqlite://{}", self.db.display());
        let rows = self.runtime.block_on(async {
            let connection = demo_app::db::connect(&url).await.unwrap();
            demo_app::db::latest(&connection, 1000).await.unwrap()
        });
        assert!(!rows.is_empty());
        for row in &rows {
            assert!(
                row.nominal_time < signalled,
                "a row written for a fire after the signal: {row:?}"
            );
        }
    }

    /// The shutdown report's lines for aborted runs: the update that was going.
    fn aborted_in_report(&self) -> Vec<String> {
        log_lines(&self.log, "shutdown report: aborted")
            .into_iter()
            .map(|(_, line)| line)
            .collect()
    }
}

/// SIGTERM with clients stalled mid-headers and mid-body and an update going: the process
/// exits 0 within the deadline (+ 1 s), starts no run after the signal, and its report lists
/// the update cut off before its job returned.
fn sigterm_ends_within_the_deadline_whatever_clients_do(framework: &str) {
    let mut demo = StalledDemo::start(framework, &format!("stalled-{framework}"), "2");
    let signalled = wall_clock();
    let since = Instant::now();
    demo.signal("TERM");
    let (status, took) = demo.wait_for_exit(since, Duration::from_secs(30));
    assert!(status.success(), "exit code 0: {status}");
    assert!(
        took <= Duration::from_secs(3),
        "exited {took:?} after SIGTERM; the deadline is 2 s"
    );
    demo.nothing_started_after(signalled);
    let aborted = demo.aborted_in_report();
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert_eq!(
        field(&aborted[0], "schedule_id"),
        Some("update-db"),
        "{}",
        aborted[0]
    );
    assert_eq!(
        field(&aborted[0], "job_returned"),
        Some("false"),
        "{}",
        aborted[0]
    );
    let stopped = log_lines(&demo.log, "stopped");
    assert!(
        stopped
            .iter()
            .any(|(_, l)| field(l, "server_drained") == Some("false")),
        "the stalled connections were cut off: {stopped:?}"
    );
}

#[cfg(feature = "axum")]
#[test]
fn sigterm_ends_within_the_deadline_whatever_clients_do_on_axum() {
    sigterm_ends_within_the_deadline_whatever_clients_do("axum");
}

#[cfg(feature = "warp")]
#[test]
fn sigterm_ends_within_the_deadline_whatever_clients_do_on_warp() {
    sigterm_ends_within_the_deadline_whatever_clients_do("warp");
}

/// SIGTERM, then SIGINT while the shutdown waits (its deadline is a minute): the second
/// signal ends it at once, the report is written, and the exit code says it was forced.
fn a_second_signal_ends_the_shutdown_at_once(framework: &str) {
    let mut demo = StalledDemo::start(framework, &format!("twice-{framework}"), "60");
    let signalled = wall_clock();
    let since = Instant::now();
    demo.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        demo.demo.child.try_wait().unwrap().is_none(),
        "the first signal waits for the update and the clients"
    );
    let second = Instant::now();
    demo.signal("INT");
    let (status, _) = demo.wait_for_exit(since, Duration::from_secs(30));
    let took = second.elapsed();
    assert_eq!(status.code(), Some(130), "forced: {status}");
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after the second signal, not at the 60 s deadline"
    );
    demo.nothing_started_after(signalled);
    let aborted = demo.aborted_in_report();
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert_eq!(field(&aborted[0], "schedule_id"), Some("update-db"));
    let stopped = log_lines(&demo.log, "stopped");
    assert!(
        stopped
            .iter()
            .any(|(_, l)| field(l, "forced") == Some("true")),
        "{stopped:?}"
    );
}

#[cfg(feature = "axum")]
#[test]
fn a_second_signal_ends_the_shutdown_at_once_on_axum() {
    a_second_signal_ends_the_shutdown_at_once("axum");
}

#[cfg(feature = "warp")]
#[test]
fn a_second_signal_ends_the_shutdown_at_once_on_warp() {
    a_second_signal_ends_the_shutdown_at_once("warp");
}

/// Shut down through the API, the scheduler is gone for good: `/healthz` says so with a 503
/// (a load balancer stops sending requests) while the pages still answer.
#[test]
fn healthz_answers_503_once_the_scheduler_is_shut_down() {
    let db = temp_db("healthz");
    let url = format!("sqlite://{}", db.display());
    let demo = Demo::start_with("axum", &url, "3600", "warn", Stdio::null());
    let healthy = poll("the server to answer", Duration::from_secs(60), || {
        demo.request("GET", "/healthz", None)
            .filter(|r| r.status == 200)
    });
    assert_eq!(healthy.json()["scheduler"], "running");
    let shutdown = demo
        .request("POST", "/scheduler/shutdown", Some(TOKEN))
        .expect("POST /scheduler/shutdown");
    assert_eq!(shutdown.status, 204, "{}", shutdown.body);
    let health = demo.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["scheduler"], "stopped");
    assert_eq!(health.json()["database"], "ok");
    assert_eq!(demo.get("/").status, 200);
    assert!(demo.terminate().success());
}
