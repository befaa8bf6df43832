//! The scheduler's life inside a web server, with any server: [`Lifecycle`] starts the
//! scheduler before the first connection is accepted and ends both on SIGTERM or Ctrl-C,
//! within one deadline whatever clients do.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use scheduler_core::Error as CoreError;

use crate::error::{Error, Result};
use scheduler_core::SchedulerHandle;
use scheduler_core::ShutdownReport;

type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts the scheduler with a web server and stops both, in this order:
///
/// 1. [`start`](Self::start) starts the scheduler (unless it runs already) and watches for
///    SIGTERM and Ctrl-C (SIGINT), before the server accepts its first connection.
/// 2. On the first signal, at once and in parallel: the scheduler stops starting runs (no run
///    starts after the signal) and running jobs see their cancellation token; the server,
///    through [`shutdown_signal`](Self::shutdown_signal), stops accepting and drains the
///    requests in flight.
/// 3. Jobs and requests share one `deadline` from the signal. At it, jobs still going are
///    aborted (their claims go back to a shared store) and [`serve`](Self::serve) stops
///    waiting for the server: connections still open (a client that stalled halfway through
///    its request) are dropped with it.
/// 4. A second signal ends the wait at once: what runs is aborted, claims go back, the
///    report is written, and [`Stopped::forced`] says so (a process exits non-zero on it).
///
/// So a process exits within `deadline` (plus at most a second for aborted jobs to unwind)
/// of SIGTERM; give it a deadline under the supervisor's grace period (Kubernetes'
/// `terminationGracePeriodSeconds`, 30 s by default; systemd's `TimeoutStopSec`, 90 s).
///
/// It works with each framework's own server, any listener and any make-service: give the
/// server [`shutdown_signal`](Self::shutdown_signal) as its graceful-shutdown future and the
/// server future to [`serve`](Self::serve).
///
/// ```no_run
/// use std::time::Duration;
/// use apsched::Scheduler;
/// use apsched::api::Lifecycle;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let scheduler = Scheduler::builder().build();
/// let lifecycle = Lifecycle::start(scheduler.handle(), Duration::from_secs(10)).await?;
/// let shutdown = lifecycle.shutdown_signal();
/// // axum:  axum::serve(listener, app).with_graceful_shutdown(shutdown)
/// // warp:  warp::serve(routes).incoming(listener).graceful(shutdown).run()
/// let server = async move {
///     shutdown.await;
///     Ok::<(), std::io::Error>(())
/// };
/// // `transpose`: the server's own error, if it failed.
/// let stopped = lifecycle.serve(server).await?.transpose()?;
/// println!("{} run(s) aborted", stopped.report.aborted.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Lifecycle {
    scheduler: SchedulerHandle,
    deadline: Duration,
    /// Cancelled when the shutdown begins, whatever began it.
    begun: CancellationToken,
    /// Cancelled to begin the shutdown from here (the server ended by itself).
    begin: CancellationToken,
    /// Waits for the first signal (or the stop future), then shuts the scheduler down,
    /// forcing it on a second signal. Aborted if the lifecycle is dropped unused.
    watcher: Option<JoinHandle<Result<ShutdownReport>>>,
}

/// How a server and its scheduler ended: returned by [`Lifecycle::serve`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Stopped<T> {
    /// What the server future returned; `None` when it was cut off (at the deadline, or by a
    /// second signal) with connections still open.
    pub server: Option<T>,
    /// The scheduler's shutdown report.
    pub report: ShutdownReport,
    /// Whether the shutdown was cut short before its deadline, by a second signal or
    /// [`SchedulerHandle::abort`].
    pub forced: bool,
}

impl<T, E> Stopped<Result<T, E>> {
    /// The server's error, if it failed (a server cut off at the deadline did not).
    ///
    /// # Errors
    ///
    /// The error the server future returned.
    pub fn transpose(self) -> Result<Stopped<T>, E> {
        Ok(Stopped {
            server: self.server.transpose()?,
            report: self.report,
            forced: self.forced,
        })
    }
}

impl Lifecycle {
    /// Starts the scheduler (unless it already runs, or was paused) and watches for SIGTERM
    /// and Ctrl-C; the first begins the shutdown, the second forces it.
    ///
    /// # Errors
    ///
    /// [`Error::Signals`] when the signals cannot be watched, [`scheduler_core::Error::SchedulerStopped`] for
    /// a scheduler already shut down, or the store's error if it cannot be loaded.
    pub async fn start(scheduler: SchedulerHandle, deadline: Duration) -> Result<Self> {
        // Installed before the scheduler starts, so that once anything runs no signal is
        // missed, nor kills the process with its default action.
        let signals = Signals::new().map_err(Error::Signals)?;
        Self::launch(scheduler, deadline, Watch::Signals(signals)).await
    }

    /// Like [`start`](Self::start), but the shutdown begins when `stop` completes instead of
    /// on a signal, and no signal is watched (the application owns them). Force a shutdown
    /// already begun with [`SchedulerHandle::abort`].
    ///
    /// # Errors
    ///
    /// [`scheduler_core::Error::SchedulerStopped`] for a scheduler already shut down, or the store's error.
    pub async fn start_with(
        scheduler: SchedulerHandle,
        deadline: Duration,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self> {
        Self::launch(scheduler, deadline, Watch::Future(Box::pin(stop))).await
    }

    async fn launch(scheduler: SchedulerHandle, deadline: Duration, what: Watch) -> Result<Self> {
        start_if_needed(&scheduler).await?;
        let begun = CancellationToken::new();
        let begin = CancellationToken::new();
        let watcher = tokio::spawn(watch(
            scheduler.clone(),
            deadline,
            what,
            begun.clone(),
            begin.clone(),
        ));
        Ok(Self {
            scheduler,
            deadline,
            begun,
            begin,
            watcher: Some(watcher),
        })
    }

    /// The scheduler this lifecycle runs.
    #[must_use]
    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.scheduler
    }

    /// Completes when the shutdown begins: the future to hand to the server's graceful
    /// shutdown (`axum::serve(..).with_graceful_shutdown(..)`, warp's `.graceful(..)`). Can
    /// be called more than once.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.begun.clone().cancelled_owned()
    }

    /// Runs the server future to its end, or until the deadline after the shutdown began (or
    /// a second signal), then waits for the scheduler's shutdown and returns how both ended.
    /// A server that ends by itself (it failed, say) shuts the scheduler down too.
    ///
    /// # Errors
    ///
    /// A store's error while shutting the scheduler down.
    pub async fn serve<F>(mut self, server: F) -> Result<Stopped<F::Output>>
    where
        F: IntoFuture,
    {
        let server = server.into_future();
        tokio::pin!(server);
        let output = tokio::select! {
            biased;
            output = &mut server => Some(output),
            () = cut_off(&self.begun, self.deadline, &self.scheduler) => None,
        };
        if output.is_none() {
            let when = if self.scheduler.abort_requested() {
                "when the shutdown was cut short"
            } else {
                "at the shutdown deadline"
            };
            tracing::warn!(
                deadline = ?self.deadline,
                "the server had not drained {when}; its open connections are dropped"
            );
        }
        let report = self.finish().await?;
        Ok(Stopped {
            server: output,
            report,
            forced: self.scheduler.abort_requested(),
        })
    }

    /// Shuts the scheduler down (unless the shutdown began already) and waits for its report:
    /// for an application that awaits its server itself. That wait is not bounded by the
    /// deadline; [`serve`](Self::serve) is.
    ///
    /// # Errors
    ///
    /// A store's error while shutting the scheduler down.
    pub async fn stop(mut self) -> Result<ShutdownReport> {
        self.finish().await
    }

    async fn finish(&mut self) -> Result<ShutdownReport> {
        self.begin.cancel();
        let Some(watcher) = self.watcher.take() else {
            return Ok(ShutdownReport::default());
        };
        match watcher.await {
            Ok(report) => report,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only when the runtime itself shuts down: nothing is left to report to.
            Err(_) => Ok(ShutdownReport::default()),
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        // Dropped unused: stop watching the signals; the scheduler is left as it is.
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// Completes at the deadline after the shutdown began, or when the scheduler's jobs are
/// aborted (a second signal, [`SchedulerHandle::abort`]).
async fn cut_off(begun: &CancellationToken, deadline: Duration, scheduler: &SchedulerHandle) {
    begun.cancelled().await;
    tokio::select! {
        () = tokio::time::sleep(deadline) => {}
        () = scheduler.aborted() => {}
    }
}

/// What begins the shutdown.
enum Watch {
    /// The first signal; the second forces the shutdown.
    Signals(Signals),
    /// The application's own future.
    Future(StopFuture),
}

async fn watch(
    scheduler: SchedulerHandle,
    deadline: Duration,
    what: Watch,
    begun: CancellationToken,
    begin: CancellationToken,
) -> Result<ShutdownReport> {
    let mut signals = match what {
        Watch::Signals(mut signals) => {
            tokio::select! {
                name = signals.next() => tracing::info!("{name} received"),
                () = begin.cancelled() => tracing::info!("the server stopped"),
            }
            Some(signals)
        }
        Watch::Future(stop) => {
            tokio::select! {
                () = stop => {}
                () = begin.cancelled() => tracing::info!("the server stopped"),
            }
            None
        }
    };
    begun.cancel();
    tracing::info!(
        ?deadline,
        "shutting down: no run starts from now on; requests in flight and running jobs get the \
         deadline{}",
        if signals.is_some() {
            " (a second signal ends it at once)"
        } else {
            ""
        }
    );
    let shutdown = stop_scheduler(&scheduler, deadline);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            report = &mut shutdown => return report,
            name = async {
                match signals.as_mut() {
                    Some(signals) => signals.next().await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::warn!("{name} received during the shutdown: aborting what runs and stopping now");
                scheduler.abort();
                signals = None;
            }
        }
    }
}

/// Shuts the scheduler down; one already shut down (through the REST API, say) reports
/// nothing.
async fn stop_scheduler(scheduler: &SchedulerHandle, deadline: Duration) -> Result<ShutdownReport> {
    match scheduler.shutdown(deadline).await {
        Ok(report) => Ok(report),
        Err(CoreError::SchedulerStopped) => Ok(ShutdownReport::default()),
        Err(error) => Err(error.into()),
    }
}

/// SIGTERM and SIGINT (Ctrl-C); on other platforms, Ctrl-C.
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the signals a terminal and a process
/// supervisor (systemd, Kubernetes, Docker) send to stop a service. [`Lifecycle`] watches them
/// itself, and a second one too; this is for an application that drives its server alone.
///
/// # Panics
///
/// If the signal handlers cannot be installed (outside a tokio runtime).
pub async fn shutdown_signal() {
    let mut signals = Signals::new().expect("installing the SIGTERM and Ctrl-C handlers");
    let name = signals.next().await;
    tracing::info!("{name} received; shutting down");
}

/// Starts the scheduler unless it already runs (or was paused), so that a server's scheduler
/// is running before the first connection is accepted.
///
/// # Errors
///
/// [`scheduler_core::Error::SchedulerStopped`] for a scheduler that was shut down, or a store error.
pub async fn start_if_needed(scheduler: &SchedulerHandle) -> Result<()> {
    match scheduler.start().await {
        Ok(()) | Err(CoreError::AlreadyRunning) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
