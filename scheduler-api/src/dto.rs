//! The JSON the REST API answers with, as types: serde writes them and the OpenAPI document
//! (`GET /scheduler/openapi.json`) describes them, from one definition.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::flask::isoformat;
use scheduler_core::trigger::{Trigger as _, TriggerSpec};
use scheduler_core::{FireRecord, Overlap, Schedule, SchedulerHandle, SchedulerState};

/// A number of seconds: a whole number when whole (`30`, as Python writes an int), else a
/// fraction (`0.5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[schema(value_type = f64)]
pub struct Seconds(pub Duration);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            serializer.serialize_u64(self.0.as_secs())
        } else {
            serializer.serialize_f64(self.0.as_secs_f64())
        }
    }
}

/// A schedule as the REST API shows it: Flask-APScheduler's job dict, which a client written
/// for Flask-APScheduler 1.13 reads unchanged, plus what apsched adds so that posting it back
/// recreates the same schedule (`coalesce`, `paused`, `at_most_once`, the trigger's
/// `timezone` and `jitter`).
///
/// Date-times are Python's `isoformat()` in the trigger's zone (an interval's in the
/// scheduler's), microseconds included when there are any.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[non_exhaustive]
pub struct JobJson {
    /// The schedule's id.
    pub id: String,
    /// Its name (the id unless one was given).
    pub name: String,
    /// The registered job it runs; `null` for a job given as a value in code.
    pub func: Option<String>,
    /// The JSON value every run receives, when it is not an object: `[]` when there is none.
    #[schema(value_type = Value)]
    pub args: Value,
    /// The JSON object every run receives, when it is one: `{}` otherwise.
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    /// The trigger, its fields beside the job's, as Flask-APScheduler writes them.
    #[serde(flatten)]
    pub trigger: TriggerJson,
    /// When it runs next; `null` while paused.
    pub next_run_time: Option<String>,
    /// How late a run may start; `null`: no limit.
    pub misfire_grace_time: Option<Seconds>,
    /// How many runs may go at once.
    pub max_instances: u32,
    /// Whether several due fires run once.
    pub coalesce: bool,
    /// Whether the schedule is paused.
    pub paused: bool,
    /// Whether a fire whose instance died is recorded lost instead of run again.
    pub at_most_once: bool,
    /// What a fire does when `max_instances` runs are going (`{"policy": "skip"}`:
    /// APScheduler's).
    #[schema(value_type = OverlapJson)]
    pub overlap: Overlap,
}

impl JobJson {
    /// The job dict of `schedule`; `timezone` is the scheduler's, for an interval's dates.
    #[must_use]
    pub fn new(schedule: &Schedule, timezone: Tz) -> Self {
        let (args, kwargs) = match schedule.args() {
            Value::Null => (Value::Array(Vec::new()), Map::new()),
            Value::Object(kwargs) => (Value::Array(Vec::new()), kwargs.clone()),
            args => (args.clone(), Map::new()),
        };
        let zone = zone_of(schedule.trigger(), timezone);
        Self {
            id: schedule.id().to_owned(),
            name: schedule.name().to_owned(),
            func: schedule.job_name().map(str::to_owned),
            args,
            kwargs,
            trigger: TriggerJson::new(schedule.trigger(), timezone),
            next_run_time: schedule.next_run_time().map(|t| isoformat(t, zone)),
            misfire_grace_time: schedule.misfire_grace_time().map(Seconds),
            max_instances: schedule.max_instances(),
            coalesce: schedule.coalesce(),
            paused: schedule.paused(),
            at_most_once: schedule.at_most_once(),
            overlap: schedule.overlap(),
        }
    }
}

/// The zone a schedule's times are shown in: its trigger's, else the scheduler's.
pub(crate) fn zone_of(trigger: &TriggerSpec, scheduler_zone: Tz) -> Tz {
    match trigger {
        TriggerSpec::Cron(t) => t.timezone(),
        TriggerSpec::Date(t) => t.timezone(),
        _ => scheduler_zone,
    }
}

/// An overlap policy as the API writes it: `{"policy": "skip"}`, `{"policy": "queue_one"}`,
/// `{"policy": "allow_all"}`, `{"policy": "queue_all", "limit": N}` or
/// `{"policy": "cancel_running", "grace": seconds}`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverlapJson;

impl OverlapJson {
    fn object(
        policies: &[&str],
        setting: Option<(&str, utoipa::openapi::schema::Object)>,
    ) -> utoipa::openapi::schema::Object {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "policy",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(policies.iter().copied())),
            )
            .required("policy")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        if let Some((name, schema)) = setting {
            object = object.property(name, schema).required(name);
        }
        object.build()
    }
}

impl utoipa::PartialSchema for OverlapJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(Self::object(&["skip", "queue_one", "allow_all"], None))
            .item(Self::object(
                &["queue_all"],
                Some((
                    "limit",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(10_000))
                        .build(),
                )),
            ))
            .item(Self::object(
                &["cancel_running"],
                Some((
                    "grace",
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .minimum(Some(0))
                        .maximum(Some(3600))
                        .build(),
                )),
            ))
            .description(Some(
                "What a fire does when max_instances runs are going (skip: APScheduler's)",
            ))
            .into()
    }
}

impl ToSchema for OverlapJson {}

/// An overlap policy as a job dict gives it: as the API writes it, or one of the names
/// `"skip"`, `"queue_one"`, `"allow_all"` alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverlapInput;

impl utoipa::PartialSchema for OverlapInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["skip", "queue_one", "allow_all"])),
            )
            .item(utoipa::openapi::RefOr::Ref(
                utoipa::openapi::Ref::from_schema_name("OverlapJson"),
            ))
            .into()
    }
}

impl ToSchema for OverlapInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "OverlapJson".to_owned(),
            <OverlapJson as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// The trigger kinds, as the `trigger` field names them.
#[derive(Clone, Copy, Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the document's enumeration of `TriggerJson::trigger`
pub(crate) enum TriggerKind {
    Interval,
    Cron,
    Date,
    Or,
    And,
}

/// A trigger's fields as Flask-APScheduler writes them into a job dict, plus what apsched
/// adds so that posting the dict back recreates the trigger (`timezone`, `jitter`, a cron
/// `expr`, `milliseconds`, an or/and trigger's `triggers`). Fields a kind does not have are
/// left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
#[non_exhaustive]
pub struct TriggerJson {
    /// `interval`, `cron`, `date`, `or` or `and`.
    #[schema(value_type = TriggerKind)]
    pub trigger: &'static str,
    /// An interval's whole weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weeks: Option<u64>,
    /// An interval's whole days after the weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u64>,
    /// An interval's whole hours after the days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<u64>,
    /// An interval's whole minutes after the hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u64>,
    /// An interval's whole seconds after the minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// An interval's milliseconds after the seconds (with a fraction for microseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milliseconds: Option<f64>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minute: Option<String>,
    /// A cron trigger's field, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second: Option<String>,
    /// A cron trigger given as an expression (crontab or Quartz).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// A date trigger's instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_date: Option<String>,
    /// When an interval or cron trigger starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// When an interval or cron trigger ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// The trigger's IANA time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The most each fire is moved later at random.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Seconds>,
    /// An or/and trigger's triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub triggers: Option<Vec<Self>>,
}

impl TriggerJson {
    /// The fields of `spec`, date-times in the trigger's zone (an interval's in
    /// `scheduler_zone`).
    #[must_use]
    pub fn new(spec: &TriggerSpec, scheduler_zone: Tz) -> Self {
        let iso = |t: Option<DateTime<Utc>>, zone: Tz| t.map(|t| isoformat(t, zone));
        match spec {
            TriggerSpec::Interval(t) => {
                let mut json = Self {
                    trigger: "interval",
                    start_date: iso(t.start(), scheduler_zone),
                    end_date: iso(t.end(), scheduler_zone),
                    timezone: Some(scheduler_zone.name().to_owned()),
                    jitter: t.jitter().map(Seconds),
                    ..Self::default()
                };
                json.set_period(t.period());
                json
            }
            TriggerSpec::Cron(t) => {
                let mut json = Self {
                    trigger: "cron",
                    start_date: iso(t.start(), t.timezone()),
                    end_date: iso(t.end(), t.timezone()),
                    timezone: Some(t.timezone().name().to_owned()),
                    jitter: t.jitter().map(Seconds),
                    ..Self::default()
                };
                match t.fields() {
                    Some(fields) => {
                        for (name, value) in fields.iter() {
                            json.set_cron_field(name, value.to_owned());
                        }
                    }
                    None => json.expr = Some(t.expression().to_owned()),
                }
                json
            }
            TriggerSpec::Date(t) => Self {
                trigger: "date",
                run_date: Some(isoformat(t.run_date(), t.timezone())),
                timezone: Some(t.timezone().name().to_owned()),
                ..Self::default()
            },
            TriggerSpec::Or(t) => Self {
                trigger: "or",
                triggers: Some(
                    t.triggers()
                        .iter()
                        .map(|t| Self::new(t, scheduler_zone))
                        .collect(),
                ),
                jitter: t.jitter().map(Seconds),
                ..Self::default()
            },
            TriggerSpec::And(t) => Self {
                trigger: "and",
                triggers: Some(
                    t.triggers()
                        .iter()
                        .map(|t| Self::new(t, scheduler_zone))
                        .collect(),
                ),
                jitter: t.jitter().map(Seconds),
                ..Self::default()
            },
            // A kind added to the core later: its name, until its fields are written here.
            other => Self {
                trigger: other.kind(),
                ..Self::default()
            },
        }
    }

    /// The period as APScheduler's units, largest first.
    fn set_period(&mut self, period: TimeDelta) {
        let mut rest = period.num_microseconds().unwrap_or(i64::MAX).unsigned_abs();
        for (slot, micros) in [
            (&mut self.weeks, 7 * 86_400_000_000),
            (&mut self.days, 86_400_000_000),
            (&mut self.hours, 3_600_000_000),
            (&mut self.minutes, 60_000_000),
            (&mut self.seconds, 1_000_000),
        ] {
            let count = rest / micros;
            if count > 0 {
                *slot = Some(count);
                rest -= count * micros;
            }
        }
        if rest > 0 {
            #[allow(clippy::cast_precision_loss)] // under a second of microseconds: exact
            let millis = rest as f64 / 1000.0;
            self.milliseconds = Some(millis);
        }
    }

    fn set_cron_field(&mut self, name: &str, value: String) {
        let slot = match name {
            "year" => &mut self.year,
            "month" => &mut self.month,
            "day" => &mut self.day,
            "week" => &mut self.week,
            "day_of_week" => &mut self.day_of_week,
            "hour" => &mut self.hour,
            "minute" => &mut self.minute,
            "second" => &mut self.second,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// The scheduler's states, as `GET /scheduler` names them.
#[derive(Clone, Copy, Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enumeration of `SchedulerInfo::state`
pub(crate) enum StateName {
    NotStarted,
    Running,
    Paused,
    Stopped,
}

/// `GET /scheduler`: Flask-APScheduler's three fields, and what apsched adds.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[non_exhaustive]
pub struct SchedulerInfo {
    /// As APScheduler: true while started, paused or not (`state` tells the two apart).
    pub running: bool,
    /// `not_started`, `running`, `paused` or `stopped`.
    #[schema(value_type = StateName)]
    pub state: &'static str,
    /// This process's host name.
    pub current_host: String,
    /// Always `["*"]`: apsched has no host allow-list. Which processes run jobs is decided by
    /// whether they start a scheduler (and, with a shared store, by its claims).
    pub allowed_hosts: Vec<String>,
    /// The scheduler's IANA time zone: naive date-times and cron fields are read in it.
    pub timezone: String,
    /// The names of the jobs registered on this scheduler: what `func` may name.
    pub registered_jobs: Vec<String>,
}

impl SchedulerInfo {
    /// What `handle`'s scheduler is doing now.
    #[must_use]
    pub fn new(handle: &SchedulerHandle) -> Self {
        let state = handle.state();
        Self {
            running: matches!(state, SchedulerState::Running | SchedulerState::Paused),
            state: match state {
                SchedulerState::NotStarted => "not_started",
                SchedulerState::Running => "running",
                SchedulerState::Paused => "paused",
                _ => "stopped",
            },
            current_host: scheduler_core::host_name().unwrap_or_else(|| "unknown".to_owned()),
            allowed_hosts: vec!["*".to_owned()],
            timezone: handle.timezone().name().to_owned(),
            registered_jobs: handle.job_names(),
        }
    }
}

/// The states of a fire, as the history names them.
#[derive(Clone, Copy, Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the document's enumeration of `FireJson::state`
pub(crate) enum FireStateName {
    Claimed,
    Queued,
    Running,
    Succeeded,
    Failed,
    Missed,
    Skipped,
    Lost,
    Aborted,
}

/// One fire of a schedule's history, as `GET /scheduler/jobs/{id}/runs` shows it: a run and
/// how it ended, or a fire that did not run and why.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[non_exhaustive]
pub struct FireJson {
    /// The fire's id in its store.
    pub fire_id: String,
    /// The schedule.
    pub schedule_id: String,
    /// When it was meant to run.
    pub nominal_time: String,
    /// Where it is.
    #[schema(value_type = FireStateName)]
    pub state: &'static str,
    /// Why it did not run, or why it changed hands.
    pub reason: Option<String>,
    /// The instance that has it, or had it last.
    pub owner: Option<String>,
    /// Its fencing token.
    pub epoch: i64,
    /// How many times it was started.
    pub attempt: u32,
    /// When it was claimed (or decided on).
    pub claimed_at: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// The job's error, for a failed run.
    pub error: Option<String>,
}

impl FireJson {
    /// `fire`, its times in `timezone`.
    #[must_use]
    pub fn new(fire: &FireRecord, timezone: Tz) -> Self {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| isoformat(t, timezone));
        Self {
            fire_id: fire.fire_id.clone(),
            schedule_id: fire.schedule_id.clone(),
            nominal_time: isoformat(fire.nominal_time, timezone),
            state: fire.state.as_str(),
            reason: fire.reason.clone(),
            owner: fire.owner.clone(),
            epoch: fire.epoch,
            attempt: fire.attempt,
            claimed_at: time(fire.claimed_at),
            started_at: time(fire.started_at),
            finished_at: time(fire.finished_at),
            error: fire.error.clone(),
        }
    }
}

/// Every error answer: what was wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[non_exhaustive]
pub struct ErrorJson {
    /// What failed, naming the field or value at fault.
    pub error_message: String,
}
