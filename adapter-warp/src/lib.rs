//! [apsched] in a [warp] service: the scheduler starts before the server accepts and stops
//! after it has drained its requests; filters reach the scheduler through [`with_scheduler`];
//! the REST API (Flask-APScheduler's routes and JSON) is a filter to combine with yours.
//!
//! ```no_run
//! use std::time::Duration;
//! use warp::Filter;
//! use apsched::warp::{api_routes, serve, with_scheduler};
//! use apsched::api::Api;
//! use apsched::trigger::IntervalTrigger;
//! use apsched::{FirstRun, JobContext, NewSchedule, Scheduler, SchedulerHandle};
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

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, StreamBody};
use scheduler_api::{Api, ApiBody, DEFAULT_SHUTDOWN_DEADLINE, Lifecycle, Stopped};
use scheduler_core::SchedulerHandle;
use tokio::net::TcpListener;
use tower::ServiceExt;
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
/// use apsched::{Scheduler, SchedulerHandle};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let scheduler = Scheduler::builder().build();
/// let state = warp::path("state")
///     .and(apsched::warp::with_scheduler(scheduler.handle()))
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
/// changed) and rejects the rest as not found, so it combines with `.or`. The request goes to
/// the [`Api`] service as it came, body streamed (read up to the API's limit).
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
) -> warp::reply::Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let body = StreamBody::new(
        body.map(|chunk| chunk.map(|mut data| Frame::data(data.copy_to_bytes(data.remaining())))),
    );
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
        // warp gave a path and a query that were one URI already.
        Err(_) => *request.uri_mut() = http::Uri::from_static("/"),
    }
    let Ok(response) = api.oneshot(request).await;
    into_warp(response).await
}

/// A whole body as one reply, a stream as a streamed one.
async fn into_warp(response: http::Response<ApiBody>) -> warp::reply::Response {
    let (parts, body) = response.into_parts();
    let mut reply = if body.size_hint().exact().is_some() {
        match body.collect().await {
            Ok(collected) => warp::reply::Response::new(collected.to_bytes().into()),
            Err(_) => warp::reply::Response::new(Bytes::new().into()),
        }
    } else {
        warp::reply::stream(body.into_data_stream()).into_response()
    };
    *reply.status_mut() = parts.status;
    *reply.headers_mut() = parts.headers;
    reply
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
