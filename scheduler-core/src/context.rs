//! What a job is told about the run it is doing.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::JobError;
use crate::fires::FireToken;

/// Application state given to the scheduler builder, by type.
#[derive(Clone, Default)]
pub(crate) struct StateMap {
    values: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateMap({} value(s))", self.values.len())
    }
}

/// One run of a schedule, as the job sees it.
///
/// It is the answer to Flask's `app.app_context()`: the application state given to
/// [`SchedulerBuilder::state`](crate::SchedulerBuilder::state) is reachable by type with
/// [`state`](Self::state), in every run, with no global.
///
/// ```
/// use apsched::{JobContext, JobError};
///
/// #[derive(Clone)]
/// struct Db { url: String }
///
/// async fn update(ctx: JobContext) -> Result<(), JobError> {
///     let db = ctx.state::<Db>()?;
///     let batch: u32 = ctx.args_as().unwrap_or(100);
///     tracing::info!(url = %db.url, batch, nominal = %ctx.nominal_fire_time(), "updating");
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) schedule: Arc<ScheduleContext>,
    pub(crate) nominal_fire_time: DateTime<Utc>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) run_id: Uuid,
    pub(crate) fire: Option<FireInfo>,
    /// The run's own token, when its overlap policy may cancel it (a child of the
    /// scheduler's); otherwise the scheduler's token serves.
    pub(crate) cancel: Option<CancellationToken>,
}

/// A fire's place in a shared store's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FireInfo {
    pub(crate) token: FireToken,
    pub(crate) attempt: u32,
}

/// The part of a [`JobContext`] every run of one schedule shares. One `Arc` per schedule, so a
/// run's context costs one reference count of its own schedule rather than several
/// scheduler-wide ones that every core would fight over.
pub(crate) struct ScheduleContext {
    pub(crate) schedule_id: Arc<str>,
    pub(crate) args: Arc<Value>,
    pub(crate) state: StateMap,
    pub(crate) cancellation: Arc<CancellationToken>,
}

impl fmt::Debug for ScheduleContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleContext")
            .field("schedule_id", &self.schedule_id)
            .field("args", &self.args)
            .field("state", &self.state)
            .field("cancellation", &self.cancellation)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// A context for calling a job directly, in a unit test of the job.
    #[must_use]
    pub fn for_test(schedule_id: &str, nominal_fire_time: DateTime<Utc>) -> Self {
        Self {
            schedule: Arc::new(ScheduleContext {
                schedule_id: schedule_id.into(),
                args: Arc::new(Value::Null),
                state: StateMap::default(),
                cancellation: Arc::new(CancellationToken::new()),
            }),
            nominal_fire_time,
            started_at: nominal_fire_time,
            run_id: Uuid::new_v4(),
            fire: None,
            cancel: None,
        }
    }

    fn schedule_mut(&mut self) -> &mut ScheduleContext {
        if Arc::get_mut(&mut self.schedule).is_none() {
            let copy = ScheduleContext {
                schedule_id: Arc::clone(&self.schedule.schedule_id),
                args: Arc::clone(&self.schedule.args),
                state: self.schedule.state.clone(),
                cancellation: Arc::clone(&self.schedule.cancellation),
            };
            self.schedule = Arc::new(copy);
        }
        Arc::get_mut(&mut self.schedule).expect("unique after the copy")
    }

    /// Adds application state (see [`state`](Self::state)); for tests.
    #[must_use]
    pub fn with_state<T: Send + Sync + 'static>(mut self, state: T) -> Self {
        self.schedule_mut().state.insert(state);
        self
    }

    /// Sets the args (see [`args`](Self::args)); for tests.
    #[must_use]
    pub fn with_args(mut self, args: Value) -> Self {
        self.schedule_mut().args = Arc::new(args);
        self
    }

    /// The id of the schedule this run belongs to.
    #[must_use]
    pub fn schedule_id(&self) -> &str {
        &self.schedule.schedule_id
    }

    /// When this run was meant to start: the trigger's fire time, without jitter.
    #[must_use]
    pub fn nominal_fire_time(&self) -> DateTime<Utc> {
        self.nominal_fire_time
    }

    /// When this run actually started.
    #[must_use]
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// How late the run started: `started_at - nominal_fire_time` (jitter included).
    #[must_use]
    pub fn lateness(&self) -> TimeDelta {
        self.started_at - self.nominal_fire_time
    }

    /// This run's unique id, as in the scheduler's events.
    #[must_use]
    pub fn run_id(&self) -> Uuid {
        self.run_id
    }

    /// With a shared store: the fire's id in its ledger.
    #[must_use]
    pub fn fire_id(&self) -> Option<&str> {
        self.fire.as_ref().map(|f| f.token.id())
    }

    /// With a shared store: the fencing token of this run. It grows each time the fire
    /// changes hands (an instance died with it); write it beside the job's own side effects
    /// and refuse writes with an older one, and a stale run can never overwrite a newer one.
    #[must_use]
    pub fn epoch(&self) -> Option<i64> {
        self.fire.as_ref().map(|f| f.token.epoch())
    }

    /// How many times this fire has been started: 1, or more after an instance died with it
    /// (shared stores run fires at least once).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.fire.as_ref().map_or(1, |f| f.attempt)
    }

    /// Cancelled when the scheduler shuts down, or when this run is asked to stop for a newer
    /// fire (overlap policy [`CancelRunning`](crate::Overlap::CancelRunning)): a long job
    /// should watch it and stop early. After the shutdown deadline (or the policy's grace)
    /// the run is aborted anyway.
    #[must_use]
    pub fn cancellation_token(&self) -> &CancellationToken {
        self.cancel.as_ref().unwrap_or(&self.schedule.cancellation)
    }

    /// Completes when [`cancellation_token`](Self::cancellation_token) is cancelled.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: use it in `tokio::select!` beside the job's work.
    pub async fn cancelled(&self) {
        self.cancellation_token().cancelled().await;
    }

    /// True once [`cancellation_token`](Self::cancellation_token) is cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancellation_token().is_cancelled()
    }

    /// The schedule's args, as given when it was added (`null` when none were).
    #[must_use]
    pub fn args(&self) -> &Value {
        &self.schedule.args
    }

    /// The schedule's args, deserialized.
    ///
    /// # Errors
    ///
    /// When the args do not have the shape of `T`; the message names `T`.
    pub fn args_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        T::deserialize(&*self.schedule.args).map_err(|e| {
            JobError::msg(format!(
                "the schedule's args are not a {}: {e}",
                type_name::<T>()
            ))
        })
    }

    /// The application state of type `T` given to the scheduler builder.
    ///
    /// # Errors
    ///
    /// When no state of type `T` was given; the message names the type.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, JobError> {
        self.schedule.state.get::<T>().ok_or_else(|| {
            JobError::msg(format!(
                "no application state of type {} was given to the scheduler builder \
                 (SchedulerBuilder::state)",
                type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn state_and_args_are_typed() {
        #[derive(Debug, PartialEq)]
        struct Db(&'static str);
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let ctx = JobContext::for_test("s", t)
            .with_state(Db("sqlite://demo.db"))
            .with_args(serde_json::json!([1, 2]));
        assert_eq!(ctx.state::<Db>().unwrap(), &Db("sqlite://demo.db"));
        let missing = ctx.state::<String>().unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no application state of type alloc::string::String")
        );
        assert_eq!(ctx.args_as::<Vec<u32>>().unwrap(), vec![1, 2]);
        assert!(
            ctx.args_as::<String>()
                .unwrap_err()
                .to_string()
                .contains("not a alloc::string::String")
        );
    }
}
