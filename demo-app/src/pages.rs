//! The pages, written once for both frameworks: each returns a [`Page`] that the axum and
//! warp modules only turn into their response type.

use apsched::{SchedulerHandle, SchedulerState};
use maud::{DOCTYPE, PreEscaped, html};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::db;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: DatabaseConnection,
    /// The scheduler.
    pub scheduler: SchedulerHandle,
    /// Renders the metrics, when the demo has them.
    pub metrics: Option<MetricsRender>,
}

/// Renders the metrics recorded so far, in Prometheus' text format.
#[derive(Clone)]
pub struct MetricsRender(pub std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsRender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRender")
    }
}

/// A response, before a framework sends it.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Page {
    fn html(body: String) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error_message": message }))
    }
}

/// The most rows `/api/updates` returns.
pub const MAX_LIMIT: u64 = 100;

const STYLE: &str = r"
:root { color-scheme: light dark; --muted: #6e7781; --line: #d0d7de; --card: #fff; --bg: #f6f8fa;
  --ok: #1a7f37; --warn: #9a6700; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --muted: #8b949e; --line: #30363d; --card: #161b22;
  --bg: #0d1117; --ok: #3fb950; --warn: #d29922; --accent: #58a6ff; } }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  background: var(--bg); }
main { max-width: 42rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.3rem; margin: .5rem 0 1rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: .8rem 1rem; margin-bottom: 1rem; }
.schedule p { margin: .2rem 0; }
.paused { color: var(--warn); font-weight: 600; }
.running { color: var(--ok); font-weight: 600; }
ol { list-style: none; margin: 0; padding: 0; }
li { display: flex; justify-content: space-between; gap: 1rem; padding: .35rem 0;
  border-top: 1px solid var(--line); }
li:first-child { border-top: none; }
.late { color: var(--muted); font-size: .9rem; }
a { color: var(--accent); }
.muted { color: var(--muted); font-size: .9rem; }
";

const REFRESH: &str = r"
setInterval(async () => {
  try {
    const page = await fetch(location.href, { cache: 'no-store' });
    const doc = new DOMParser().parseFromString(await page.text(), 'text/html');
    document.querySelector('main').replaceWith(doc.querySelector('main'));
  } catch (e) {}
}, 3000);
";

/// `GET /`: the update schedule (its trigger in words, its next run, whether it is paused)
/// and the latest 10 updates, newest first, each once with its time; refreshed every few
/// seconds; a link to the scheduler's dashboard.
pub async fn index(state: &AppState) -> Page {
    let rows = match db::latest(&state.db, 10).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "reading the latest updates failed");
            return Page::error(500, &format!("the database failed: {error}"));
        }
    };
    let zone = state.scheduler.timezone();
    let at = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let schedule = state.scheduler.get(crate::SCHEDULE_ID).await.ok().flatten();
    let scheduler_paused = state.scheduler.state() == SchedulerState::Paused;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "apsched demo" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "Latest 10 database updates" }
                    section.schedule {
                        @match &schedule {
                            Some(schedule) => {
                                p { "Schedule " code { (schedule.id()) } ": " (schedule.trigger().describe()) }
                                @if schedule.paused() {
                                    p.paused { "Paused: no update until it is resumed." }
                                } @else if scheduler_paused {
                                    p.paused { "The scheduler is paused." }
                                } @else if let Some(next) = schedule.next_run_time() {
                                    p { span.running { "Running" } " · next update " time datetime=(next.to_rfc3339()) { (at(next)) } }
                                }
                            }
                            None => p.paused { "The update schedule has been removed." },
                        }
                        p.muted {
                            a href="/scheduler/ui" { "Open the scheduler's dashboard" }
                            " · times in " (zone.name())
                        }
                    }
                    section {
                        @if rows.is_empty() {
                            p { "No data yet." }
                        } @else {
                            ol {
                                @for row in &rows {
                                    li.update data-value=(row.value) {
                                        time datetime=(row.nominal_time.to_rfc3339()) { (at(row.nominal_time)) }
                                        span.late {
                                            "written "
                                            ((row.timestamp - row.nominal_time).num_milliseconds().max(0))
                                            " ms after its time"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                script { (PreEscaped(REFRESH)) }
            }
        }
    };
    Page::html(markup.into_string())
}

/// `GET /metrics`: the scheduler's metrics in Prometheus' text format, when the demo was
/// built with them.
pub fn metrics(state: &AppState) -> Page {
    match &state.metrics {
        Some(render) => Page {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: (render.0)(),
        },
        None => Page::error(
            404,
            "this build of the demo has no metrics (feature `metrics`)",
        ),
    }
}

/// `GET /api/updates?limit=N`: the latest N updates (default 10, at most 100), newest first.
pub async fn updates(state: &AppState, query: Option<&str>) -> Page {
    let limit = match parse_limit(query) {
        Ok(limit) => limit,
        Err(message) => return Page::error(400, &message),
    };
    match db::latest(&state.db, limit).await {
        Ok(rows) => Page::json(200, &json!(rows)),
        Err(error) => {
            tracing::error!(%error, "reading the latest updates failed");
            Page::error(500, &format!("the database failed: {error}"))
        }
    }
}

/// `GET /healthz`: 200 while the database answers and the scheduler has not stopped; 503
/// otherwise (the database is down, or the scheduler was shut down, through the API or at
/// SIGTERM: a load balancer then stops sending requests).
pub async fn healthz(state: &AppState) -> Page {
    let scheduler_state = state.scheduler.state();
    let scheduler = format!("{scheduler_state:?}").to_lowercase();
    let database = db::ping(&state.db).await;
    let healthy = database.is_ok() && scheduler_state != SchedulerState::Stopped;
    let database = database.map_or_else(|error| error.to_string(), |()| "ok".to_owned());
    let (status, word) = if healthy {
        (200, "ok")
    } else {
        (503, "unavailable")
    };
    Page::json(
        status,
        &json!({"status": word, "database": database, "scheduler": scheduler}),
    )
}

/// The `limit` of a query string: a whole number from 1 to [`MAX_LIMIT`], 10 when absent.
///
/// # Errors
///
/// A message naming the value at fault.
pub fn parse_limit(query: Option<&str>) -> Result<u64, String> {
    let Some(value) = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(key, value)| (key == "limit").then_some(value))
    else {
        return Ok(10);
    };
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            format!("limit must be a whole number from 1 to {MAX_LIMIT}, got \"{value}\"")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(10));
        assert_eq!(parse_limit(Some("limit=3")), Ok(3));
        assert_eq!(parse_limit(Some("x=1&limit=100")), Ok(100));
        assert_eq!(
            parse_limit(Some("limit=101")),
            Err("limit must be a whole number from 1 to 100, got \"101\"".to_owned())
        );
        assert_eq!(
            parse_limit(Some("limit=abc")),
            Err("limit must be a whole number from 1 to 100, got \"abc\"".to_owned())
        );
        assert_eq!(
            parse_limit(Some("limit")),
            Err("limit must be a whole number from 1 to 100, got \"\"".to_owned())
        );
    }
}
