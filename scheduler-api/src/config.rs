//! Schedules declared in configuration (Flask-APScheduler's `SCHEDULER_JOBS`), loaded at start
//! without failing on a second boot.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::JobRequest;
use scheduler_core::{OnConflict, SchedulerHandle};

/// What [`load_jobs`] did with each declared job, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadedJobs {
    /// Jobs that were not there and were added.
    pub added: Vec<String>,
    /// Jobs that were there with another definition, and were replaced.
    pub replaced: Vec<String>,
    /// Jobs that were there as declared (say, kept by a durable store across a restart) and
    /// were left alone, their place in time included.
    pub unchanged: Vec<String>,
}

/// Adds the declared jobs (each a job dict, as `POST /scheduler/jobs` takes), idempotently:
/// a job whose id exists with the same definition is left as it is, one whose definition
/// changed is replaced. So a restart with a durable store neither fails on existing ids
/// (Flask-APScheduler's `ConflictingIdError` on second boot) nor resets the schedules' grids.
///
/// Every job is read before any is added: one bad entry adds nothing.
///
/// ```
/// use apsched::{JobContext, Scheduler, api};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let scheduler = Scheduler::builder()
///     .job("update_db", |_ctx: JobContext| async {})
///     .build()
///     .start()
///     .await?;
/// let jobs = serde_json::json!([
///     {"id": "update-db", "func": "update_db", "trigger": "interval", "seconds": 30}
/// ]);
/// let first = api::load_jobs(&scheduler, jobs.clone()).await?;
/// assert_eq!(first.added, ["update-db"]);
/// let again = api::load_jobs(&scheduler, jobs).await?;
/// assert_eq!(again.unchanged, ["update-db"]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::InvalidJob`] (or the trigger's own error) naming the entry at fault, or what
/// adding it failed with.
pub async fn load_jobs(handle: &SchedulerHandle, jobs: Value) -> Result<LoadedJobs> {
    let entries = match jobs {
        Value::Array(entries) => entries,
        Value::Object(mut map) if map.contains_key("jobs") => match map.remove("jobs") {
            Some(Value::Array(entries)) => entries,
            _ => {
                return Err(Error::InvalidJob(
                    "\"jobs\" must be a list of jobs".to_owned(),
                ));
            }
        },
        _ => {
            return Err(Error::InvalidJob(
                "expected a list of jobs, or {\"jobs\": [...]}".to_owned(),
            ));
        }
    };
    let now = handle.now();
    let mut requests = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let label = entry.get("id").and_then(Value::as_str).map_or_else(
            || format!("job {}", index + 1),
            |id| format!("job {} (\"{id}\")", index + 1),
        );
        let request = JobRequest::from_value(entry, handle.timezone(), now)
            .map_err(|e| Error::InvalidJob(format!("{label}: {e}")))?;
        requests.push(request);
    }
    // One batch: all of it is added, or none (a job that fails to add takes the batch back).
    // Each job is kept when it is there with the same definition, replaced when not.
    let mut before = Vec::with_capacity(requests.len());
    let mut batch = Vec::with_capacity(requests.len());
    for request in requests {
        before.push(match request.id() {
            Some(id) => handle.get(id).await?,
            None => None,
        });
        batch.push(
            request
                .into_new_schedule()
                .on_conflict(OnConflict::ReplaceIfChanged),
        );
    }
    let mut report = LoadedJobs::default();
    for (schedule, before) in handle.add_all(batch).await?.into_iter().zip(before) {
        let id = schedule.id().to_owned();
        match before {
            None => report.added.push(id),
            Some(before) if before == schedule => report.unchanged.push(id),
            Some(_) => report.replaced.push(id),
        }
    }
    Ok(report)
}

/// [`load_jobs`] from a file: TOML (`[[jobs]]` tables) when its name ends in `.toml`, JSON
/// (a list, or `{"jobs": [...]}`) otherwise.
///
/// ```toml
/// [[jobs]]
/// id = "update-db"
/// func = "update_db"
/// trigger = "interval"
/// seconds = 30
/// next_run_time = "now"
///
/// [[jobs]]
/// id = "nightly-report"
/// func = "report"
/// trigger = "cron"
/// expr = "0 2 * * *"
/// timezone = "Europe/Berlin"
/// ```
///
/// # Errors
///
/// [`Error::InvalidJob`] naming the file, and the line for a syntax error; then as
/// [`load_jobs`].
pub async fn load_jobs_file(
    handle: &SchedulerHandle,
    path: impl AsRef<Path>,
) -> Result<LoadedJobs> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidJob(format!("cannot read {}: {e}", path.display())))?;
    let is_toml = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    let jobs: Value = if is_toml {
        toml::from_str(&text).map_err(|e| Error::InvalidJob(format!("{}: {e}", path.display())))?
    } else {
        serde_json::from_str(&text)
            .map_err(|e| Error::InvalidJob(format!("{}: {e}", path.display())))?
    };
    load_jobs(handle, jobs).await.map_err(|e| match e {
        Error::InvalidJob(message) => Error::InvalidJob(format!("{}: {message}", path.display())),
        other => other,
    })
}
