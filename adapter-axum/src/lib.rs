//! [apsched] in an [axum] service: the scheduler starts before the server accepts and stops
//! after it has drained its requests; handlers reach the scheduler through state or a
//! request extension; the REST API (Flask-APScheduler's routes and JSON) mounts as a router.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, extract::State, routing::get};
//! use apsched::axum::{api_routes, serve};
//! use apsched::api::Api;
//! use apsched::trigger::IntervalTrigger;
//! use apsched::{FirstRun, JobContext, NewSchedule, Scheduler, SchedulerHandle};
//!
//! async fn count(State(scheduler): State<SchedulerHandle>) -> String {
//!     format!("{} schedules", scheduler.list().await.map(|l| l.len()).unwrap_or(0))
//! }
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
//!     let app = Router::new()
//!         .route("/count", get(count))
//!         .merge(api_routes(Api::with_bearer_token(handle.clone(), "s3cret")))
//!         .with_state(handle.clone());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//!     // Starts the scheduler, serves until Ctrl-C or SIGTERM, then shuts the scheduler down.
//!     let stopped = serve(listener, app, handle).await?;
//!     println!("{} run(s) finished during shutdown", stopped.report.finished.len());
//!     Ok(())
//! }
//! ```
//!
//! [apsched]: https://github.com/apsched/apsched
//! [axum]: https://docs.rs/axum/0.8

use std::future::Future;
use std::time::Duration;

use axum::Router;
use scheduler_api::{Api, DEFAULT_SHUTDOWN_DEADLINE, Lifecycle, Stopped};
use scheduler_core::SchedulerHandle;
use tokio::net::TcpListener;

/// What [`serve`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server failed (the listener, a socket).
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The scheduler could not start (a store that cannot be read) or stop, or the signals
    /// cannot be watched.
    #[error("the scheduler failed: {0}")]
    Scheduler(#[from] scheduler_api::Error),
}

/// A tower layer that puts the scheduler's handle into every request's extensions, for
/// handlers that take `Extension<SchedulerHandle>`:
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use apsched::{Scheduler, SchedulerHandle};
///
/// async fn state(Extension(scheduler): Extension<SchedulerHandle>) -> String {
///     format!("{:?}", scheduler.state())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let scheduler = Scheduler::builder().build();
/// let app: Router = Router::new()
///     .route("/state", get(state))
///     .layer(apsched::axum::scheduler_layer(scheduler.handle()));
/// # }
/// ```
///
/// With state instead: `SchedulerHandle` is `Clone`, so `Router::with_state(handle)` and
/// `State<SchedulerHandle>` work as they are; for an application state of your own, implement
/// (or derive) `FromRef<AppState> for SchedulerHandle`.
pub fn scheduler_layer(scheduler: SchedulerHandle) -> axum::Extension<SchedulerHandle> {
    axum::Extension(scheduler)
}

/// The REST API as a router, mounted at the API's prefix (`/scheduler` unless changed), to
/// merge into the application's router. [`Api`] is a tower service itself: to put layers of
/// your own in front of it, mount it with `Router::nest_service` (see [`Api`]).
pub fn api_routes<S>(api: Api) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let prefix = api.mount_prefix().to_owned();
    let root = if prefix.is_empty() { "/" } else { &prefix };
    Router::new()
        .route_service(root, api.clone())
        .route_service(&format!("{prefix}/{{*rest}}"), api)
}

/// Serves `router` on `listener` with the scheduler, as [`Lifecycle`] orders it: the
/// scheduler starts before the first connection is accepted; on SIGTERM or Ctrl-C no run
/// starts any more and the server drains its requests, both up to
/// [`DEFAULT_SHUTDOWN_DEADLINE`] (25 s, under Kubernetes' default 30 s grace period), after
/// which what is left is aborted and dropped; a second signal ends the wait at once. Returns
/// how it ended, the scheduler's shutdown report included.
///
/// For a listener or make-service of your own, use [`Lifecycle`] with
/// `axum::serve(..).with_graceful_shutdown(lifecycle.shutdown_signal())` directly.
///
/// # Errors
///
/// When the signals cannot be watched, the scheduler cannot start (a store that cannot be
/// read) or stop, or the server fails.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    scheduler: SchedulerHandle,
) -> Result<Stopped<()>, Error> {
    let lifecycle = Lifecycle::start(scheduler, DEFAULT_SHUTDOWN_DEADLINE).await?;
    run(listener, router, lifecycle).await
}

/// [`serve`] that begins the shutdown when `signal` completes (and watches no signal itself:
/// force it with [`SchedulerHandle::abort`]), with `deadline` for requests and jobs.
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener, app: axum::Router, handle: apsched::SchedulerHandle) -> Result<(), apsched::axum::Error> {
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let signal = async { stopped.await.ok(); };
/// apsched::axum::serve_with_shutdown(listener, app, handle, signal, std::time::Duration::from_secs(10)).await?;
/// # drop(stop);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// When the scheduler cannot start (a store that cannot be read) or stop, or the server fails.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    router: Router,
    scheduler: SchedulerHandle,
    signal: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> Result<Stopped<()>, Error> {
    let lifecycle = Lifecycle::start_with(scheduler, deadline, signal).await?;
    run(listener, router, lifecycle).await
}

async fn run(
    listener: TcpListener,
    router: Router,
    lifecycle: Lifecycle,
) -> Result<Stopped<()>, Error> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving, with the scheduler running");
    }
    let server = axum::serve(listener, router).with_graceful_shutdown(lifecycle.shutdown_signal());
    Ok(lifecycle.serve(server).await?.transpose()?)
}
