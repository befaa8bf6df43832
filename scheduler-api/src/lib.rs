//! The REST API, written once for every web adapter: Flask-APScheduler's routes and JSON,
//! without its traps.
//!
//! [`Api`] is a `tower::Service` over `http` requests: axum mounts it as a service behind its
//! own layers, warp through a thin filter (`apsched::axum::api_routes`,
//! `apsched::warp::api_routes`), any other tower-based server as it is. The request and
//! response JSON are typed ([`JobJson`], [`SchedulerInfo`], [`FireJson`], [`ErrorJson`]; the
//! job dict a request sends is read by [`JobRequest`]), and [`Api::openapi`] describes them:
//! the OpenAPI 3.1 document is served at `GET /scheduler/openapi.json`.
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
//! | `GET /scheduler/openapi.json` | 200, the OpenAPI document (served without credentials: it describes the API, no data) |
//! | `GET /scheduler/events` | 200, the scheduler's events as Server-Sent Events (`text/event-stream`, a JSON object per event), until it shuts down |
//! | `GET /scheduler/ui` | 200, the dashboard (HTML without data, served without credentials; its script fetches `GET /scheduler/ui/schedules` and the events with the token it asks for) |
//!
//! HEAD is served wherever GET is.
//!
//! Every error is JSON `{"error_message": "..."}` with its status: 400 (malformed JSON, a bad
//! trigger or option, an unknown job name), 401 with `WWW-Authenticate` (missing or wrong
//! credentials), 403 (a change to a read-only API), 404 (unknown id or route), 405 (with
//! `Allow`), 409 (an id that exists, `max_instances` reached, a state that does not allow
//! it: starting a scheduler that shut down), 413 (a body over the limit), 415 (a form: any
//! other body is read as JSON, as Flask-APScheduler reads it), 503 (the scheduler has shut
//! down), 500 (the store failed: the answer says only that, and the error goes to the log
//! with `tracing`, since a database's own text is not for clients). A request that fails
//! changes nothing.
//!
//! Nothing is served unless mounted, and mounting asks how requests are authorized:
//! [`Api::with_bearer_token`] (compared in constant time), [`Api::with_authorizer`] (your
//! callback), or explicitly [`Api::without_auth`].

mod config;
mod dto;
mod error;
mod events;
pub mod flask;
mod handlers;
mod lifecycle;
mod model;
mod openapi_doc;
mod routes;
mod service;
mod ui;

use std::time::Duration;

pub use self::config::{LoadedJobs, load_jobs, load_jobs_file};
pub use self::dto::{ErrorJson, FireJson, JobJson, SchedulerInfo, Seconds, TriggerJson};
pub use self::lifecycle::{Lifecycle, Stopped, shutdown_signal, start_if_needed};
pub use self::model::{JobChanges, JobRequest};
pub use self::service::{Api, ApiBody, BoxError, status_of};
pub use crate::error::{Error, Result};
/// The OpenAPI types of [`Api::openapi`]'s document (crate `utoipa`).
pub use utoipa::openapi;

/// The default prefix the routes are mounted under.
pub const DEFAULT_PREFIX: &str = "/scheduler";

/// The default largest request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long running jobs (and, under [`Lifecycle`], requests in flight) get when the server
/// stops, and when `POST /scheduler/shutdown` does not say (`{"wait": false}`: not at all;
/// `{"deadline_seconds": n}`). Under Kubernetes' default grace period of 30 s, with time left
/// for aborted jobs to unwind and the report to be written.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

/// The most fires `GET /scheduler/jobs/{id}/runs` lists.
pub const MAX_RUNS_LIMIT: usize = 1000;
