//! The scheduler's life inside a web server, as both adapters run it: started before the
//! listener accepts, shut down after the server has drained its requests.

use std::time::Duration;

use crate::SchedulerState;
use crate::error::{Error, Result};
use crate::event::ShutdownReport;
use crate::scheduler::SchedulerHandle;

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the signals a terminal and a process
/// supervisor (systemd, Kubernetes, Docker) send to stop a service.
///
/// # Panics
///
/// If the signal handlers cannot be installed (outside a tokio runtime).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("installing the Ctrl-C handler");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// Starts the scheduler unless it already runs (or was paused), so that a server's scheduler
/// is running before the first connection is accepted.
///
/// # Errors
///
/// [`Error::SchedulerStopped`] for a scheduler that was shut down, or a store error.
pub async fn start_if_needed(scheduler: &SchedulerHandle) -> Result<()> {
    match scheduler.start().await {
        Ok(()) | Err(Error::AlreadyRunning) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Shuts the scheduler down after the server stopped; one already shut down (through the
/// REST API, say) reports nothing.
///
/// # Errors
///
/// None today; the `Result` leaves room for stores that fail to release their claims.
pub async fn stop(scheduler: &SchedulerHandle, deadline: Duration) -> Result<ShutdownReport> {
    if scheduler.state() == SchedulerState::Stopped {
        return Ok(ShutdownReport::default());
    }
    match scheduler.shutdown(deadline).await {
        Ok(report) => Ok(report),
        Err(Error::SchedulerStopped) => Ok(ShutdownReport::default()),
        Err(error) => Err(error),
    }
}
