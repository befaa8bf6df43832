//! The serde form of every trigger.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::cron_fields::{FIELD_NAMES, fields_to_expression};
use super::{
    AndTrigger, CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, Trigger, format_instant,
    parse_instant, parse_time_zone,
};
use crate::error::{Error, Result};

/// Any built-in trigger, in a form stores, configuration files and the REST API can carry.
///
/// The JSON form is tagged by `"trigger"`, as in Flask-APScheduler's job JSON, and round-trips
/// exactly: time zone, start, end and jitter included.
///
/// ```json
/// {"trigger": "interval", "minutes": 5, "start_date": "2026-01-01T00:00:00Z", "jitter": 2.5}
/// {"trigger": "cron", "expr": "0 9 * * mon-fri", "timezone": "Europe/Berlin"}
/// {"trigger": "date", "run_date": "2030-01-01T10:00:00+01:00", "timezone": "Europe/Berlin"}
/// {"trigger": "or", "triggers": [{"trigger": "cron", "expr": "@daily"}, ...]}
/// ```
///
/// It also reads Flask-APScheduler's flattened fields:
///
/// - `interval`: `weeks`, `days`, `hours`, `minutes`, `seconds` (fractions allowed),
///   `milliseconds`, `start_date`, `end_date`, `timezone` (for naive dates), `jitter` (seconds);
/// - `cron`: `expr` (crontab or Quartz), or APScheduler's fields `year`, `month`, `day`,
///   `week`, `day_of_week`, `hour`, `minute`, `second` (with APScheduler's meaning: all must
///   match, and `day_of_week` 0 is Monday); plus `timezone`, `start_date`, `end_date`, `jitter`;
/// - `date`: `run_date` (RFC 3339, or a local date-time read in `timezone`), `timezone`.
///
/// Naive date-times and cron expressions without `timezone` are read in UTC, or in the
/// scheduler's default zone when read through [`TriggerSpec::from_value`].
///
/// ```
/// use scheduler_core::trigger::TriggerSpec;
///
/// let spec: TriggerSpec = serde_json::from_str(
///     r#"{"trigger": "cron", "minute": "*/5", "day_of_week": "mon-fri"}"#,
/// )?;
/// assert_eq!(
///     serde_json::to_value(&spec)?,
///     serde_json::json!({"trigger": "cron", "expr": "0 */5 * * * MON,TUE,WED,THU,FRI", "timezone": "UTC"}),
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TriggerSpec {
    /// See [`IntervalTrigger`].
    Interval(IntervalTrigger),
    /// See [`CronTrigger`].
    Cron(Box<CronTrigger>),
    /// See [`DateTrigger`].
    Date(DateTrigger),
    /// See [`OrTrigger`].
    Or(OrTrigger),
    /// See [`AndTrigger`].
    And(AndTrigger),
}

impl From<IntervalTrigger> for TriggerSpec {
    fn from(t: IntervalTrigger) -> Self {
        Self::Interval(t)
    }
}

impl From<CronTrigger> for TriggerSpec {
    fn from(t: CronTrigger) -> Self {
        Self::Cron(Box::new(t))
    }
}

impl From<DateTrigger> for TriggerSpec {
    fn from(t: DateTrigger) -> Self {
        Self::Date(t)
    }
}

impl From<OrTrigger> for TriggerSpec {
    fn from(t: OrTrigger) -> Self {
        Self::Or(t)
    }
}

impl From<AndTrigger> for TriggerSpec {
    fn from(t: AndTrigger) -> Self {
        Self::And(t)
    }
}

impl TriggerSpec {
    fn as_trigger(&self) -> &dyn Trigger {
        match self {
            Self::Interval(t) => t,
            Self::Cron(t) => t.as_ref(),
            Self::Date(t) => t,
            Self::Or(t) => t,
            Self::And(t) => t,
        }
    }

    /// The trigger's kind as in the JSON form: `interval`, `cron`, `date`, `or`, `and`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Interval(_) => "interval",
            Self::Cron(_) => "cron",
            Self::Date(_) => "date",
            Self::Or(_) => "or",
            Self::And(_) => "and",
        }
    }

    /// Pins interval grids that have no start to one period after `now` (the time the schedule
    /// is added), so pauses and restarts keep the grid.
    pub(crate) fn anchor(&mut self, now: DateTime<Utc>) {
        match self {
            Self::Interval(t) => t.anchor(now),
            Self::Or(t) => t.triggers_mut().iter_mut().for_each(|t| t.anchor(now)),
            Self::And(t) => t.triggers_mut().iter_mut().for_each(|t| t.anchor(now)),
            Self::Cron(_) | Self::Date(_) => {}
        }
    }

    /// Reads the JSON form (or Flask-APScheduler's fields), reading naive date-times and cron
    /// expressions without a `timezone` in `default_timezone`.
    ///
    /// # Errors
    ///
    /// The trigger's own construction errors (a bad cron field, a zero interval, an unknown
    /// zone), or [`Error::InvalidTrigger`] naming an unknown kind, an unknown field or a value
    /// of the wrong type.
    pub fn from_value(value: Value, default_timezone: Tz) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::InvalidTrigger(format!(
                "expected a JSON object with a \"trigger\" field, got {}",
                json_kind(&value)
            )));
        };
        Fields::new(map, default_timezone).into_spec()
    }

    /// The JSON form.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::Interval(t) => {
                let mut map = Map::new();
                map.insert("trigger".into(), "interval".into());
                period_fields(t.period(), &mut map);
                insert_bounds(&mut map, t.start(), t.end(), Tz::UTC);
                insert_jitter(&mut map, t.jitter());
                Value::Object(map)
            }
            Self::Cron(t) => {
                let mut map = Map::new();
                map.insert("trigger".into(), "cron".into());
                map.insert("expr".into(), t.expression().into());
                map.insert("timezone".into(), t.timezone().name().into());
                insert_bounds(&mut map, t.start(), t.end(), t.timezone());
                insert_jitter(&mut map, t.jitter());
                Value::Object(map)
            }
            Self::Date(t) => json!({
                "trigger": "date",
                "run_date": format_instant(t.run_date(), t.timezone()),
                "timezone": t.timezone().name(),
            }),
            Self::Or(t) => combination("or", t.triggers(), t.jitter()),
            Self::And(t) => combination("and", t.triggers(), t.jitter()),
        }
    }
}

impl Trigger for TriggerSpec {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.as_trigger().next_fire_time(previous, now)
    }

    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.as_trigger().last_fire_time(after, until)
    }

    fn jitter(&self) -> Option<Duration> {
        self.as_trigger().jitter()
    }
}

impl Serialize for TriggerSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TriggerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value, Tz::UTC).map_err(serde::de::Error::custom)
    }
}

fn combination(kind: &str, triggers: &[TriggerSpec], jitter: Option<Duration>) -> Value {
    let mut map = Map::new();
    map.insert("trigger".into(), kind.into());
    map.insert(
        "triggers".into(),
        Value::Array(triggers.iter().map(TriggerSpec::to_value).collect()),
    );
    insert_jitter(&mut map, jitter);
    Value::Object(map)
}

const UNITS: [(&str, i64); 6] = [
    ("weeks", 7 * 24 * 3600 * 1_000_000_000),
    ("days", 24 * 3600 * 1_000_000_000),
    ("hours", 3600 * 1_000_000_000),
    ("minutes", 60 * 1_000_000_000),
    ("seconds", 1_000_000_000),
    ("milliseconds", 1_000_000),
];

/// Writes the period as its non-zero units, largest first; a sub-millisecond rest goes into
/// `milliseconds` as a fraction.
fn period_fields(period: TimeDelta, map: &mut Map<String, Value>) {
    let mut rest = period.num_nanoseconds().unwrap_or(i64::MAX);
    for (index, (unit, length)) in UNITS.iter().enumerate() {
        let count = rest / length;
        rest -= count * length;
        let last = index == UNITS.len() - 1;
        if last && rest != 0 {
            map.insert(
                (*unit).into(),
                json!(count as f64 + rest as f64 / *length as f64),
            );
        } else if count != 0 {
            map.insert((*unit).into(), json!(count));
        }
    }
}

fn insert_bounds(
    map: &mut Map<String, Value>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    tz: Tz,
) {
    if let Some(start) = start {
        map.insert("start_date".into(), format_instant(start, tz).into());
    }
    if let Some(end) = end {
        map.insert("end_date".into(), format_instant(end, tz).into());
    }
}

fn insert_jitter(map: &mut Map<String, Value>, jitter: Option<Duration>) {
    if let Some(jitter) = jitter {
        map.insert("jitter".into(), json!(jitter.as_secs_f64()));
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one trigger object, taken out one by one so leftovers can be reported.
struct Fields {
    map: Map<String, Value>,
    kind: String,
    default_timezone: Tz,
}

impl Fields {
    fn new(map: Map<String, Value>, default_timezone: Tz) -> Self {
        Self {
            map,
            kind: String::new(),
            default_timezone,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        if self.kind.is_empty() {
            Error::InvalidTrigger(message.to_string())
        } else {
            Error::InvalidTrigger(format!("{} trigger: {message}", self.kind))
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn take_string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(format!(
                "\"{key}\" must be a string, got {}",
                json_kind(&other)
            ))),
        }
    }

    /// A cron field: APScheduler accepts `hour=9` as well as `hour="9"`.
    fn take_cron_field(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            Some(other) => Err(self.error(format!(
                "\"{key}\" must be a string or a whole number, got {}",
                json_kind(&other)
            ))),
        }
    }

    fn take_number(&mut self, key: &str) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            // Form posts and environment-driven configs send numbers as text.
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| self.error(format!("\"{key}\" must be a number, got \"{s}\""))),
            Some(other) => Err(self.error(format!(
                "\"{key}\" must be a number, got {}",
                json_kind(&other)
            ))),
        }
    }

    fn take_timezone(&mut self) -> Result<Tz> {
        match self.take_string("timezone")? {
            Some(name) => parse_time_zone(&name),
            None => Ok(self.default_timezone),
        }
    }

    fn take_instant(&mut self, keys: &[&str], tz: Tz) -> Result<Option<DateTime<Utc>>> {
        let mut found = None;
        for key in keys {
            if let Some(text) = self.take_string(key)? {
                if found.is_some() {
                    return Err(self.error(format!("give only one of {}", keys.join(", "))));
                }
                found = Some(parse_instant(&text, tz)?);
            }
        }
        Ok(found)
    }

    fn take_jitter(&mut self) -> Result<Option<Duration>> {
        match self.take_number("jitter")? {
            None => Ok(None),
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Ok(Some(Duration::from_secs_f64(seconds)))
            }
            Some(seconds) => Err(self.error(format!(
                "jitter {seconds} must be a non-negative number of seconds"
            ))),
        }
    }

    /// Fails on any field not taken yet: a typo (`secs`) is reported as such, not as a
    /// missing value.
    fn check_no_leftovers(&self) -> Result<()> {
        if let Some(key) = self.map.keys().next() {
            let expected = match self.kind.as_str() {
                "interval" => {
                    "weeks, days, hours, minutes, seconds, milliseconds, start_date, end_date, timezone, jitter"
                }
                "cron" => {
                    "expr, year, month, day, week, day_of_week, hour, minute, second, timezone, start_date, end_date, jitter"
                }
                "date" => "run_date, timezone",
                _ => "triggers, jitter",
            };
            return Err(self.error(format!("unknown field \"{key}\" (expected {expected})")));
        }
        Ok(())
    }

    fn into_spec(mut self) -> Result<TriggerSpec> {
        let kind = match self.take("trigger").or_else(|| self.map.remove("type")) {
            Some(Value::String(kind)) => kind.to_ascii_lowercase(),
            Some(other) => {
                return Err(self.error(format!(
                    "\"trigger\" must be a string, got {}",
                    json_kind(&other)
                )));
            }
            None => {
                return Err(self.error(
                    "missing \"trigger\" (one of \"interval\", \"cron\", \"date\", \"or\", \"and\")",
                ));
            }
        };
        self.kind = kind.clone();
        let spec = match kind.as_str() {
            "interval" => self.interval()?,
            "cron" => self.cron()?,
            "date" => self.date()?,
            "or" | "and" => self.combination(&kind)?,
            other => {
                return Err(Error::InvalidTrigger(format!(
                    "unknown trigger \"{other}\" (expected \"interval\", \"cron\", \"date\", \"or\" or \"and\")"
                )));
            }
        };
        Ok(spec)
    }

    fn interval(&mut self) -> Result<TriggerSpec> {
        let tz = self.take_timezone()?;
        let mut nanos: f64 = 0.0;
        for (unit, length) in UNITS {
            if let Some(count) = self.take_number(unit)? {
                if !count.is_finite() || count < 0.0 {
                    return Err(Error::InvalidInterval(format!(
                        "{unit} = {count} is negative"
                    )));
                }
                nanos += count * length as f64;
            }
        }
        let nanos = nanos.round();
        let period = if nanos >= i64::MAX as f64 {
            i64::MAX
        } else {
            nanos as i64
        };
        let start = self.take_instant(&["start_date", "start"], tz)?;
        let end = self.take_instant(&["end_date", "end"], tz)?;
        let jitter = self.take_jitter()?;
        self.check_no_leftovers()?;
        IntervalTrigger::builder()
            .period(Duration::from_nanos(u64::try_from(period).unwrap_or(0)))
            .maybe_start(start)
            .maybe_end(end)
            .maybe_jitter(jitter)
            .build()
            .map(TriggerSpec::Interval)
    }

    fn cron(&mut self) -> Result<TriggerSpec> {
        let tz = self.take_timezone()?;
        let expression = match self.take_string("expr")? {
            Some(e) => Some(e),
            None => self.take_string("expression")?,
        };
        let mut fields: [Option<String>; 8] = Default::default();
        for (slot, name) in fields.iter_mut().zip(FIELD_NAMES) {
            *slot = self.take_cron_field(name)?;
        }
        let start = self.take_instant(&["start_date", "start"], tz)?;
        let end = self.take_instant(&["end_date", "end"], tz)?;
        let jitter = self.take_jitter()?;
        self.check_no_leftovers()?;
        let expression = match expression {
            Some(expression) => {
                if let Some(i) = fields.iter().position(Option::is_some) {
                    return Err(self.error(format!(
                        "give either \"expr\" or APScheduler's fields, not both (found \"{}\")",
                        FIELD_NAMES[i]
                    )));
                }
                expression
            }
            None => fields_to_expression(&fields)?,
        };
        CronTrigger::builder(&expression)
            .tz(tz)
            .maybe_start(start)
            .maybe_end(end)
            .maybe_jitter(jitter)
            .build()
            .map(TriggerSpec::from)
    }

    fn date(&mut self) -> Result<TriggerSpec> {
        let tz = self.take_timezone()?;
        let run_date = self
            .take_instant(&["run_date", "run_time"], tz)?
            .ok_or_else(|| self.error("missing \"run_date\""))?;
        self.check_no_leftovers()?;
        Ok(DateTrigger::at(run_date).with_timezone(tz).into())
    }

    fn combination(&mut self, kind: &str) -> Result<TriggerSpec> {
        let Some(Value::Array(items)) = self.take("triggers") else {
            return Err(self.error("\"triggers\" must be an array of triggers"));
        };
        let triggers = items
            .into_iter()
            .map(|item| TriggerSpec::from_value(item, self.default_timezone))
            .collect::<Result<Vec<_>>>()?;
        let jitter = self.take_jitter()?;
        self.check_no_leftovers()?;
        Ok(if kind == "or" {
            OrTrigger::new(triggers)?.with_jitter(jitter).into()
        } else {
            AndTrigger::new(triggers)?.with_jitter(jitter).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::utc;

    fn read(value: Value) -> Result<TriggerSpec> {
        TriggerSpec::from_value(value, Tz::UTC)
    }

    fn round_trip(spec: &TriggerSpec) {
        let text = serde_json::to_string(spec).unwrap();
        let back: TriggerSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, spec, "{text}");
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn flask_interval() {
        let spec = read(json!({"trigger": "interval", "seconds": 30})).unwrap();
        let TriggerSpec::Interval(ref t) = spec else {
            panic!("{spec:?}")
        };
        assert_eq!(t.period(), TimeDelta::seconds(30));
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "interval", "seconds": 30})
        );
        let spec = read(json!({"trigger": "interval", "hours": 1, "minutes": 30, "seconds": 0.25}))
            .unwrap();
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "interval", "hours": 1, "minutes": 30, "milliseconds": 250})
        );
        // Numbers as text, as form posts send them.
        assert!(read(json!({"trigger": "interval", "seconds": "30"})).is_ok());
    }

    #[test]
    fn flask_cron_fields() {
        let spec =
            read(json!({"trigger": "cron", "minute": "*/5", "day_of_week": "mon-fri"})).unwrap();
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "cron", "expr": "0 */5 * * * MON,TUE,WED,THU,FRI", "timezone": "UTC"})
        );
        // 2026-11-28 is a Saturday: the next fire is Monday 00:00.
        assert_eq!(
            spec.next_fire_time(None, utc(2026, 11, 28, 10, 2, 0)),
            Some(utc(2026, 11, 30, 0, 0, 0))
        );
        // APScheduler's day_of_week=0 is Monday.
        let monday = read(json!({"trigger": "cron", "day_of_week": 0, "hour": 9})).unwrap();
        assert_eq!(
            monday.next_fire_time(None, utc(2026, 11, 28, 0, 0, 0)),
            Some(utc(2026, 11, 30, 9, 0, 0))
        );
    }

    #[test]
    fn cron_expr_with_timezone() {
        let spec =
            read(json!({"trigger": "cron", "expr": "*/5 * * * *", "timezone": "Europe/Berlin"}))
                .unwrap();
        let TriggerSpec::Cron(ref t) = spec else {
            panic!()
        };
        assert_eq!(t.timezone().name(), "Europe/Berlin");
        round_trip(&spec);
        // Without a zone: the reader's default.
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        let spec = TriggerSpec::from_value(json!({"trigger": "cron", "expr": "0 9 * * *"}), berlin)
            .unwrap();
        assert_eq!(spec.to_value()["timezone"], "Europe/Berlin");
    }

    #[test]
    fn flask_date() {
        let spec = read(json!({"trigger": "date", "run_date": "2030-01-01 10:00:00", "timezone": "Europe/Berlin"})).unwrap();
        assert_eq!(
            spec.next_fire_time(None, utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2030, 1, 1, 9, 0, 0))
        );
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "date", "run_date": "2030-01-01T10:00:00+01:00", "timezone": "Europe/Berlin"})
        );
        round_trip(&spec);
    }

    #[test]
    fn everything_round_trips_exactly() {
        let interval = IntervalTrigger::builder()
            .minutes(5)
            .milliseconds(1)
            .start(utc(2026, 1, 1, 0, 0, 0))
            .end(utc(2027, 1, 1, 0, 0, 0));
        let cron = CronTrigger::builder("0 30 9 ? * MON#2")
            .timezone("America/New_York")
            .start(utc(2026, 1, 1, 0, 0, 0));
        let date = DateTrigger::parse("2030-06-01T12:00:00", "Asia/Tokyo").unwrap();
        let or: TriggerSpec = OrTrigger::new(vec![
            interval.clone().build().unwrap().into(),
            cron.clone().build().unwrap().into(),
        ])
        .unwrap()
        .with_jitter(Some(Duration::from_secs(1)))
        .into();
        let and: TriggerSpec = AndTrigger::new(vec![
            CronTrigger::new("@daily").unwrap().into(),
            date.clone().into(),
        ])
        .unwrap()
        .into();
        let interval = interval
            .jitter(Duration::from_millis(2500))
            .build()
            .unwrap();
        let cron = cron.jitter(Duration::from_secs(10)).build().unwrap();
        for spec in [interval.into(), cron.into(), date.into(), or, and] {
            round_trip(&spec);
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            (
                json!("cron"),
                "invalid trigger: expected a JSON object with a \"trigger\" field, got a string",
            ),
            (
                json!({"seconds": 5}),
                "invalid trigger: missing \"trigger\" (one of \"interval\", \"cron\", \"date\", \"or\", \"and\")",
            ),
            (
                json!({"trigger": "weekly"}),
                "invalid trigger: unknown trigger \"weekly\" (expected \"interval\", \"cron\", \"date\", \"or\" or \"and\")",
            ),
            (
                json!({"trigger": "interval", "secs": 5}),
                "invalid trigger: interval trigger: unknown field \"secs\" (expected weeks, days, hours, minutes, seconds, milliseconds, start_date, end_date, timezone, jitter)",
            ),
            (
                json!({"trigger": "interval", "seconds": 5, "secs": 5}),
                "invalid trigger: interval trigger: unknown field \"secs\" (expected weeks, days, hours, minutes, seconds, milliseconds, start_date, end_date, timezone, jitter)",
            ),
            (
                json!({"trigger": "interval", "seconds": 0}),
                "invalid interval: the period is zero; give at least one of weeks, days, hours, minutes, seconds or milliseconds a positive value",
            ),
            (
                json!({"trigger": "interval", "seconds": -1}),
                "invalid interval: seconds = -1 is negative",
            ),
            (
                json!({"trigger": "interval", "seconds": "soon"}),
                "invalid trigger: interval trigger: \"seconds\" must be a number, got \"soon\"",
            ),
            (
                json!({"trigger": "cron", "expr": "61 * * * *"}),
                "minute field: 61 is outside 0-59 in \"61 * * * *\"",
            ),
            (
                json!({"trigger": "cron", "expr": "* * * * *", "timezone": "Nowhere"}),
                "unknown time zone \"Nowhere\" (expected an IANA name such as \"Europe/Berlin\")",
            ),
            (
                json!({"trigger": "cron", "expr": "* * * * *", "hour": "3"}),
                "invalid trigger: cron trigger: give either \"expr\" or APScheduler's fields, not both (found \"hour\")",
            ),
            (
                json!({"trigger": "date"}),
                "invalid trigger: date trigger: missing \"run_date\"",
            ),
            (
                json!({"trigger": "date", "run_date": "tomorrow"}),
                "invalid date-time \"tomorrow\": expected RFC 3339 (2030-01-01T10:00:00+02:00) or a local date-time (2030-01-01 10:00:00)",
            ),
            (
                json!({"trigger": "or", "triggers": []}),
                "trigger never fires: an or trigger needs at least one trigger",
            ),
        ];
        for (value, message) in cases {
            let err = read(value.clone()).unwrap_err();
            assert_eq!(err.to_string(), message, "{value}");
        }
        // Through serde, the same text.
        let err =
            serde_json::from_str::<TriggerSpec>(r#"{"trigger": "cron", "expr": "61 * * * *"}"#)
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("minute field: 61 is outside 0-59"),
            "{err}"
        );
    }
}
