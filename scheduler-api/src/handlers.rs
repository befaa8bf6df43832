//! One function per operation of the REST API, each with its OpenAPI description: the
//! document (`GET /scheduler/openapi.json`) is made from these attributes and from the types
//! the functions read and answer with.
//!
//! Paths here are relative to the API's prefix (`/scheduler` unless changed); the document
//! puts the prefix in front.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dto::{ErrorJson, FireJson, JobJson, SchedulerInfo};
use crate::error::{Error, Result};
use crate::model::{JobChanges, JobRequest};
use crate::{DEFAULT_SHUTDOWN_DEADLINE, MAX_RUNS_LIMIT};
use scheduler_core::Error as CoreError;
use scheduler_core::SchedulerHandle;

/// A streamed body: Server-Sent Events.
pub(crate) type FrameStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<http_body::Frame<Bytes>, crate::BoxError>,
            > + Send,
    >,
>;

/// What an answer's body is.
pub(crate) enum Body {
    Empty,
    Json(Bytes),
    Html(Bytes),
    Events(FrameStream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Json(b) => write!(f, "Json({} bytes)", b.len()),
            Self::Html(b) => write!(f, "Html({} bytes)", b.len()),
            Self::Events(_) => f.write_str("Events"),
        }
    }
}

/// A successful answer: its status and its body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Body,
}

impl Reply {
    fn json(status: StatusCode, value: &impl Serialize) -> Self {
        // Serializing these types cannot fail: every map key is a string.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self {
            status,
            body: Body::Json(Bytes::from(body)),
        }
    }

    fn ok(value: &impl Serialize) -> Self {
        Self::json(StatusCode::OK, value)
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: Body::Empty,
        }
    }

    pub(crate) fn html(markup: String) -> Self {
        Self {
            status: StatusCode::OK,
            body: Body::Html(Bytes::from(markup)),
        }
    }
}

/// The scheduler's events, as Server-Sent Events (`text/event-stream`): one JSON object per
/// event, from now on, each with its `type` (`added`, `submitted`, `succeeded`, `failed`,
/// `missed`, `skipped`, ...); `{"type": "lagged", "missed": n}` when the client fell behind
/// and `n` events were dropped for it. The stream ends when the scheduler shuts down.
#[utoipa::path(get, path = "/events", tag = "scheduler",
    responses(
        (status = 200, description = "The events, as they happen", content_type = "text/event-stream", body = String),
        (status = "4XX", description = "Not authorized", body = ErrorJson),
    ))]
pub(crate) fn events(handle: &SchedulerHandle) -> Reply {
    Reply {
        status: StatusCode::OK,
        body: Body::Events(Box::pin(crate::events::stream(handle))),
    }
}

fn not_found(id: &str) -> Error {
    CoreError::ScheduleNotFound(id.to_owned()).into()
}

/// The scheduler: whether it runs, its zone and its registered jobs.
#[utoipa::path(get, path = "/", tag = "scheduler",
    responses(
        (status = 200, description = "The scheduler's state", body = SchedulerInfo),
        (status = "4XX", description = "Not authorized", body = ErrorJson),
    ))]
pub(crate) fn scheduler_info(handle: &SchedulerHandle) -> Reply {
    Reply::ok(&SchedulerInfo::new(handle))
}

/// The OpenAPI document (not in itself).
pub(crate) fn openapi_document(document: &utoipa::openapi::OpenApi) -> Reply {
    Reply::ok(document)
}

/// Pauses the scheduler: no schedule fires until it resumes; due fires then coalesce.
#[utoipa::path(post, path = "/pause", tag = "scheduler",
    responses(
        (status = 204, description = "Paused"),
        (status = "4XX", description = "Not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down", body = ErrorJson),
    ))]
pub(crate) async fn pause_scheduler(handle: &SchedulerHandle) -> Result<Reply> {
    handle.pause_all().await?;
    Ok(Reply::no_content())
}

/// Resumes a paused scheduler.
#[utoipa::path(post, path = "/resume", tag = "scheduler",
    responses(
        (status = 204, description = "Resumed"),
        (status = "4XX", description = "Not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down", body = ErrorJson),
    ))]
pub(crate) async fn resume_scheduler(handle: &SchedulerHandle) -> Result<Reply> {
    handle.resume_all().await?;
    Ok(Reply::no_content())
}

/// Starts the scheduler. 409 when it runs already, or when it has shut down: a scheduler
/// that shut down released its store and its jobs' state, and starts again only with its
/// process.
#[utoipa::path(post, path = "/start", tag = "scheduler",
    responses(
        (status = 204, description = "Started"),
        (status = "4XX", description = "Running already, shut down, not authorized, or read-only", body = ErrorJson),
    ))]
pub(crate) async fn start_scheduler(handle: &SchedulerHandle) -> Result<Reply> {
    match handle.start().await {
        Err(CoreError::SchedulerStopped) => Err(Error::InvalidState(
            "the scheduler has shut down and cannot start again; restart the process".to_owned(),
        )),
        other => {
            other?;
            Ok(Reply::no_content())
        }
    }
}

/// The longest `deadline_seconds` `POST /scheduler/shutdown` takes: an hour.
const MAX_SHUTDOWN_DEADLINE_SECS: f64 = 3600.0;

/// `POST /scheduler/shutdown`'s body, when it has one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShutdownRequest {
    /// `false`: abort what runs at once, without waiting.
    #[serde(default)]
    wait: Option<bool>,
    /// How long running jobs get before they are aborted (0 to 3600 s; 25 s when not given).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3600)]
    deadline_seconds: Option<f64>,
}

impl ShutdownRequest {
    /// Reads the body: none, or an object with `wait` and `deadline_seconds`. Anything else
    /// is refused before the scheduler is touched: a shutdown cannot be undone.
    fn read(body: Option<Value>) -> Result<Self> {
        let Some(body) = body else {
            return Ok(Self::default());
        };
        let refuse = |what: String| Error::InvalidRequest(format!("shutdown body: {what}"));
        if !body.is_object() {
            return Err(refuse(format!(
                "expected a JSON object such as {{\"wait\": false}} or {{\"deadline_seconds\": 10}}, got {body}"
            )));
        }
        serde_path_to_error::deserialize(body)
            .map_err(|e| refuse(format!("{}: {}", e.path(), e.inner())))
    }

    fn deadline(&self) -> Result<Duration> {
        let refuse = |what: &str| Error::InvalidRequest(format!("shutdown body: {what}"));
        let deadline = match self.deadline_seconds {
            None => None,
            Some(seconds) if (0.0..=MAX_SHUTDOWN_DEADLINE_SECS).contains(&seconds) => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(seconds) => {
                return Err(refuse(&format!(
                    "\"deadline_seconds\" must be a number of seconds from 0 to \
                     {MAX_SHUTDOWN_DEADLINE_SECS}, got {seconds}"
                )));
            }
        };
        match (self.wait.unwrap_or(true), deadline) {
            (true, deadline) => Ok(deadline.unwrap_or(DEFAULT_SHUTDOWN_DEADLINE)),
            (false, None | Some(Duration::ZERO)) => Ok(Duration::ZERO),
            (false, Some(_)) => Err(refuse(
                "\"wait\": false stops without waiting, so it takes no \"deadline_seconds\"",
            )),
        }
    }
}

/// Shuts the scheduler down: no run starts any more, running jobs see their cancellation
/// token and get the deadline, then are aborted. It does not start again in this process.
#[utoipa::path(post, path = "/shutdown", tag = "scheduler",
    request_body(content = Option<ShutdownRequest>, description = "How long running jobs get"),
    responses(
        (status = 204, description = "Shut down"),
        (status = "4XX", description = "A bad body, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down already", body = ErrorJson),
    ))]
pub(crate) async fn shutdown_scheduler(
    handle: &SchedulerHandle,
    body: Option<Value>,
) -> Result<Reply> {
    let deadline = ShutdownRequest::read(body)?.deadline()?;
    handle.shutdown(deadline).await?;
    Ok(Reply::no_content())
}

/// Every job, by next run time, paused ones last.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses(
        (status = 200, description = "The jobs", body = [JobJson]),
        (status = "4XX", description = "Not authorized", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn list_jobs(handle: &SchedulerHandle) -> Result<Reply> {
    let zone = handle.timezone();
    let jobs: Vec<JobJson> = handle
        .list()
        .await?
        .iter()
        .map(|schedule| JobJson::new(schedule, zone))
        .collect();
    Ok(Reply::ok(&jobs))
}

/// Adds a job (Flask-APScheduler's job dict); 200 with the job, as Flask-APScheduler answers.
#[utoipa::path(post, path = "/jobs", tag = "jobs",
    request_body(content = crate::model::JobDict, description = "The job: its keys and its trigger's fields"),
    responses(
        (status = 200, description = "The job added", body = JobJson),
        (status = "4XX", description = "A bad job, an id that exists, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn add_job(handle: &SchedulerHandle, body: Option<Value>) -> Result<Reply> {
    let body = body.ok_or_else(|| {
        Error::InvalidJob("the request body must be a job as a JSON object".to_owned())
    })?;
    let request = JobRequest::from_value(body, handle.timezone(), handle.now())?;
    let added = handle.add(request.into_new_schedule()).await?;
    // 200 as Flask-APScheduler answers, not 201: its clients check for it.
    Ok(Reply::ok(&JobJson::new(&added, handle.timezone())))
}

/// One job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    responses(
        (status = 200, description = "The job", body = JobJson),
        (status = "4XX", description = "No such job, or not authorized", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn get_job(handle: &SchedulerHandle, id: &str) -> Result<Reply> {
    let job = handle.get(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::ok(&JobJson::new(&job, handle.timezone())))
}

/// Changes a job, as one command: its name, `func`, args, options, `next_run_time` (`null`
/// pauses it) and trigger (its fields, as when adding). A bad field changes nothing.
#[utoipa::path(patch, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    request_body(content = crate::model::JobDict, description = "The fields to change"),
    responses(
        (status = 200, description = "The job changed", body = JobJson),
        (status = "4XX", description = "A bad change, no such job, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn modify_job(
    handle: &SchedulerHandle,
    id: &str,
    body: Option<Value>,
) -> Result<Reply> {
    let body = body.ok_or_else(|| {
        Error::InvalidJob("the request body must be the changes as a JSON object".to_owned())
    })?;
    let changes = JobChanges::from_value(body, handle.timezone(), handle.now())?;
    let changed = handle.modify(id, changes.into_changes()).await?;
    Ok(Reply::ok(&JobJson::new(&changed, handle.timezone())))
}

/// Removes a job.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    responses(
        (status = 204, description = "Removed"),
        (status = "4XX", description = "No such job, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn remove_job(handle: &SchedulerHandle, id: &str) -> Result<Reply> {
    handle.remove(id).await?;
    Ok(Reply::no_content())
}

/// Pauses a job: its fires are skipped (and recorded) until it resumes.
#[utoipa::path(post, path = "/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    responses(
        (status = 200, description = "The job, paused", body = JobJson),
        (status = "4XX", description = "No such job, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn pause_job(handle: &SchedulerHandle, id: &str) -> Result<Reply> {
    let job = handle.pause(id).await?;
    Ok(Reply::ok(&JobJson::new(&job, handle.timezone())))
}

/// Resumes a job at its next fire time, with no catch-up.
#[utoipa::path(post, path = "/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    responses(
        (status = 200, description = "The job, resumed", body = JobJson),
        (status = "4XX", description = "No such job, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn resume_job(handle: &SchedulerHandle, id: &str) -> Result<Reply> {
    let job = handle.resume(id).await?;
    Ok(Reply::ok(&JobJson::new(&job, handle.timezone())))
}

/// Runs a job now, on the scheduler: 202 as soon as the run is queued, never after running
/// it inside the request. 409 when `max_instances` runs are going.
#[utoipa::path(post, path = "/jobs/{id}/run", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded")),
    responses(
        (status = 202, description = "The run is queued", body = JobJson),
        (status = "4XX", description = "No such job, max_instances reached, not authorized, or read-only", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn run_job(handle: &SchedulerHandle, id: &str) -> Result<Reply> {
    handle.run_now(id).await?;
    let job = handle.get(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        &JobJson::new(&job, handle.timezone()),
    ))
}

/// `GET /scheduler/jobs/{id}/runs`'s query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // the document's description of the query `runs_limit` reads
pub(crate) struct RunsQuery {
    /// How many fires, newest first (1 to 1000; 50 when not given).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The `limit` of a query string; other parameters are ignored.
fn runs_limit(query: Option<&str>) -> Result<usize> {
    let given = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find_map(|(key, value)| (key == "limit").then_some(value));
    let Some(value) = given else { return Ok(50) };
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_RUNS_LIMIT).contains(n))
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "limit must be a whole number from 1 to {MAX_RUNS_LIMIT}, got \"{value}\""
            ))
        })
}

/// A job's recent fires, newest first: runs and how they ended, and fires that did not run
/// with the reason. On every store.
#[utoipa::path(get, path = "/jobs/{id}/runs", tag = "jobs",
    params(("id" = String, Path, description = "The job's id, percent-encoded"), RunsQuery),
    responses(
        (status = 200, description = "The fires, newest first", body = [FireJson]),
        (status = "4XX", description = "A bad limit, no such job, or not authorized", body = ErrorJson),
        (status = "5XX", description = "The scheduler has shut down, or its store failed", body = ErrorJson),
    ))]
pub(crate) async fn job_runs(
    handle: &SchedulerHandle,
    id: &str,
    query: Option<&str>,
) -> Result<Reply> {
    let limit = runs_limit(query)?;
    let zone = handle.timezone();
    let runs: Vec<FireJson> = handle
        .runs(id, limit)
        .await?
        .iter()
        .map(|fire| FireJson::new(fire, zone))
        .collect();
    Ok(Reply::ok(&runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_from_the_query() {
        assert_eq!(runs_limit(None).unwrap(), 50);
        assert_eq!(runs_limit(Some("limit=5")).unwrap(), 5);
        assert_eq!(runs_limit(Some("x=1&limit=%31%30")).unwrap(), 10);
        let error = runs_limit(Some("limit=0")).unwrap_err().to_string();
        assert!(error.contains("from 1 to 1000, got \"0\""), "{error}");
    }
}
