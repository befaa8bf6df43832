//! The SQL that differs between SQLite, PostgreSQL and MariaDB/MySQL.

use sea_orm::{DbBackend, Statement, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::Postgres,
            DbBackend::MySql => Self::MySql,
            _ => Self::Sqlite,
        }
    }

    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Self::Sqlite => DbBackend::Sqlite,
            Self::Postgres => DbBackend::Postgres,
            Self::MySql => DbBackend::MySql,
        }
    }

    /// A statement written with `?` placeholders, numbered (`$1`, `$2`, ...) for PostgreSQL.
    pub(crate) fn statement(self, sql: &str, values: Vec<Value>) -> Statement {
        let sql = if self == Self::Postgres {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push('$');
                    numbered.push_str(&n.to_string());
                } else {
                    numbered.push(c);
                }
            }
            numbered
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// The database's clock, in microseconds since the Unix epoch: due times are judged by it,
    /// so the instances' own clocks may disagree without harm.
    pub(crate) fn now_micros(self) -> &'static str {
        match self {
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
            Self::MySql => "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
        }
    }

    /// Row locks that other instances skip instead of waiting for. SQLite has one writer at a
    /// time and no row locks: there a version compare-and-set does the same job.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Self::Postgres | Self::MySql => " FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }

    /// `INSERT` of `rows` (`(?, ?), (?, ?)`) that skips a row whose unique key is taken.
    pub(crate) fn insert_ignore(self, table: &str, columns: &str, rows: &str) -> String {
        match self {
            Self::MySql => format!("INSERT IGNORE INTO {table} ({columns}) VALUES {rows}"),
            Self::Postgres | Self::Sqlite => {
                format!("INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING")
            }
        }
    }

    /// The schema, for a table prefix.
    pub(crate) fn create_tables(self, p: &str) -> Vec<String> {
        let (auto_id, text_key) = match self {
            Self::Postgres => ("BIGSERIAL PRIMARY KEY", "VARCHAR(191)"),
            Self::MySql => ("BIGINT AUTO_INCREMENT PRIMARY KEY", "VARCHAR(191)"),
            Self::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
        };
        let schedules = format!(
            "CREATE TABLE IF NOT EXISTS {p}schedules (
                id {text_key} NOT NULL PRIMARY KEY,
                name TEXT NOT NULL,
                job {text_key},
                args TEXT NOT NULL,
                trigger_spec TEXT NOT NULL,
                misfire_grace_ms BIGINT,
                coalesce_fires BOOLEAN NOT NULL,
                max_instances INTEGER NOT NULL,
                paused BOOLEAN NOT NULL,
                at_most_once BOOLEAN NOT NULL,
                next_run_time BIGINT,
                due_time BIGINT,
                paused_from BIGINT,
                version BIGINT NOT NULL
            )"
        );
        let fires = format!(
            "CREATE TABLE IF NOT EXISTS {p}fires (
                id {auto_id},
                schedule_id {text_key} NOT NULL,
                job {text_key},
                claim TEXT,
                nominal_time BIGINT NOT NULL,
                state VARCHAR(16) NOT NULL,
                reason TEXT,
                owner {text_key},
                epoch BIGINT NOT NULL,
                attempt INTEGER NOT NULL,
                lease_until BIGINT,
                claimed_at BIGINT,
                started_at BIGINT,
                finished_at BIGINT,
                error TEXT,
                UNIQUE (schedule_id, nominal_time)
            )"
        );
        // MySQL has no `CREATE INDEX IF NOT EXISTS`; there a second instance's attempt fails
        // and its migration is retried.
        let if_not_exists = if self == Self::MySql {
            ""
        } else {
            "IF NOT EXISTS "
        };
        vec![
            schedules,
            format!(
                "CREATE INDEX {if_not_exists}{p}schedules_next ON {p}schedules (next_run_time)"
            ),
            format!("CREATE INDEX {if_not_exists}{p}schedules_due ON {p}schedules (due_time)"),
            fires,
            format!("CREATE INDEX {if_not_exists}{p}fires_live ON {p}fires (state, lease_until)"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        let s = Dialect::Postgres.statement("SELECT ? + ?", vec![1.into(), 2.into()]);
        assert_eq!(s.sql, "SELECT $1 + $2");
        let s = Dialect::MySql.statement("SELECT ? + ?", vec![1.into(), 2.into()]);
        assert_eq!(s.sql, "SELECT ? + ?");
    }
}
