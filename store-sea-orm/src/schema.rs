//! The tables, created by a sea-orm migration under the store's table prefix.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, DynIden};
use sea_orm_migration::MigratorTraitSelf;
use sea_orm_migration::prelude::*;

use crate::dialect::Dialect;

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
        vec![Box::new(CreateTables {
            prefix: self.prefix.clone(),
        })]
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
        for statement in dialect.create_tables(&self.prefix) {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}
