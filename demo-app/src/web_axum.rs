//! The demo on axum.

use std::time::Duration;

use apsched::api::Api;
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
            "/healthz",
            get(|State(s): State<AppState>| async move { respond(pages::healthz(&s).await) }),
        )
        .merge(apsched::axum::api_routes(api))
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, then shuts the scheduler down.
///
/// # Errors
///
/// The server's or the scheduler's failure.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    api: Api,
    deadline: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = state.scheduler.clone();
    let app = router(state, api);
    apsched::axum::serve_with_shutdown(
        listener,
        app,
        scheduler,
        apsched::api::shutdown_signal(),
        deadline,
    )
    .await?;
    Ok(())
}
