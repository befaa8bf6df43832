//! The demo on warp.

use apsched::api::{Api, Lifecycle, Stopped};
use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{Response, StatusCode};

use crate::pages::{self, AppState, Page};

fn respond(page: Page) -> Response<String> {
    let mut response = Response::new(page.body);
    *response.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = warp::http::HeaderValue::from_str(page.content_type) {
        response
            .headers_mut()
            .insert(warp::http::header::CONTENT_TYPE, value);
    }
    response
}

/// The demo's filter: the pages and the scheduler API.
pub fn routes(
    state: AppState,
    api: Api,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let index = warp::path::end()
        .and(warp::get())
        .and(with_state.clone())
        .then(|s: AppState| async move { respond(pages::index(&s).await) });
    let updates = warp::path!("api" / "updates")
        .and(warp::get())
        .and(with_state.clone())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .then(|s: AppState, q: Option<String>| async move {
            respond(pages::updates(&s, q.as_deref()).await)
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: AppState| respond(pages::metrics(&s)));
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(with_state)
        .then(|s: AppState| async move { respond(pages::healthz(&s).await) });
    index
        .or(updates)
        .or(metrics)
        .or(healthz)
        .or(apsched::warp::api_routes(api))
}

/// Serves on warp's own server until `lifecycle` begins the shutdown, drained up to its
/// deadline.
///
/// # Errors
///
/// The scheduler's failure.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    api: Api,
    lifecycle: Lifecycle,
) -> Result<Stopped<()>, String> {
    let app = routes(state, api);
    let server = warp::serve(app)
        .incoming(listener)
        .graceful(lifecycle.shutdown_signal())
        .run();
    lifecycle.serve(server).await.map_err(|e| e.to_string())
}
