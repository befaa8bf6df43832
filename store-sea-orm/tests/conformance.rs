//! The shared-store conformance suite from scheduler-core, on each backend.

mod support;

use std::time::Duration;

use store_sea_orm::StoreOptions;
use support::{Backend, fresh_store, server_url};

async fn conforms(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    scheduler_core::store::conformance::shared::run(|lease| {
        let options = StoreOptions::default()
            .lease(lease)
            .poll_interval(Duration::from_millis(100));
        fresh_store(backend, &server, options)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    conforms(Backend::Sqlite, "sqlite_conforms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    conforms(Backend::Postgres, "postgres_conforms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_conforms() {
    conforms(Backend::MySql, "mysql_conforms").await;
}
