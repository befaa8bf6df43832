//! The JSON of the REST API: Flask-APScheduler's job dict, read and written.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use scheduler_core::Error as CoreError;

use crate::error::{Error, Result};
use scheduler_core::trigger::{DateTrigger, TriggerSpec, parse_instant};
use scheduler_core::{FirstRun, NewSchedule, Schedule, ScheduleChanges};

/// The keys of a job dict that are not trigger fields.
const JOB_KEYS: [&str; 15] = [
    "id",
    "name",
    "func",
    "job",
    "args",
    "kwargs",
    "next_run_time",
    "misfire_grace_time",
    "coalesce",
    "max_instances",
    "replace_existing",
    "paused",
    "at_most_once",
    // Accepted for compatibility with Flask-APScheduler configurations; apsched has one
    // store and no executors to choose from.
    "jobstore",
    "executor",
];

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
/// - The trigger is either flattened (`"trigger": "cron", "minute": "*/5"`) or nested
///   (`"trigger": {"trigger": "cron", "expr": "*/5 * * * *"}`); without one the job runs once,
///   now, as in APScheduler.
/// - `next_run_time`: `"now"`, a date-time, or `null` to add the job paused.
#[derive(Debug)]
pub struct JobRequest {
    id: Option<String>,
    name: Option<String>,
    job: String,
    args: Value,
    trigger: TriggerSpec,
    trigger_has_start: bool,
    first_run: FirstRun,
    paused: bool,
    misfire_grace_time: Option<Option<Duration>>,
    coalesce: Option<bool>,
    max_instances: Option<u32>,
    at_most_once: bool,
    replace_existing: bool,
}

impl JobRequest {
    /// Reads a job dict. Naive date-times and cron expressions without a `timezone` are read
    /// in `timezone` (the scheduler's default).
    ///
    /// # Errors
    ///
    /// A message naming the field at fault, or the trigger's own error.
    pub fn from_value(value: Value, timezone: Tz, now: DateTime<Utc>) -> Result<Self> {
        let Value::Object(mut map) = value else {
            return Err(invalid(format!(
                "a job must be a JSON object, got {}",
                kind(&value)
            )));
        };
        let id = take_string(&mut map, "id")?;
        let name = take_string(&mut map, "name")?;
        let job = match (
            take_string(&mut map, "func")?,
            take_string(&mut map, "job")?,
        ) {
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
        let args = take_args(&mut map)?;
        let (first_run, paused_by_next_run) = match map.remove("next_run_time") {
            None => (FirstRun::Trigger, false),
            Some(Value::Null) => (FirstRun::Trigger, true),
            Some(Value::String(text)) if text.eq_ignore_ascii_case("now") => (FirstRun::Now, false),
            Some(Value::String(text)) => (FirstRun::At(parse_instant(&text, timezone)?), false),
            Some(other) => {
                return Err(invalid(format!(
                    "\"next_run_time\" must be \"now\", a date-time or null, got {}",
                    kind(&other)
                )));
            }
        };
        let misfire_grace_time = take_grace(&mut map)?;
        let coalesce = take_bool(&mut map, "coalesce")?;
        let max_instances = take_max_instances(&mut map)?;
        let replace_existing = take_bool(&mut map, "replace_existing")?.unwrap_or(false);
        let at_most_once = take_bool(&mut map, "at_most_once")?.unwrap_or(false);
        let paused = take_bool(&mut map, "paused")?.unwrap_or(false) || paused_by_next_run;
        map.remove("jobstore");
        map.remove("executor");
        let (trigger, trigger_has_start) = take_trigger(map, timezone, now)?;
        Ok(Self {
            id,
            name,
            job,
            args,
            trigger,
            trigger_has_start,
            first_run,
            paused,
            misfire_grace_time,
            coalesce,
            max_instances,
            at_most_once,
            replace_existing,
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

    /// Whether `existing` already is this job: same job, args, trigger and options. An
    /// interval trigger the request gives no start is compared without its start, which the
    /// scheduler pinned when it added the schedule.
    #[must_use]
    pub fn matches(&self, existing: &Schedule) -> bool {
        let mut stored = existing.trigger().to_value();
        let mut wanted = self.trigger.to_value();
        if !self.trigger_has_start {
            strip_interval_starts(&mut stored);
            strip_interval_starts(&mut wanted);
        }
        let defaults = scheduler_core::ScheduleOptions::default();
        existing.job_name() == Some(self.job.as_str())
            && existing.name() == self.name.as_deref().unwrap_or(existing.id())
            && *existing.args() == self.args
            && stored == wanted
            && existing.misfire_grace_time()
                == self
                    .misfire_grace_time
                    .unwrap_or(defaults.misfire_grace_time)
            && existing.coalesce() == self.coalesce.unwrap_or(defaults.coalesce)
            && existing.max_instances() == self.max_instances.unwrap_or(defaults.max_instances)
            && existing.at_most_once() == self.at_most_once
    }
}

fn strip_interval_starts(trigger: &mut Value) {
    let Value::Object(map) = trigger else { return };
    if map.get("trigger").and_then(Value::as_str) == Some("interval") {
        map.remove("start_date");
    }
    if let Some(Value::Array(children)) = map.get_mut("triggers") {
        children.iter_mut().for_each(strip_interval_starts);
    }
}

/// The changes a `PATCH /scheduler/jobs/{id}` asks for: options, and a new trigger.
#[derive(Debug, Default)]
pub struct JobChanges {
    pub(crate) changes: ScheduleChanges,
    pub(crate) trigger: Option<TriggerSpec>,
}

impl JobChanges {
    /// Reads a PATCH body: `name`, `args`/`kwargs`, `misfire_grace_time`, `coalesce`,
    /// `max_instances`, and a trigger (flattened or nested) to reschedule.
    ///
    /// # Errors
    ///
    /// A message naming the field at fault, or the trigger's own error.
    pub fn from_value(value: Value, timezone: Tz, now: DateTime<Utc>) -> Result<Self> {
        let Value::Object(mut map) = value else {
            return Err(invalid(format!(
                "the changes must be a JSON object, got {}",
                kind(&value)
            )));
        };
        for key in [
            "id",
            "func",
            "job",
            "next_run_time",
            "replace_existing",
            "paused",
        ] {
            if map.contains_key(key) {
                let hint = match key {
                    "paused" => " (use POST .../pause or .../resume)",
                    "id" => " (an id cannot change)",
                    _ => "",
                };
                return Err(invalid(format!(
                    "\"{key}\" cannot be changed with PATCH{hint}"
                )));
            }
        }
        let mut changes = ScheduleChanges::new();
        if let Some(name) = take_string(&mut map, "name")? {
            changes = changes.name(name);
        }
        if map.contains_key("args") || map.contains_key("kwargs") {
            changes = changes.args(take_args(&mut map)?);
        }
        if let Some(grace) = take_grace(&mut map)? {
            changes = changes.misfire_grace_time(grace);
        }
        if let Some(coalesce) = take_bool(&mut map, "coalesce")? {
            changes = changes.coalesce(coalesce);
        }
        if let Some(max_instances) = take_max_instances(&mut map)? {
            changes = changes.max_instances(max_instances);
        }
        map.remove("jobstore");
        map.remove("executor");
        let trigger = if map.is_empty() {
            None
        } else {
            Some(take_trigger(map, timezone, now)?.0)
        };
        Ok(Self { changes, trigger })
    }
}

/// A schedule as the REST API shows it: Flask-APScheduler's job JSON, with the trigger's
/// fields flattened in (time zone and jitter included) and the options it left out
/// (`coalesce`, `paused`), so that posting it back recreates the same schedule.
#[must_use]
pub fn job_json(schedule: &Schedule) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), schedule.id().into());
    map.insert("name".into(), schedule.name().into());
    map.insert(
        "func".into(),
        schedule.job_name().map_or(Value::Null, Value::from),
    );
    map.insert("args".into(), schedule.args().clone());
    map.insert("kwargs".into(), json!({}));
    if let Value::Object(trigger) = schedule.trigger().to_value() {
        map.extend(trigger);
    }
    map.insert(
        "next_run_time".into(),
        schedule.next_run_time().map_or(Value::Null, |t| {
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()
        }),
    );
    map.insert(
        "misfire_grace_time".into(),
        schedule
            .misfire_grace_time()
            .map_or(Value::Null, |g| json!(g.as_secs_f64())),
    );
    map.insert("coalesce".into(), schedule.coalesce().into());
    map.insert("max_instances".into(), schedule.max_instances().into());
    map.insert("paused".into(), schedule.paused().into());
    map.insert("at_most_once".into(), schedule.at_most_once().into());
    Value::Object(map)
}

/// A fire of the ledger as `GET /scheduler/jobs/{id}/runs` shows it.
#[must_use]
pub fn fire_json(fire: &scheduler_core::FireRecord) -> Value {
    let time = |t: Option<DateTime<Utc>>| {
        t.map_or(Value::Null, |t| {
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()
        })
    };
    json!({
        "fire_id": fire.fire_id,
        "schedule_id": fire.schedule_id,
        "nominal_time": time(Some(fire.nominal_time)),
        "state": fire.state.as_str(),
        "reason": fire.reason,
        "owner": fire.owner,
        "epoch": fire.epoch,
        "attempt": fire.attempt,
        "claimed_at": time(fire.claimed_at),
        "started_at": time(fire.started_at),
        "finished_at": time(fire.finished_at),
        "error": fire.error,
    })
}

fn invalid(message: String) -> Error {
    Error::InvalidJob(message)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "\"{key}\" must be a string, got {}",
            kind(&other)
        ))),
    }
}

fn take_bool(map: &mut Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(invalid(format!(
            "\"{key}\" must be true or false, got {}",
            kind(&other)
        ))),
    }
}

fn take_args(map: &mut Map<String, Value>) -> Result<Value> {
    let args = map.remove("args").unwrap_or(Value::Null);
    let kwargs = match map.remove("kwargs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(Value::Object(o)) => Some(Value::Object(o)),
        Some(other) => {
            return Err(invalid(format!(
                "\"kwargs\" must be an object, got {}",
                kind(&other)
            )));
        }
    };
    let args_given = !args.is_null() && args != Value::Array(Vec::new());
    match (args_given, kwargs) {
        (true, Some(_)) => Err(invalid(
            "give \"args\" or \"kwargs\", not both: a job receives one JSON value".to_owned(),
        )),
        (false, Some(kwargs)) => Ok(kwargs),
        (true, None) => Ok(args),
        (false, None) => Ok(Value::Null),
    }
}

fn take_grace(map: &mut Map<String, Value>) -> Result<Option<Option<Duration>>> {
    match map.remove("misfire_grace_time") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if secs.is_finite() && secs > 0.0 => {
                Ok(Some(Some(Duration::from_secs_f64(secs))))
            }
            _ => Err(CoreError::InvalidOption {
                option: "misfire_grace_time",
                reason: format!("must be a positive number of seconds or null, got {n}"),
            }
            .into()),
        },
        Some(other) => Err(CoreError::InvalidOption {
            option: "misfire_grace_time",
            reason: format!(
                "must be a positive number of seconds or null, got {}",
                kind(&other)
            ),
        }
        .into()),
    }
}

fn take_max_instances(map: &mut Map<String, Value>) -> Result<Option<u32>> {
    match map.remove("max_instances") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(CoreError::InvalidOption {
                option: "max_instances",
                reason: format!("must be a whole number of at least 1, got {n}"),
            }
            .into()),
        },
        Some(other) => Err(CoreError::InvalidOption {
            option: "max_instances",
            reason: format!("must be a whole number of at least 1, got {}", kind(&other)),
        }
        .into()),
    }
}

/// The trigger of a job dict: nested under `trigger`, or flattened among the remaining keys;
/// none means "once, now". Also says whether it has a start of its own.
fn take_trigger(
    mut map: Map<String, Value>,
    timezone: Tz,
    now: DateTime<Utc>,
) -> Result<(TriggerSpec, bool)> {
    let has_start = map.contains_key("start_date") || map.contains_key("start");
    let spec = match map.get("trigger") {
        None => {
            if let Some(key) = map.keys().next() {
                return Err(invalid(format!(
                    "unknown field \"{key}\" (expected {} or a trigger)",
                    JOB_KEYS.join(", ")
                )));
            }
            return Ok((DateTrigger::at(now).into(), true));
        }
        Some(Value::Object(_)) => {
            let Some(nested) = map.remove("trigger") else {
                unreachable!("checked above")
            };
            if let Some(key) = map.keys().next() {
                return Err(invalid(format!(
                    "unknown field \"{key}\" beside a nested trigger (expected {})",
                    JOB_KEYS.join(", ")
                )));
            }
            let has_start = nested.get("start_date").is_some() || nested.get("start").is_some();
            return Ok((TriggerSpec::from_value(nested, timezone)?, has_start));
        }
        Some(_) => TriggerSpec::from_value(Value::Object(std::mem::take(&mut map)), timezone)?,
    };
    Ok((spec, has_start))
}

/// `GET /scheduler`: Flask-APScheduler's three fields, and what apsched adds.
pub(crate) fn scheduler_info(handle: &scheduler_core::SchedulerHandle) -> Value {
    let state = match handle.state() {
        scheduler_core::SchedulerState::NotStarted => "not_started",
        scheduler_core::SchedulerState::Running => "running",
        scheduler_core::SchedulerState::Paused => "paused",
        scheduler_core::SchedulerState::Stopped => "stopped",
        _ => "unknown",
    };
    json!({
        "running": handle.state() == scheduler_core::SchedulerState::Running,
        "state": state,
        "current_host": current_host(),
        // apsched has no host allow-list: which processes run jobs is decided by whether they
        // start a scheduler (and, with a shared store, by its claims).
        "allowed_hosts": ["*"],
        "timezone": handle.timezone().name(),
        "registered_jobs": handle.job_names(),
    })
}

fn current_host() -> String {
    scheduler_core::host_name().unwrap_or_else(|| "unknown".to_owned())
}
