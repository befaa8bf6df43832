//! The store's SQL vocabulary: its tables and columns, what differs between the backends, and
//! how rows become schedules and back. Statements are built with sea-query, which writes each
//! backend's placeholders and quoting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scheduler_core::store::{FireState, ScheduleWrite, Versioned};
use scheduler_core::trigger::TriggerSpec;
use scheduler_core::{Overlap, Schedule, ScheduleOptions};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, SelectStatement};
use sea_orm::{DbBackend, DbErr, DeriveIden, QueryResult, Value};

use crate::Error;

/// The schedules table's columns.
#[derive(Clone, Copy, Debug, DeriveIden)]
pub(crate) enum S {
    Id,
    Name,
    Job,
    Args,
    TriggerSpec,
    MisfireGraceMs,
    CoalesceFires,
    MaxInstances,
    Paused,
    AtMostOnce,
    NextRunTime,
    DueTime,
    PausedFrom,
    Version,
    /// The overlap policy, as JSON; NULL: skip (APScheduler's).
    Overlap,
}

impl S {
    /// Every column a schedule is read from.
    pub(crate) const ALL: [Self; 15] = [
        Self::Id,
        Self::Name,
        Self::Job,
        Self::Args,
        Self::TriggerSpec,
        Self::MisfireGraceMs,
        Self::CoalesceFires,
        Self::MaxInstances,
        Self::Paused,
        Self::AtMostOnce,
        Self::NextRunTime,
        Self::DueTime,
        Self::PausedFrom,
        Self::Version,
        Self::Overlap,
    ];
}

/// The fire ledger's columns.
#[derive(Clone, Copy, Debug, DeriveIden)]
pub(crate) enum F {
    Id,
    ScheduleId,
    Job,
    /// A copy of the schedule, kept with its last fire (the claim deleted the schedule).
    Claim,
    NominalTime,
    State,
    Reason,
    Owner,
    Epoch,
    Attempt,
    LeaseUntil,
    ClaimedAt,
    StartedAt,
    FinishedAt,
    Error,
    /// When a newer fire asked this live one to stop (overlap policy cancel_running); its
    /// owner learns it when it renews its lease.
    CancelAt,
}

/// The backend, for what sea-query does not write for us.
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

    /// The database's clock, in microseconds since the Unix epoch: due times are judged by it,
    /// so the instances' own clocks may disagree without harm.
    pub(crate) fn now(self) -> Expr {
        Expr::cust(match self {
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
            // UTC_TIMESTAMP, not NOW: the session's time zone (and its DST hour) must not move it.
            Self::MySql => "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
        })
    }

    /// Rows per multi-row statement: well under the backend's limit on bound values (a fire
    /// row binds 13; SQLite before 3.32 allows 999 in all).
    pub(crate) fn rows_per_statement(self) -> usize {
        match self {
            Self::Sqlite => 64,
            Self::Postgres | Self::MySql => 256,
        }
    }
}

/// Locks the rows a claim reads, skipping those another instance holds. SQLite has one writer
/// at a time and no row locks (sea-query writes nothing there): there the claim's `BEGIN
/// IMMEDIATE` makes the claim the file's one writer, which does the same job.
pub(crate) fn lock_skipping(select: &mut SelectStatement) {
    select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
}

/// The store's two tables.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) schedules: Alias,
    pub(crate) fires: Alias,
}

impl Tables {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            schedules: Alias::new(format!("{prefix}schedules")),
            fires: Alias::new(format!("{prefix}fires")),
        }
    }
}

/// The states of a fire an instance holds.
pub(crate) const HELD: [&str; 3] = ["claimed", "queued", "running"];

/// The held states that count against `max_instances` (a queued fire runs after a claimed
/// one, as part of its run).
pub(crate) const COUNTED: [&str; 2] = ["claimed", "running"];

/// A fire waiting for a run of its schedule to end, held by no instance.
pub(crate) const WAITING: &str = "waiting";

/// The states pruning never deletes: fires that are still to run or running.
pub(crate) const UNFINISHED: [&str; 4] = ["claimed", "queued", "running", WAITING];

/// `UNFINISHED` as SQL with its values written out, the predicate of the partial index on
/// unfinished fires: a query that means to use that index says exactly this, because a
/// database proves a partial index applies only from literal values, never from bound ones.
pub(crate) const UNFINISHED_CONDITION: &str =
    "state IN ('claimed', 'queued', 'running', 'waiting')";

/// A fire waiting for a run to end, as SQL with its value written out: the predicate of the
/// partial index on waiting fires (see `UNFINISHED_CONDITION`).
pub(crate) const WAITING_CONDITION: &str = "state = 'waiting'";

/// `WAITING_CONDITION` on the fires table, or on an alias of it.
pub(crate) fn is_waiting(alias: Option<&str>) -> Expr {
    match alias {
        Some(alias) => Expr::cust(format!("{alias}.{WAITING_CONDITION}")),
        None => Expr::cust(WAITING_CONDITION),
    }
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(DateTime::from_timestamp_micros)
}

pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(crate) fn state(state: FireState) -> &'static str {
    state.as_str()
}

/// The column values of a schedule write, in the order of [`S::ALL`] without the version.
pub(crate) fn schedule_values(write: &ScheduleWrite) -> Result<Vec<(S, Value)>, Error> {
    let schedule = &write.schedule;
    let job = schedule
        .job_name()
        .ok_or_else(|| Error::UnnamedJob(schedule.id().to_owned()))?;
    Ok(vec![
        (S::Id, schedule.id().into()),
        (S::Name, schedule.name().into()),
        (S::Job, job.into()),
        (S::Args, schedule.args().to_string().into()),
        (
            S::TriggerSpec,
            schedule.trigger().to_value().to_string().into(),
        ),
        (
            S::MisfireGraceMs,
            schedule
                .misfire_grace_time()
                .map(|g| i64::try_from(g.as_millis()).unwrap_or(i64::MAX))
                .into(),
        ),
        (S::CoalesceFires, schedule.coalesce().into()),
        (
            S::MaxInstances,
            i32::try_from(schedule.max_instances())
                .unwrap_or(i32::MAX)
                .into(),
        ),
        (S::Paused, schedule.paused().into()),
        (S::AtMostOnce, schedule.at_most_once().into()),
        (S::NextRunTime, schedule.next_run_time().map(micros).into()),
        (S::DueTime, write.due_time.map(micros).into()),
        (S::PausedFrom, schedule.paused_from().map(micros).into()),
        (
            S::Overlap,
            match schedule.overlap() {
                Overlap::Skip => None,
                overlap => Some(serde_json::to_string(&overlap).unwrap_or_default()),
            }
            .into(),
        ),
    ])
}

/// Reads a schedule row; a row that cannot be read is reported, not deleted.
pub(crate) fn schedule_from_row(row: &QueryResult) -> Result<Versioned, Error> {
    let id: String = row.try_get("", "id")?;
    let corrupt = |reason: String| Error::Corrupt {
        id: id.clone(),
        reason,
    };
    let args: String = row.try_get("", "args")?;
    let args = serde_json::from_str(&args).map_err(|e| corrupt(format!("args: {e}")))?;
    let trigger: String = row.try_get("", "trigger_spec")?;
    let trigger: TriggerSpec =
        serde_json::from_str(&trigger).map_err(|e| corrupt(format!("trigger: {e}")))?;
    let grace: Option<i64> = row.try_get("", "misfire_grace_ms")?;
    let max_instances: i32 = row.try_get("", "max_instances")?;
    let name: String = row.try_get("", "name")?;
    let job: Option<String> = row.try_get("", "job")?;
    let mut options = ScheduleOptions::default();
    options.misfire_grace_time =
        grace.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    options.coalesce = row.try_get("", "coalesce_fires")?;
    options.max_instances = u32::try_from(max_instances).unwrap_or(1);
    options.paused = row.try_get("", "paused")?;
    options.at_most_once = row.try_get("", "at_most_once")?;
    let overlap: Option<String> = row.try_get("", "overlap")?;
    if let Some(overlap) = overlap {
        options.overlap =
            serde_json::from_str(&overlap).map_err(|e| corrupt(format!("overlap: {e}")))?;
    }
    let next: Option<i64> = row.try_get("", "next_run_time")?;
    let paused_from: Option<i64> = row.try_get("", "paused_from")?;
    let schedule = Schedule::from_parts(
        &id,
        &name,
        job.as_deref(),
        args,
        trigger,
        time(next),
        options,
    )
    .map_err(|e| corrupt(e.to_string()))?
    .with_paused_from(time(paused_from));
    Ok(Versioned::new(
        schedule,
        time(row.try_get("", "due_time")?),
        row.try_get("", "version")?,
    ))
}

/// Reads rows of schedules, skipping (and reporting) any that cannot be read.
pub(crate) fn read_rows(rows: &[QueryResult]) -> Vec<Versioned> {
    rows.iter()
        .filter_map(|row| match schedule_from_row(row) {
            Ok(schedule) => Some(schedule),
            Err(error) => {
                tracing::error!(%error, "skipping a stored schedule that cannot be read");
                None
            }
        })
        .collect()
}

/// True when the database refused for another transaction's sake and wrote nothing, so the
/// operation can simply be tried again: SQLite's lock held by another connection
/// (`SQLITE_BUSY`, `SQLITE_LOCKED` and their extended codes); on PostgreSQL and MariaDB/MySQL
/// a deadlock or serialization failure (SQLSTATE 40001, 40P01; MySQL 1213), after which the
/// server has rolled the transaction back, or MySQL's lock wait timeout (1205), after which
/// the caller's transaction is dropped and so rolled back. Judged by the error code, never by
/// its text.
pub(crate) fn is_transient(error: &DbErr) -> bool {
    transient(error).is_some()
}

/// Why a transient refusal happened (see [`is_transient`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) enum Transient {
    /// SQLite's lock is held by another connection, past the busy timeout.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Locked,
    /// A server database rolled the transaction back: a deadlock, a serialization failure
    /// or a lock wait timeout.
    RolledBack,
}

pub(crate) fn transient(error: &DbErr) -> Option<Transient> {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    {
        use sea_orm::RuntimeErr;
        use std::ops::Deref;
        let runtime = match error {
            DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
            _ => return None,
        };
        let RuntimeErr::SqlxError(error) = runtime else {
            return None;
        };
        let sea_orm::sqlx::Error::Database(error) = error.deref() else {
            return None;
        };
        #[cfg(feature = "sqlite")]
        if error
            .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
            .is_some()
        {
            // Extended codes keep the primary code in their low byte.
            let code = error
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .unwrap_or(0);
            return matches!(code & 0xff, 5 | 6).then_some(Transient::Locked);
        }
        #[cfg(feature = "mysql")]
        if let Some(mysql) = error.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
            return matches!(mysql.number(), 1205 | 1213).then_some(Transient::RolledBack);
        }
        matches!(error.code().as_deref(), Some("40001" | "40P01")).then_some(Transient::RolledBack)
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    {
        // No backend, no database to refuse anything.
        let _ = error;
        None
    }
}

/// Whether a store error is a transaction a server database rolled back for another's sake
/// ([`Transient::RolledBack`]): made again, it goes through.
pub(crate) fn rolled_back(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<crate::Error>().is_some_and(
        |e| matches!(e, crate::Error::Database(e) if transient(e) == Some(Transient::RolledBack)),
    )
}

/// `column IN (values)` over strings.
pub(crate) fn in_strings<C: sea_orm::sea_query::IntoIden>(
    column: C,
    values: impl IntoIterator<Item = impl Into<String>>,
) -> Expr {
    Expr::col(column).is_in(values.into_iter().map(Into::into).collect::<Vec<String>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unfinished_condition_names_exactly_the_unfinished_states() {
        let listed: Vec<String> = UNFINISHED.iter().map(|s| format!("'{s}'")).collect();
        assert_eq!(
            UNFINISHED_CONDITION,
            format!("state IN ({})", listed.join(", "))
        );
        assert_eq!(WAITING_CONDITION, format!("state = '{WAITING}'"));
    }
}
