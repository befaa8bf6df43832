//! The REST API mounted as a tower service behind layers of your own (here a concurrency
//! limit and a timeout): `Api` is a `tower::Service`, and axum's `nest_service` hands it the
//! path below `/scheduler`, so its own prefix is the root.
//!
//! ```sh
//! cargo run --example api_behind_layers --features axum
//! curl -H 'Authorization: Bearer s3cret' localhost:5000/scheduler/jobs
//! ```

use std::time::Duration;

use apsched::Scheduler;
use apsched::api::Api;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;

/// A request that took too long (or any other error of the layers) is answered 503.
async fn timed_out(_error: tower::BoxError) -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = Scheduler::builder().build();
    let handle = scheduler.handle();
    let token = std::env::var("SCHEDULER_API_TOKEN").unwrap_or_else(|_| "s3cret".to_owned());
    // [readme]
    let api = Api::with_bearer_token(handle.clone(), &token).prefix("/");
    let layers = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(timed_out)) // 503 for a request that took too long
        .timeout(Duration::from_secs(5))
        .concurrency_limit(16);
    let app = Router::new().nest_service("/scheduler", layers.service(api));
    // [/readme]
    let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
    apsched::axum::serve(listener, app, handle).await?;
    Ok(())
}
