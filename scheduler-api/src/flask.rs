//! Flask-APScheduler's trigger dialect: the trigger fields of a job dict, read as APScheduler
//! 3.11 reads them (each field by its own rule) and written back as Flask-APScheduler writes
//! them.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

use scheduler_core::Error as CoreError;
use scheduler_core::trigger::{
    AndTrigger, CronFields, CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, TriggerSpec,
    parse_instant,
};

use crate::error::Result;

/// The longest duration any field takes (an interval, a jitter, a misfire grace time): 36525
/// days, about 100 years, the longest interval the scheduler computes with.
pub const MAX_DURATION_SECS: f64 = 36_525.0 * 86_400.0;

/// The fields each trigger kind takes, as APScheduler's trigger constructors name them (plus
/// apsched's `expr`, `milliseconds` and `triggers`).
const INTERVAL_FIELDS: &[&str] = &[
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "milliseconds",
    "start_date",
    "end_date",
    "timezone",
    "jitter",
];
const CRON_FIELDS: &[&str] = &[
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
    "expr",
    "start_date",
    "end_date",
    "timezone",
    "jitter",
];
const DATE_FIELDS: &[&str] = &["run_date", "timezone"];
const COMBINATION_FIELDS: &[&str] = &["triggers", "jitter"];

/// Every trigger field of any kind: what a job dict may carry beside its own keys.
pub(crate) fn is_trigger_field(name: &str) -> bool {
    name == "trigger"
        || [
            INTERVAL_FIELDS,
            CRON_FIELDS,
            DATE_FIELDS,
            COMBINATION_FIELDS,
        ]
        .iter()
        .any(|fields| fields.contains(&name))
}

/// A trigger's fields, beside a job's own keys or alone: Flask-APScheduler's flattened form,
/// read as APScheduler 3.11 reads each field. `null` is "not given", as in APScheduler.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerFields {
    /// `interval`, `cron`, `date`, `or` or `and`; without one, a date trigger at `run_date`,
    /// or once, now.
    #[serde(default)]
    #[schema(value_type = Option<crate::dto::TriggerKind>)]
    trigger: Option<Value>,
    /// An interval's weeks.
    #[serde(default)]
    #[schema(minimum = 0)]
    weeks: Option<f64>,
    /// An interval's days.
    #[serde(default)]
    #[schema(minimum = 0)]
    days: Option<f64>,
    /// An interval's hours.
    #[serde(default)]
    #[schema(minimum = 0)]
    hours: Option<f64>,
    /// An interval's minutes.
    #[serde(default)]
    #[schema(minimum = 0)]
    minutes: Option<f64>,
    /// An interval's seconds.
    #[serde(default)]
    #[schema(minimum = 0)]
    seconds: Option<f64>,
    /// An interval's milliseconds (apsched's; the period is at least 1 ms in all).
    #[serde(default)]
    #[schema(minimum = 0)]
    milliseconds: Option<f64>,
    /// A cron field (4-digit year), as APScheduler reads it.
    #[serde(default)]
    year: Option<CronValue>,
    /// A cron field (1-12, `jan`-`dec`).
    #[serde(default)]
    month: Option<CronValue>,
    /// A cron field (1-31, `last`, `xth day`).
    #[serde(default)]
    day: Option<CronValue>,
    /// A cron field (ISO week 1-53).
    #[serde(default)]
    week: Option<CronValue>,
    /// A cron field (0-6 = Monday to Sunday, `mon`-`sun`).
    #[serde(default)]
    day_of_week: Option<CronValue>,
    /// A cron field (0-23).
    #[serde(default)]
    hour: Option<CronValue>,
    /// A cron field (0-59).
    #[serde(default)]
    minute: Option<CronValue>,
    /// A cron field (0-59).
    #[serde(default)]
    second: Option<CronValue>,
    /// A cron expression instead of the fields: crontab (5 fields) or Quartz (6 or 7).
    #[serde(default)]
    expr: Option<String>,
    /// A date trigger's instant (ISO 8601; naive in the trigger's zone).
    #[serde(default)]
    run_date: Option<String>,
    /// When an interval or cron trigger starts (ISO 8601).
    #[serde(default)]
    start_date: Option<String>,
    /// When an interval or cron trigger ends (ISO 8601).
    #[serde(default)]
    end_date: Option<String>,
    /// An IANA time zone; the scheduler's when not given.
    #[serde(default)]
    timezone: Option<String>,
    /// The most each fire is moved later at random, in seconds.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3_155_760_000_u64)]
    jitter: Option<f64>,
    /// An or/and trigger's triggers, each in this same form.
    #[serde(default)]
    #[schema(value_type = Option<Vec<TriggerFields>>, no_recursion)]
    triggers: Option<Vec<Value>>,
}

/// A cron field: APScheduler takes `hour=9` as well as `hour="9"` (it reads `str(value)`).
#[derive(Debug)]
struct CronValue(String);

impl utoipa::PartialSchema for CronValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("a cron field, as text or a whole number"))
            .into()
    }
}

impl utoipa::ToSchema for CronValue {}

impl<'de> Deserialize<'de> for CronValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct CronVisitor;
        impl Visitor<'_> for CronVisitor {
            type Value = CronValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cron field as a string or a whole number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CronValue, E> {
                Ok(CronValue(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<CronValue, E> {
                Ok(CronValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<CronValue, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(CronVisitor)
    }
}

fn invalid(message: impl Into<String>) -> crate::Error {
    CoreError::InvalidTrigger(message.into()).into()
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a trigger in Flask-APScheduler's form: `{"trigger": "cron", "hour": 9, ...}`, the
/// legacy nested form `{"type": "cron", "hour": 9}`, or apsched's own JSON form. Naive
/// date-times, cron fields and cron expressions without a `timezone` are read in `timezone`,
/// the scheduler's zone, as APScheduler does.
///
/// ```
/// use apsched::api::flask::trigger_from_value;
/// use apsched::trigger::Trigger;
/// use chrono::{TimeZone, Utc};
///
/// let berlin = "Europe/Berlin".parse()?;
/// let trigger = trigger_from_value(
///     serde_json::json!({"trigger": "cron", "hour": 9, "day_of_week": "mon-fri"}),
///     berlin,
/// )?;
/// let saturday = Utc.with_ymd_and_hms(2030, 1, 5, 12, 0, 0).unwrap();
/// assert_eq!(
///     trigger.next_fire_time(None, saturday),
///     Some(Utc.with_ymd_and_hms(2030, 1, 7, 8, 0, 0).unwrap()), // Monday 09:00 CET
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A message that names the field at fault and its value: an unknown field or trigger, a
/// value of the wrong type, a field the trigger kind does not take, a number out of bounds,
/// or the trigger's own error.
pub fn trigger_from_value(value: Value, timezone: Tz) -> Result<TriggerSpec> {
    let Value::Object(mut map) = value else {
        return Err(invalid(format!(
            "expected a JSON object with a \"trigger\" field, got {}",
            json_kind(&value)
        )));
    };
    // The legacy nested form: `"trigger": {"type": "cron", ...}` beside the other fields, or
    // the nested object alone (Flask-APScheduler's `fix_job_def`: the kind defaults to "date").
    if let Some(Value::Object(nested)) = map.get("trigger").cloned() {
        map.remove("trigger");
        map.extend(nested);
    }
    if !map.contains_key("trigger") {
        let kind = map.remove("type").unwrap_or_else(|| "date".into());
        map.insert("trigger".into(), kind);
    }
    trigger_from_map(map, timezone)
}

/// The trigger of a job dict's remaining keys (the job's own keys taken out).
pub(crate) fn trigger_from_map(map: Map<String, Value>, timezone: Tz) -> Result<TriggerSpec> {
    if let Some(unknown) = map.keys().find(|key| !is_trigger_field(key)) {
        return Err(invalid(format!("unknown field \"{unknown}\"")));
    }
    let fields: TriggerFields = serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
    fields.into_spec(timezone)
}

impl TriggerFields {
    /// The names of the fields given, in declaration order.
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut note = |name: &'static str, set: bool| {
            if set {
                given.push(name);
            }
        };
        note("weeks", self.weeks.is_some());
        note("days", self.days.is_some());
        note("hours", self.hours.is_some());
        note("minutes", self.minutes.is_some());
        note("seconds", self.seconds.is_some());
        note("milliseconds", self.milliseconds.is_some());
        for (name, value) in self.cron_fields() {
            note(name, value.is_some());
        }
        note("expr", self.expr.is_some());
        note("run_date", self.run_date.is_some());
        note("start_date", self.start_date.is_some());
        note("end_date", self.end_date.is_some());
        note("timezone", self.timezone.is_some());
        note("jitter", self.jitter.is_some());
        note("triggers", self.triggers.is_some());
        given
    }

    fn cron_fields(&self) -> [(&'static str, Option<&CronValue>); 8] {
        [
            ("year", self.year.as_ref()),
            ("month", self.month.as_ref()),
            ("day", self.day.as_ref()),
            ("week", self.week.as_ref()),
            ("day_of_week", self.day_of_week.as_ref()),
            ("hour", self.hour.as_ref()),
            ("minute", self.minute.as_ref()),
            ("second", self.second.as_ref()),
        ]
    }

    fn into_spec(self, default_timezone: Tz) -> Result<TriggerSpec> {
        let kind = match &self.trigger {
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "\"trigger\" must be a string, got {}",
                    json_kind(other)
                )));
            }
            None => {
                return Err(invalid(
                    "missing \"trigger\" (one of \"interval\", \"cron\", \"date\", \"or\", \"and\")",
                ));
            }
        };
        let allowed = match kind.as_str() {
            "interval" => INTERVAL_FIELDS,
            "cron" => CRON_FIELDS,
            "date" => DATE_FIELDS,
            "or" | "and" => COMBINATION_FIELDS,
            other => {
                return Err(invalid(format!(
                    "unknown trigger \"{other}\" (expected \"interval\", \"cron\", \"date\", \"or\" or \"and\")"
                )));
            }
        };
        if let Some(name) = self.given().into_iter().find(|f| !allowed.contains(f)) {
            return Err(invalid(format!(
                "a {kind} trigger does not take \"{name}\" (it takes {})",
                allowed.join(", ")
            )));
        }
        let timezone = match &self.timezone {
            Some(name) => name
                .trim()
                .parse::<Tz>()
                .map_err(|_| CoreError::UnknownTimeZone(name.clone()))?,
            None => default_timezone,
        };
        let instant = |text: &Option<String>| -> Result<Option<DateTime<Utc>>> {
            Ok(text
                .as_deref()
                .map(|t| parse_instant(t, timezone))
                .transpose()?)
        };
        let start = instant(&self.start_date)?;
        let end = instant(&self.end_date)?;
        let jitter = self
            .jitter
            .map(|seconds| duration("jitter", seconds, true))
            .transpose()?;
        match kind.as_str() {
            "interval" => {
                let mut total = 0.0;
                for (unit, count, length) in [
                    ("weeks", self.weeks, 7.0 * 86_400.0),
                    ("days", self.days, 86_400.0),
                    ("hours", self.hours, 3600.0),
                    ("minutes", self.minutes, 60.0),
                    ("seconds", self.seconds, 1.0),
                    ("milliseconds", self.milliseconds, 0.001),
                ] {
                    if let Some(count) = count {
                        if !count.is_finite() || count < 0.0 {
                            return Err(CoreError::InvalidInterval(format!(
                                "{unit} = {count:?} is negative"
                            ))
                            .into());
                        }
                        total += count * length;
                        if total > MAX_DURATION_SECS {
                            return Err(CoreError::InvalidInterval(format!(
                                "{unit} = {count:?} makes the period longer than the limit of \
                                 36525 days"
                            ))
                            .into());
                        }
                    }
                }
                let period = Duration::from_secs_f64(total);
                Ok(IntervalTrigger::builder()
                    .period(period)
                    .maybe_start(start)
                    .maybe_end(end)
                    .maybe_jitter(jitter)
                    .build()?
                    .into())
            }
            "cron" => {
                let mut fields = CronFields::new();
                let mut first_field = None;
                for (name, value) in self.cron_fields() {
                    if let Some(CronValue(text)) = value {
                        fields = fields.set(name, text.clone())?;
                        first_field.get_or_insert(name);
                    }
                }
                let builder = match (&self.expr, first_field) {
                    (Some(_), Some(name)) => {
                        return Err(invalid(format!(
                            "give either \"expr\" or APScheduler's fields, not both (found \"{name}\")"
                        )));
                    }
                    (Some(expr), None) => CronTrigger::builder(expr),
                    (None, _) => CronTrigger::from_fields(fields),
                };
                Ok(builder
                    .tz(timezone)
                    .maybe_start(start)
                    .maybe_end(end)
                    .maybe_jitter(jitter)
                    .build()?
                    .into())
            }
            "date" => {
                let run_date = instant(&self.run_date)?
                    .ok_or_else(|| invalid("a date trigger needs \"run_date\""))?;
                Ok(DateTrigger::at(run_date).with_timezone(timezone).into())
            }
            combination => {
                let triggers = self
                    .triggers
                    .ok_or_else(|| invalid(format!("an {combination} trigger needs \"triggers\"")))?
                    .into_iter()
                    .enumerate()
                    .map(|(index, trigger)| {
                        trigger_from_value(trigger, default_timezone).map_err(|e| {
                            invalid(format!(
                                "triggers[{index}]: {}",
                                crate::error::error_chain(&e)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(if combination == "or" {
                    OrTrigger::new(triggers)?.with_jitter(jitter).into()
                } else {
                    AndTrigger::new(triggers)?.with_jitter(jitter).into()
                })
            }
        }
    }
}

/// A number of seconds as a duration, bounded: non-negative (positive unless `zero_ok`),
/// finite, and at most [`MAX_DURATION_SECS`].
pub(crate) fn duration(field: &'static str, seconds: f64, zero_ok: bool) -> Result<Duration> {
    let low_ok = if zero_ok {
        seconds >= 0.0
    } else {
        seconds > 0.0
    };
    if seconds.is_finite() && low_ok && seconds <= MAX_DURATION_SECS {
        return Ok(Duration::from_secs_f64(seconds));
    }
    let lower = if zero_ok { "0" } else { "more than 0" };
    Err(CoreError::InvalidOption {
        option: field,
        reason: format!(
            "must be a number of seconds from {lower} to {MAX_DURATION_SECS} (36525 days), got {seconds:?}"
        ),
    }
    .into())
}

/// Python's `datetime.isoformat()` in `tz`: `2030-01-01T09:00:00+01:00`, with six sub-second
/// digits when there are any and `+00:00` for UTC, as Flask-APScheduler writes date-times.
#[must_use]
pub fn isoformat(instant: DateTime<Utc>, tz: Tz) -> String {
    let local = instant.with_timezone(&tz);
    if local.nanosecond() / 1000 == 0 {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        local.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::TriggerJson;
    use chrono::TimeDelta;
    use serde_json::json;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn read(value: Value) -> Result<TriggerSpec> {
        trigger_from_value(value, berlin())
    }

    #[test]
    fn each_cron_field_is_read_alone() {
        // A space inside one field never shifts the others.
        let err = read(json!({"trigger": "cron", "hour": "9 1"})).unwrap_err();
        assert!(err.to_string().contains("hour"), "{err}");
        let spec = read(json!({"trigger": "cron", "month": "1, 6", "day": 1})).unwrap();
        let fields = TriggerJson::new(&spec, berlin());
        assert_eq!(fields.month.as_deref(), Some("1,6"));
        assert_eq!(fields.day.as_deref(), Some("1"));
        assert_eq!(fields.timezone.as_deref(), Some("Europe/Berlin"));
    }

    #[test]
    fn fields_are_typed_and_bounded() {
        let cases = [
            (
                json!({"trigger": "interval", "seconds": "ten"}),
                "seconds: invalid type: string \"ten\"",
            ),
            (
                json!({"trigger": "interval", "seconds": 1e300}),
                "longer than the limit of 36525 days",
            ),
            (
                json!({"trigger": "interval", "seconds": 30, "jitter": 1e19}),
                "jitter",
            ),
            (
                json!({"trigger": "interval", "seconds": 30, "jitter": -1}),
                "jitter",
            ),
            (
                json!({"trigger": "cron", "hours": 5}),
                "a cron trigger does not take \"hours\"",
            ),
            (
                json!({"trigger": "cron", "hour": -1}),
                "hour: invalid value: integer `-1`",
            ),
            (
                json!({"trigger": "cron", "hour": 1.5}),
                "hour: invalid type: floating point",
            ),
            (
                json!({"trigger": "cron", "bogus": 1}),
                "unknown field \"bogus\"",
            ),
            (json!({"trigger": "weekly"}), "unknown trigger \"weekly\""),
            (json!({"trigger": "date"}), "needs \"run_date\""),
            (
                json!({"trigger": "date", "run_date": "2030-01-01", "timezone": "Mars/Olympus"}),
                "Mars/Olympus",
            ),
            (
                json!({"trigger": "or", "triggers": [{"trigger": "cron", "hour": 25}]}),
                "triggers[0]",
            ),
        ];
        for (value, message) in cases {
            let err = crate::error::error_chain(&read(value.clone()).unwrap_err());
            assert!(err.contains(message), "{value}: {err}");
        }
    }

    #[test]
    fn legacy_nested_form() {
        let spec = read(json!({"type": "cron", "year": "2032", "hour": "5"})).unwrap();
        assert_eq!(
            TriggerJson::new(&spec, berlin()).year.as_deref(),
            Some("2032")
        );
        let spec = read(json!({"run_date": "2030-01-01 10:00:00"})).unwrap();
        assert_eq!(spec.kind(), "date");
    }

    #[test]
    fn isoformat_as_python_writes_it() {
        let t = DateTime::parse_from_rfc3339("2030-01-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(isoformat(t, berlin()), "2030-01-01T09:00:00+01:00");
        assert_eq!(isoformat(t, Tz::UTC), "2030-01-01T08:00:00+00:00");
        let t = t + TimeDelta::microseconds(7);
        assert_eq!(isoformat(t, Tz::UTC), "2030-01-01T08:00:00.000007+00:00");
    }
}
