//! What a handle asks of the engine: one command per call, answered on its own channel.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::error::Result;
use crate::event::ShutdownReport;
use crate::fires::FireRecord;
use crate::schedule::{NewSchedule, Schedule, ScheduleChanges};
use crate::trigger::TriggerSpec;

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

pub(crate) enum Command {
    Start(Reply<()>),
    Add(Vec<NewSchedule>, Reply<Vec<Schedule>>),
    Get(String, Reply<Option<Schedule>>),
    List(Reply<Vec<Schedule>>),
    Modify(String, ScheduleChanges, Reply<Schedule>),
    Reschedule(String, TriggerSpec, Reply<Schedule>),
    Pause(String, Reply<Schedule>),
    Resume(String, Reply<Schedule>),
    PauseAll(Reply<()>),
    ResumeAll(Reply<()>),
    Remove(String, Reply<()>),
    RemoveAll(Reply<()>),
    RunNow(String, Reply<()>),
    NextFireTimes(String, usize, Reply<Vec<DateTime<Utc>>>),
    Runs(String, usize, Reply<Vec<FireRecord>>),
    Shutdown(Duration, Reply<ShutdownReport>),
}
