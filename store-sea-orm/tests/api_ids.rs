//! Ids through the REST API on every store: an id no schedule can have (a NUL byte, a control
//! character, empty, over 191 bytes, not UTF-8) is refused or not found alike on SQLite,
//! PostgreSQL and MariaDB, never a 500 with the database's text, and never reaches the
//! database; an id that can exist (spaces, slashes, any script) round-trips through each.

#[macro_use]
mod support;

use std::time::Duration;

use apsched::api::Api;
use apsched::{JobContext, Scheduler};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use store_sea_orm::StoreOptions;
use support::{Backend, fresh_store, server_url};
use tower::ServiceExt;

on_backends!(
    [sqlite => Sqlite, postgres => Postgres, mysql => MySql]:
    ids_are_judged_alike_on_every_store,
);

async fn send(api: &Api, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body))
        .unwrap();
    let Ok(response) = api.clone().oneshot(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, json)
}

async fn ids_are_judged_alike_on_every_store(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let store = fresh_store(backend, &server, StoreOptions::default()).await;
    let scheduler = Scheduler::builder()
        .shared_store(store)
        .job("noop", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap();
    let api = Api::without_auth(scheduler.clone());
    let long = "x".repeat(192);
    for id in ["a\u{0}b", "tab\there", "", long.as_str()] {
        let (status, answer) = send(
            &api,
            Method::POST,
            "/scheduler/jobs",
            Some(json!({"id": id, "func": "noop", "trigger": "interval", "hours": 1})),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{test}: add {id:?}: {answer}"
        );
        assert!(
            answer["error_message"].as_str().unwrap().contains("id"),
            "{test}: {answer}"
        );
    }
    let encoded_long = long.clone();
    for path_id in ["a%00b", "tab%09here", "%FF%FE", encoded_long.as_str()] {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::PATCH, ""),
            (Method::DELETE, ""),
            (Method::POST, "/pause"),
            (Method::POST, "/resume"),
            (Method::POST, "/run"),
            (Method::GET, "/runs"),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
            let path = format!("/scheduler/jobs/{path_id}{suffix}");
            let (status, answer) = send(&api, method.clone(), &path, body).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{test}: {method} {path}: {answer}"
            );
        }
    }
    let (status, jobs) = send(&api, Method::GET, "/scheduler/jobs", None).await;
    assert_eq!(
        (status, jobs),
        (StatusCode::OK, json!([])),
        "{test}: nothing added"
    );

    // Ids that can exist, up to the limit, round-trip through the database.
    let longest = "é".repeat(95); // 190 bytes
    for id in [
        "nightly report/eu",
        "報告-日次",
        "emoji 🕐",
        longest.as_str(),
    ] {
        let (status, answer) = send(
            &api,
            Method::POST,
            "/scheduler/jobs",
            Some(json!({"id": id, "func": "noop", "trigger": "interval", "hours": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{test}: add {id:?}: {answer}");
        let path: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
        let (status, job) = send(&api, Method::GET, &format!("/scheduler/jobs/{path}"), None).await;
        assert_eq!(status, StatusCode::OK, "{test}: get {id:?}: {job}");
        assert_eq!(job["id"], id, "{test}");
    }
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();
}
