//! Jobs: the code a schedule runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tower::{Layer, Service, ServiceExt};

use crate::context::JobContext;
use crate::error::{BoxError, JobError};

/// The code a schedule runs.
///
/// Implement it for a type that holds what the job needs, or pass a closure or a
/// `tower::Service<JobContext>` wherever an [`IntoJob`] is taken. One job value serves every
/// run of its schedules, possibly several at once (`max_instances`), so `run` takes `&self`.
///
/// A job that returns an error or panics is reported (see [`Event`](crate::Event)) and its
/// schedule goes on; it never stops the scheduler.
///
/// # Blocking code
///
/// `run` is polled on the tokio runtime that serves your web requests. Code that blocks the
/// thread (synchronous database drivers, file system walks, CPU-heavy work) must go to
/// [`tokio::task::spawn_blocking`], so it never stalls the runtime:
///
/// ```
/// use async_trait::async_trait;
/// use apsched::{Job, JobContext, JobError};
///
/// struct Compact;
///
/// #[async_trait]
/// impl Job for Compact {
///     async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
///         let nominal = ctx.nominal_fire_time();
///         let removed = tokio::task::spawn_blocking(move || {
///             // std::fs, a synchronous client, heavy computation...
///             nominal.timestamp() % 7
///         })
///         .await?;
///         tracing::info!(removed, "compacted");
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Runs once, for the fire described by `ctx`.
    async fn run(&self, ctx: JobContext) -> Result<(), JobError>;
}

/// What a closure job may return: `()` for a job that cannot fail, or a `Result` whose error
/// converts into [`JobError`].
pub trait IntoJobResult: Send + 'static {
    /// The conversion.
    fn into_job_result(self) -> Result<(), JobError>;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> Result<(), JobError> {
        Ok(())
    }
}

impl<E: Into<JobError> + Send + 'static> IntoJobResult for Result<(), E> {
    fn into_job_result(self) -> Result<(), JobError> {
        self.map_err(Into::into)
    }
}

/// Anything that can be a job: a [`Job`], an async closure `Fn(JobContext) -> impl Future`,
/// or a `tower::Service<JobContext>` (cloned for each run, so middleware such as
/// `tower::timeout` wraps jobs with no code of ours).
///
/// The type parameter only tells the three kinds apart; it is inferred.
///
/// ```
/// use std::time::Duration;
/// use apsched::{IntoJob, JobContext, JobError};
///
/// // A closure.
/// let hello = |ctx: JobContext| async move {
///     tracing::info!(schedule = ctx.schedule_id(), "hello");
/// };
///
/// // A tower service with a timeout: a run taking more than 10 s fails with "request timed out".
/// let with_timeout = tower::ServiceBuilder::new()
///     .timeout(Duration::from_secs(10))
///     .service_fn(|ctx: JobContext| async move {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///         Ok::<_, JobError>(())
///     });
///
/// fn takes<M>(job: impl IntoJob<M>) {}
/// takes(hello);
/// takes(with_timeout);
/// ```
pub trait IntoJob<Kind>: Send + Sync + 'static {
    /// The job, ready to share between runs.
    fn into_job(self) -> Arc<dyn Job>;
}

/// [`IntoJob`] kind marker for types implementing [`Job`].
#[derive(Debug)]
pub enum JobKind {}
/// [`IntoJob`] kind marker for closures.
#[derive(Debug)]
pub enum ClosureKind {}
/// [`IntoJob`] kind marker for `tower::Service`s.
#[derive(Debug)]
pub enum ServiceKind {}

impl<J: Job> IntoJob<JobKind> for J {
    fn into_job(self) -> Arc<dyn Job> {
        Arc::new(self)
    }
}

struct ClosureJob<F>(F);

#[async_trait]
impl<F, Fut> Job for ClosureJob<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoJobResult,
{
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        (self.0)(ctx).await.into_job_result()
    }
}

impl<F, Fut> IntoJob<ClosureKind> for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoJobResult,
{
    fn into_job(self) -> Arc<dyn Job> {
        Arc::new(ClosureJob(self))
    }
}

struct ServiceJob<S>(S);

#[async_trait]
impl<S> Job for ServiceJob<S>
where
    S: Service<JobContext> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Into<BoxError>,
{
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let service = self.0.clone();
        match service.oneshot(ctx).await {
            Ok(_) => Ok(()),
            Err(error) => Err(JobError::new(error)),
        }
    }
}

impl<S> IntoJob<ServiceKind> for S
where
    S: Service<JobContext> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Into<BoxError>,
{
    fn into_job(self) -> Arc<dyn Job> {
        Arc::new(ServiceJob(self))
    }
}

/// A job as a `tower::Service<JobContext>`: what a scheduler-wide layer
/// ([`SchedulerBuilder::layer`](crate::SchedulerBuilder::layer)) wraps. Cheap to clone.
#[derive(Clone)]
pub struct JobService {
    job: Arc<dyn Job>,
}

impl JobService {
    /// The service that runs `job`.
    #[must_use]
    pub fn new(job: Arc<dyn Job>) -> Self {
        Self { job }
    }
}

impl fmt::Debug for JobService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobService").finish_non_exhaustive()
    }
}

impl Service<JobContext> for JobService {
    type Response = ();
    type Error = JobError;
    type Future = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ctx: JobContext) -> Self::Future {
        let job = Arc::clone(&self.job);
        Box::pin(async move { job.run(ctx).await })
    }
}

/// Wraps a job in the scheduler-wide layers.
pub(crate) type JobLayer = Arc<dyn Fn(Arc<dyn Job>) -> Arc<dyn Job> + Send + Sync>;

/// `layer` around what `inner` (the layers added before) makes of a job.
pub(crate) fn stack<L>(inner: Option<JobLayer>, layer: L) -> JobLayer
where
    L: Layer<JobService> + Send + Sync + 'static,
    L::Service: Service<JobContext> + Clone + Send + Sync + 'static,
    <L::Service as Service<JobContext>>::Future: Send,
    <L::Service as Service<JobContext>>::Response: Send,
    <L::Service as Service<JobContext>>::Error: Into<BoxError>,
{
    Arc::new(move |job: Arc<dyn Job>| {
        let job = match &inner {
            Some(inner) => inner(job),
            None => job,
        };
        Arc::new(ServiceJob(layer.layer(JobService::new(job)))) as Arc<dyn Job>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_error_shows_its_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("insert failed")]
        struct Outer(#[source] std::io::Error);
        let error: JobError = Outer(std::io::Error::other("disk full")).into();
        assert_eq!(error.to_string(), "insert failed: disk full");
        assert_eq!(JobError::msg("plain").to_string(), "plain");
    }
}
