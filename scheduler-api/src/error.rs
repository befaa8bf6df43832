//! The crate's one error type.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the REST API, configuration loading and the server lifecycle can fail with: input
/// that cannot be read, the signals, or what the scheduler answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job definition (a job dict) that cannot be read.
    #[error("invalid job definition: {0}")]
    InvalidJob(String),
    /// A request that cannot be served as sent (its query or its body).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A request the scheduler's state does not allow (starting it after it shut down).
    #[error("{0}")]
    InvalidState(String),
    /// The process's signals (SIGTERM, Ctrl-C) cannot be watched.
    #[error("cannot watch for SIGTERM and Ctrl-C")]
    Signals(#[source] std::io::Error),
    /// The scheduler's own error: a bad trigger or option, an unknown id, its state, its store.
    #[error(transparent)]
    Scheduler(#[from] scheduler_core::Error),
}

impl Error {
    /// True for errors in what the caller gave, as opposed to the scheduler's state or a
    /// store failure.
    #[must_use]
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Self::InvalidJob(_) | Self::InvalidRequest(_) => true,
            Self::Scheduler(error) => error.is_invalid_input(),
            Self::Signals(_) | Self::InvalidState(_) => false,
        }
    }
}

/// The error and its sources, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
