//! The REST API, written once for every web adapter: Flask-APScheduler's routes and JSON,
//! without its traps.
//!
//! [`Api`] takes an `http::Request<Bytes>` and answers an `http::Response<Bytes>`; the axum
//! and warp adapters only mount it and read the body (up to [`Api::body_limit`]).
//!
//! | method and path (prefix `/scheduler`) | success |
//! | --- | --- |
//! | `GET /scheduler` | 200 `{"running", "state", "current_host", "allowed_hosts", "timezone", "registered_jobs"}` |
//! | `POST /scheduler/{pause,resume,start}` | 204 |
//! | `POST /scheduler/shutdown`, no body or `{"wait": bool, "deadline_seconds": 0 to 3600}` | 204 |
//! | `GET /scheduler/jobs` | 200, the jobs |
//! | `POST /scheduler/jobs` | 200, the job added (as Flask-APScheduler answers) |
//! | `GET /scheduler/jobs/{id}` | 200, the job |
//! | `PATCH /scheduler/jobs/{id}` | 200, the job changed |
//! | `DELETE /scheduler/jobs/{id}` | 204 |
//! | `POST /scheduler/jobs/{id}/{pause,resume}` | 200, the job |
//! | `POST /scheduler/jobs/{id}/run` | 202, the job: the run is queued on the scheduler, never executed inside the request |
//! | `GET /scheduler/jobs/{id}/runs?limit=N` | 200, its recent fires, newest first (every store) |
//!
//! Every error is JSON `{"error_message": "..."}` with its status: 400 (malformed JSON, a bad
//! trigger or option, an unknown job name), 401 with `WWW-Authenticate` (missing or wrong
//! credentials), 403 (a change to a read-only API), 404 (unknown id or route), 405 (with
//! `Allow`), 409 (an id that exists, `max_instances` reached, a state that does not allow
//! it: starting a scheduler that shut down), 413 (a body over the limit), 415 (a form: any
//! other body is read as JSON, as Flask-APScheduler reads it), 503 (the scheduler has shut
//! down), 500 (the store failed). A request that fails changes nothing.
//!
//! Nothing is served unless mounted, and mounting asks how requests are authorized:
//! [`Api::with_bearer_token`] (compared in constant time), [`Api::with_authorizer`] (your
//! callback), or explicitly [`Api::without_auth`].

mod config;
mod error;
pub mod flask;
mod lifecycle;
mod model;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

pub use self::config::{LoadedJobs, load_jobs, load_jobs_file};
pub use self::lifecycle::{Lifecycle, Stopped, shutdown_signal, start_if_needed};
pub use self::model::{JobChanges, JobRequest, fire_json, job_json};
pub use crate::error::{Error, Result};
use scheduler_core::Error as CoreError;
use scheduler_core::SchedulerHandle;

/// The default prefix the routes are mounted under.
pub const DEFAULT_PREFIX: &str = "/scheduler";

/// The default largest request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long running jobs (and, under [`Lifecycle`], requests in flight) get when the server
/// stops, and when `POST /scheduler/shutdown` does not say (`{"wait": false}`: not at all;
/// `{"deadline_seconds": n}`). Under Kubernetes' default grace period of 30 s, with time left
/// for aborted jobs to unwind and the report to be written.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

type Authorizer = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

#[derive(Clone)]
enum Auth {
    None,
    Bearer(Arc<[u8]>),
    Callback(Authorizer),
}

/// The REST API of one scheduler. Cheap to clone.
///
/// ```
/// use bytes::Bytes;
/// use scheduler_api::Api;
/// use scheduler_core::Scheduler;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let scheduler = Scheduler::builder().build().start().await?;
/// let api = Api::with_bearer_token(scheduler.clone(), "s3cret");
///
/// let request = http::Request::get("/scheduler/jobs")
///     .header("authorization", "Bearer s3cret")
///     .body(Bytes::new())?;
/// let response = api.handle(request).await;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.body().as_ref(), b"[]");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Api {
    handle: SchedulerHandle,
    auth: Auth,
    prefix: Arc<str>,
    read_only: bool,
    body_limit: usize,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer token",
            Auth::Callback(_) => "callback",
        };
        f.debug_struct("Api")
            .field("prefix", &self.prefix)
            .field("auth", &auth)
            .field("read_only", &self.read_only)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl Api {
    fn new(handle: SchedulerHandle, auth: Auth) -> Self {
        Self {
            handle,
            auth,
            prefix: DEFAULT_PREFIX.into(),
            read_only: false,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Requests must carry `Authorization: Bearer <token>`; compared in constant time.
    #[must_use]
    pub fn with_bearer_token(handle: SchedulerHandle, token: impl AsRef<str>) -> Self {
        Self::new(handle, Auth::Bearer(token.as_ref().as_bytes().into()))
    }

    /// `authorize` decides from the request's method, path and headers.
    #[must_use]
    pub fn with_authorizer(
        handle: SchedulerHandle,
        authorize: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::new(handle, Auth::Callback(Arc::new(authorize)))
    }

    /// No authorization at all: only for an API that nothing untrusted can reach.
    #[must_use]
    pub fn without_auth(handle: SchedulerHandle) -> Self {
        Self::new(handle, Auth::None)
    }

    /// Mounts the routes under `prefix` instead of `/scheduler` (`"/"` or `""`: at the root).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        // Kept without its trailing slash; the root is "".
        self.prefix = if trimmed.is_empty() {
            "".into()
        } else {
            format!("/{trimmed}").into()
        };
        self
    }

    /// Serves GET requests only; every other method is answered 403.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The largest request body accepted (default 64 KiB); adapters answer
    /// [`payload_too_large`](Self::payload_too_large) beyond it.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The prefix the routes are under, without a trailing slash: `""` at the root.
    #[must_use]
    pub fn mount_prefix(&self) -> &str {
        &self.prefix
    }

    /// The largest request body accepted.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The scheduler served.
    #[must_use]
    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.handle
    }

    /// Whether `path` is one this API answers (the prefix or below it).
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        self.relative(path).is_some()
    }

    fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(&*self.prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// The 413 answer for a body over [`body_limit`](Self::body_limit).
    #[must_use]
    pub fn payload_too_large(&self) -> Response<Bytes> {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than the limit of {} bytes",
                self.body_limit
            ),
        )
    }

    /// Answers one request. Its path is the full path (prefix included).
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let Some(path) = self.relative(parts.uri.path()) else {
            return error_response(
                StatusCode::NOT_FOUND,
                &format!("no route for {}", parts.uri.path()),
            );
        };
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let route = match Route::find(&segments) {
            Some(route) => route,
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    &format!("no route for {}", parts.uri.path()),
                );
            }
        };
        if !route.allows(&parts.method) {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{} is not allowed on {}; allowed: {}",
                    parts.method,
                    parts.uri.path(),
                    route.allow()
                ),
            );
            if let Ok(allow) = HeaderValue::from_str(route.allow()) {
                response.headers_mut().insert(ALLOW, allow);
            }
            return response;
        }
        if !self.authorized(&parts) {
            let mut response =
                error_response(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"apsched\""),
            );
            return response;
        }
        if self.read_only && parts.method != Method::GET {
            return error_response(
                StatusCode::FORBIDDEN,
                "this scheduler API is read-only: only GET is served",
            );
        }
        if body.len() > self.body_limit {
            return self.payload_too_large();
        }
        let json = if body.is_empty() {
            None
        } else if is_form(&parts) {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON (a form was sent); send it with Content-Type: application/json",
            );
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(value) => Some(value),
                Err(e) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        &format!("malformed JSON: {e}"),
                    );
                }
            }
        };
        match self
            .serve(&parts.method, route, json, parts.uri.query())
            .await
        {
            Ok((status, body)) => json_response(status, body),
            Err(error) => from_error(&error),
        }
    }

    fn authorized(&self, parts: &http::request::Parts) -> bool {
        match &self.auth {
            Auth::None => true,
            Auth::Callback(authorize) => authorize(parts),
            Auth::Bearer(expected) => parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), expected)),
        }
    }

    async fn serve(
        &self,
        method: &Method,
        route: Route<'_>,
        body: Option<Value>,
        query: Option<&str>,
    ) -> crate::Result<(StatusCode, Option<Value>)> {
        let handle = &self.handle;
        let zone = handle.timezone();
        let job_json = |schedule: &scheduler_core::Schedule| job_json(schedule, zone);
        let ok = |value: Value| Ok((StatusCode::OK, Some(value)));
        let done = || Ok((StatusCode::NO_CONTENT, None));
        match (route, method) {
            (Route::Info, _) => ok(model::scheduler_info(handle)),
            (Route::Scheduler(SchedulerAction::Pause), _) => {
                handle.pause_all().await?;
                done()
            }
            (Route::Scheduler(SchedulerAction::Resume), _) => {
                handle.resume_all().await?;
                done()
            }
            (Route::Scheduler(SchedulerAction::Start), _) => match handle.start().await {
                // A scheduler that has shut down has released its store and its jobs' state;
                // starting it again is starting the process again.
                Err(CoreError::SchedulerStopped) => Err(Error::InvalidState(
                    "the scheduler has shut down and cannot start again; restart the process"
                        .to_owned(),
                )),
                other => {
                    other?;
                    done()
                }
            },
            (Route::Scheduler(SchedulerAction::Shutdown), _) => {
                let deadline = shutdown_deadline(body.as_ref())?;
                {
                    handle.shutdown(deadline).await?;
                    done()
                }
            }
            (Route::Jobs, &Method::GET) => {
                let jobs = handle.list().await?;
                ok(Value::Array(jobs.iter().map(job_json).collect()))
            }
            (Route::Jobs, _) => {
                let body = body.ok_or_else(|| {
                    Error::InvalidJob("the request body must be a job as a JSON object".to_owned())
                })?;
                let request = JobRequest::from_value(body, handle.timezone(), handle.now())?;
                let added = handle.add(request.into_new_schedule()).await?;
                // 200 as Flask-APScheduler answers, not 201: its clients check for it.
                ok(job_json(&added))
            }
            (Route::Job(id), &Method::GET) => {
                let job = handle.get(id).await?.ok_or_else(|| not_found(id))?;
                ok(job_json(&job))
            }
            (Route::Job(id), &Method::DELETE) => {
                handle.remove(id).await?;
                done()
            }
            (Route::Job(id), _) => {
                let body = body.ok_or_else(|| {
                    Error::InvalidJob(
                        "the request body must be the changes as a JSON object".to_owned(),
                    )
                })?;
                let changes = JobChanges::from_value(body, zone, handle.now())?;
                // One command: a bad trigger leaves the options alone too.
                ok(job_json(&handle.modify(id, changes.into_changes()).await?))
            }
            (Route::Runs(id), _) => {
                let limit = runs_limit(query)?;
                let runs = handle.runs(id, limit).await?;
                ok(Value::Array(
                    runs.iter()
                        .map(|fire| model::fire_json(fire, zone))
                        .collect(),
                ))
            }
            (Route::JobAction(id, JobAction::Pause), _) => ok(job_json(&handle.pause(id).await?)),
            (Route::JobAction(id, JobAction::Resume), _) => ok(job_json(&handle.resume(id).await?)),
            (Route::JobAction(id, JobAction::Run), _) => {
                handle.run_now(id).await?;
                let job = handle.get(id).await?.ok_or_else(|| not_found(id))?;
                Ok((StatusCode::ACCEPTED, Some(job_json(&job))))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchedulerAction {
    Pause,
    Resume,
    Start,
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobAction {
    Pause,
    Resume,
    Run,
}

/// The most fires `GET /scheduler/jobs/{id}/runs` lists.
pub const MAX_RUNS_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug)]
enum Route<'a> {
    Info,
    Scheduler(SchedulerAction),
    Jobs,
    Job(&'a str),
    JobAction(&'a str, JobAction),
    Runs(&'a str),
}

impl<'a> Route<'a> {
    fn find(segments: &[&'a str]) -> Option<Self> {
        Some(match *segments {
            [] => Self::Info,
            ["pause"] => Self::Scheduler(SchedulerAction::Pause),
            ["resume"] => Self::Scheduler(SchedulerAction::Resume),
            ["start"] => Self::Scheduler(SchedulerAction::Start),
            ["shutdown"] => Self::Scheduler(SchedulerAction::Shutdown),
            ["jobs"] => Self::Jobs,
            ["jobs", id] => Self::Job(id),
            ["jobs", id, "pause"] => Self::JobAction(id, JobAction::Pause),
            ["jobs", id, "resume"] => Self::JobAction(id, JobAction::Resume),
            ["jobs", id, "run"] => Self::JobAction(id, JobAction::Run),
            ["jobs", id, "runs"] => Self::Runs(id),
            _ => return None,
        })
    }

    fn allow(&self) -> &'static str {
        match self {
            Self::Info | Self::Runs(_) => "GET",
            Self::Scheduler(_) | Self::JobAction(..) => "POST",
            Self::Jobs => "GET, POST",
            Self::Job(_) => "GET, PATCH, DELETE",
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }
}

fn runs_limit(query: Option<&str>) -> crate::Result<usize> {
    let value = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(key, value)| (key == "limit").then_some(value));
    let Some(value) = value else { return Ok(50) };
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

/// The longest `deadline_seconds` `POST /scheduler/shutdown` takes: an hour.
const MAX_SHUTDOWN_DEADLINE_SECS: f64 = 3600.0;

/// `POST /scheduler/shutdown`'s body: none, or an object with `wait` (a boolean; `false`
/// aborts what runs at once) and `deadline_seconds` (how long running jobs get). Anything else
/// is refused before the scheduler is touched: a shutdown cannot be undone.
fn shutdown_deadline(body: Option<&Value>) -> crate::Result<Duration> {
    let Some(body) = body else {
        return Ok(DEFAULT_SHUTDOWN_DEADLINE);
    };
    let refuse = |what: String| Err(Error::InvalidRequest(format!("shutdown body: {what}")));
    let Some(fields) = body.as_object() else {
        return refuse(format!(
            "expected a JSON object such as {{\"wait\": false}} or {{\"deadline_seconds\": 10}}, got {body}"
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "wait" | "deadline_seconds"))
    {
        return refuse(format!(
            "unknown field \"{unknown}\"; the fields are \"wait\" and \"deadline_seconds\""
        ));
    }
    let wait = match fields.get("wait") {
        None => true,
        Some(Value::Bool(wait)) => *wait,
        Some(other) => return refuse(format!("\"wait\" must be true or false, got {other}")),
    };
    let deadline = match fields.get("deadline_seconds") {
        None => None,
        Some(value) => match value
            .as_f64()
            .filter(|s| (0.0..=MAX_SHUTDOWN_DEADLINE_SECS).contains(s))
        {
            Some(seconds) => Some(Duration::from_secs_f64(seconds)),
            None => {
                return refuse(format!(
                    "\"deadline_seconds\" must be a number of seconds from 0 to \
                     {MAX_SHUTDOWN_DEADLINE_SECS}, got {value}"
                ));
            }
        },
    };
    match (wait, deadline) {
        (true, deadline) => Ok(deadline.unwrap_or(DEFAULT_SHUTDOWN_DEADLINE)),
        (false, None | Some(Duration::ZERO)) => Ok(Duration::ZERO),
        (false, Some(_)) => refuse(
            "\"wait\": false stops without waiting, so it takes no \"deadline_seconds\"".to_owned(),
        ),
    }
}

/// Whether the body is declared a form. Anything else is read as JSON, as Flask-APScheduler
/// reads it (`get_json(force=True)`): clients that send no content type, or `text/plain`,
/// work unchanged.
fn is_form(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
                || mime.eq_ignore_ascii_case("multipart/form-data")
        })
}

/// Equal-length comparison that looks at every byte, so the time taken says nothing about
/// where the first difference is.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, &byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(i).copied().unwrap_or(0);
    }
    difference == 0
}

fn percent_decode(segment: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(high * 16 + low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

fn not_found(id: &str) -> Error {
    CoreError::ScheduleNotFound(id.to_owned()).into()
}

/// The status an error is answered with.
#[must_use]
pub fn status_of(error: &Error) -> StatusCode {
    if matches!(error, Error::InvalidState(_)) {
        return StatusCode::CONFLICT;
    }
    let Error::Scheduler(error) = error else {
        return if error.is_invalid_input() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
    };
    match error {
        CoreError::ScheduleNotFound(_) => StatusCode::NOT_FOUND,
        CoreError::ConflictingId(_)
        | CoreError::MaxInstancesReached { .. }
        | CoreError::AlreadyRunning
        | CoreError::NotStarted => StatusCode::CONFLICT,
        CoreError::SchedulerStopped => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        error if error.is_invalid_input() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn from_error(error: &Error) -> Response<Bytes> {
    error_response(status_of(error), &crate::error::error_chain(error))
}

/// An error answer: `{"error_message": ...}`.
#[must_use]
pub fn error_response(status: StatusCode, message: &str) -> Response<Bytes> {
    json_response(status, Some(json!({ "error_message": message })))
}

fn json_response(status: StatusCode, body: Option<Value>) -> Response<Bytes> {
    let mut response = Response::new(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string())));
    *response.status_mut() = status;
    if !response.body().is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"tokem", b"token"));
        assert!(!constant_time_eq(b"tok", b"token"));
        assert!(!constant_time_eq(b"token-and-more", b"token"));
        assert!(!constant_time_eq(b"", b"token"));
    }

    #[test]
    fn ids_in_paths_are_percent_decoded() {
        assert_eq!(percent_decode("nightly%20report"), "nightly report");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
