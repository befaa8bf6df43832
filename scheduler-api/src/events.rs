//! `GET /scheduler/events`: the scheduler's events as Server-Sent Events, one JSON object per
//! event. A client that falls behind is told how many events it missed (`{"type":
//! "lagged", "missed": n}`) instead of slowing the scheduler down; the stream ends when the
//! scheduler begins to shut down, so the server can drain.

use std::time::Duration;

use bytes::Bytes;
use chrono_tz::Tz;
use futures_util::StreamExt as _;
use http_body::Frame;
use serde_json::{Value, json};

use crate::flask::isoformat;
use crate::service::BoxError;
use scheduler_core::{Event, EventReceiver, RecvError, SchedulerHandle};

/// A comment every so often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An event as the stream writes it: `type` (the variant, in snake case) and its fields.
pub(crate) fn event_json(event: &Event, zone: Tz) -> Value {
    let time = |t: &chrono::DateTime<chrono::Utc>| isoformat(*t, zone);
    match event {
        Event::SchedulerStarted => json!({"type": "scheduler_started"}),
        Event::SchedulerPaused => json!({"type": "scheduler_paused"}),
        Event::SchedulerResumed => json!({"type": "scheduler_resumed"}),
        Event::Shutdown(report) => json!({
            "type": "shutdown",
            "finished": report.finished.len(),
            "aborted": report.aborted.len(),
        }),
        Event::Added { schedule_id } => json!({"type": "added", "schedule_id": schedule_id}),
        Event::Modified { schedule_id } => {
            json!({"type": "modified", "schedule_id": schedule_id})
        }
        Event::Removed { schedule_id } => json!({"type": "removed", "schedule_id": schedule_id}),
        Event::AllRemoved => json!({"type": "all_removed"}),
        Event::Paused { schedule_id } => json!({"type": "paused", "schedule_id": schedule_id}),
        Event::Resumed { schedule_id } => json!({"type": "resumed", "schedule_id": schedule_id}),
        Event::Submitted {
            schedule_id,
            run_id,
            nominal_time,
        } => json!({
            "type": "submitted",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
        }),
        Event::Succeeded {
            schedule_id,
            run_id,
            nominal_time,
            duration,
        } => json!({
            "type": "succeeded",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
            "duration_seconds": duration.as_secs_f64(),
        }),
        Event::Failed {
            schedule_id,
            run_id,
            nominal_time,
            duration,
            error,
        } => json!({
            "type": "failed",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
            "duration_seconds": duration.as_secs_f64(),
            "error": error,
        }),
        Event::Panicked {
            schedule_id,
            run_id,
            nominal_time,
            message,
        } => json!({
            "type": "panicked",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
            "error": message,
        }),
        Event::Queued {
            schedule_id,
            nominal_time,
        } => json!({
            "type": "queued",
            "schedule_id": schedule_id,
            "nominal_time": time(nominal_time),
        }),
        Event::Cancelled {
            schedule_id,
            run_id,
            nominal_time,
        } => json!({
            "type": "cancelled",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
        }),
        Event::Aborted {
            schedule_id,
            run_id,
            nominal_time,
        } => json!({
            "type": "aborted",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
        }),
        Event::Missed {
            schedule_id,
            nominal_time,
            lateness,
        } => json!({
            "type": "missed",
            "schedule_id": schedule_id,
            "nominal_time": time(nominal_time),
            "lateness_seconds": lateness.as_secs_f64(),
        }),
        Event::Skipped {
            schedule_id,
            nominal_time,
            reason,
        } => json!({
            "type": "skipped",
            "schedule_id": schedule_id,
            "nominal_time": time(nominal_time),
            "reason": scheduler_core::NotRun::Skipped(*reason).to_string(),
        }),
        Event::Rejected {
            schedule_id,
            run_id,
            nominal_time,
            epoch,
        } => json!({
            "type": "rejected",
            "schedule_id": schedule_id,
            "run_id": run_id,
            "nominal_time": time(nominal_time),
            "epoch": epoch,
        }),
        Event::Lost {
            schedule_id,
            nominal_time,
        } => json!({
            "type": "lost",
            "schedule_id": schedule_id,
            "nominal_time": time(nominal_time),
        }),
        Event::UnknownJob { schedule_id, job } => {
            json!({"type": "unknown_job", "schedule_id": schedule_id, "job": job})
        }
        Event::StoreFailed { operation, error } => {
            json!({"type": "store_failed", "operation": operation, "error": error})
        }
        Event::StoreRecovered => json!({"type": "store_recovered"}),
        other => json!({"type": "other", "schedule_id": other.schedule_id()}),
    }
}

/// One Server-Sent Event holding `value`.
fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// What the stream does next.
enum Next {
    Event(Event),
    Lagged(u64),
    KeepAlive,
    End,
}

/// The stream of the scheduler's events from now on, as SSE frames.
pub(crate) fn stream(
    handle: &SchedulerHandle,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static {
    let receiver = handle.subscribe();
    let zone = handle.timezone();
    let stopping = Box::pin(handle.stopping());
    // The first frame says the stream is open, before any event happens.
    let hello = futures_util::stream::once(async {
        Ok::<_, BoxError>(Frame::data(frame(&json!({"type": "connected"}))))
    });
    let events = futures_util::stream::unfold(
        (receiver, stopping, false),
        move |(mut receiver, mut stopping, ended): (EventReceiver, _, bool)| async move {
            if ended {
                return None;
            }
            let next = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(event) => Next::Event(event),
                    Err(RecvError::Lagged(missed)) => Next::Lagged(missed),
                    Err(RecvError::Closed) => Next::End,
                },
                () = &mut stopping => Next::End,
                () = tokio::time::sleep(KEEP_ALIVE) => Next::KeepAlive,
            };
            let (bytes, ended) = match next {
                Next::Event(event) => (frame(&event_json(&event, zone)), false),
                Next::Lagged(missed) => {
                    (frame(&json!({"type": "lagged", "missed": missed})), false)
                }
                Next::KeepAlive => (Bytes::from_static(b": keep-alive\n\n"), false),
                Next::End => (frame(&json!({"type": "end"})), true),
            };
            Some((Ok(Frame::data(bytes)), (receiver, stopping, ended)))
        },
    );
    hello.chain(events)
}
