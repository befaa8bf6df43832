//! The store conformance suite from scheduler-core, on each backend.

mod support;

use store_sea_orm::StoreOptions;
use support::{Backend, fresh_store, server_url};

async fn conforms(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    scheduler_core::store::conformance::run(|| {
        fresh_store(backend, &server, StoreOptions::default())
    })
    .await;
}

#[tokio::test]
async fn sqlite_conforms() {
    conforms(Backend::Sqlite, "sqlite_conforms").await;
}

#[tokio::test]
async fn postgres_conforms() {
    conforms(Backend::Postgres, "postgres_conforms").await;
}

#[tokio::test]
async fn mysql_conforms() {
    conforms(Backend::MySql, "mysql_conforms").await;
}
