//! The tables, created by a sea-orm migration under the store's table prefix.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, DynIden};
use sea_orm_migration::MigratorTraitSelf;
use sea_orm_migration::prelude::*;

use crate::sql::{Dialect, UNFINISHED_CONDITION, WAITING_CONDITION};

/// Applies the migrations. Instances that start together race to create the tables, and the
/// loser's statements fail on what the winner made; a retry finds the winner's work recorded.
pub(crate) async fn migrate(db: &DatabaseConnection, prefix: &str) -> Result<(), DbErr> {
    let migrator = Migrator {
        prefix: prefix.to_owned(),
    };
    let mut delay = Duration::from_millis(100);
    for _ in 0..4 {
        match migrator.up(db, None).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::debug!(%error, "migration failed; another instance may be migrating, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    migrator.up(db, None).await
}

/// The store's migrations, for one table prefix; applied ones are recorded in
/// `<prefix>migrations`.
pub(crate) struct Migrator {
    pub(crate) prefix: String,
}

impl MigratorTraitSelf for Migrator {
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTables {
                prefix: self.prefix.clone(),
            }),
            Box::new(AddOverlap {
                prefix: self.prefix.clone(),
            }),
            Box::new(IndexFiresForChurn {
                prefix: self.prefix.clone(),
            }),
        ]
    }

    fn migration_table_name(&self) -> DynIden {
        Alias::new(format!("{}migrations", self.prefix)).into_iden()
    }
}

struct CreateTables {
    prefix: String,
}

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261129_000001_create_schedules_and_fires"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    // The trait elides this lifetime; naming it (`<'_>`) changes how async_trait binds it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let dialect = Dialect::of(connection.get_database_backend());
        for statement in create_tables(dialect, &self.prefix) {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}

/// Overlap policies: a schedule's policy, and a live fire's cancellation request.
struct AddOverlap {
    prefix: String,
}

impl MigrationName for AddOverlap {
    fn name(&self) -> &str {
        "m20261207_000002_add_overlap"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddOverlap {
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let dialect = Dialect::of(connection.get_database_backend());
        let text = if dialect == Dialect::MySql {
            "LONGTEXT"
        } else {
            "TEXT"
        };
        let p = &self.prefix;
        // Each column only if it is not there yet: an instance that raced another, or died
        // half-way, runs this again.
        for (table, column, kind) in [
            ("schedules", "overlap", text),
            ("fires", "cancel_at", "BIGINT"),
        ] {
            if !manager.has_column(&format!("{p}{table}"), column).await? {
                connection
                    .execute_unprepared(&format!(
                        "ALTER TABLE {p}{table} ADD COLUMN {column} {kind}"
                    ))
                    .await?;
            }
        }
        Ok(())
    }
}

/// Indexes that stay small and true while fires churn. The first schema's index of live
/// fires led with their state: on PostgreSQL every run leaves its claimed and running
/// versions in it until vacuum, bitmap scans never clear them, and the planner, counting live
/// fires as few, read that index for any query naming a state. At 10,000 fires a second a
/// claim's count of its schedules' live fires took 40 ms and growing instead of under one.
/// There it gives way to partial indexes: leased fires by lease end, unfinished fires by
/// schedule, and waiting fires. MySQL, which has no partial indexes and purges old versions
/// on its own, keeps it and gains the index by schedule.
struct IndexFiresForChurn {
    prefix: String,
}

impl MigrationName for IndexFiresForChurn {
    fn name(&self) -> &str {
        "m20261207_000003_index_fires_for_churn"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IndexFiresForChurn {
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let p = &self.prefix;
        let statements = match Dialect::of(connection.get_database_backend()) {
            Dialect::Postgres | Dialect::Sqlite => vec![
                format!(
                    "CREATE INDEX IF NOT EXISTS {p}fires_leased ON {p}fires (lease_until) \
                     WHERE lease_until IS NOT NULL"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {p}fires_unfinished ON {p}fires \
                     (schedule_id, state) WHERE {UNFINISHED_CONDITION}"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {p}fires_waiting ON {p}fires (schedule_id) \
                     WHERE {WAITING_CONDITION}"
                ),
                format!("DROP INDEX IF EXISTS {p}fires_live"),
            ],
            // No CREATE INDEX IF NOT EXISTS: an instance that raced another runs this again.
            Dialect::MySql
                if manager
                    .has_index(&format!("{p}fires"), &format!("{p}fires_unfinished"))
                    .await? =>
            {
                vec![]
            }
            Dialect::MySql => vec![format!(
                "CREATE INDEX {p}fires_unfinished ON {p}fires (schedule_id, state)"
            )],
        };
        for statement in statements {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}

/// The schema, for a table prefix. Every statement can run again after a partial run:
/// instances that start together race to create the tables, and MySQL commits each DDL
/// statement on its own.
fn create_tables(dialect: Dialect, p: &str) -> Vec<String> {
    // MySQL's TEXT holds 64 KiB, and INSERT IGNORE would cut a longer value silently.
    let (auto_id, key, text) = match dialect {
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "VARCHAR(191)", "TEXT"),
        Dialect::MySql => (
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "VARCHAR(191)",
            "LONGTEXT",
        ),
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"),
    };
    let indexes = [
        ("schedules", "schedules_next", "next_run_time"),
        ("schedules", "schedules_due", "due_time"),
        ("fires", "fires_live", "state, lease_until"),
    ];
    // MySQL has no CREATE INDEX IF NOT EXISTS: there the indexes go inside CREATE TABLE.
    let inline = |table: &str| -> String {
        if dialect != Dialect::MySql {
            return String::new();
        }
        indexes
            .iter()
            .filter(|(t, _, _)| *t == table)
            .map(|(_, name, columns)| format!(",\n                INDEX {p}{name} ({columns})"))
            .collect()
    };
    let schedules = format!(
        "CREATE TABLE IF NOT EXISTS {p}schedules (
            id {key} NOT NULL PRIMARY KEY,
            name {text} NOT NULL,
            job {key},
            args {text} NOT NULL,
            trigger_spec {text} NOT NULL,
            misfire_grace_ms BIGINT,
            coalesce_fires BOOLEAN NOT NULL,
            max_instances INTEGER NOT NULL,
            paused BOOLEAN NOT NULL,
            at_most_once BOOLEAN NOT NULL,
            next_run_time BIGINT,
            due_time BIGINT,
            paused_from BIGINT,
            version BIGINT NOT NULL{}
        )",
        inline("schedules")
    );
    let fires = format!(
        "CREATE TABLE IF NOT EXISTS {p}fires (
            id {auto_id},
            schedule_id {key} NOT NULL,
            job {key},
            claim {text},
            nominal_time BIGINT NOT NULL,
            state VARCHAR(16) NOT NULL,
            reason {text},
            owner {key},
            epoch BIGINT NOT NULL,
            attempt INTEGER NOT NULL,
            lease_until BIGINT,
            claimed_at BIGINT,
            started_at BIGINT,
            finished_at BIGINT,
            error {text},
            UNIQUE (schedule_id, nominal_time){}
        )",
        inline("fires")
    );
    let mut statements = vec![schedules, fires];
    if dialect != Dialect::MySql {
        statements.extend(indexes.iter().map(|(table, name, columns)| {
            format!("CREATE INDEX IF NOT EXISTS {p}{name} ON {p}{table} ({columns})")
        }));
    }
    statements
}
