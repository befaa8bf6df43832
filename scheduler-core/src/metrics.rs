//! The scheduler's metrics, through the `metrics` facade (feature `metrics`); without it
//! these are empty and compile to nothing.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `apsched_runs_total` | counter | `schedule`, `outcome` (`succeeded`, `failed`, `panicked`, `aborted`, `cut_off`) |
//! | `apsched_run_duration_seconds` | histogram | `schedule` |
//! | `apsched_run_lateness_seconds` | histogram | `schedule`: start minus nominal fire time |
//! | `apsched_runs_running` | gauge | runs going in this process |
//! | `apsched_fires_not_run_total` | counter | `schedule`, `reason` (`missed`, `coalesced`, `max_instances`, `paused`, `queue_full`) |
//! | `apsched_store_failures_total` | counter | `operation` |
//! | `apsched_claim_duration_seconds` | histogram | a shared store's claim of due fires |

use std::time::Duration;

use crate::fires::NotRun;

/// A run started, this late.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn run_started(schedule_id: &str, lateness: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!("apsched_run_lateness_seconds", "schedule" => schedule_id.to_owned())
            .record(lateness.as_secs_f64());
        metrics::gauge!("apsched_runs_running").increment(1.0);
    }
}

/// A run ended, as `outcome`, after `duration`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn run_ended(schedule_id: &str, outcome: &'static str, duration: Duration) {
    #[cfg(feature = "metrics")]
    {
        let schedule = schedule_id.to_owned();
        metrics::counter!("apsched_runs_total", "schedule" => schedule.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("apsched_run_duration_seconds", "schedule" => schedule)
            .record(duration.as_secs_f64());
        metrics::gauge!("apsched_runs_running").decrement(1.0);
    }
}

/// A fire did not run.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn not_run(schedule_id: &str, reason: &NotRun) {
    #[cfg(feature = "metrics")]
    {
        use crate::fires::SkipReason;
        let reason = match reason {
            NotRun::Missed { .. } => "missed",
            NotRun::Skipped(SkipReason::Coalesced { .. }) => "coalesced",
            NotRun::Skipped(SkipReason::MaxInstances { .. }) => "max_instances",
            NotRun::Skipped(SkipReason::Paused) => "paused",
            NotRun::Skipped(SkipReason::QueueFull { .. }) => "queue_full",
        };
        metrics::counter!("apsched_fires_not_run_total", "schedule" => schedule_id.to_owned(), "reason" => reason)
            .increment(1);
    }
}

/// The store failed at `operation`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn store_failed(operation: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("apsched_store_failures_total", "operation" => operation).increment(1);
}

/// A shared store's claim of due fires took this long.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn claimed(took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("apsched_claim_duration_seconds").record(took.as_secs_f64());
}
