//! What happened to each fire: the history both timetables keep, and why a fire did not run.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// One fire held by an instance, as its store names it: the store's own id for the fire and
/// the epoch the holder has it at. Opaque to the scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FireToken {
    id: Arc<str>,
    epoch: i64,
}

impl FireToken {
    /// A token for the fire `id` at `epoch`.
    pub fn new(id: impl Into<Arc<str>>, epoch: i64) -> Self {
        Self {
            id: id.into(),
            epoch,
        }
    }

    /// The store's id of the fire.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The epoch (fencing token) the holder has the fire at.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
}

impl fmt::Display for FireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fire {} at epoch {}", self.id, self.epoch)
    }
}

/// A fire's state in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FireState {
    /// Claimed by an instance (shared store), not started yet.
    Claimed,
    /// Claimed by an instance behind an earlier fire of the same schedule that it runs first
    /// (a catch-up without `coalesce` is one run of several fires, one after another).
    Queued,
    /// Running.
    Running,
    /// Ended with `Ok`.
    Succeeded,
    /// Ended with an error or a panic.
    Failed,
    /// Not run: later than `misfire_grace_time`.
    Missed,
    /// Not run: coalesced into a later fire, `max_instances` runs were going, or the schedule
    /// was paused (the reason says which).
    Skipped,
    /// Not finished: its instance died and the schedule is `at_most_once`.
    Lost,
    /// Waiting for a run of its schedule to end (its overlap policy queues it); then claimed
    /// by whichever instance has room.
    Waiting,
    /// Aborted at a shutdown deadline.
    Aborted,
}

impl FireState {
    /// The state's name, as stores write it and the REST API shows it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Missed => "missed",
            Self::Skipped => "skipped",
            Self::Lost => "lost",
            Self::Aborted => "aborted",
            Self::Waiting => "waiting",
        }
    }

    /// The state of a name written by [`as_str`](Self::as_str).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "claimed" => Self::Claimed,
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "missed" => Self::Missed,
            "skipped" => Self::Skipped,
            "lost" => Self::Lost,
            "aborted" => Self::Aborted,
            "waiting" => Self::Waiting,
            _ => return None,
        })
    }

    /// True for a fire an instance holds: claimed, queued or running (a waiting fire is held
    /// by none).
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(self, Self::Claimed | Self::Queued | Self::Running)
    }
}

impl fmt::Display for FireState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a fire was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// `max_instances` runs of the schedule were going.
    MaxInstances {
        /// How many were going.
        running: u32,
    },
    /// The schedule was paused at the fire's time.
    Paused,
    /// Several fires were due at once (after downtime, a scheduler-wide pause, a clock jump)
    /// and `coalesce` ran only the latest.
    Coalesced {
        /// The fire that ran (or was missed) in its place.
        into: DateTime<Utc>,
    },
    /// `max_instances` runs were going, and as many fires as the schedule's overlap policy
    /// lets wait were waiting already.
    QueueFull {
        /// How many may wait.
        limit: u32,
    },
}

/// Why a fire did not run: the decision of the scheduler's fire policy, the same on every
/// store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRun {
    /// Later than `misfire_grace_time` when the scheduler came to it.
    Missed {
        /// How late it was.
        lateness: Duration,
        /// The schedule's grace time.
        grace: Duration,
    },
    /// Skipped, for a reason.
    Skipped(SkipReason),
}

impl NotRun {
    /// The state a store records for it.
    #[must_use]
    pub fn state(&self) -> FireState {
        match self {
            Self::Missed { .. } => FireState::Missed,
            Self::Skipped(_) => FireState::Skipped,
        }
    }
}

impl fmt::Display for NotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missed { lateness, grace } => write!(
                f,
                "misfire: {:.3} s late, grace {:.3} s",
                lateness.as_secs_f64(),
                grace.as_secs_f64()
            ),
            Self::Skipped(SkipReason::MaxInstances { running }) => {
                write!(f, "max_instances: {running} run(s) going")
            }
            Self::Skipped(SkipReason::Paused) => f.write_str("schedule paused"),
            Self::Skipped(SkipReason::QueueFull { limit }) => write!(
                f,
                "overlap: max_instances runs going and {limit} fire(s) waiting already"
            ),
            Self::Skipped(SkipReason::Coalesced { into }) => write!(
                f,
                "coalesced into the fire at {}",
                into.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        }
    }
}

/// A fire that did not run, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotRunFire {
    /// The fire's nominal time.
    pub nominal_time: DateTime<Utc>,
    /// Why it did not run.
    pub reason: NotRun,
}

impl NotRunFire {
    pub(crate) fn new(nominal_time: DateTime<Utc>, reason: NotRun) -> Self {
        Self {
            nominal_time,
            reason,
        }
    }
}

/// One fire of a schedule's history
/// ([`SchedulerHandle::runs`](crate::SchedulerHandle::runs)): a run with how it ended, or a
/// fire that did not run, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FireRecord {
    /// The fire's id in its store (the run's id in the scheduler's own history).
    pub fire_id: String,
    /// The schedule.
    pub schedule_id: String,
    /// The fire's nominal time.
    pub nominal_time: DateTime<Utc>,
    /// Where it is.
    pub state: FireState,
    /// Why it did not run, or why it changed hands.
    pub reason: Option<String>,
    /// The instance that has it, or had it last.
    pub owner: Option<String>,
    /// Its fencing token (1 unless it changed hands).
    pub epoch: i64,
    /// How many times it was started (0 for a fire that never ran).
    pub attempt: u32,
    /// When it was claimed (or decided on).
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The job's error with its sources, or the panic's message, for a failed run.
    pub error: Option<String>,
}

impl FireRecord {
    /// A record with only its identity and state; the other fields are empty.
    #[must_use]
    pub fn new(
        fire_id: impl Into<String>,
        schedule_id: impl Into<String>,
        nominal_time: DateTime<Utc>,
        state: FireState,
    ) -> Self {
        Self {
            fire_id: fire_id.into(),
            schedule_id: schedule_id.into(),
            nominal_time,
            state,
            reason: None,
            owner: None,
            epoch: 1,
            attempt: 0,
            claimed_at: None,
            started_at: None,
            finished_at: None,
            error: None,
        }
    }

    /// With a reason.
    #[must_use]
    pub fn reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    /// With an owner.
    #[must_use]
    pub fn owner(mut self, owner: Option<String>) -> Self {
        self.owner = owner;
        self
    }

    /// With an epoch and an attempt count.
    #[must_use]
    pub fn epoch(mut self, epoch: i64, attempt: u32) -> Self {
        self.epoch = epoch;
        self.attempt = attempt;
        self
    }

    /// With the times it was claimed, started and finished.
    #[must_use]
    pub fn times(mut self, times: [Option<DateTime<Utc>>; 3]) -> Self {
        [self.claimed_at, self.started_at, self.finished_at] = times;
        self
    }

    /// With an error.
    #[must_use]
    pub fn error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn reasons_say_what_happened_with_their_numbers() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let missed = NotRun::Missed {
            lateness: Duration::from_millis(30_250),
            grace: Duration::from_secs(5),
        };
        assert_eq!(missed.to_string(), "misfire: 30.250 s late, grace 5.000 s");
        assert_eq!(missed.state(), FireState::Missed);
        let skipped = NotRun::Skipped(SkipReason::MaxInstances { running: 1 });
        assert_eq!(skipped.to_string(), "max_instances: 1 run(s) going");
        assert_eq!(
            NotRun::Skipped(SkipReason::Paused).to_string(),
            "schedule paused"
        );
        assert_eq!(
            NotRun::Skipped(SkipReason::Coalesced { into: t }).to_string(),
            "coalesced into the fire at 2026-01-01T09:00:00Z"
        );
        for state in [
            FireState::Claimed,
            FireState::Queued,
            FireState::Running,
            FireState::Succeeded,
            FireState::Failed,
            FireState::Missed,
            FireState::Skipped,
            FireState::Lost,
            FireState::Aborted,
        ] {
            assert_eq!(FireState::parse(state.as_str()), Some(state));
        }
    }
}
