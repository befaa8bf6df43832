//! The demo on axum.

use apsched::api::{Api, Lifecycle, Stopped};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::pages::{self, AppState, Page};

fn respond(page: Page) -> Response {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, page.content_type)], page.body).into_response()
}

/// The demo's router: the pages and the scheduler API.
pub fn router(state: AppState, api: Api) -> Router {
    Router::new()
        .route(
            "/",
            get(|State(s): State<AppState>| async move { respond(pages::index(&s).await) }),
        )
        .route(
            "/api/updates",
            get(
                |State(s): State<AppState>, RawQuery(q): RawQuery| async move {
                    respond(pages::updates(&s, q.as_deref()).await)
                },
            ),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { respond(pages::metrics(&s)) }),
        )
        .route(
            "/healthz",
            get(|State(s): State<AppState>| async move { respond(pages::healthz(&s).await) }),
        )
        .merge(apsched::axum::api_routes(api))
        .with_state(state)
}

/// Serves on axum's own server until `lifecycle` begins the shutdown, drained up to its
/// deadline.
///
/// # Errors
///
/// The server's or the scheduler's failure.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    api: Api,
    lifecycle: Lifecycle,
) -> Result<Stopped<()>, String> {
    let app = router(state, api);
    let server = axum::serve(listener, app).with_graceful_shutdown(lifecycle.shutdown_signal());
    let stopped = lifecycle.serve(server).await.map_err(|e| e.to_string())?;
    stopped
        .transpose()
        .map_err(|e| format!("the server failed: {e}"))
}
