//! Which operation a request names: its path below the API's prefix, and the methods each
//! path takes.

use http::Method;
use percent_encoding::percent_decode_str;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SchedulerAction {
    Pause,
    Resume,
    Start,
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobAction {
    Pause,
    Resume,
    Run,
}

/// A path the API answers; ids percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Info,
    OpenApi,
    Events,
    Ui,
    UiSchedules,
    Scheduler(SchedulerAction),
    Jobs,
    Job(String),
    JobAction(String, JobAction),
    Runs(String),
}

/// Why a path names no operation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// Nothing is served there.
    Unknown,
    /// An id segment that is not UTF-8 once percent-decoded: no schedule can have it.
    NotUtf8(String),
}

impl Route {
    /// The route of `path`, relative to the prefix (`""` or starting with `/`). Empty
    /// segments are ignored, so a trailing slash names the same route.
    pub(crate) fn find(path: &str) -> Result<Self, NoRoute> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let id = |raw: &str| {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|id| id.into_owned())
                .map_err(|_| NoRoute::NotUtf8(raw.to_owned()))
        };
        Ok(match *segments.as_slice() {
            [] => Self::Info,
            ["openapi.json"] => Self::OpenApi,
            ["events"] => Self::Events,
            ["ui"] => Self::Ui,
            ["ui", "schedules"] => Self::UiSchedules,
            ["pause"] => Self::Scheduler(SchedulerAction::Pause),
            ["resume"] => Self::Scheduler(SchedulerAction::Resume),
            ["start"] => Self::Scheduler(SchedulerAction::Start),
            ["shutdown"] => Self::Scheduler(SchedulerAction::Shutdown),
            ["jobs"] => Self::Jobs,
            ["jobs", raw] => Self::Job(id(raw)?),
            ["jobs", raw, "pause"] => Self::JobAction(id(raw)?, JobAction::Pause),
            ["jobs", raw, "resume"] => Self::JobAction(id(raw)?, JobAction::Resume),
            ["jobs", raw, "run"] => Self::JobAction(id(raw)?, JobAction::Run),
            ["jobs", raw, "runs"] => Self::Runs(id(raw)?),
            _ => return Err(NoRoute::Unknown),
        })
    }

    /// The methods the route takes, as an `Allow` header lists them. HEAD is served wherever
    /// GET is.
    pub(crate) fn allow(&self) -> &'static str {
        match self {
            Self::Info | Self::OpenApi | Self::Runs(_) | Self::Ui | Self::UiSchedules => {
                "GET, HEAD"
            }
            // A stream has no length to answer HEAD with.
            Self::Events => "GET",
            Self::Scheduler(_) | Self::JobAction(..) => "POST",
            Self::Jobs => "GET, HEAD, POST",
            Self::Job(_) => "GET, HEAD, PATCH, DELETE",
        }
    }

    pub(crate) fn allows(&self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// Whether the route is public: the OpenAPI document describes the API, which is no
    /// secret, and tools read it before they know a token; the dashboard's page holds no data
    /// (its script fetches that with the token the user gives it).
    pub(crate) fn is_public(&self) -> bool {
        matches!(self, Self::OpenApi | Self::Ui)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_decoded() {
        assert_eq!(
            Route::find("/jobs/nightly%20report%2Feu"),
            Ok(Route::Job("nightly report/eu".to_owned()))
        );
        assert_eq!(
            Route::find("/jobs/100%/runs"),
            Ok(Route::Runs("100%".to_owned()))
        );
        assert_eq!(
            Route::find("/jobs/%FF%FE"),
            Err(NoRoute::NotUtf8("%FF%FE".to_owned()))
        );
        assert_eq!(Route::find("/jobs/"), Ok(Route::Jobs));
        assert_eq!(Route::find(""), Ok(Route::Info));
        assert_eq!(Route::find("/nothing"), Err(NoRoute::Unknown));
    }

    #[test]
    fn head_wherever_get() {
        for route in [
            Route::Info,
            Route::OpenApi,
            Route::Jobs,
            Route::Job("a".to_owned()),
            Route::Runs("a".to_owned()),
        ] {
            assert!(route.allows(&Method::HEAD), "{route:?}");
        }
        assert!(!Route::Scheduler(SchedulerAction::Pause).allows(&Method::HEAD));
    }
}
