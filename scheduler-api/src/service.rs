//! [`Api`]: the REST API as a `tower::Service` over `http` requests, so any tower-based
//! framework mounts it behind its own layers; how a request is authorized, read and answered.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::dto::ErrorJson;
use crate::error::{Error, error_chain};
use crate::handlers::{self, Body as ReplyBody, Reply};
use crate::openapi_doc;
use crate::routes::{JobAction, NoRoute, Route, SchedulerAction};
use crate::ui;
use crate::{DEFAULT_BODY_LIMIT, DEFAULT_PREFIX};
use scheduler_core::Error as CoreError;
use scheduler_core::SchedulerHandle;

/// An error a request body can fail with, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Authorizer = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

#[derive(Clone)]
enum Auth {
    None,
    Bearer(Arc<[u8]>),
    Callback(Authorizer),
}

/// The REST API of one scheduler, as a [`tower::Service`] over `http` requests. Cheap to
/// clone.
///
/// It answers paths under its prefix (`/scheduler` unless changed with
/// [`prefix`](Self::prefix)); any request body type will do (axum's, hyper's, `Full<Bytes>`),
/// read up to [`body_limit`](Self::body_limit).
///
/// ```
/// use apsched::Scheduler;
/// use apsched::api::Api;
/// use http_body_util::{BodyExt, Empty};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apsched::api::BoxError> {
/// let scheduler = Scheduler::builder().build().start().await?;
/// let api = Api::with_bearer_token(scheduler.clone(), "s3cret");
///
/// let request = http::Request::get("/scheduler/jobs")
///     .header("authorization", "Bearer s3cret")
///     .body(Empty::<bytes::Bytes>::new())?;
/// let response = api.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "[]");
/// # Ok(())
/// # }
/// ```
///
/// In axum, behind your own layers (`nest_service` hands the service the path below the
/// mount point, so the API's own prefix is the root):
///
/// ```
/// # use apsched::{Scheduler, api::Api};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let handle = Scheduler::builder().build().handle();
/// let api = Api::with_bearer_token(handle, "s3cret").prefix("/");
/// let app: axum::Router = axum::Router::new().nest_service(
///     "/scheduler",
///     tower::ServiceBuilder::new()
///         .concurrency_limit(16)
///         .service(api),
/// );
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

    /// Serves the routes under `prefix` instead of `/scheduler` (`"/"` or `""`: at the root,
    /// as under axum's `nest_service`).
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

    /// Serves GET and HEAD only; every other method is answered 403.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The largest request body accepted (default 64 KiB); a larger one is answered 413.
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

    /// The OpenAPI 3.1 document of this API (served at `{prefix}/openapi.json`): its paths
    /// under the prefix, the bearer scheme when it takes a token.
    #[must_use]
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        openapi_doc::document(&self.prefix, matches!(self.auth, Auth::Bearer(_)))
    }

    fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(&*self.prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
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
                .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(expected))),
        }
    }

    /// Answers one request; never fails, and a panic in the API is answered 500.
    async fn respond<B>(self, request: Request<B>) -> Response<ApiBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let head = request.method() == Method::HEAD;
        let answer = AssertUnwindSafe(self.answer(request))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %message, "the REST API panicked answering a request");
                internal_error()
            });
        let (mut parts, body) = answer.into_parts();
        let (content_type, body) = match body {
            ReplyBody::Empty => (None, ApiBody::full(Bytes::new())),
            ReplyBody::Json(bytes) => (Some("application/json"), ApiBody::full(bytes)),
            ReplyBody::Html(bytes) => (Some("text/html; charset=utf-8"), ApiBody::full(bytes)),
            ReplyBody::Events(stream) => {
                parts
                    .headers
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                (Some("text/event-stream"), ApiBody::stream(stream))
            }
        };
        if let Some(content_type) = content_type {
            parts
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        // HEAD: the headers GET would send, its length included, and no body. (No route
        // that streams takes HEAD.)
        let body = match (head, body.0.size_hint().exact()) {
            (true, Some(length)) => {
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(length));
                ApiBody::full(Bytes::new())
            }
            _ => body,
        };
        Response::from_parts(parts, body)
    }

    async fn answer<B>(&self, request: Request<B>) -> Response<ReplyBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let no_route = || error_response(StatusCode::NOT_FOUND, &format!("no route for {path}"));
        let Some(relative) = self.relative(path) else {
            return no_route();
        };
        let route = match Route::find(relative) {
            Ok(route) => route,
            Err(NoRoute::Unknown) => return no_route(),
            Err(NoRoute::NotUtf8(segment)) => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no schedule can have the id {segment}: it is not UTF-8 once percent-decoded"
                    ),
                );
            }
        };
        if !route.allows(&parts.method) {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{} is not allowed on {path}; allowed: {}",
                    parts.method,
                    route.allow()
                ),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(route.allow()));
            return response;
        }
        if !route.is_public() && !self.authorized(&parts) {
            let mut response =
                error_response(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"apsched\""),
            );
            return response;
        }
        let reads = parts.method == Method::GET || parts.method == Method::HEAD;
        if self.read_only && !reads {
            return error_response(
                StatusCode::FORBIDDEN,
                "this scheduler API is read-only: only GET and HEAD are served",
            );
        }
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.body_limit as u64) {
            return self.payload_too_large();
        }
        let body = match Limited::new(body, self.body_limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return self.payload_too_large();
            }
            Err(error) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("could not read the request body: {error}"),
                );
            }
        };
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
            .dispatch(&parts.method, route, json, parts.uri.query())
            .await
        {
            Ok(Reply { status, body }) => {
                let mut response = Response::new(body);
                *response.status_mut() = status;
                response
            }
            Err(error) => from_error(&error),
        }
    }

    async fn dispatch(
        &self,
        method: &Method,
        route: Route,
        body: Option<Value>,
        query: Option<&str>,
    ) -> crate::Result<Reply> {
        let handle = &self.handle;
        let is_get = *method == Method::GET || *method == Method::HEAD;
        match route {
            Route::Info => Ok(handlers::scheduler_info(handle)),
            Route::OpenApi => Ok(handlers::openapi_document(&self.openapi())),
            Route::Events => Ok(handlers::events(handle)),
            Route::Ui => Ok(Reply::html(ui::page())),
            Route::UiSchedules => Ok(Reply::html(ui::schedules(handle).await)),
            Route::Scheduler(action) => match action {
                SchedulerAction::Pause => handlers::pause_scheduler(handle).await,
                SchedulerAction::Resume => handlers::resume_scheduler(handle).await,
                SchedulerAction::Start => handlers::start_scheduler(handle).await,
                SchedulerAction::Shutdown => handlers::shutdown_scheduler(handle, body).await,
            },
            Route::Jobs if is_get => handlers::list_jobs(handle).await,
            Route::Jobs => handlers::add_job(handle, body).await,
            Route::Job(id) if is_get => handlers::get_job(handle, &id).await,
            Route::Job(id) if *method == Method::DELETE => handlers::remove_job(handle, &id).await,
            Route::Job(id) => handlers::modify_job(handle, &id, body).await,
            Route::JobAction(id, JobAction::Pause) => handlers::pause_job(handle, &id).await,
            Route::JobAction(id, JobAction::Resume) => handlers::resume_job(handle, &id).await,
            Route::JobAction(id, JobAction::Run) => handlers::run_job(handle, &id).await,
            Route::Runs(id) => handlers::job_runs(handle, &id, query).await,
        }
    }

    /// The 413 answer for a body over [`body_limit`](Self::body_limit).
    fn payload_too_large(&self) -> Response<ReplyBody> {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than the limit of {} bytes",
                self.body_limit
            ),
        )
    }
}

impl<B> tower::Service<Request<B>> for Api
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.respond(request).await) })
    }
}

/// The body of the API's answers.
pub struct ApiBody(BoxBody<Bytes, BoxError>);

impl ApiBody {
    fn full(bytes: Bytes) -> Self {
        Self(Full::new(bytes).map_err(|never| match never {}).boxed())
    }

    /// A streamed body. Sync as the frameworks want it (warp's replies are), though the
    /// stream need not be: it is only ever polled through `&mut`.
    fn stream(stream: crate::handlers::FrameStream) -> Self {
        let stream = sync_wrapper::SyncStream::new(stream);
        Self(StreamBody::new(stream).boxed())
    }
}

impl fmt::Debug for ApiBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiBody")
            .field("size_hint", &self.0.size_hint())
            .finish_non_exhaustive()
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
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

/// The answer to an error. A 500 (a store that failed) says only that: the error, which can
/// hold a database's own text, goes to the log, not to the client.
fn from_error(error: &Error) -> Response<ReplyBody> {
    let status = status_of(error);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %error_chain(error), "the REST API could not serve a request");
        return internal_error();
    }
    error_response(status, &error_chain(error))
}

fn internal_error() -> Response<ReplyBody> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: the scheduler or its store failed; the server's log has the details",
    )
}

fn error_response(status: StatusCode, message: &str) -> Response<ReplyBody> {
    json_response(
        status,
        json_bytes(&ErrorJson {
            error_message: message.to_owned(),
        }),
    )
}

fn json_bytes(value: &impl serde::Serialize) -> Bytes {
    // These types serialize without fail: every map key is a string.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ReplyBody> {
    let mut response = Response::new(ReplyBody::Json(body));
    *response.status_mut() = status;
    response
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
