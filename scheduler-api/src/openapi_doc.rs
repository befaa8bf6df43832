//! The OpenAPI 3.1 document of the REST API, made from the operations' attributes and the
//! types they read and answer with (`handlers`, `dto`, `model`), so it cannot drift from
//! what is served.

use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, SecurityRequirement};

use crate::handlers;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "apsched REST API",
        description = "The scheduler's REST API: Flask-APScheduler's routes and job JSON. \
                       Every error is JSON {\"error_message\": ...}.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        handlers::scheduler_info,
        handlers::events,
        handlers::pause_scheduler,
        handlers::resume_scheduler,
        handlers::start_scheduler,
        handlers::shutdown_scheduler,
        handlers::list_jobs,
        handlers::add_job,
        handlers::get_job,
        handlers::modify_job,
        handlers::remove_job,
        handlers::pause_job,
        handlers::resume_job,
        handlers::run_job,
        handlers::job_runs,
    ),
    tags(
        (name = "scheduler", description = "The scheduler as a whole"),
        (name = "jobs", description = "Jobs (schedules), Flask-APScheduler's job dicts"),
    )
)]
struct ApiDoc;

/// The document for an API mounted at `prefix` (`""` at the root), with the bearer scheme
/// when requests need a token.
pub(crate) fn document(prefix: &str, bearer: bool) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| {
            let full = match (prefix, path.as_str()) {
                ("", path) => path.to_owned(),
                (prefix, "/") => prefix.to_owned(),
                (prefix, path) => format!("{prefix}{path}"),
            };
            (full, item)
        })
        .collect();
    if bearer {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_prefix() {
        let doc = document("/scheduler", true);
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/scheduler",
            "/scheduler/jobs",
            "/scheduler/jobs/{id}",
            "/scheduler/jobs/{id}/runs",
            "/scheduler/shutdown",
        ] {
            assert!(paths.contains(&path), "{path} in {paths:?}");
        }
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        assert!(json["components"]["schemas"]["JobJson"].is_object());
        assert!(json["components"]["securitySchemes"]["bearer"].is_object());
        let root = document("", false);
        assert!(root.paths.paths.contains_key("/"));
        assert!(root.paths.paths.contains_key("/jobs"));
    }
}
