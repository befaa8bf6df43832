//! The database: the `my_data` table, its migration, and the two queries the demo makes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr,
    EntityTrait, QueryOrder, QuerySelect, SqlErr,
};
use sea_orm_migration::MigratorTrait;

/// The article's `MyData` model, plus the fire time each row was written for.
pub mod my_data {
    use sea_orm::entity::prelude::*;

    /// One database update.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "my_data")]
    pub struct Model {
        /// Row id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// `Data updated at <time>`.
        pub value: String,
        /// When the row was written.
        pub timestamp: DateTimeUtc,
        /// The scheduled fire time the row is for; unique, so a repeated run of one fire
        /// cannot write twice.
        #[sea_orm(unique)]
        pub nominal_time: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migrations, run at start.
pub mod migration {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::{big_pk_auto, string, timestamp_with_time_zone};

    /// Applies the demo's migrations.
    #[derive(Debug)]
    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateMyData)]
        }
    }

    struct CreateMyData;

    impl MigrationName for CreateMyData {
        fn name(&self) -> &str {
            "m20261129_000001_create_my_data"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateMyData {
        // The trait elides this lifetime; naming it (`<'_>`) changes how async_trait binds it.
        #[allow(elided_lifetimes_in_paths)]
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(MyData::Table)
                        .if_not_exists()
                        .col(big_pk_auto(MyData::Id))
                        .col(string(MyData::Value))
                        .col(timestamp_with_time_zone(MyData::Timestamp))
                        .col(timestamp_with_time_zone(MyData::NominalTime).unique_key())
                        .to_owned(),
                )
                .await
        }
    }

    #[derive(DeriveIden)]
    enum MyData {
        Table,
        Id,
        Value,
        Timestamp,
        NominalTime,
    }
}

/// Connects and brings the schema up to date. A SQLite file is created if missing.
///
/// # Errors
///
/// The database's error: unreachable, refused, or a migration that failed.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
        format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_owned()
    };
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    // Instances started together race to create the table; the loser's attempt fails on the
    // winner's table, and a retry finds the migration recorded.
    let mut delay = Duration::from_millis(100);
    for _ in 0..4 {
        if migration::Migrator::up(&db, None).await.is_ok() {
            return Ok(db);
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    migration::Migrator::up(&db, None).await?;
    Ok(db)
}

/// Writes the row for one fire; `false` when that fire already has its row.
///
/// # Errors
///
/// The database's error.
pub async fn record_update(
    db: &DatabaseConnection,
    nominal_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = my_data::ActiveModel {
        value: Set(format!(
            "Data updated at {}",
            nominal_time.format("%Y-%m-%d %H:%M:%S")
        )),
        timestamp: Set(now),
        nominal_time: Set(nominal_time),
        ..Default::default()
    };
    // The unique key refusing the row is the answer "already written". (An upsert's affected
    // row count cannot say it on MySQL, which counts a matched duplicate as affected.)
    match my_data::Entity::insert(row)
        .exec_without_returning(db)
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// The latest `limit` rows, newest first.
///
/// # Errors
///
/// The database's error.
pub async fn latest(db: &DatabaseConnection, limit: u64) -> Result<Vec<my_data::Model>, DbErr> {
    my_data::Entity::find()
        .order_by_desc(my_data::Column::NominalTime)
        .order_by_desc(my_data::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Whether the database answers.
///
/// # Errors
///
/// The database's error.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared("SELECT 1").await.map(drop)
}
