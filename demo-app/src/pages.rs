//! The pages, written once for both frameworks: each returns a [`Page`] that the axum and
//! warp modules only turn into their response type.

use apsched::{SchedulerHandle, SchedulerState};
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

/// `GET /`: the latest 10 updates, newest first.
pub async fn index(state: &AppState) -> Page {
    let rows = match db::latest(&state.db, 10).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "reading the latest updates failed");
            return Page::error(500, &format!("the database failed: {error}"));
        }
    };
    let items = if rows.is_empty() {
        "<p>No data yet.</p>".to_owned()
    } else {
        let items: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "<li><time datetime=\"{t}\">{t}</time>: {value}</li>",
                    t = row
                        .timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    value = escape(&row.value)
                )
            })
            .collect();
        format!("<ol>\n{}\n</ol>", items.join("\n"))
    };
    Page::html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>apsched demo</title></head>\n\
         <body>\n<h1>Latest 10 database updates</h1>\n{items}\n\
         <p>The scheduler's API is at <a href=\"/scheduler\">/scheduler</a>.</p>\n</body>\n</html>\n"
    ))
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<b>\"x\" & y</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; y&lt;/b&gt;"
        );
    }
}
