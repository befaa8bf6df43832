//! The crate's one error type.

use std::fmt;

use chrono::{DateTime, Utc};

/// A boxed error from a store or another source outside this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `scheduler-core`: bad triggers and schedules, unknown ids,
/// a stopped scheduler, a failing store.
///
/// Each message says what failed and with which value. Callers who need to branch use the
/// variant or the `is_*` predicates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of a cron expression is wrong.
    #[error("{field} field: {reason} in \"{expression}\"")]
    CronField {
        /// The field's name (`minute`, `day of week`, ...).
        field: &'static str,
        /// What is wrong, naming the value (`61 is outside 0-59`).
        reason: String,
        /// The whole expression as given.
        expression: String,
    },
    /// A cron expression is wrong as a whole (field count, an unknown nickname, ...).
    #[error("invalid cron expression \"{expression}\": {reason}")]
    CronExpression {
        /// The expression as given.
        expression: String,
        /// What is wrong.
        reason: String,
    },
    /// A time zone name that the IANA database does not know.
    #[error("unknown time zone \"{0}\" (expected an IANA name such as \"Europe/Berlin\")")]
    UnknownTimeZone(String),
    /// An interval that is zero, negative or too long.
    #[error("invalid interval: {0}")]
    InvalidInterval(String),
    /// A trigger whose start comes after its end.
    #[error("start {start} is after end {end}")]
    StartAfterEnd {
        /// The start given.
        start: DateTime<Utc>,
        /// The end given.
        end: DateTime<Utc>,
    },
    /// A trigger that can never fire (`0 0 30 2 *`, an empty combination, ...).
    #[error("trigger never fires: {0}")]
    NeverFires(String),
    /// A trigger specification (JSON, TOML) that cannot be read, with the reason.
    #[error("invalid trigger: {0}")]
    InvalidTrigger(String),
    /// A schedule option with a bad value.
    #[error("invalid schedule option {option}: {reason}")]
    InvalidOption {
        /// The option's name (`max_instances`, `misfire_grace_time`, ...).
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A date-time that cannot be read.
    #[error("invalid date-time \"{value}\": {reason}")]
    InvalidDateTime {
        /// The text given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A schedule id that is already taken (and `replace_existing` was not set).
    #[error("a schedule with id \"{0}\" already exists")]
    ConflictingId(String),
    /// No schedule has this id.
    #[error("no schedule with id \"{0}\"")]
    ScheduleNotFound(String),
    /// A schedule names a job that is not registered on the scheduler.
    #[error("no job named \"{0}\" is registered on the scheduler")]
    UnknownJob(String),
    /// `run_now` found the schedule already running `max_instances` times.
    #[error("schedule \"{id}\" is already running {running} time(s), its max_instances")]
    MaxInstancesReached {
        /// The schedule.
        id: String,
        /// How many runs are going.
        running: u32,
    },
    /// The scheduler was started twice.
    #[error("the scheduler is already running")]
    AlreadyRunning,
    /// The scheduler has not been started yet.
    #[error("the scheduler has not been started")]
    NotStarted,
    /// The scheduler has been shut down (or its engine has stopped); nothing more can be done
    /// with it.
    #[error("the scheduler has been shut down")]
    SchedulerStopped,
    /// Something the scheduler's store cannot do (run history without a ledger).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The job store failed.
    #[error("job store error")]
    Store(#[source] BoxError),
}

impl Error {
    /// Wraps a store's own error.
    pub fn store(error: impl Into<BoxError>) -> Self {
        Self::Store(error.into())
    }

    /// True for [`Error::ScheduleNotFound`].
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::ScheduleNotFound(_))
    }

    /// True for [`Error::ConflictingId`].
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::ConflictingId(_))
    }

    /// True for [`Error::SchedulerStopped`].
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::SchedulerStopped)
    }

    /// True for errors in what the caller gave (a trigger, an option, a job name), as opposed
    /// to the scheduler's state or a store failure.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::CronField { .. }
                | Self::CronExpression { .. }
                | Self::UnknownTimeZone(_)
                | Self::InvalidInterval(_)
                | Self::StartAfterEnd { .. }
                | Self::NeverFires(_)
                | Self::InvalidTrigger(_)
                | Self::InvalidOption { .. }
                | Self::InvalidDateTime { .. }
                | Self::UnknownJob(_)
        )
    }
}

/// The error a job returns: any error type converts into it with `?`.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself, so that the blanket
/// conversion from every error type is possible.
pub struct JobError {
    inner: BoxError,
}

impl JobError {
    /// Wraps an error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            inner: error.into(),
        }
    }

    /// An error from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            inner: message.to_string().into(),
        }
    }

    /// The wrapped error.
    #[must_use]
    pub fn into_inner(self) -> BoxError {
        self.inner
    }

    /// The wrapped error, borrowed.
    #[must_use]
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        Self {
            inner: Box::new(error),
        }
    }
}

// Lets a `tower::Service` whose error is `JobError` sit under tower middleware, which wants
// errors that convert into `BoxError`.
impl From<JobError> for BoxError {
    fn from(error: JobError) -> Self {
        error.inner
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for JobError {
    /// The error and its sources, joined by `: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Displays a duration in the unit a reader expects (`1.5s`, `250ms`).
pub(crate) struct HumanDuration(pub(crate) chrono::TimeDelta);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.num_milliseconds();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else if ms.abs() < 1000 {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{:.3}s", ms as f64 / 1000.0)
        }
    }
}

/// An error and its sources, joined by ": ", for logs and API answers.
pub(crate) fn error_chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
