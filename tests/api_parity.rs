//! The REST API, written once and run against an axum app and a warp app: every route, status,
//! JSON shape, auth case and error case. What one adapter can do, the other can.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apsched::api::Api;
use apsched::{JobContext, Scheduler, SchedulerHandle};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

mod support;

use support::{Client, Framework, app};

/// A started scheduler with jobs "record" (counts runs) and "gate" (runs until released).
struct Fixture {
    scheduler: SchedulerHandle,
    runs: Arc<Mutex<Vec<String>>>,
    gate: Arc<Notify>,
    gate_entered: Arc<Notify>,
}

async fn fixture() -> Fixture {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Notify::new());
    let gate_entered = Arc::new(Notify::new());
    let (r, g, e) = (
        Arc::clone(&runs),
        Arc::clone(&gate),
        Arc::clone(&gate_entered),
    );
    let scheduler = Scheduler::builder()
        .job("record", move |ctx: JobContext| {
            let r = Arc::clone(&r);
            async move { r.lock().unwrap().push(ctx.schedule_id().to_owned()) }
        })
        .job("gate", move |_ctx: JobContext| {
            let (g, e) = (Arc::clone(&g), Arc::clone(&e));
            async move {
                e.notify_one();
                g.notified().await;
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    Fixture {
        scheduler,
        runs,
        gate,
        gate_entered,
    }
}

const TOKEN: &str = "s3cret-token";

fn client(framework: Framework, api: Api) -> Client {
    Client {
        app: app(framework, api),
        token: Some(TOKEN),
    }
}

macro_rules! parity {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn axum() {
                    super::$name(super::Framework::Axum).await;
                }
                #[tokio::test]
                async fn warp() {
                    super::$name(super::Framework::Warp).await;
                }
            }
        )*
    };
}

parity!(
    scheduler_info,
    scheduler_pause_resume_start_shutdown,
    add_list_get_patch_delete,
    job_json_round_trips_time_zone_and_jitter,
    flask_fields_and_nested_triggers,
    pause_and_resume_a_job,
    run_queues_and_answers_202_before_the_job_ends,
    malformed_and_unsupported_bodies,
    unknown_names_ids_routes_and_methods,
    conflicts_and_failed_changes_change_nothing,
    body_limit,
    bearer_token_auth,
    callback_auth_read_only_and_no_auth,
    custom_prefix,
    head_is_served_where_get_is,
    openapi_document,
    overlap_policies_in_job_json,
    store_failures_answer_without_their_text,
);

// ===== the cases =====

async fn scheduler_info(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let reply = c.get("/scheduler").await;
    assert_eq!(reply.status, StatusCode::OK);
    let info = reply.json();
    assert_eq!(info["running"], true);
    assert_eq!(info["state"], "running");
    assert!(info["current_host"].is_string());
    assert_eq!(info["allowed_hosts"], json!(["*"]));
    assert_eq!(info["timezone"], "UTC");
    assert_eq!(info["registered_jobs"], json!(["gate", "record"]));
}

async fn scheduler_pause_resume_start_shutdown(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let reply = c.post("/scheduler/pause").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    assert_eq!(c.get("/scheduler").await.json()["state"], "paused");
    assert_eq!(
        c.post("/scheduler/resume").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.get("/scheduler").await.json()["running"], true);
    let again = c.post("/scheduler/start").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error(), "the scheduler is already running");
    // A body other than the documented one is refused, and the scheduler keeps running.
    let refused = [
        (json!("now"), "shutdown body: expected a JSON object"),
        (json!([]), "shutdown body: expected a JSON object"),
        (json!(null), "shutdown body: expected a JSON object"),
        (
            json!({"deadline_secs": 5}),
            "shutdown body: deadline_secs: unknown field `deadline_secs`, expected `wait` or `deadline_seconds`",
        ),
        (
            json!({"wait": "no"}),
            "shutdown body: wait: invalid type: string \"no\", expected a boolean",
        ),
        (
            json!({"deadline_seconds": -1}),
            "shutdown body: \"deadline_seconds\" must be a number of seconds from 0 to 3600",
        ),
        (
            json!({"deadline_seconds": 86400}),
            "shutdown body: \"deadline_seconds\" must be a number of seconds from 0 to 3600",
        ),
        (
            json!({"wait": false, "deadline_seconds": 5}),
            "shutdown body: \"wait\": false stops without waiting",
        ),
    ];
    for (body, message) in refused {
        let reply = c.post_json("/scheduler/shutdown", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply
                .error()
                .starts_with(&format!("invalid request: {message}")),
            "{body}: {}",
            reply.error()
        );
        assert_eq!(
            c.get("/scheduler").await.json()["state"],
            "running",
            "{body}"
        );
    }
    let form = c
        .send(
            Method::POST,
            "/scheduler/shutdown",
            Some("application/x-www-form-urlencoded"),
            Bytes::from_static(b"now"),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(form.error().contains("must be JSON"), "{}", form.error());
    assert_eq!(c.get("/scheduler").await.json()["state"], "running");
    let reply = c
        .post_json("/scheduler/shutdown", json!({"wait": false}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get("/scheduler").await.json()["state"], "stopped");
    let gone = c.get("/scheduler/jobs").await;
    assert_eq!(gone.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(gone.error(), "the scheduler has been shut down");
    // It does not start again (restart the process): 409, saying so.
    let restart = c.post("/scheduler/start").await;
    assert_eq!(restart.status, StatusCode::CONFLICT);
    assert!(
        restart.error().contains("cannot start again"),
        "{}",
        restart.error()
    );
}

async fn add_list_get_patch_delete(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let created = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "job1", "func": "record", "args": [1, 2], "trigger": "interval", "seconds": 30}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let job = created.json();
    assert_eq!(job["id"], "job1");
    assert_eq!(job["name"], "job1");
    assert_eq!(job["func"], "record");
    assert_eq!(job["args"], json!([1, 2]));
    assert_eq!(job["kwargs"], json!({}));
    assert_eq!(job["trigger"], "interval");
    assert_eq!(job["seconds"], 30);
    assert!(
        job["start_date"].is_string(),
        "the anchored grid is shown: {job}"
    );
    assert!(job["next_run_time"].is_string());
    assert_eq!(job["misfire_grace_time"], 60.0);
    assert_eq!(
        (
            job["coalesce"].clone(),
            job["max_instances"].clone(),
            job["paused"].clone()
        ),
        (json!(true), json!(1), json!(false))
    );

    let list = c.get("/scheduler/jobs").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json(), json!([job.clone()]));
    assert_eq!(c.get("/scheduler/jobs/job1").await.json(), job);

    let patched = c
        .patch_json("/scheduler/jobs/job1", json!({"name": "Update DB", "max_instances": 2, "trigger": "cron", "expr": "0 * * * *"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let patched = patched.json();
    assert_eq!(
        (patched["name"].clone(), patched["max_instances"].clone()),
        (json!("Update DB"), json!(2))
    );
    assert_eq!(
        (patched["trigger"].clone(), patched["expr"].clone()),
        (json!("cron"), json!("0 * * * *"))
    );
    assert!(
        patched["next_run_time"]
            .as_str()
            .unwrap()
            .ends_with(":00:00+00:00"),
        "{patched}"
    );

    let deleted = c.delete("/scheduler/jobs/job1").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    let missing = c.get("/scheduler/jobs/job1").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "no schedule with id \"job1\"");
    assert_eq!(c.get("/scheduler/jobs").await.json(), json!([]));
}

async fn job_json_round_trips_time_zone_and_jitter(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let first = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "berlin", "func": "record", "trigger": "cron", "expr": "30 9 * * mon-fri",
                   "timezone": "Europe/Berlin", "jitter": 2.5, "coalesce": false, "misfire_grace_time": null}),
        )
        .await
        .json();
    assert_eq!(first["timezone"], "Europe/Berlin");
    assert_eq!(first["jitter"], 2.5);
    assert_eq!(first["coalesce"], false);
    assert_eq!(first["misfire_grace_time"], Value::Null);
    // What GET shows can be posted back: the same schedule under another id.
    let mut copy = first.clone();
    copy["id"] = json!("berlin-2");
    copy["name"] = json!("berlin-2");
    let second = c.post_json("/scheduler/jobs", copy).await;
    assert_eq!(
        second.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let mut second = second.json();
    second["id"] = json!("berlin");
    second["name"] = json!("berlin");
    assert_eq!(second, first);
}

async fn flask_fields_and_nested_triggers(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let flask = c
        .post_json("/scheduler/jobs", json!({"id": "weekdays", "func": "record", "trigger": "cron", "minute": "*/5", "day_of_week": "mon-fri"}))
        .await;
    assert_eq!(flask.status, StatusCode::OK);
    // The fields come back as sent (APScheduler's canonical text), not as an expression.
    let flask = flask.json();
    assert_eq!(
        (
            flask["minute"].clone(),
            flask["day_of_week"].clone(),
            flask["expr"].clone()
        ),
        (json!("*/5"), json!("mon-fri"), Value::Null)
    );
    let nested = c
        .post_json("/scheduler/jobs", json!({"id": "nested", "job": "record", "trigger": {"trigger": "interval", "minutes": 5}, "next_run_time": null}))
        .await;
    assert_eq!(nested.status, StatusCode::OK);
    let nested = nested.json();
    assert_eq!(
        (
            nested["minutes"].clone(),
            nested["paused"].clone(),
            nested["next_run_time"].clone()
        ),
        (json!(5), json!(true), Value::Null)
    );
    // No trigger: once, now (APScheduler's default). It runs at once and is then done.
    let once = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "once", "func": "record", "kwargs": {"to": "ops"}}),
        )
        .await;
    assert_eq!(once.status, StatusCode::OK);
    let once_json = once.json();
    assert_eq!(
        (once_json["args"].clone(), once_json["kwargs"].clone()),
        (json!([]), json!({"to": "ops"}))
    );
    wait_for(|| f.runs.lock().unwrap().contains(&"once".to_owned())).await;
}

async fn pause_and_resume_a_job(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    c.post_json(
        "/scheduler/jobs",
        json!({"id": "p", "func": "record", "trigger": "interval", "hours": 1}),
    )
    .await;
    let paused = c.post("/scheduler/jobs/p/pause").await;
    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(
        (
            paused.json()["paused"].clone(),
            paused.json()["next_run_time"].clone()
        ),
        (json!(true), Value::Null)
    );
    let resumed = c.post("/scheduler/jobs/p/resume").await;
    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(resumed.json()["paused"], false);
    assert!(resumed.json()["next_run_time"].is_string());
    assert_eq!(
        c.post("/scheduler/jobs/nope/pause").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn run_queues_and_answers_202_before_the_job_ends(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    c.post_json(
        "/scheduler/jobs",
        json!({"id": "g", "func": "gate", "trigger": "interval", "hours": 1}),
    )
    .await;
    let entered = f.gate_entered.notified();
    let reply = c.post("/scheduler/jobs/g/run").await;
    // Answered while the job is still waiting at its gate: it runs on the scheduler.
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json()["id"], "g");
    tokio::time::timeout(Duration::from_secs(10), entered)
        .await
        .expect("the run started");
    let busy = c.post("/scheduler/jobs/g/run").await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(
        busy.error(),
        "schedule \"g\" is already running 1 time(s), its max_instances"
    );
    f.gate.notify_one();
}

async fn malformed_and_unsupported_bodies(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let malformed = c
        .send(
            Method::POST,
            "/scheduler/jobs",
            Some("application/json"),
            Bytes::from_static(b"{\"id\": "),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.error().starts_with("malformed JSON: "),
        "{}",
        malformed.error()
    );
    let form = c
        .send(
            Method::POST,
            "/scheduler/jobs",
            Some("application/x-www-form-urlencoded"),
            Bytes::from_static(b"id=x"),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        form.error(),
        "the request body must be JSON (a form was sent); send it with Content-Type: application/json"
    );
    let untyped = c
        .send(
            Method::POST,
            "/scheduler/jobs",
            None,
            Bytes::from_static(b"{}"),
        )
        .await;
    // Read as JSON, as Flask-APScheduler reads it: here a job without "func".
    assert_eq!(untyped.status, StatusCode::BAD_REQUEST);
    assert!(
        untyped.error().contains("missing \"func\""),
        "{}",
        untyped.error()
    );
    let empty = c.post("/scheduler/jobs").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        empty.error(),
        "invalid job definition: the request body must be a job as a JSON object"
    );
    let not_object = c.post_json("/scheduler/jobs", json!([1])).await;
    assert_eq!(
        not_object.error(),
        "invalid job definition: a job must be a JSON object, got an array"
    );
    let bad_cron = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "c", "func": "record", "trigger": "cron", "expr": "61 * * * *"}),
        )
        .await;
    assert_eq!(bad_cron.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_cron.error(),
        "minute field: 61 is outside 0-59 in \"61 * * * *\""
    );
    let zero = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "z", "func": "record", "trigger": "interval", "seconds": 0}),
        )
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    assert!(
        zero.error()
            .starts_with("invalid interval: the period is zero"),
        "{}",
        zero.error()
    );
    // Below the shortest period, 1 ms: refused, not a scheduler that spins.
    for fields in [json!({"seconds": 1e-9}), json!({"milliseconds": 0.5})] {
        let mut job = json!({"id": "tiny", "func": "record", "trigger": "interval"});
        job.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let tiny = c.post_json("/scheduler/jobs", job).await;
        assert_eq!(tiny.status, StatusCode::BAD_REQUEST, "{fields}");
        assert!(
            tiny.error().contains("shorter than the minimum of 1 ms"),
            "{}",
            tiny.error()
        );
    }
    let typo = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "t", "func": "record", "trigger": "interval", "secs": 5}),
        )
        .await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert!(
        typo.error().contains("unknown field \"secs\""),
        "{}",
        typo.error()
    );
    let grace = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "g", "func": "record", "misfire_grace_time": -1}),
        )
        .await;
    assert_eq!(
        grace.error(),
        "invalid schedule option misfire_grace_time: must be a number of seconds from more than 0 to 3155760000 (36525 days), got -1.0"
    );
    // Beyond the bound, where `Duration::from_secs_f64` would panic: a 400, not a crash.
    for (field, value) in [("misfire_grace_time", 1.9e19), ("jitter", 1.9e19)] {
        let mut job = json!({"id": "huge", "func": "record", "trigger": "interval", "seconds": 5});
        job[field] = json!(value);
        let huge = c.post_json("/scheduler/jobs", job).await;
        assert_eq!(huge.status, StatusCode::BAD_REQUEST, "{field}");
        assert!(huge.error().contains(field), "{}", huge.error());
    }
    // A NUL byte in an id: refused alike on every store, and never sent to one.
    let nul = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "a\u{0}b", "func": "record"}),
        )
        .await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        c.get("/scheduler/jobs/a%00b").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get("/scheduler/jobs").await.json(),
        json!([]),
        "nothing was added"
    );
}

async fn unknown_names_ids_routes_and_methods(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let unknown_job = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "u", "func": "jobs:job1", "trigger": "interval", "seconds": 5}),
        )
        .await;
    assert_eq!(unknown_job.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown_job.error(),
        "no job named \"jobs:job1\" is registered on the scheduler"
    );
    let no_func = c.post_json("/scheduler/jobs", json!({"id": "u"})).await;
    assert_eq!(
        no_func.error(),
        "invalid job definition: missing \"func\": the name of a job registered on the scheduler"
    );
    for (method, path) in [
        (Method::GET, "/scheduler/jobs/ghost"),
        (Method::PATCH, "/scheduler/jobs/ghost"),
        (Method::DELETE, "/scheduler/jobs/ghost"),
        (Method::POST, "/scheduler/jobs/ghost/pause"),
        (Method::POST, "/scheduler/jobs/ghost/resume"),
        (Method::POST, "/scheduler/jobs/ghost/run"),
    ] {
        let body = if method == Method::PATCH {
            Bytes::from_static(b"{\"name\": \"x\"}")
        } else {
            Bytes::new()
        };
        let reply = c
            .send(method.clone(), path, Some("application/json"), body)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.error(), "no schedule with id \"ghost\"");
    }
    let route = c.get("/scheduler/nothing/here").await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.error(), "no route for /scheduler/nothing/here");
    let method = c
        .send(
            Method::PUT,
            "/scheduler/jobs",
            Some("application/json"),
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.headers["allow"], "GET, HEAD, POST");
    assert_eq!(
        method.error(),
        "PUT is not allowed on /scheduler/jobs; allowed: GET, HEAD, POST"
    );
    // Ids with spaces and slashes travel percent-encoded.
    c.post_json(
        "/scheduler/jobs",
        json!({"id": "nightly report/eu", "func": "record", "trigger": "interval", "hours": 1}),
    )
    .await;
    assert_eq!(
        c.get("/scheduler/jobs/nightly%20report%2Feu").await.json()["id"],
        "nightly report/eu"
    );
}

async fn conflicts_and_failed_changes_change_nothing(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let original = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "dup", "func": "record", "trigger": "interval", "seconds": 30}),
        )
        .await
        .json();
    let conflict = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "dup", "func": "record", "trigger": "interval", "seconds": 5}),
        )
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(
        conflict.error(),
        "a schedule with id \"dup\" already exists"
    );
    assert_eq!(c.get("/scheduler/jobs/dup").await.json(), original);
    // A PATCH whose trigger never fires changes neither the trigger nor the options.
    let never = c
        .patch_json(
            "/scheduler/jobs/dup",
            json!({"name": "x", "trigger": "cron", "expr": "0 0 30 2 *"}),
        )
        .await;
    assert_eq!(never.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.get("/scheduler/jobs/dup").await.json(), original);
    let bad = c
        .patch_json(
            "/scheduler/jobs/dup",
            json!({"max_instances": 0, "seconds": 10, "trigger": "interval"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.error(),
        "invalid schedule option max_instances: must be a whole number of at least 1, got 0"
    );
    assert_eq!(c.get("/scheduler/jobs/dup").await.json(), original);
    let id_change = c
        .patch_json("/scheduler/jobs/dup", json!({"id": "other"}))
        .await;
    assert_eq!(
        id_change.error(),
        "invalid job definition: \"id\" cannot be changed with PATCH (an id cannot change)"
    );
    // With replace_existing the new definition wins.
    let replaced = c
        .post_json("/scheduler/jobs", json!({"id": "dup", "func": "record", "trigger": "interval", "seconds": 5, "replace_existing": true}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.json()["seconds"], 5);
}

async fn body_limit(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let big = json!({"id": "big", "func": "record", "args": "x".repeat(70 * 1024)});
    let reply = c.post_json("/scheduler/jobs", big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.error(),
        "the request body is larger than the limit of 65536 bytes"
    );
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN).with_body_limit(100),
    );
    let small = json!({"id": "small", "func": "record", "args": "x".repeat(200)});
    assert_eq!(
        c.post_json("/scheduler/jobs", small).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(c.get("/scheduler/jobs").await.json(), json!([]));
}

async fn bearer_token_auth(framework: Framework) {
    let f = fixture().await;
    let api = Api::with_bearer_token(f.scheduler.clone(), TOKEN);
    for token in [None, Some("wrong"), Some("s3cret-token-and-more")] {
        let c = Client {
            app: app(framework, api.clone()),
            token,
        };
        for (method, path) in [
            (Method::GET, "/scheduler"),
            (Method::GET, "/scheduler/jobs"),
            (Method::POST, "/scheduler/pause"),
        ] {
            let reply = c.send(method.clone(), path, None, Bytes::new()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{token:?} {method} {path}"
            );
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer realm=\"apsched\""
            );
            assert_eq!(reply.error(), "missing or wrong credentials");
        }
    }
    assert_eq!(
        f.scheduler.state(),
        apsched::SchedulerState::Running,
        "nothing was paused"
    );
    let c = client(framework, api);
    assert_eq!(c.get("/scheduler").await.status, StatusCode::OK);
}

async fn callback_auth_read_only_and_no_auth(framework: Framework) {
    let f = fixture().await;
    let api = Api::with_authorizer(f.scheduler.clone(), |parts| {
        parts.headers.get("x-role").is_some_and(|r| r == "ops")
    });
    let c = Client {
        app: app(framework, api.clone()),
        token: None,
    };
    assert_eq!(c.get("/scheduler").await.status, StatusCode::UNAUTHORIZED);
    let reply = (c.app)(
        Request::get("/scheduler")
            .header("x-role", "ops")
            .body(Bytes::new())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status(), StatusCode::OK);

    let read_only = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN).read_only(true),
    );
    assert_eq!(
        read_only.get("/scheduler/jobs").await.status,
        StatusCode::OK
    );
    let refused = read_only
        .post_json("/scheduler/jobs", json!({"id": "r", "func": "record"}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.error(),
        "this scheduler API is read-only: only GET and HEAD are served"
    );
    assert_eq!(
        read_only.delete("/scheduler/jobs/r").await.status,
        StatusCode::FORBIDDEN
    );

    let open = Client {
        app: app(framework, Api::without_auth(f.scheduler.clone())),
        token: None,
    };
    assert_eq!(open.get("/scheduler").await.status, StatusCode::OK);
}

async fn custom_prefix(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN).prefix("/admin/cron/"),
    );
    assert_eq!(c.get("/admin/cron").await.status, StatusCode::OK);
    assert_eq!(c.get("/admin/cron/jobs").await.json(), json!([]));
    let outside = c.get("/scheduler").await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    // At the root.
    let root = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN).prefix("/"),
    );
    assert_eq!(root.get("/").await.status, StatusCode::OK);
    assert_eq!(root.get("/jobs").await.json(), json!([]));
}

async fn overlap_policies_in_job_json(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    let plain = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "p", "func": "record", "trigger": "interval", "hours": 1}),
        )
        .await
        .json();
    assert_eq!(
        plain["overlap"],
        json!({"policy": "skip"}),
        "APScheduler's, by default"
    );
    let named = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "n", "func": "record", "trigger": "interval", "hours": 1, "overlap": "queue_one"}),
        )
        .await
        .json();
    assert_eq!(named["overlap"], json!({"policy": "queue_one"}));
    let object = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "o", "func": "record", "trigger": "interval", "hours": 1,
                   "overlap": {"policy": "queue_all", "limit": 5}}),
        )
        .await
        .json();
    assert_eq!(
        object["overlap"],
        json!({"policy": "queue_all", "limit": 5})
    );
    let changed = c
        .patch_json(
            "/scheduler/jobs/o",
            json!({"overlap": {"policy": "cancel_running", "grace": 2.5}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(
        changed.json()["overlap"],
        json!({"policy": "cancel_running", "grace": 2.5})
    );
    for (overlap, message) in [
        (json!("queue_all"), "\"queue_all\" needs its limit"),
        (json!("sometimes"), "unknown policy \"sometimes\""),
        (
            json!({"policy": "queue_all", "limit": 0}),
            "queue_all's limit must be from 1 to 10000, got 0",
        ),
        (
            json!({"policy": "skip", "limit": 3}),
            "unknown field `limit`",
        ),
        (
            json!({"policy": "cancel_running", "grace": 1e9}),
            "grace must be a number of seconds from 0 to 3600",
        ),
        (json!(7), "expected a policy name or an object"),
    ] {
        let refused = c
            .post_json(
                "/scheduler/jobs",
                json!({"id": "bad", "func": "record", "trigger": "interval", "hours": 1, "overlap": overlap}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{overlap}");
        assert!(
            refused.error().contains(message),
            "{overlap}: {}",
            refused.error()
        );
    }
    assert_eq!(
        c.get("/scheduler/jobs/bad").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn head_is_served_where_get_is(framework: Framework) {
    let f = fixture().await;
    let c = client(
        framework,
        Api::with_bearer_token(f.scheduler.clone(), TOKEN),
    );
    c.post_json(
        "/scheduler/jobs",
        json!({"id": "h", "func": "record", "trigger": "interval", "hours": 1}),
    )
    .await;
    for path in [
        "/scheduler",
        "/scheduler/jobs",
        "/scheduler/jobs/h",
        "/scheduler/jobs/h/runs",
        "/scheduler/openapi.json",
    ] {
        let get = c.get(path).await;
        let head = c.send(Method::HEAD, path, None, Bytes::new()).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(
            head.headers["content-length"],
            get.body.len().to_string().as_str(),
            "HEAD {path} says how long GET's body is"
        );
        assert_eq!(head.headers["content-type"], "application/json");
    }
    let missing = c
        .send(Method::HEAD, "/scheduler/jobs/ghost", None, Bytes::new())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Not where GET is not.
    let head_on_post = c
        .send(Method::HEAD, "/scheduler/pause", None, Bytes::new())
        .await;
    assert_eq!(head_on_post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head_on_post.headers["allow"], "POST");
}

async fn openapi_document(framework: Framework) {
    let f = fixture().await;
    // Served without credentials: it describes the API, and tools read it before a token.
    let c = Client {
        app: app(
            framework,
            Api::with_bearer_token(f.scheduler.clone(), TOKEN).prefix("/admin/cron"),
        ),
        token: None,
    };
    let reply = c.get("/admin/cron/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/cron",
        "/admin/cron/pause",
        "/admin/cron/jobs",
        "/admin/cron/jobs/{id}",
        "/admin/cron/jobs/{id}/run",
        "/admin/cron/jobs/{id}/runs",
    ] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    assert!(paths["/admin/cron/jobs"]["post"].is_object());
    assert!(paths["/admin/cron/jobs/{id}"]["patch"].is_object());
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    let job = &doc["components"]["schemas"]["JobJson"];
    for key in [
        "id",
        "func",
        "args",
        "kwargs",
        "next_run_time",
        "misfire_grace_time",
    ] {
        assert!(
            job.to_string().contains(&format!("\"{key}\"")),
            "{key} in {job}"
        );
    }
    // The rest still needs the token.
    assert_eq!(
        c.get("/admin/cron/jobs").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A store whose writes fail with a message that must not reach a client.
#[derive(Debug, Default)]
struct FailingStore;

#[async_trait::async_trait]
impl apsched::store::JobStore for FailingStore {
    async fn list(&self) -> apsched::Result<Vec<apsched::Schedule>> {
        Ok(Vec::new())
    }
    async fn add(&self, _: &apsched::Schedule, _: bool) -> apsched::Result<()> {
        Err(apsched::Error::Store(
            "connection to postgres://admin:hunter2@db.internal refused".into(),
        ))
    }
    async fn update(&self, _: &apsched::Schedule) -> apsched::Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> apsched::Result<()> {
        Ok(())
    }
    async fn remove_all(&self) -> apsched::Result<()> {
        Ok(())
    }
    async fn set_next_run_times(
        &self,
        _: &[(Arc<str>, Option<chrono::DateTime<chrono::Utc>>)],
    ) -> apsched::Result<()> {
        Ok(())
    }
}

async fn store_failures_answer_without_their_text(framework: Framework) {
    let scheduler = Scheduler::builder()
        .store(FailingStore)
        .job("record", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap();
    let c = client(framework, Api::with_bearer_token(scheduler.clone(), TOKEN));
    let reply = c
        .post_json(
            "/scheduler/jobs",
            json!({"id": "x", "func": "record", "trigger": "interval", "seconds": 5}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply.error();
    assert_eq!(
        message,
        "internal error: the scheduler or its store failed; the server's log has the details"
    );
    assert!(!reply.body.windows(7).any(|w| w == b"hunter2"));
    assert_eq!(c.get("/scheduler/jobs").await.json(), json!([]));
}

/// axum users mount the API as a service behind their own tower layers.
#[tokio::test]
async fn axum_nest_service_behind_layers() {
    use http_body_util::BodyExt;
    use tower::{ServiceBuilder, ServiceExt};
    let f = fixture().await;
    let api = Api::with_bearer_token(f.scheduler.clone(), TOKEN).prefix("/");
    let layered = ServiceBuilder::new()
        .concurrency_limit(4)
        .map_response(|mut response: http::Response<apsched::api::ApiBody>| {
            response
                .headers_mut()
                .insert("x-layer", http::HeaderValue::from_static("yes"));
            response
        })
        .service(api);
    let app: axum::Router = axum::Router::new().nest_service("/scheduler", layered);
    let request = Request::post("/scheduler/jobs")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::from(
            json!({"id": "n", "func": "record", "trigger": "interval", "hours": 1}).to_string(),
        ))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-layer"], "yes");
    let request = Request::get("/scheduler/jobs/n")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let job: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(job["id"], "n");
    assert_eq!(job["hours"], 1);
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}
