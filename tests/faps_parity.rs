//! Flask-APScheduler parity, against the real thing: `peer/faps/responses.json` holds what
//! Flask-APScheduler 1.13 with APScheduler 3.11 answered to a fixed sequence of requests
//! (recorded by `peer/faps/record.py`, which `.ci/run` runs again and fails on any change).
//! The same requests, in the same order, go to apsched's API on axum and on warp; each answer
//! must be the one a Flask-APScheduler client reads unchanged, except for the differences in
//! [`DIFFERENCES`] and [`key_differences`], each with its reason (README, "Differences from
//! Flask-APScheduler").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apsched::api::Api;
use apsched::{JobContext, Scheduler};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::{Map, Value};

mod support;

use support::{Client, Framework, Reply, app};

/// Steps apsched answers with another status than Flask-APScheduler, on purpose.
const DIFFERENCES: &[(&str, u16, &str)] = &[
    (
        "add_interval_negative_seconds",
        400,
        "a negative interval is refused (APScheduler turns -5 s into 6 days 23:59:55)",
    ),
    (
        "add_interval_zero",
        400,
        "a zero interval is refused (APScheduler silently makes it 1 s)",
    ),
    (
        "add_without_id",
        200,
        "an id is generated when none is given (Flask-APScheduler: 500)",
    ),
    (
        "start_while_running",
        409,
        "a state conflict is 409 (Flask-APScheduler: 400)",
    ),
    (
        "run_job",
        202,
        "the run is queued on the scheduler, not run inside the request: 202",
    ),
    (
        "run_job_kwargs",
        202,
        "the run is queued on the scheduler, not run inside the request: 202",
    ),
    // After a shutdown apsched's scheduler has released its store and its jobs' state: it
    // does not start again in the same process (restart the process), and answers 503.
    // Flask-APScheduler keeps a list of pending jobs in memory and can start again.
    ("list_after_shutdown", 503, "the scheduler has shut down"),
    (
        "get_existing_job_while_stopped",
        503,
        "the scheduler has shut down",
    ),
    (
        "pause_scheduler_while_stopped",
        503,
        "the scheduler has shut down",
    ),
    (
        "shutdown_while_stopped",
        503,
        "the scheduler has shut down (Flask-APScheduler: 400)",
    ),
    ("add_while_stopped", 503, "the scheduler has shut down"),
    (
        "get_added_while_stopped",
        503,
        "the scheduler has shut down",
    ),
    (
        "start_after_shutdown",
        409,
        "a scheduler that shut down does not start again; restart the process",
    ),
    ("info_after_restart", 200, "not restarted: running is false"),
    (
        "get_added_while_stopped_after_restart",
        503,
        "the scheduler has shut down",
    ),
    ("list_after_restart", 503, "the scheduler has shut down"),
    (
        "shutdown_final",
        503,
        "not restarted: the scheduler has shut down",
    ),
];

/// Keys of a job dict apsched writes differently, on purpose, with when it applies.
fn key_differences(step: &Value, key: &str) -> Option<&'static str> {
    let sent: Value = step["request"]["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    match key {
        // apsched's default grace is 60 s (APScheduler 3: 1 s, which drops runs of a busy
        // process); a grace the request sets is compared.
        "misfire_grace_time" if sent.get("misfire_grace_time").is_none() => {
            Some("default misfire_grace_time 60 s")
        }
        _ => None,
    }
}

/// The steps whose value for this key is random (jitter) or the machine's (host name).
fn volatile(step: &Value, key: &str) -> bool {
    step["volatile"]
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| k == key))
}

fn recorded() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/faps/responses.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Python's `datetime.isoformat()` shape: what `datetime.fromisoformat` reads on every
/// Python 3 (six sub-second digits or none, and an offset with a colon).
fn is_python_isoformat(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    let base = bytes.len() >= 25
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    let rest = &text[19.min(text.len())..];
    let offset = match rest.strip_prefix('.') {
        Some(fraction)
            if fraction.len() == 12 && fraction[..6].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &fraction[6..]
        }
        Some(_) => return false,
        None => rest,
    };
    let o = offset.as_bytes();
    base && o.len() == 6
        && (o[0] == b'+' || o[0] == b'-')
        && o[1..3].iter().all(u8::is_ascii_digit)
        && o[3] == b':'
        && o[4..6].iter().all(u8::is_ascii_digit)
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

const DATE_KEYS: [&str; 4] = ["next_run_time", "start_date", "end_date", "run_date"];

/// Compares one job dict, key by key: every key Flask-APScheduler wrote, apsched writes the
/// same (date-times: the same instant, in Python's isoformat). apsched's extra keys
/// (`coalesce`, `paused`, `timezone`, ...) are allowed: a FAPS client ignores them.
fn compare_job(
    step: &Value,
    theirs: &Map<String, Value>,
    ours: &Value,
    problems: &mut Vec<String>,
) {
    let name = step["name"].as_str().unwrap();
    let Some(ours) = ours.as_object() else {
        problems.push(format!("{name}: expected a job dict, got {ours}"));
        return;
    };
    for (key, their_value) in theirs {
        if volatile(step, key) || key_differences(step, key).is_some() {
            continue;
        }
        let Some(our_value) = ours.get(key) else {
            problems.push(format!("{name}: \"{key}\" missing (FAPS: {their_value})"));
            continue;
        };
        let same = if DATE_KEYS.contains(&key.as_str()) && their_value.is_string() {
            let ok_format = our_value.as_str().is_some_and(is_python_isoformat);
            ok_format
                && instant(their_value.as_str().unwrap()) == our_value.as_str().and_then(instant)
        } else {
            their_value == our_value
        };
        if !same {
            problems.push(format!(
                "{name}: \"{key}\" is {our_value}, FAPS wrote {their_value}"
            ));
        }
    }
}

/// What the jobs received, per run: the JSON value of each `peerjobs:record` run.
type Calls = Arc<Mutex<Vec<Value>>>;

async fn replay(framework: Framework) {
    let recorded = recorded();
    let calls: Calls = Arc::default();
    let record = Arc::clone(&calls);
    let scheduler = Scheduler::builder()
        .timezone(recorded["timezone"].as_str().unwrap())
        .unwrap()
        .job("peerjobs:record", move |ctx: JobContext| {
            let record = Arc::clone(&record);
            async move { record.lock().unwrap().push(ctx.args().clone()) }
        })
        .job("peerjobs:other", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap();
    let client = Client {
        app: app(framework, Api::without_auth(scheduler.clone())),
        token: None,
    };
    let mut problems = Vec::new();
    // Ids one side has and the other does not (a documented difference in a step that adds),
    // and ids whose place in a list is random (a jittered next run time).
    let mut one_sided: Vec<String> = Vec::new();
    for step in recorded["steps"].as_array().unwrap() {
        let name = step["name"].as_str().unwrap();
        let request = &step["request"];
        let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let body = request["body"]
            .as_str()
            .map_or_else(Bytes::new, |b| Bytes::from(b.to_owned()));
        let calls_before = calls.lock().unwrap().len();
        let reply: Reply = client
            .send(
                method,
                request["path"].as_str().unwrap(),
                request["content_type"].as_str(),
                body,
            )
            .await;
        let theirs = &step["response"];
        let their_status = theirs["status"].as_u64().unwrap() as u16;
        let expected = DIFFERENCES
            .iter()
            .find(|(step, _, _)| *step == name)
            .map_or_else(
                // Flask-APScheduler answers bad input 500 (its errors are exceptions);
                // apsched answers 400.
                || {
                    if their_status == 500 {
                        400
                    } else {
                        their_status
                    }
                },
                |(_, status, _)| *status,
            );
        if reply.status != StatusCode::from_u16(expected).unwrap() {
            problems.push(format!(
                "{name}: status {} (expected {expected}; FAPS {their_status}): {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
            continue;
        }
        if !reply.status.is_success() {
            // Every error is JSON with a message, where FAPS sometimes sends an HTML page.
            let json: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if !json["error_message"].is_string() {
                problems.push(format!("{name}: error without error_message: {json}"));
            }
            if (200..300).contains(&their_status)
                && let Some(id) = theirs["body"]["id"].as_str()
            {
                one_sided.push(id.to_owned());
            }
            continue;
        }
        if volatile(step, "next_run_time")
            && let Some(id) = theirs["body"]["id"].as_str()
        {
            one_sided.push(id.to_owned());
        }
        if expected != their_status {
            // Served on one side only: remember what it added.
            let added = if reply.status.is_success() {
                reply.json()
            } else {
                theirs["body"].clone()
            };
            if let Some(id) = added["id"].as_str() {
                one_sided.push(id.to_owned());
            }
            continue;
        }
        match (&theirs["body"], reply.status) {
            (_, StatusCode::NO_CONTENT) => {}
            (Value::Object(job), _) if job.contains_key("func") => {
                compare_job(step, job, &reply.json(), &mut problems);
            }
            (Value::Object(info), _) => {
                // GET /scheduler: FAPS's three keys.
                let ours = reply.json();
                for (key, value) in info {
                    let skip = volatile(step, key) || name == "info_after_restart";
                    if !skip && ours.get(key) != Some(value) {
                        problems.push(format!(
                            "{name}: \"{key}\" is {:?}, FAPS: {value}",
                            ours.get(key)
                        ));
                    }
                }
            }
            (Value::Array(jobs), _) => {
                let two_sided = |job: &&Value| !one_sided.iter().any(|id| job["id"] == **id);
                let ours = reply.json();
                let ours: Vec<&Value> = ours.as_array().unwrap().iter().filter(two_sided).collect();
                let jobs: Vec<&Value> = jobs.iter().filter(two_sided).collect();
                let their_ids: Vec<&Value> = jobs.iter().map(|j| &j["id"]).collect();
                let our_ids: Vec<&Value> = ours.iter().map(|j| &j["id"]).collect();
                if their_ids != our_ids {
                    problems.push(format!("{name}: jobs {our_ids:?}, FAPS: {their_ids:?}"));
                    continue;
                }
                for (theirs, ours) in jobs.into_iter().zip(ours) {
                    compare_job(step, theirs.as_object().unwrap(), ours, &mut problems);
                }
            }
            (other, _) => problems.push(format!("{name}: unexpected FAPS body {other}")),
        }
        if let Some(peer_calls) = step["peer_calls"].as_array() {
            // The job must receive what Flask-APScheduler's function received.
            let wanted: Vec<Value> = peer_calls
                .iter()
                .map(|call| match (&call["args"], &call["kwargs"]) {
                    (Value::Array(a), Value::Object(k)) if a.is_empty() => Value::Object(k.clone()),
                    (args, _) => args.clone(),
                })
                .collect();
            let got = wait_for_calls(&calls, calls_before + wanted.len()).await;
            if got[calls_before..] != wanted[..] {
                problems.push(format!(
                    "{name}: the job received {:?}, FAPS's function {wanted:?}",
                    &got[calls_before..]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{framework:?}: {} answers differ from Flask-APScheduler 1.13:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Waits (real time: the run is queued on the scheduler) until `n` runs were recorded.
async fn wait_for_calls(calls: &Calls, n: usize) -> Vec<Value> {
    for _ in 0..1000 {
        if calls.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    calls.lock().unwrap().clone()
}

#[tokio::test]
async fn axum_answers_as_flask_apscheduler() {
    replay(Framework::Axum).await;
}

#[tokio::test]
async fn warp_answers_as_flask_apscheduler() {
    replay(Framework::Warp).await;
}

#[test]
fn every_difference_names_a_recorded_step() {
    let recorded = recorded();
    let names: Vec<&str> = recorded["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for (step, _, reason) in DIFFERENCES {
        assert!(
            names.contains(step),
            "{step} ({reason}) is not a recorded step"
        );
    }
    assert!(is_python_isoformat("2030-01-01T09:00:00+01:00"));
    assert!(is_python_isoformat("2030-01-01T09:00:00.000007+00:00"));
    assert!(!is_python_isoformat("2030-01-01T09:00:00Z"));
    assert!(!is_python_isoformat("2030-01-01T09:00:00.946896638+00:00"));
}
