//! Fresh databases for the store's tests: a temporary SQLite file, a new PostgreSQL schema, a
//! new MariaDB/MySQL database. The server URLs come from TEST_POSTGRES_URL and TEST_MYSQL_URL;
//! without them a test says it was skipped, unless REQUIRE_SERVICES=1 makes that a failure.

#![allow(dead_code, unreachable_pub, unused_macros)] // each test file uses part of this

/// One `#[tokio::test]` per backend for each named `async fn(Backend, &str)`:
/// `on_backends!([sqlite => Sqlite, postgres => Postgres]: a_test, another_test)` makes
/// `a_test::sqlite`, `a_test::postgres`, ...
macro_rules! on_backends {
    (@one [$($backend:ident => $variant:ident),* $(,)?] $name:ident) => {
        mod $name {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $backend() {
                    super::$name(
                        Backend::$variant,
                        concat!(stringify!($name), "::", stringify!($backend)),
                    )
                    .await;
                }
            )*
        }
    };
    ($backends:tt: $($name:ident),* $(,)?) => {
        $(on_backends!(@one $backends $name);)*
    };
}

use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use store_sea_orm::{Store, StoreOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

fn unique_name() -> String {
    format!("apsched_t_{}", uuid::Uuid::new_v4().simple())
}

/// The server URL for a backend, or `None` when the test should be skipped.
pub fn server_url(backend: Backend, test: &str) -> Option<String> {
    let variable = match backend {
        Backend::Sqlite => return Some(String::new()),
        Backend::Postgres => "TEST_POSTGRES_URL",
        Backend::MySql => "TEST_MYSQL_URL",
    };
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: {variable} is not set, and REQUIRE_SERVICES=1 requires the server"
            );
            println!("{test}: skipped: {variable} is not set");
            None
        }
    }
}

/// A URL for a fresh, empty database of `backend` (a new file, schema or database).
pub async fn fresh_url(backend: Backend, server: &str) -> String {
    let name = unique_name();
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("apsched-store-tests");
            std::fs::create_dir_all(&dir).unwrap();
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            )
        }
        Backend::Postgres => {
            let admin = Database::connect(server)
                .await
                .expect("connect to PostgreSQL");
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {name}"))
                .await
                .unwrap();
            admin.close().await.unwrap();
            let separator = if server.contains('?') { '&' } else { '?' };
            format!("{server}{separator}options=-c%20search_path%3D{name}")
        }
        Backend::MySql => {
            let admin = Database::connect(server).await.expect("connect to MariaDB");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            admin.close().await.unwrap();
            let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
            format!("{base}/{name}")
        }
    }
}

/// A store on a fresh database.
pub async fn fresh_store(backend: Backend, server: &str, options: StoreOptions) -> Store {
    let url = fresh_url(backend, server).await;
    let mut connect = ConnectOptions::new(url);
    connect.sqlx_logging(false).max_connections(10);
    let db = Database::connect(connect)
        .await
        .expect("connect to the fresh database");
    Store::from_connection(db, options).await.expect("migrate")
}
