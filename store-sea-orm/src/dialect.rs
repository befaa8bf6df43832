//! The SQL that differs between SQLite, PostgreSQL and MariaDB/MySQL.

use std::fmt::Write as _;

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
                    let _ = write!(numbered, "${n}");
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
            // UTC_TIMESTAMP, not NOW: the session's time zone (and its DST hour) must not move it.
            Self::MySql => "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
        }
    }

    /// Rows per multi-row statement: well under the backend's limit on bound values (a fire
    /// row binds 12; SQLite before 3.32 allows 999 in all).
    pub(crate) fn rows_per_statement(self) -> usize {
        match self {
            Self::Sqlite => 64,
            Self::Postgres | Self::MySql => 256,
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

    /// The schema, for a table prefix. Every statement can run again after a partial run:
    /// instances that start together race to create the tables, and MySQL commits each DDL
    /// statement on its own.
    pub(crate) fn create_tables(self, p: &str) -> Vec<String> {
        // MySQL's TEXT holds 64 KiB, and INSERT IGNORE would cut a longer value silently.
        let (auto_id, key, text) = match self {
            Self::Postgres => ("BIGSERIAL PRIMARY KEY", "VARCHAR(191)", "TEXT"),
            Self::MySql => (
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
                "VARCHAR(191)",
                "LONGTEXT",
            ),
            Self::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"),
        };
        let indexes = [
            ("schedules", "schedules_next", "next_run_time"),
            ("schedules", "schedules_due", "due_time"),
            ("fires", "fires_live", "state, lease_until"),
        ];
        // MySQL has no CREATE INDEX IF NOT EXISTS: there the indexes go inside CREATE TABLE.
        let inline = |table: &str| -> String {
            if self != Self::MySql {
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
        if self != Self::MySql {
            statements.extend(indexes.iter().map(|(table, name, columns)| {
                format!("CREATE INDEX IF NOT EXISTS {p}{name} ON {p}{table} ({columns})")
            }));
        }
        statements
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
