//! The JSON of the REST API: Flask-APScheduler's job dict, read and written.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::flask;
use scheduler_core::trigger::{DateTrigger, TriggerSpec, parse_instant};
use scheduler_core::{FirstRun, NewSchedule, Overlap, ScheduleChanges};

/// A job dict, as `POST /scheduler/jobs` and `PATCH /scheduler/jobs/{id}` take it: the job's
/// own keys and, beside them, its trigger's fields (Flask-APScheduler's flattened form).
/// `null` is "not given" except where it means something (`next_run_time`,
/// `misfire_grace_time`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct JobDict {
    /// The schedule's id; one is generated when none is given.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 191)]
    id: Option<String>,
    /// A name for people; the id when none is given.
    #[serde(default)]
    name: Option<String>,
    /// The name of a job registered on the scheduler (`GET /scheduler` lists them).
    #[serde(default)]
    func: Option<String>,
    /// Another name for `func`.
    #[serde(default)]
    job: Option<String>,
    /// A JSON value every run receives.
    #[serde(default)]
    #[schema(value_type = Value)]
    args: Option<Value>,
    /// A JSON object every run receives, instead of `args`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    kwargs: Option<Map<String, Value>>,
    /// The first run: `"now"`, an ISO 8601 date-time (naive ones in the scheduler's zone), or
    /// `null` to add the job paused.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    next_run_time: Option<Option<String>>,
    /// How late a run may start, in seconds; `null`: no limit.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 3_155_760_000_u64)]
    misfire_grace_time: Option<Option<f64>>,
    /// Whether several due fires run once.
    #[serde(default)]
    coalesce: Option<bool>,
    /// How many runs may go at once.
    #[serde(default)]
    #[schema(minimum = 1)]
    max_instances: Option<u32>,
    /// Replace a schedule with the same id instead of answering 409.
    #[serde(default)]
    replace_existing: Option<bool>,
    /// Add the schedule paused.
    #[serde(default)]
    paused: Option<bool>,
    /// Record a fire whose instance died as lost instead of running it again.
    #[serde(default)]
    at_most_once: Option<bool>,
    /// What a fire does when `max_instances` runs are going: `"skip"` (the default, as in
    /// APScheduler), `"queue_one"`, `"allow_all"`, `{"policy": "queue_all", "limit": N}` or
    /// `{"policy": "cancel_running", "grace": seconds}`.
    #[serde(default, deserialize_with = "overlap")]
    #[schema(value_type = Option<crate::dto::OverlapInput>)]
    overlap: Option<Overlap>,
    // Accepted for compatibility with Flask-APScheduler configurations; apsched has one
    // store and no executors to choose from.
    #[serde(default, rename = "jobstore")]
    #[schema(ignore)]
    _jobstore: Option<String>,
    #[serde(default, rename = "executor")]
    #[schema(ignore)]
    _executor: Option<String>,
    /// The trigger: its fields beside the job's keys, or nested under `trigger`.
    #[serde(flatten)]
    #[schema(value_type = flask::TriggerFields)]
    trigger: Map<String, Value>,
}

/// Tells a `null` (`Some(None)`) from an absent key (`None`).
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

const JOB_KEYS: &str = "id, name, func, args, kwargs, next_run_time, misfire_grace_time, \
                        coalesce, max_instances, replace_existing, paused, at_most_once, overlap";

/// An overlap policy: its name, or an object with its `policy` and settings.
fn overlap<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Overlap>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Value::String(name)) => match name.as_str() {
            "skip" => Ok(Some(Overlap::Skip)),
            "queue_one" => Ok(Some(Overlap::QueueOne)),
            "allow_all" => Ok(Some(Overlap::AllowAll)),
            "queue_all" => Err(D::Error::custom(
                "\"queue_all\" needs its limit: {\"policy\": \"queue_all\", \"limit\": 10}",
            )),
            "cancel_running" => Err(D::Error::custom(
                "\"cancel_running\" needs its grace: {\"policy\": \"cancel_running\", \"grace\": 5}",
            )),
            other => Err(D::Error::custom(format!(
                "unknown policy \"{other}\" (skip, queue_one, queue_all, cancel_running, allow_all)"
            ))),
        },
        Some(Value::Object(object)) => {
            // Each policy takes its own setting and nothing else.
            let setting = match object.get("policy").and_then(Value::as_str) {
                Some("queue_all") => Some("limit"),
                Some("cancel_running") => Some("grace"),
                _ => None,
            };
            if let Some(unknown) = object
                .keys()
                .find(|key| *key != "policy" && Some(key.as_str()) != setting)
            {
                return Err(D::Error::custom(format!(
                    "unknown field `{unknown}` for this policy"
                )));
            }
            serde_json::from_value(Value::Object(object))
                .map(Some)
                .map_err(D::Error::custom)
        }
        Some(other) => Err(D::Error::custom(format!(
            "expected a policy name or an object with \"policy\", got {other}"
        ))),
    }
}

impl JobDict {
    fn read(value: Value, what: &str) -> Result<Self> {
        if !value.is_object() {
            return Err(invalid(format!(
                "{what} must be a JSON object, got {}",
                flask::json_kind(&value)
            )));
        }
        let dict: Self = serde_path_to_error::deserialize(value)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        if let Some(unknown) = dict.trigger.keys().find(|k| !flask::is_trigger_field(k)) {
            return Err(invalid(format!(
                "unknown field \"{unknown}\" (a job takes {JOB_KEYS} and its trigger's fields)"
            )));
        }
        Ok(dict)
    }

    /// The one JSON value a run receives: `args` or `kwargs`.
    fn job_args(&mut self) -> Result<Option<Value>> {
        let args = self
            .args
            .take()
            .filter(|a| !a.is_null() && *a != Value::Array(Vec::new()));
        let kwargs = self.kwargs.take().filter(|k| !k.is_empty());
        match (args, kwargs) {
            (Some(_), Some(_)) => Err(invalid(
                "give \"args\" or \"kwargs\", not both: a Rust job receives one JSON value"
                    .to_owned(),
            )),
            (Some(args), None) => Ok(Some(args)),
            (None, Some(kwargs)) => Ok(Some(Value::Object(kwargs))),
            (None, None) => Ok(None),
        }
    }

    fn grace(&self) -> Result<Option<Option<Duration>>> {
        self.misfire_grace_time
            .map(|grace| {
                grace
                    .map(|seconds| flask::duration("misfire_grace_time", seconds, false))
                    .transpose()
            })
            .transpose()
    }

    fn max_instances(&self) -> Result<Option<u32>> {
        match self.max_instances {
            Some(0) => Err(scheduler_core::Error::InvalidOption {
                option: "max_instances",
                reason: "must be a whole number of at least 1, got 0".to_owned(),
            }
            .into()),
            other => Ok(other),
        }
    }

    /// The trigger; none means "once, now".
    fn trigger(&mut self, timezone: Tz, now: DateTime<Utc>) -> Result<Option<TriggerSpec>> {
        let mut fields = std::mem::take(&mut self.trigger);
        if fields.is_empty() {
            return Ok(None);
        }
        if let Some(Value::Object(nested)) = fields.get("trigger").cloned() {
            // Flask-APScheduler's legacy form: the nested fields join the others.
            fields.remove("trigger");
            fields.extend(nested);
            if !fields.contains_key("trigger") {
                let kind = fields.remove("type").unwrap_or_else(|| "date".into());
                fields.insert("trigger".into(), kind);
            }
        }
        if !fields.contains_key("trigger") {
            // APScheduler: no trigger is a date trigger, at `run_date` or now.
            fields.insert("trigger".into(), "date".into());
            if !fields.contains_key("run_date") {
                return match fields.keys().find(|k| *k != "trigger" && *k != "timezone") {
                    Some(key) => Err(invalid(format!(
                        "\"{key}\" needs a \"trigger\" (\"interval\", \"cron\", \"date\", \"or\" or \"and\")"
                    ))),
                    None => Ok(Some(DateTrigger::at(now).into())),
                };
            }
        }
        Ok(Some(flask::trigger_from_map(fields, timezone)?))
    }
}

/// A job as `POST /scheduler/jobs` and configuration files give it: Flask-APScheduler's job
/// dict.
///
/// ```json
/// {"id": "update-db", "func": "update_db", "trigger": "interval", "seconds": 30,
///  "next_run_time": "now", "misfire_grace_time": 10, "coalesce": true, "max_instances": 1}
/// ```
///
/// - `func` (or `job`) names a job registered on the scheduler; a Python import path cannot
///   mean anything here.
/// - `args` is any JSON value given to every run; `kwargs` (an object) may stand in for it.
/// - The trigger is flattened (`"trigger": "cron", "minute": "*/5"`, read by
///   [`flask::trigger_from_value`]) or nested (`"trigger": {"type": "cron", ...}`); without
///   one the job runs once, now, as in APScheduler.
/// - `next_run_time`: `"now"`, a date-time, or `null` to add the job paused.
#[derive(Debug)]
pub struct JobRequest {
    id: Option<String>,
    name: Option<String>,
    job: String,
    args: Value,
    trigger: TriggerSpec,
    first_run: FirstRun,
    paused: bool,
    misfire_grace_time: Option<Option<Duration>>,
    coalesce: Option<bool>,
    max_instances: Option<u32>,
    at_most_once: bool,
    overlap: Option<Overlap>,
    replace_existing: bool,
}

impl JobRequest {
    /// Reads a job dict. Naive date-times and cron fields without a `timezone` are read in
    /// `timezone` (the scheduler's).
    ///
    /// # Errors
    ///
    /// A message naming the field at fault, or the trigger's own error.
    pub fn from_value(value: Value, timezone: Tz, now: DateTime<Utc>) -> Result<Self> {
        let mut dict = JobDict::read(value, "a job")?;
        let job = match (dict.func.take(), dict.job.take()) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(format!(
                    "\"func\" ({a}) and \"job\" ({b}) disagree; give one"
                )));
            }
            (Some(job), _) | (None, Some(job)) => job,
            (None, None) => {
                return Err(invalid(
                    "missing \"func\": the name of a job registered on the scheduler".to_owned(),
                ));
            }
        };
        let args = dict.job_args()?.unwrap_or(Value::Null);
        let (first_run, paused_by_next_run) = match dict.next_run_time.take() {
            None => (FirstRun::Trigger, false),
            Some(None) => (FirstRun::Trigger, true),
            Some(Some(text)) if text.eq_ignore_ascii_case("now") => (FirstRun::Now, false),
            Some(Some(text)) => (FirstRun::At(parse_instant(&text, timezone)?), false),
        };
        let misfire_grace_time = dict.grace()?;
        let max_instances = dict.max_instances()?;
        let trigger = dict
            .trigger(timezone, now)?
            .unwrap_or_else(|| DateTrigger::at(now).into());
        Ok(Self {
            id: dict.id,
            name: dict.name,
            job,
            args,
            trigger,
            first_run,
            paused: dict.paused.unwrap_or(false) || paused_by_next_run,
            misfire_grace_time,
            coalesce: dict.coalesce,
            max_instances,
            at_most_once: dict.at_most_once.unwrap_or(false),
            overlap: dict.overlap,
            replace_existing: dict.replace_existing.unwrap_or(false),
        })
    }

    /// The id, if the request gives one.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether the request asks to replace a schedule with the same id.
    #[must_use]
    pub fn replace_existing(&self) -> bool {
        self.replace_existing
    }

    /// The schedule to add.
    pub fn into_new_schedule(self) -> NewSchedule {
        let mut schedule = NewSchedule::for_job(&self.job, self.trigger)
            .args(self.args)
            .first_run(self.first_run)
            .paused(self.paused)
            .at_most_once(self.at_most_once)
            .overlap(self.overlap.unwrap_or_default())
            .replace_existing(self.replace_existing);
        if let Some(id) = self.id {
            schedule = schedule.id(id);
        }
        if let Some(name) = self.name {
            schedule = schedule.name(name);
        }
        if let Some(grace) = self.misfire_grace_time {
            schedule = schedule.misfire_grace_time(grace);
        }
        if let Some(coalesce) = self.coalesce {
            schedule = schedule.coalesce(coalesce);
        }
        if let Some(max_instances) = self.max_instances {
            schedule = schedule.max_instances(max_instances);
        }
        schedule
    }
}

/// The changes a `PATCH /scheduler/jobs/{id}` asks for, as one command: `name`, `func`,
/// `args`/`kwargs`, `misfire_grace_time`, `coalesce`, `max_instances`, `next_run_time`
/// (`null` pauses), and a trigger (its fields, as in a job dict) to reschedule.
#[derive(Debug, Default)]
pub struct JobChanges {
    pub(crate) changes: ScheduleChanges,
}

impl JobChanges {
    /// Reads a PATCH body.
    ///
    /// # Errors
    ///
    /// A message naming the field at fault, or the trigger's own error.
    pub fn from_value(value: Value, timezone: Tz, now: DateTime<Utc>) -> Result<Self> {
        let mut dict = JobDict::read(value, "the changes")?;
        let refuse = |key: &str, hint: &str| {
            Err(invalid(format!(
                "\"{key}\" cannot be changed with PATCH{hint}"
            )))
        };
        if dict.id.is_some() {
            return refuse("id", " (an id cannot change)");
        }
        if dict.paused.is_some() {
            return refuse("paused", " (use POST .../pause or .../resume)");
        }
        if dict.replace_existing.is_some() {
            return refuse("replace_existing", "");
        }
        if dict.at_most_once.is_some() {
            return refuse("at_most_once", " (replace the job instead)");
        }
        let mut changes = ScheduleChanges::new();
        if let Some(name) = dict.name.take() {
            changes = changes.name(name);
        }
        match (dict.func.take(), dict.job.take()) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(format!(
                    "\"func\" ({a}) and \"job\" ({b}) disagree; give one"
                )));
            }
            (Some(job), _) | (None, Some(job)) => changes = changes.job(job),
            (None, None) => {}
        }
        if dict.args.is_some() || dict.kwargs.is_some() {
            changes = changes.args(dict.job_args()?.unwrap_or(Value::Null));
        }
        if let Some(grace) = dict.grace()? {
            changes = changes.misfire_grace_time(grace);
        }
        if let Some(coalesce) = dict.coalesce {
            changes = changes.coalesce(coalesce);
        }
        if let Some(max_instances) = dict.max_instances()? {
            changes = changes.max_instances(max_instances);
        }
        if let Some(overlap) = dict.overlap {
            changes = changes.overlap(overlap);
        }
        if let Some(trigger) = dict.trigger(timezone, now)? {
            changes = changes.trigger(trigger);
        }
        match dict.next_run_time.take() {
            None => {}
            Some(None) => changes = changes.next_run_time(None),
            Some(Some(text)) if text.eq_ignore_ascii_case("now") => {
                changes = changes.next_run_time(Some(now));
            }
            Some(Some(text)) => {
                changes = changes.next_run_time(Some(parse_instant(&text, timezone)?));
            }
        }
        Ok(Self { changes })
    }

    /// The changes, as one command for [`SchedulerHandle::modify`](scheduler_core::SchedulerHandle::modify).
    pub fn into_changes(self) -> ScheduleChanges {
        self.changes
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidJob(message)
}
