//! The serde form of every trigger: what stores and snapshots keep.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::cron_fields::CronFields;
use super::{
    AndTrigger, CronTrigger, DateTrigger, IntervalTrigger, OrTrigger, Trigger, format_instant,
    parse_time_zone,
};
use crate::error::{Error, Result};

/// Any built-in trigger, in the one form stores and snapshots carry.
///
/// The JSON form is tagged by `"trigger"` and round-trips exactly: time zone, start, end and
/// jitter included. Date-times are RFC 3339 with their offset; durations are numbers.
///
/// ```json
/// {"trigger": "interval", "minutes": 5, "start_date": "2026-01-01T00:00:00Z", "jitter": 2.5}
/// {"trigger": "cron", "expr": "0 9 * * mon-fri", "timezone": "Europe/Berlin"}
/// {"trigger": "cron", "fields": {"hour": "9", "day_of_week": "mon-fri"}, "timezone": "UTC"}
/// {"trigger": "date", "run_date": "2030-01-01T10:00:00+01:00", "timezone": "Europe/Berlin"}
/// {"trigger": "or", "triggers": [{"trigger": "cron", "expr": "@daily", "timezone": "UTC"}]}
/// ```
///
/// This form is strict: an unknown field, a number given as text or a date-time without an
/// offset is refused. Flask-APScheduler's job JSON (flattened fields, naive date-times read in
/// the scheduler's zone) is the REST API's dialect, read by the `scheduler-api` crate.
///
/// ```
/// use apsched::trigger::{CronFields, CronTrigger, TriggerSpec};
///
/// let spec: TriggerSpec = CronTrigger::from_fields(CronFields::new().minute("*/5")).build()?.into();
/// let json = serde_json::to_value(&spec)?;
/// assert_eq!(
///     json,
///     serde_json::json!({"trigger": "cron", "fields": {"minute": "*/5"}, "timezone": "UTC"}),
/// );
/// assert_eq!(serde_json::from_value::<TriggerSpec>(json)?, spec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

    /// Pins interval grids that have no start to one period after `now`, as the scheduler does
    /// when it adds a schedule (APScheduler: `start_date = now + interval`), so pauses and
    /// restarts keep the grid.
    pub fn anchor(&mut self, now: DateTime<Utc>) {
        match self {
            Self::Interval(t) => t.anchor(now),
            Self::Or(t) => t.triggers_mut().iter_mut().for_each(|t| t.anchor(now)),
            Self::And(t) => t.triggers_mut().iter_mut().for_each(|t| t.anchor(now)),
            Self::Cron(_) | Self::Date(_) => {}
        }
    }

    /// The trigger with every interval grid's origin forgotten: what was given before the
    /// scheduler anchored it, for telling whether two definitions are the same.
    pub(crate) fn unanchored(&self) -> Self {
        match self {
            Self::Interval(t) => Self::Interval(t.unanchored()),
            Self::Or(t) => {
                let mut t = t.clone();
                t.triggers_mut()
                    .iter_mut()
                    .for_each(|t| *t = t.unanchored());
                Self::Or(t)
            }
            Self::And(t) => {
                let mut t = t.clone();
                t.triggers_mut()
                    .iter_mut()
                    .for_each(|t| *t = t.unanchored());
                Self::And(t)
            }
            Self::Cron(_) | Self::Date(_) => self.clone(),
        }
    }

    /// The JSON form.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::to_value(Repr::from(self)).unwrap_or(Value::Null)
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
        Repr::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TriggerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Repr::deserialize(deserializer)?
            .into_spec()
            .map_err(serde::de::Error::custom)
    }
}

/// The wire form, field by field; [`TriggerSpec`] converts to and from it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "lowercase")]
enum Repr {
    Interval(IntervalRepr),
    Cron(CronRepr),
    Date(DateRepr),
    Or(CombinationRepr),
    And(CombinationRepr),
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weeks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hours: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seconds: Option<u64>,
    /// Whole milliseconds as an integer, a sub-millisecond rest as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    milliseconds: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CronRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<CronFields>,
    timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DateRepr {
    run_date: String,
    timezone: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CombinationRepr {
    triggers: Vec<TriggerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

/// The period's units, largest first, in nanoseconds.
const UNITS: [(&str, i64); 5] = [
    ("weeks", 7 * 24 * 3600 * 1_000_000_000),
    ("days", 24 * 3600 * 1_000_000_000),
    ("hours", 3600 * 1_000_000_000),
    ("minutes", 60 * 1_000_000_000),
    ("seconds", 1_000_000_000),
];
const MILLISECOND: i64 = 1_000_000;

impl From<&TriggerSpec> for Repr {
    fn from(spec: &TriggerSpec) -> Self {
        let jitter = |j: Option<Duration>| j.map(|j| j.as_secs_f64());
        let utc = |t: Option<DateTime<Utc>>, tz: Tz| t.map(|t| format_instant(t, tz));
        match spec {
            TriggerSpec::Interval(t) => {
                let mut repr = IntervalRepr::default();
                let mut rest = t.period().num_nanoseconds().unwrap_or(i64::MAX);
                let slots = [
                    &mut repr.weeks,
                    &mut repr.days,
                    &mut repr.hours,
                    &mut repr.minutes,
                    &mut repr.seconds,
                ];
                for ((_, length), slot) in UNITS.iter().zip(slots) {
                    let count = rest / length;
                    rest -= count * length;
                    if count != 0 {
                        *slot = u64::try_from(count).ok();
                    }
                }
                if rest != 0 {
                    repr.milliseconds = if rest % MILLISECOND == 0 {
                        Some((rest / MILLISECOND).into())
                    } else {
                        serde_json::Number::from_f64(rest as f64 / MILLISECOND as f64)
                    };
                }
                repr.start_date = utc(t.start(), Tz::UTC);
                repr.end_date = utc(t.end(), Tz::UTC);
                repr.jitter = jitter(t.jitter());
                Self::Interval(repr)
            }
            TriggerSpec::Cron(t) => {
                let (expr, fields) = match t.fields() {
                    Some(fields) => (None, Some(fields.clone())),
                    None => (Some(t.expression().to_owned()), None),
                };
                Self::Cron(CronRepr {
                    expr,
                    fields,
                    timezone: t.timezone().name().to_owned(),
                    start_date: utc(t.start(), t.timezone()),
                    end_date: utc(t.end(), t.timezone()),
                    jitter: jitter(t.jitter()),
                })
            }
            TriggerSpec::Date(t) => Self::Date(DateRepr {
                run_date: format_instant(t.run_date(), t.timezone()),
                timezone: t.timezone().name().to_owned(),
            }),
            TriggerSpec::Or(t) => Self::Or(CombinationRepr {
                triggers: t.triggers().to_vec(),
                jitter: jitter(t.jitter()),
            }),
            TriggerSpec::And(t) => Self::And(CombinationRepr {
                triggers: t.triggers().to_vec(),
                jitter: jitter(t.jitter()),
            }),
        }
    }
}

fn instant(field: &str, text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Error::InvalidDateTime {
                value: text.clone(),
                reason: format!("{field} must be RFC 3339 with an offset: {e}"),
            })
    })
    .transpose()
}

fn jitter(seconds: Option<f64>) -> Result<Option<Duration>> {
    let jitter = seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                Error::InvalidTrigger(format!(
                    "jitter {s:?} must be a non-negative number of seconds"
                ))
            })
        })
        .transpose()?;
    super::check_jitter(jitter)?;
    Ok(jitter)
}

impl Repr {
    fn into_spec(self) -> Result<TriggerSpec> {
        Ok(match self {
            Self::Interval(repr) => {
                let mut period = TimeDelta::zero();
                let counts = [
                    repr.weeks,
                    repr.days,
                    repr.hours,
                    repr.minutes,
                    repr.seconds,
                ];
                for ((unit, length), count) in UNITS.iter().zip(counts) {
                    let part = count
                        .and_then(|c| i64::try_from(c).ok())
                        .map(|c| c.checked_mul(*length).map(TimeDelta::nanoseconds));
                    match part {
                        None => {}
                        Some(Some(part)) => {
                            period = period.checked_add(&part).unwrap_or(TimeDelta::MAX)
                        }
                        Some(None) => {
                            return Err(Error::InvalidInterval(format!(
                                "{unit} = {} is longer than the limit of 36525 days",
                                count.unwrap_or_default()
                            )));
                        }
                    }
                }
                if let Some(ms) = repr
                    .milliseconds
                    .as_ref()
                    .and_then(serde_json::Number::as_f64)
                {
                    if !(0.0..1e12).contains(&ms) {
                        return Err(Error::InvalidInterval(format!(
                            "milliseconds = {ms} is negative or longer than the limit of 36525 days"
                        )));
                    }
                    period += TimeDelta::nanoseconds((ms * MILLISECOND as f64).round() as i64);
                }
                IntervalTrigger::builder()
                    .period(period.to_std().unwrap_or_default())
                    .maybe_start(instant("start_date", repr.start_date)?)
                    .maybe_end(instant("end_date", repr.end_date)?)
                    .maybe_jitter(jitter(repr.jitter)?)
                    .build()?
                    .into()
            }
            Self::Cron(repr) => {
                let tz = parse_time_zone(&repr.timezone)?;
                let builder = match (repr.expr, repr.fields) {
                    (Some(expr), None) => CronTrigger::builder(&expr),
                    (None, Some(fields)) => CronTrigger::from_fields(fields),
                    _ => {
                        return Err(Error::InvalidTrigger(
                            "cron trigger: give exactly one of \"expr\" and \"fields\"".to_owned(),
                        ));
                    }
                };
                builder
                    .tz(tz)
                    .maybe_start(instant("start_date", repr.start_date)?)
                    .maybe_end(instant("end_date", repr.end_date)?)
                    .maybe_jitter(jitter(repr.jitter)?)
                    .build()?
                    .into()
            }
            Self::Date(repr) => {
                let tz = parse_time_zone(&repr.timezone)?;
                let run_date = instant("run_date", Some(repr.run_date))?.ok_or_else(|| {
                    Error::InvalidTrigger("date trigger: missing run_date".into())
                })?;
                DateTrigger::at(run_date).with_timezone(tz).into()
            }
            Self::Or(repr) => OrTrigger::new(repr.triggers)?
                .with_jitter(jitter(repr.jitter)?)
                .into(),
            Self::And(repr) => AndTrigger::new(repr.triggers)?
                .with_jitter(jitter(repr.jitter)?)
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::utc;
    use serde_json::json;

    fn read(value: Value) -> std::result::Result<TriggerSpec, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn round_trip(spec: &TriggerSpec) {
        let text = serde_json::to_string(spec).unwrap();
        let back: TriggerSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, spec, "{text}");
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn interval_units_largest_first() {
        let spec: TriggerSpec = IntervalTrigger::builder()
            .hours(1)
            .minutes(30)
            .milliseconds(250)
            .build()
            .unwrap()
            .into();
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "interval", "hours": 1, "minutes": 30, "milliseconds": 250})
        );
        round_trip(&spec);
        let spec = read(json!({"trigger": "interval", "seconds": 90})).unwrap();
        assert_eq!(
            spec.to_value(),
            json!({"trigger": "interval", "minutes": 1, "seconds": 30})
        );
        let spec = read(json!({"trigger": "interval", "milliseconds": 1.5})).unwrap();
        assert_eq!(spec.to_value()["milliseconds"], json!(1.5));
    }

    #[test]
    fn cron_fields_and_expressions() {
        let spec = read(json!({"trigger": "cron", "fields": {"minute": "*/5", "day_of_week": "mon-fri"}, "timezone": "UTC"})).unwrap();
        round_trip(&spec);
        // 2026-11-28 is a Saturday: the next fire is Monday 00:00.
        assert_eq!(
            spec.next_fire_time(None, utc(2026, 11, 28, 10, 2, 0)),
            Some(utc(2026, 11, 30, 0, 0, 0))
        );
        let spec =
            read(json!({"trigger": "cron", "expr": "*/5 * * * *", "timezone": "Europe/Berlin"}))
                .unwrap();
        let TriggerSpec::Cron(ref t) = spec else {
            panic!()
        };
        assert_eq!(t.timezone().name(), "Europe/Berlin");
        round_trip(&spec);
    }

    #[test]
    fn date_keeps_its_zone() {
        let spec = read(json!({"trigger": "date", "run_date": "2030-01-01T10:00:00+01:00", "timezone": "Europe/Berlin"})).unwrap();
        assert_eq!(
            spec.next_fire_time(None, utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2030, 1, 1, 9, 0, 0))
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
    fn the_stored_form_is_strict() {
        let cases = [
            (json!("cron"), "expected internally tagged enum"),
            (json!({"seconds": 5}), "missing field `trigger`"),
            (json!({"trigger": "weekly"}), "unknown variant `weekly`"),
            (
                json!({"trigger": "interval", "secs": 5}),
                "unknown field `secs`",
            ),
            (
                json!({"trigger": "interval", "seconds": "5"}),
                "invalid type: string \"5\"",
            ),
            (
                json!({"trigger": "interval", "seconds": 0}),
                "the period is zero",
            ),
            (
                json!({"trigger": "interval", "weeks": 100_000_000_000_u64}),
                "weeks = 100000000000 is longer than the limit of 36525 days",
            ),
            (
                json!({"trigger": "interval", "milliseconds": 0.5}),
                "shorter than the minimum of 1 ms",
            ),
            (
                json!({"trigger": "interval", "seconds": 5, "jitter": 1e300}),
                "jitter 1e300 must be",
            ),
            (
                json!({"trigger": "interval", "seconds": 5, "jitter": 1e12}),
                "longer than the limit",
            ),
            (
                json!({"trigger": "cron", "hour": "3", "timezone": "UTC"}),
                "unknown field `hour`",
            ),
            (
                json!({"trigger": "cron", "expr": "* * * * *", "fields": {"hour": "1"}, "timezone": "UTC"}),
                "give exactly one of \"expr\" and \"fields\"",
            ),
            (
                json!({"trigger": "cron", "expr": "61 * * * *", "timezone": "UTC"}),
                "minute field: 61 is outside 0-59",
            ),
            (
                json!({"trigger": "date", "run_date": "2030-01-01 10:00:00", "timezone": "UTC"}),
                "run_date must be RFC 3339 with an offset",
            ),
            (
                json!({"trigger": "or", "triggers": []}),
                "needs at least one trigger",
            ),
        ];
        for (value, message) in cases {
            let err = read(value.clone()).unwrap_err().to_string();
            assert!(err.contains(message), "{value}: {err}");
        }
    }

    #[test]
    fn anchoring_pins_interval_grids_only() {
        let mut spec: TriggerSpec = IntervalTrigger::every(Duration::from_secs(30))
            .unwrap()
            .into();
        spec.anchor(utc(2030, 1, 1, 0, 0, 0));
        assert_eq!(spec.to_value()["start_date"], json!("2030-01-01T00:00:30Z"));
    }
}
