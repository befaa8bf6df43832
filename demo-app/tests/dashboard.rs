//! The dashboard in a real browser: a running demo's `/scheduler/ui` opened in headless
//! Chromium (Debian's, driven by playwright-core: `tests/browser/dashboard.mjs`), on axum and
//! on warp, with a token and read-only. A screenshot of each is kept in
//! `target/tmp/dashboard-*.png`.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`) and
//! `npm ci --prefix demo-app/tests/browser`, which `.ci/run` installs. Without them the tests
//! say they were skipped, unless `REQUIRE_SERVICES=1` makes that a failure.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "dashboard-token";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".to_owned());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "playwright-core is not installed (npm ci --prefix demo-app/tests/browser)".to_owned(),
        );
    }
    None
}

fn can_run(test: &str) -> bool {
    match missing() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: {why}, and REQUIRE_SERVICES=1 requires the browser"
            );
            println!("{test}: skipped: {why}");
            false
        }
    }
}

struct Demo {
    child: Child,
    port: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn demo(framework: &str, token: Option<&str>) -> Demo {
    let dir = std::env::temp_dir().join("apsched-dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("{framework}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo-app"));
    command
        .env("PORT", port.to_string())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("UPDATE_INTERVAL_SECS", "1")
        .env("DEMO_FRAMEWORK", framework)
        .env("RUST_LOG", "warn")
        .env_remove("SCHEDULER_API_TOKEN")
        .stdout(Stdio::null());
    if let Some(token) = token {
        command.env("SCHEDULER_API_TOKEN", token);
    }
    let demo = Demo {
        child: command.spawn().expect("start demo-app"),
        port,
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    demo
}

fn drive(framework: &str, token: Option<&str>, shot: &str) {
    let demo = demo(framework, token);
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(shot);
    let output = Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .arg(format!("http://127.0.0.1:{}", demo.port))
        .arg(token.unwrap_or("-"))
        .arg(&screenshot)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{framework}: the dashboard test failed\n{stdout}{stderr}"
    );
    print!("{stdout}");
    assert!(
        screenshot.exists(),
        "a screenshot at {}",
        screenshot.display()
    );
}

#[test]
fn the_dashboard_in_a_browser_on_axum() {
    if can_run("the_dashboard_in_a_browser_on_axum") {
        drive("axum", Some(TOKEN), "dashboard-axum.png");
        drive("axum", None, "dashboard-axum-read-only.png");
    }
}

#[test]
fn the_dashboard_in_a_browser_on_warp() {
    if can_run("the_dashboard_in_a_browser_on_warp") {
        drive("warp", Some(TOKEN), "dashboard-warp.png");
    }
}
