//! Hostile input, thrown at the API service: arbitrary methods, paths (percent-encoded bytes,
//! NUL, invalid UTF-8), content types, and JSON bodies built from the job dict's own keys with
//! values of every kind and size. Whatever arrives, the service answers (never panics, never
//! 500 on a store that cannot fail), every error is JSON with a message, and a request that
//! fails changes nothing.

use std::time::Duration;

use apsched::api::Api;
use apsched::trigger::{CronTrigger, IntervalTrigger};
use apsched::{JobContext, NewSchedule, Scheduler, SchedulerHandle};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const KEYS: &[&str] = &[
    "id",
    "name",
    "func",
    "job",
    "args",
    "kwargs",
    "next_run_time",
    "misfire_grace_time",
    "coalesce",
    "max_instances",
    "replace_existing",
    "paused",
    "at_most_once",
    "trigger",
    "type",
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "milliseconds",
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
    "expr",
    "run_date",
    "start_date",
    "end_date",
    "timezone",
    "jitter",
    "triggers",
    "wait",
    "deadline_seconds",
    "overlap",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(vec![
            0.0,
            -1.0,
            1e-9,
            0.001,
            0.5,
            1.0,
            30.0,
            59.0,
            60.0,
            3600.0,
            1.85e19,
            1.9e19,
            1e300,
            -1e300,
            3_155_760_000.0,
            3_155_760_001.0,
        ])
        .prop_map(Value::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "",
            "now",
            "noop",
            "interval",
            "cron",
            "date",
            "or",
            "and",
            "*/5",
            "9 1",
            "1, 6",
            "mon-fri",
            "mon-fri/2",
            "last",
            "L-2",
            "5#3",
            "61",
            "*/0",
            "2030-01-01",
            "2030-01-01T09:00:00",
            "2030-01-01T09:00:00+01:00",
            "1 June 2030",
            "Europe/Berlin",
            "Mars/Olympus",
            "0 0 30 2 *",
            "*/5 * * * *",
            "0 0 12 ? * MON-FRI",
            "a\u{0}b",
            "seed-interval",
            "seed-cron",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,16}",
        ".{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A value of the kind the field takes, mostly; anything at all sometimes.
fn field() -> impl Strategy<Value = (String, Value)> {
    key().prop_flat_map(|key| {
        let fitting: BoxedStrategy<Value> = match key.as_str() {
            "weeks" | "days" | "hours" | "minutes" | "seconds" | "milliseconds" | "jitter"
            | "misfire_grace_time" | "max_instances" | "deadline_seconds" => number().boxed(),
            "coalesce" | "replace_existing" | "paused" | "at_most_once" | "wait" => {
                any::<bool>().prop_map(Value::from).boxed()
            }
            "func" | "job" => Just(Value::from("noop")).boxed(),
            "overlap" => prop_oneof![
                proptest::sample::select(vec!["skip", "queue_one", "allow_all", "queue_all", "x"])
                    .prop_map(Value::from),
                (
                    proptest::sample::select(vec!["queue_all", "cancel_running", "skip", "nope"]),
                    number(),
                    any::<bool>(),
                )
                    .prop_map(|(policy, n, limit)| {
                        let key = if limit { "limit" } else { "grace" };
                        serde_json::json!({"policy": policy, key: n})
                    }),
            ]
            .boxed(),
            "args" | "kwargs" | "triggers" => json_value().boxed(),
            "year" | "month" | "day" | "week" | "day_of_week" | "hour" | "minute" | "second" => {
                prop_oneof![
                    text().prop_map(Value::from),
                    (0u64..70).prop_map(Value::from),
                ]
                .boxed()
            }
            _ => text().prop_map(Value::from).boxed(),
        };
        let key = Just(key);
        prop_oneof![3 => (key.clone(), fitting), 1 => (key, json_value())]
    })
}

/// A body that often looks like a job dict: known keys, a registered job, a trigger kind.
fn body() -> impl Strategy<Value = Option<Bytes>> {
    let job = (
        proptest::collection::vec(field(), 0..8),
        any::<bool>(),
        proptest::option::of(proptest::sample::select(vec![
            "interval", "cron", "date", "or", "and", "weekly",
        ])),
    )
        .prop_map(|(pairs, registered, kind)| {
            let mut map: Map<String, Value> = pairs.into_iter().collect();
            if registered {
                map.insert("func".into(), "noop".into());
            }
            if let Some(kind) = kind {
                map.insert("trigger".into(), kind.into());
            }
            Bytes::from(Value::Object(map).to_string())
        });
    prop_oneof![
        2 => Just(None),
        5 => job.prop_map(Some),
        1 => json_value().prop_map(|v| Some(Bytes::from(v.to_string()))),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Some(Bytes::from(b))),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "jobs",
            "seed-interval",
            "seed-cron",
            "ghost",
            "pause",
            "run",
            "runs",
            "openapi.json",
            "shutdown",
            "%00",
            "a%00b",
            "%FF",
            "%E2%82",
            "%2F",
            "..",
            ".",
            "%",
            "%zz",
            "jobs%2Fx",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9._~-]{1,12}",
        proptest::collection::vec(any::<u8>(), 1..6)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect()),
    ]
}

/// Mostly the API's own routes, an id slot filled with anything; sometimes any path at all.
/// (`/scheduler/resume` and `/start` are left out: they take no input, and a resumed
/// scheduler would fire schedules between a request and its snapshot.)
fn path_and_method() -> impl Strategy<Value = (String, Method)> {
    let id = prop_oneof![
        3 => proptest::sample::select(vec!["seed-interval", "seed-cron", "ghost"]).prop_map(str::to_owned),
        2 => segment(),
    ];
    let route = (
        proptest::sample::select(ROUTES),
        id,
        any::<proptest::sample::Index>(),
        any::<bool>(),
        method(),
    )
        .prop_map(|((template, methods), id, pick, usual, other)| {
            // Mostly a method the route takes.
            let method = if usual {
                methods[pick.index(methods.len())].clone()
            } else {
                other
            };
            (
                format!("/scheduler{}", template.replace("{id}", &id)),
                method,
            )
        });
    let anything = (
        prop_oneof![
            8 => Just("/scheduler"),
            1 => Just("/elsewhere"),
            1 => Just("/schedulerx"),
        ],
        proptest::collection::vec(segment(), 0..4),
    )
        .prop_map(|(prefix, segments)| {
            let mut path = prefix.to_owned();
            for segment in segments {
                path.push('/');
                path.push_str(&segment);
            }
            path
        });
    let anything = (anything, method());
    (
        prop_oneof![4 => route, 1 => anything],
        proptest::option::of(prop_oneof![
            Just("limit=5".to_owned()),
            Just("limit=0".to_owned()),
            Just("limit=%FF".to_owned()),
            "[a-z=&%0-9]{0,12}",
        ]),
    )
        .prop_map(|((path, method), query)| match query {
            Some(query) => (format!("{path}?{query}"), method),
            None => (path, method),
        })
}

const ROUTES: &[(&str, &[Method])] = &[
    ("", &[Method::GET, Method::HEAD]),
    ("/jobs", &[Method::GET, Method::POST]),
    ("/jobs", &[Method::POST]),
    ("/jobs", &[Method::POST]),
    ("/jobs/{id}", &[Method::GET, Method::PATCH, Method::DELETE]),
    ("/jobs/{id}", &[Method::PATCH]),
    ("/jobs/{id}", &[Method::PATCH]),
    ("/jobs/{id}/pause", &[Method::POST]),
    ("/jobs/{id}/resume", &[Method::POST]),
    ("/jobs/{id}/run", &[Method::POST]),
    ("/jobs/{id}/runs", &[Method::GET, Method::HEAD]),
    ("/pause", &[Method::POST]),
    ("/shutdown", &[Method::POST]),
    ("/openapi.json", &[Method::GET]),
];

fn method() -> impl Strategy<Value = Method> {
    proptest::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::POST,
        Method::POST,
        Method::PATCH,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
        Method::OPTIONS,
    ])
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(proptest::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "nonsense",
    ]))
}

#[derive(Clone, Debug)]
struct Hostile {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Bytes>,
}

fn request() -> impl Strategy<Value = Hostile> {
    (path_and_method(), content_type(), body()).prop_map(|((path, method), content_type, body)| {
        Hostile {
            method,
            path,
            content_type,
            body,
        }
    })
}

/// A scheduler with two schedules, paused as a whole so that nothing fires and a snapshot
/// changes only through the API.
async fn scheduler() -> SchedulerHandle {
    let handle = Scheduler::builder()
        .job("noop", |_ctx: JobContext| async {})
        .timezone("Europe/Berlin")
        .unwrap()
        .build()
        .start()
        .await
        .unwrap();
    handle.pause_all().await.unwrap();
    handle
        .add(
            NewSchedule::for_job(
                "noop",
                IntervalTrigger::every(Duration::from_secs(3600)).unwrap(),
            )
            .id("seed-interval"),
        )
        .await
        .unwrap();
    handle
        .add(
            NewSchedule::for_job("noop", CronTrigger::new("0 9 * * mon-fri").unwrap())
                .id("seed-cron"),
        )
        .await
        .unwrap();
    handle
}

/// What a failed request must leave as it was.
async fn snapshot(handle: &SchedulerHandle) -> (String, Value) {
    let state = format!("{:?}", handle.state());
    let jobs = match handle.list().await {
        Ok(jobs) => jobs
            .iter()
            .map(|s| {
                serde_json::to_value(apsched::api::JobJson::new(s, handle.timezone())).unwrap()
            })
            .collect(),
        Err(error) => json!(error.to_string()),
    };
    (state, jobs)
}

async fn send(
    api: &Api,
    hostile: &Hostile,
) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let mut builder = Request::builder()
        .method(hostile.method.clone())
        .uri(&hostile.path)
        .header("authorization", "Bearer token");
    if let Some(content_type) = hostile.content_type {
        builder = builder.header("content-type", content_type);
    }
    let request = builder
        .body(Full::new(hostile.body.clone().unwrap_or_default()))
        .map_err(|e| format!("not a request: {e}"))?;
    let Ok(response) = api.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[test]
fn hostile_requests_are_answered_and_change_nothing_when_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(request(), 1..5);
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    runner
        .run(&strategy, |requests| {
            runtime.block_on(async {
                let handle = scheduler().await;
                let api = Api::with_bearer_token(handle.clone(), "token");
                for hostile in &requests {
                    let before = snapshot(&handle).await;
                    let (status, headers, body) = match send(&api, hostile).await {
                        Ok(answer) => answer,
                        // `http` refused to build it: nothing a client can send.
                        Err(_) => continue,
                    };
                    *statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
                    let what = format!("{} {} -> {status}", hostile.method, hostile.path);
                    prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", what);
                    if hostile.method == Method::HEAD {
                        prop_assert!(body.is_empty(), "{}: HEAD with a body", what);
                        continue;
                    }
                    if status.is_client_error() || status.is_server_error() {
                        prop_assert_eq!(
                            headers.get("content-type").map(|v| v.as_bytes()),
                            Some(&b"application/json"[..]),
                            "{}",
                            &what
                        );
                        let json: Value = serde_json::from_slice(&body)
                            .map_err(|e| TestCaseError::fail(format!("{what}: not JSON: {e}")))?;
                        let message = json["error_message"].as_str().unwrap_or_default();
                        prop_assert!(
                            !message.is_empty(),
                            "{}: no error_message in {}",
                            what,
                            json
                        );
                        let after = snapshot(&handle).await;
                        prop_assert_eq!(&before, &after, "{}: {} changed something", what, message);
                    } else if !body.is_empty() {
                        serde_json::from_slice::<Value>(&body)
                            .map_err(|e| TestCaseError::fail(format!("{what}: not JSON: {e}")))?;
                    }
                }
                handle.shutdown(Duration::ZERO).await.ok();
                Ok(())
            })
        })
        .unwrap();
    let statuses = statuses.into_inner();
    eprintln!("answers by status: {statuses:?}");
    // The generator reaches past the first checks: some requests succeed, some are refused
    // for their content (400), not only for their route.
    for status in [200, 202, 204, 400, 404, 405, 415] {
        assert!(
            statuses.contains_key(&status),
            "no {status} in {statuses:?}"
        );
    }
}
