//! [apsched] in a [warp] service: the scheduler starts before the server accepts and stops
//! after it has drained its requests; filters reach the scheduler through [`with_scheduler`];
//! the REST API (Flask-APScheduler's routes and JSON) is a filter to combine with yours.
//!
//! ```no_run
//! use std::time::Duration;
//! use warp::Filter;
//! use adapter_warp::{api_routes, serve, with_scheduler};
//! use scheduler_core::{FirstRun, JobContext, NewSchedule, Scheduler, SchedulerHandle};
//! use scheduler_api::Api;
//! use scheduler_core::trigger::IntervalTrigger;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let scheduler = Scheduler::builder()
//!         .job("tick", |ctx: JobContext| async move { println!("tick {}", ctx.nominal_fire_time()) })
//!         .build();
//!     let handle = scheduler.handle();
//!     handle
//!         .add(NewSchedule::for_job("tick", IntervalTrigger::every(Duration::from_secs(30))?).first_run(FirstRun::Now))
//!         .await?;
//!     let count = warp::path("count")
//!         .and(with_scheduler(handle.clone()))
//!         .then(|scheduler: SchedulerHandle| async move {
//!             format!("{} schedules", scheduler.list().await.map(|l| l.len()).unwrap_or(0))
//!         });
//!     let app = count.or(api_routes(Api::with_bearer_token(handle.clone(), "s3cret")));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//!     // Starts the scheduler, serves until Ctrl-C or SIGTERM, then shuts the scheduler down.
//!     let stopped = serve(listener, app, handle).await?;
//!     println!("{} run(s) finished during shutdown", stopped.report.finished.len());
//!     Ok(())
//! }
//! ```
//!
//! [apsched]: https://github.com/apsched/apsched
//! [warp]: https://docs.rs/warp/0.4

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use scheduler_api::{self as api, Api, DEFAULT_SHUTDOWN_DEADLINE, Lifecycle, Stopped};
use scheduler_core::SchedulerHandle;
use tokio::net::TcpListener;
use warp::filters::path::FullPath;
use warp::http::HeaderMap;
use warp::{Filter, Rejection, Reply};

/// What [`serve`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scheduler could not start (a store that cannot be read) or stop, or the signals
    /// cannot be watched.
    #[error("the scheduler failed: {0}")]
    Scheduler(#[from] scheduler_api::Error),
}

/// A filter that extracts the scheduler's handle, for routes that use the scheduler:
///
/// ```
/// use warp::Filter;
/// use scheduler_core::{Scheduler, SchedulerHandle};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let scheduler = Scheduler::builder().build();
/// let state = warp::path("state")
///     .and(adapter_warp::with_scheduler(scheduler.handle()))
///     .map(|scheduler: SchedulerHandle| format!("{:?}", scheduler.state()));
/// let reply = warp::test::request().path("/state").reply(&state).await;
/// assert_eq!(reply.body(), "NotStarted");
/// # }
/// ```
pub fn with_scheduler(
    scheduler: SchedulerHandle,
) -> impl Filter<Extract = (SchedulerHandle,), Error = Infallible> + Clone {
    warp::any().map(move || scheduler.clone())
}

/// The REST API as a filter. It answers paths under the API's prefix (`/scheduler` unless
/// changed) and rejects the rest as not found, so it combines with `.or`.
pub fn api_routes(api: Api) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let matching = api.clone();
    warp::path::full()
        .and_then(move |path: FullPath| {
            let matches = matching.matches(path.as_str());
            async move {
                if matches {
                    Ok(path)
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::stream())
        .then(
            move |path: FullPath, method, headers, query: String, body| {
                let api = api.clone();
                async move { respond(api, path, method, headers, query, body).await }
            },
        )
}

async fn respond<S, B>(
    api: Api,
    path: FullPath,
    method: http::Method,
    headers: HeaderMap,
    query: String,
    body: S,
) -> http::Response<Bytes>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = match read_body(body, api.body_limit()).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return api.payload_too_large(),
        Err(BodyError::Failed(error)) => {
            return api::error_response(
                http::StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {error}"),
            );
        }
    };
    let uri = if query.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{}?{query}", path.as_str())
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.headers_mut() = headers;
    match uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(error) => {
            return api::error_response(
                http::StatusCode::BAD_REQUEST,
                &format!("bad request path: {error}"),
            );
        }
    }
    api.handle(request).await
}

enum BodyError {
    TooLarge,
    Failed(warp::Error),
}

async fn read_body<S, B>(body: S, limit: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(BodyError::Failed)?;
        if collected.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            collected.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(collected.freeze())
}

/// Serves `filter` on `listener` with the scheduler, as [`Lifecycle`] orders it: the
/// scheduler starts before the first connection is accepted; on SIGTERM or Ctrl-C no run
/// starts any more and the server drains its requests, both up to
/// [`DEFAULT_SHUTDOWN_DEADLINE`] (25 s, under Kubernetes' default 30 s grace period), after
/// which what is left is aborted and dropped; a second signal ends the wait at once. Returns
/// how it ended, the scheduler's shutdown report included.
///
/// For a server of your own, use [`Lifecycle`] with
/// `warp::serve(..).incoming(..).graceful(lifecycle.shutdown_signal()).run()` directly.
///
/// # Errors
///
/// When the signals cannot be watched, or the scheduler cannot start (a store that cannot be
/// read) or stop.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    scheduler: SchedulerHandle,
) -> Result<Stopped<()>, Error>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let lifecycle = Lifecycle::start(scheduler, DEFAULT_SHUTDOWN_DEADLINE).await?;
    run(listener, filter, lifecycle).await
}

/// [`serve`] that begins the shutdown when `signal` completes (and watches no signal itself:
/// force it with [`SchedulerHandle::abort`]), with `deadline` for requests and jobs.
///
/// # Errors
///
/// When the scheduler cannot start (a store that cannot be read) or stop.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    filter: F,
    scheduler: SchedulerHandle,
    signal: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> Result<Stopped<()>, Error>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let lifecycle = Lifecycle::start_with(scheduler, deadline, signal).await?;
    run(listener, filter, lifecycle).await
}

async fn run<F>(
    listener: TcpListener,
    filter: F,
    lifecycle: Lifecycle,
) -> Result<Stopped<()>, Error>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving, with the scheduler running");
    }
    let server = warp::serve(filter)
        .incoming(listener)
        .graceful(lifecycle.shutdown_signal())
        .run();
    Ok(lifecycle.serve(server).await?)
}
