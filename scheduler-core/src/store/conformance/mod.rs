//! The conformance suites stores run in their tests (feature `test-util`): [`local`] for a
//! [`JobStore`](crate::store::JobStore), [`shared`] for a
//! [`SharedStore`](crate::store::SharedStore). A failed check panics with a message naming
//! the check and what differed.

pub mod local;
pub mod shared;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use crate::schedule::{Schedule, ScheduleOptions};
use crate::trigger::{CronTrigger, TriggerSpec};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn at(minutes: i64) -> Option<DateTime<Utc>> {
    Some(t0() + TimeDelta::minutes(minutes))
}

/// A schedule with every field set to something a store must keep exactly (paused when it
/// has no next run time).
pub fn sample_schedule(id: &str, next_run_time: Option<DateTime<Utc>>) -> Schedule {
    let trigger: TriggerSpec = CronTrigger::builder("0 */5 9-17 * * MON-FRI")
        .timezone("Europe/Berlin")
        .start(t0())
        .jitter(Duration::from_millis(1500))
        .build()
        .expect("valid cron")
        .into();
    Schedule::from_parts(
        id,
        &format!("name of {id}"),
        Some("job"),
        json!({"table": "my_data", "ids": [1, 2, 3], "nested": {"ok": true}}),
        trigger,
        next_run_time,
        ScheduleOptions {
            misfire_grace_time: Some(Duration::from_millis(2500)),
            coalesce: false,
            max_instances: 3,
            paused: next_run_time.is_none(),
            at_most_once: true,
            overlap: crate::schedule::Overlap::QueueAll { limit: 7 },
        },
    )
    .expect("valid schedule")
}
