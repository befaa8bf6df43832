//! APScheduler's cron fields (`hour="9", minute="*/5", day_of_week="mon-fri"`), read and
//! matched by APScheduler 3's own rules, each field on its own: never pasted into an
//! expression of another dialect and split again.
//!
//! The rules, from APScheduler 3.11's `CronTrigger`:
//! - Eight fields, most significant first: `year` (1970-9999), `month` (1-12), `day` (1-31),
//!   `week` (ISO week, 1-53), `day_of_week` (0-6, 0 = Monday), `hour`, `minute`, `second`.
//! - Each field is a comma-separated list (spaces around commas allowed) of `*`, `*/step`,
//!   `first`, `first-last`, `first/step`, `first-last/step`; `month` also takes names
//!   (`jan`, `jan-mar`), `day_of_week` names (`mon`, `mon-fri`), `day` also `last`, `last fri`
//!   and `1st`..`5th` `mon`..`sun`. Steps count from the range's first value (or the field's
//!   minimum): `year="*/2"` is the even years, as 1970 is.
//! - Every given field must match (`day` AND `day_of_week`, unlike crontab's OR).
//! - Omitted fields less significant than the least significant given one take their minimum
//!   (`week` and `day_of_week` stay `*`); more significant ones are `*`.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// APScheduler's field names, most significant first.
pub(crate) const FIELD_NAMES: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];

const MIN: [u32; 8] = [1970, 1, 1, 1, 0, 0, 0, 0];
const MAX: [u32; 8] = [9999, 12, 31, 53, 6, 23, 59, 59];
const DEFAULTS: [&str; 8] = ["*", "1", "1", "*", "*", "0", "0", "0"];

const YEAR: usize = 0;
const MONTH: usize = 1;
const DAY: usize = 2;
const WEEK: usize = 3;
const DAY_OF_WEEK: usize = 4;
const HOUR: usize = 5;
const MINUTE: usize = 6;
const SECOND: usize = 7;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const POSITIONS: [&str; 6] = ["1st", "2nd", "3rd", "4th", "5th", "last"];

/// A cron schedule as APScheduler's fields, each given as text (`"*/5"`, `"mon-fri"`,
/// `"last fri"`) or left out.
///
/// ```
/// use apsched::trigger::{CronFields, CronTrigger, Trigger};
/// use chrono::{TimeZone, Utc};
///
/// let fields = CronFields::new().day_of_week("mon-fri").hour("9").minute("30");
/// let trigger = CronTrigger::from_fields(fields).timezone("Europe/Berlin").build()?;
/// let friday_noon = Utc.with_ymd_and_hms(2030, 1, 4, 12, 0, 0).unwrap();
/// let next = trigger.next_fire_time(None, friday_noon).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2030, 1, 7, 8, 30, 0).unwrap()); // Monday, 09:30 CET
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    year: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day_of_week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    second: Option<String>,
}

macro_rules! field_setters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        $(
            #[doc = $doc]
            #[must_use]
            pub fn $name(mut self, value: impl Into<String>) -> Self {
                self.$name = Some(value.into());
                self
            }
        )*
    };
}

impl CronFields {
    /// No field given yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    field_setters! {
        year: "The `year` field (1970-9999).",
        month: "The `month` field (1-12, `jan`-`dec`).",
        day: "The `day` field (1-31, `last`, `last fri`, `2nd mon`).",
        week: "The `week` field: the ISO week (1-53).",
        day_of_week: "The `day_of_week` field (0-6 with 0 = Monday, `mon`-`sun`).",
        hour: "The `hour` field (0-23).",
        minute: "The `minute` field (0-59).",
        second: "The `second` field (0-59).",
    }

    /// Sets a field by its APScheduler name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTrigger`] for a name that is not one of the eight fields.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Result<Self> {
        let slot = match name {
            "year" => &mut self.year,
            "month" => &mut self.month,
            "day" => &mut self.day,
            "week" => &mut self.week,
            "day_of_week" => &mut self.day_of_week,
            "hour" => &mut self.hour,
            "minute" => &mut self.minute,
            "second" => &mut self.second,
            other => {
                return Err(Error::InvalidTrigger(format!(
                    "\"{other}\" is not a cron field (the fields are {})",
                    FIELD_NAMES.join(", ")
                )));
            }
        };
        *slot = Some(value.into());
        Ok(self)
    }

    /// The given fields, most significant first, as `(name, text)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        FIELD_NAMES
            .iter()
            .zip(self.slots())
            .filter_map(|(name, value)| Some((*name, value?.as_str())))
    }

    fn slots(&self) -> [Option<&String>; 8] {
        [
            self.year.as_ref(),
            self.month.as_ref(),
            self.day.as_ref(),
            self.week.as_ref(),
            self.day_of_week.as_ref(),
            self.hour.as_ref(),
            self.minute.as_ref(),
            self.second.as_ref(),
        ]
    }

    /// Reads every field by its own rules; the result writes each field back in APScheduler's
    /// canonical text (`"1, 6"` becomes `"1,6"`, `"MON-fri"` becomes `"mon-fri"`).
    pub(crate) fn compile(&self) -> Result<CompiledFields> {
        let given = self.slots();
        let Some(least_significant) = given.iter().rposition(Option::is_some) else {
            return Err(Error::InvalidTrigger(format!(
                "a cron trigger needs \"expr\" or at least one of the fields {}",
                FIELD_NAMES.join(", ")
            )));
        };
        let mut fields: [Field; 8] = Default::default();
        let mut canonical = Self::default();
        for (index, value) in given.iter().enumerate() {
            let text = match value {
                Some(text) => text.as_str(),
                None if index < least_significant || matches!(index, WEEK | DAY_OF_WEEK) => "*",
                None => DEFAULTS[index],
            };
            let field = Field::parse(index, text)?;
            if value.is_some() {
                canonical = canonical.set(FIELD_NAMES[index], field.to_string())?;
            }
            fields[index] = field;
        }
        let fixed_time = [HOUR, MINUTE, SECOND]
            .iter()
            .all(|&i| fields[i].single_value().is_some());
        Ok(CompiledFields {
            hours: fields[HOUR].allowed(HOUR),
            minutes: fields[MINUTE].allowed(MINUTE),
            seconds: fields[SECOND].allowed(SECOND),
            fields,
            canonical,
            fixed_time,
        })
    }
}

impl fmt::Display for CronFields {
    /// APScheduler's own form: `cron[hour='9', minute='*/5']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cron[")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}='{value}'")?;
        }
        f.write_str("]")
    }
}

/// One item of a field's list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    /// `*` or `*/step`.
    All { step: Option<u32> },
    /// `first`, `first-last`, `first/step`, `first-last/step` (names written as numbers).
    Range {
        first: u32,
        last: Option<u32>,
        step: Option<u32>,
        names: Names,
    },
    /// `1st mon` .. `5th sun`, `last fri` (day field): position 0-4, or 5 for last.
    WeekdayPosition { position: usize, weekday: u32 },
    /// `last` (day field): the month's last day.
    LastDay,
}

/// How a range is written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Names {
    Numbers,
    Months,
    Weekdays,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Field {
    exprs: Vec<Expr>,
}

fn field_error(index: usize, value: &str, reason: impl fmt::Display) -> Error {
    Error::InvalidTrigger(format!(
        "cron field {} = \"{value}\": {reason}",
        FIELD_NAMES[index]
    ))
}

impl Field {
    fn parse(index: usize, text: &str) -> Result<Self> {
        let whole = text.trim();
        if whole.is_empty() {
            return Err(field_error(index, text, "empty"));
        }
        let mut exprs = Vec::new();
        for item in whole.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(field_error(index, text, "an empty item in the list"));
            }
            exprs.push(parse_item(index, item).map_err(|reason| field_error(index, text, reason))?);
        }
        Ok(Self { exprs })
    }

    /// The one value this field allows in any context, if it is one number.
    fn single_value(&self) -> Option<u32> {
        match self.exprs.as_slice() {
            [
                Expr::Range {
                    first,
                    last: Some(last),
                    step: None,
                    ..
                },
            ] if first == last => Some(*first),
            _ => None,
        }
    }

    fn is_all(&self) -> bool {
        self.exprs.contains(&Expr::All { step: None })
    }

    /// Whether `value` matches, the field's range being `min..=max` here (the day field's
    /// maximum is the month's length). `date` is the day, for the day field's forms.
    fn matches(&self, index: usize, value: u32, max: u32, date: NaiveDate) -> bool {
        self.exprs.iter().any(|expr| match *expr {
            Expr::All { step } => stepped(value, MIN[index], max, step),
            Expr::Range {
                first, last, step, ..
            } => {
                let low = MIN[index].max(first);
                let high = last.map_or(max, |last| last.min(max));
                stepped(value, low, high, step)
            }
            Expr::WeekdayPosition { position, weekday } => {
                index == DAY && Some(value) == weekday_position_day(date, position, weekday)
            }
            Expr::LastDay => index == DAY && value == days_in_month(date),
        })
    }

    /// The values `0..=max` this field allows, for the fields that do not depend on the date.
    fn allowed(&self, index: usize) -> Vec<u32> {
        let date = NaiveDate::MIN;
        (MIN[index]..=MAX[index])
            .filter(|&v| self.matches(index, v, MAX[index], date))
            .collect()
    }
}

fn stepped(value: u32, low: u32, high: u32, step: Option<u32>) -> bool {
    value >= low && value <= high && step.is_none_or(|step| (value - low) % step == 0)
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, expr) in self.exprs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match *expr {
                Expr::All { step: None } => f.write_str("*")?,
                Expr::All { step: Some(step) } => write!(f, "*/{step}")?,
                Expr::Range {
                    first,
                    last,
                    step,
                    names,
                } => {
                    let name = |v: u32| match names {
                        Names::Numbers => v.to_string(),
                        Names::Months => MONTHS[v as usize - 1].to_owned(),
                        Names::Weekdays => WEEKDAYS[v as usize].to_owned(),
                    };
                    match last {
                        Some(last) if last != first => {
                            write!(f, "{}-{}", name(first), name(last))?;
                        }
                        _ => f.write_str(&name(first))?,
                    }
                    if let Some(step) = step {
                        write!(f, "/{step}")?;
                    }
                }
                Expr::WeekdayPosition { position, weekday } => {
                    write!(f, "{} {}", POSITIONS[position], WEEKDAYS[weekday as usize])?;
                }
                Expr::LastDay => f.write_str("last")?,
            }
        }
        Ok(())
    }
}

fn number(text: &str) -> Option<u32> {
    // Digits only: APScheduler's `\d+`, without signs or spaces.
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_item(index: usize, item: &str) -> std::result::Result<Expr, String> {
    let lower = item.to_ascii_lowercase();
    let (base, step) = match lower.split_once('/') {
        Some((base, step)) => {
            let step = number(step).ok_or_else(|| format!("step \"{step}\" is not a number"))?;
            if step == 0 {
                return Err("a step must be at least 1".to_owned());
            }
            (base, Some(step))
        }
        None => (lower.as_str(), None),
    };
    let range = MAX[index] - MIN[index];
    if base == "*" {
        if let Some(step) = step.filter(|&s| s > range) {
            return Err(format!(
                "the step {step} is more than the field's whole range ({range})"
            ));
        }
        return Ok(Expr::All { step });
    }
    if index == DAY && step.is_none() {
        if base == "last" {
            return Ok(Expr::LastDay);
        }
        if let Some((position, weekday)) = base.split_once(' ') {
            let position = POSITIONS
                .iter()
                .position(|p| *p == position)
                .ok_or_else(|| format!("unknown position \"{position}\" (1st to 5th, or last)"))?;
            let weekday = weekday.trim_start();
            let weekday = WEEKDAYS
                .iter()
                .position(|d| *d == weekday)
                .ok_or_else(|| format!("unknown weekday \"{weekday}\" (mon to sun)"))?;
            return Ok(Expr::WeekdayPosition {
                position,
                weekday: weekday as u32,
            });
        }
    }
    let (first, last) = match base.split_once('-') {
        Some((first, last)) => (first, Some(last)),
        None => (base, None),
    };
    let names = if first.bytes().all(|b| b.is_ascii_digit()) {
        Names::Numbers
    } else if index == MONTH {
        Names::Months
    } else if index == DAY_OF_WEEK {
        Names::Weekdays
    } else {
        return Err(format!("\"{item}\" is not a number, range or step"));
    };
    let read = |text: &str| -> std::result::Result<u32, String> {
        match names {
            Names::Numbers => number(text).ok_or_else(|| format!("\"{text}\" is not a number")),
            Names::Months => MONTHS
                .iter()
                .position(|m| *m == text)
                .map(|i| i as u32 + 1)
                .ok_or_else(|| format!("unknown month \"{text}\" (jan to dec)")),
            Names::Weekdays => WEEKDAYS
                .iter()
                .position(|d| *d == text)
                .map(|i| i as u32)
                .ok_or_else(|| format!("unknown weekday \"{text}\" (mon to sun)")),
        }
    };
    let first = read(first)?;
    let last = last.map(read).transpose()?;
    if names != Names::Numbers && step.is_some() {
        return Err(format!("a range of names takes no step: \"{item}\""));
    }
    // `first` alone is the one value; `first/step` runs to the field's end.
    let last = match (last, step) {
        (None, None) => Some(first),
        (last, _) => last,
    };
    if let Some(last) = last {
        if first > last {
            return Err(format!("the range {first}-{last} runs backwards"));
        }
    }
    let (min, max) = (MIN[index], MAX[index]);
    if first < min || first > max {
        return Err(format!("{first} is outside {min}-{max}"));
    }
    if let Some(last) = last.filter(|&l| l > max) {
        return Err(format!("{last} is outside {min}-{max}"));
    }
    if let Some(step) = step {
        // As APScheduler computes it (`(last or max) - first`): a last value of 0 counts as
        // the field's maximum, so `0-0/1` is accepted (and matches 0 only).
        let span = last
            .filter(|&l| l != 0)
            .unwrap_or(max)
            .saturating_sub(first);
        if step > span {
            return Err(format!(
                "the step {step} is more than the range it steps through ({span})"
            ));
        }
    }
    Ok(Expr::Range {
        first,
        last,
        step,
        names,
    })
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (year, month) = (date.year(), date.month());
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt())
        .map_or(31, |last| last.day())
}

/// The day of `date`'s month that is its `position`-th `weekday` (5: the last), if any.
fn weekday_position_day(date: NaiveDate, position: usize, weekday: u32) -> Option<u32> {
    let first = date.with_day(1)?;
    let first_weekday = first.weekday().num_days_from_monday();
    let last_day = days_in_month(date);
    let first_hit = (weekday + 7 - first_weekday) % 7 + 1;
    let target = if position < 5 {
        first_hit + 7 * position as u32
    } else {
        first_hit + (last_day - first_hit) / 7 * 7
    };
    (target <= last_day).then_some(target)
}

/// The fields, read: what the cron trigger matches wall times with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledFields {
    fields: [Field; 8],
    // The values the time-of-day fields allow, sorted; none of them depends on the date.
    hours: Vec<u32>,
    minutes: Vec<u32>,
    seconds: Vec<u32>,
    /// The fields as given, in canonical text.
    pub(crate) canonical: CronFields,
    /// One value each in hour, minute and second: the schedule fires once a day at most,
    /// whatever the clocks do (see the cron trigger's DST rule).
    pub(crate) fixed_time: bool,
}

impl CompiledFields {
    fn date_matches(&self, date: NaiveDate) -> bool {
        let f = &self.fields;
        let year = u32::try_from(date.year()).unwrap_or(0);
        f[YEAR].matches(YEAR, year, MAX[YEAR], date)
            && f[MONTH].matches(MONTH, date.month(), 12, date)
            && f[DAY].matches(DAY, date.day(), days_in_month(date), date)
            && (f[WEEK].is_all() || f[WEEK].matches(WEEK, date.iso_week().week(), 53, date))
            && f[DAY_OF_WEEK].matches(DAY_OF_WEEK, date.weekday().num_days_from_monday(), 6, date)
    }

    /// The first wall time at or after `from` that every field matches, up to year 9999.
    pub(crate) fn next_wall_time(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let (hours, minutes, seconds) = (&self.hours, &self.minutes, &self.seconds);
        let first_time =
            NaiveTime::from_hms_opt(*hours.first()?, *minutes.first()?, *seconds.first()?)?;
        let mut date = from.date();
        let mut time = Some(from.time());
        let last = NaiveDate::from_ymd_opt(9999, 12, 31)?;
        while date <= last {
            let year = u32::try_from(date.year()).ok()?;
            if !self.fields[YEAR].matches(YEAR, year, MAX[YEAR], date) {
                date = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?;
                time = None;
                continue;
            }
            if !self.fields[MONTH].matches(MONTH, date.month(), 12, date) {
                date = first_of_next_month(date)?;
                time = None;
                continue;
            }
            if self.date_matches(date) {
                let found = match time {
                    None => Some(first_time),
                    Some(at) => next_time(hours, minutes, seconds, at),
                };
                if let Some(found) = found {
                    return Some(date.and_time(found));
                }
            }
            date = date.succ_opt()?;
            time = None;
        }
        None
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

/// The first time of day at or after `at` made of the allowed values (each list sorted).
fn next_time(hours: &[u32], minutes: &[u32], seconds: &[u32], at: NaiveTime) -> Option<NaiveTime> {
    let (h0, m0, s0) = (at.hour(), at.minute(), at.second());
    for &h in hours.iter().filter(|&&h| h >= h0) {
        for &m in minutes.iter().filter(|&&m| h > h0 || m >= m0) {
            let floor = if h == h0 && m == m0 { s0 } else { 0 };
            if let Some(&s) = seconds.iter().find(|&&s| s >= floor) {
                return NaiveTime::from_hms_opt(h, m, s);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(pairs: &[(&str, &str)]) -> Result<CompiledFields> {
        let mut fields = CronFields::new();
        for (name, value) in pairs {
            fields = fields.set(name, *value)?;
        }
        fields.compile()
    }

    fn wall(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn next(pairs: &[(&str, &str)], from: &str) -> Option<String> {
        compile(pairs)
            .unwrap()
            .next_wall_time(wall(from))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    }

    #[test]
    fn omitted_fields_default_by_position() {
        // hour given: minute and second are 0; day, month, year are `*`.
        assert_eq!(
            next(&[("hour", "9")], "2030-01-01 09:00:01").as_deref(),
            Some("2030-01-02 09:00:00")
        );
        // month given: day 1, 00:00:00.
        assert_eq!(
            next(&[("month", "3")], "2030-01-01 00:00:00").as_deref(),
            Some("2030-03-01 00:00:00")
        );
    }

    #[test]
    fn steps_count_from_the_range_start() {
        // Even years, as APScheduler and Quartz count from 1970.
        assert_eq!(
            next(&[("year", "*/2")], "2031-06-01 00:00:00").as_deref(),
            Some("2032-01-01 00:00:00")
        );
        assert_eq!(
            next(&[("year", "2030/3")], "2031-01-01 00:00:00").as_deref(),
            Some("2033-01-01 00:00:00")
        );
        // Day steps count from the 1st: odd days.
        assert_eq!(
            next(&[("day", "*/2")], "2030-01-02 00:00:00").as_deref(),
            Some("2030-01-03 00:00:00")
        );
    }

    #[test]
    fn day_of_week_counts_from_monday_and_both_days_must_match() {
        // 2030-01-05 is a Saturday; 0 is Monday.
        assert_eq!(
            next(&[("day_of_week", "0")], "2030-01-05 00:00:00").as_deref(),
            Some("2030-01-07 00:00:00")
        );
        // Friday the 13th.
        assert_eq!(
            next(
                &[("day", "13"), ("day_of_week", "fri")],
                "2030-01-01 00:00:00"
            )
            .as_deref(),
            Some("2030-09-13 00:00:00")
        );
    }

    #[test]
    fn day_forms_and_iso_weeks() {
        assert_eq!(
            next(&[("day", "last fri")], "2030-01-01 00:00:00").as_deref(),
            Some("2030-01-25 00:00:00")
        );
        assert_eq!(
            next(&[("day", "2nd wed")], "2030-02-01 00:00:00").as_deref(),
            Some("2030-02-13 00:00:00")
        );
        assert_eq!(
            next(&[("day", "last")], "2030-02-01 00:00:00").as_deref(),
            Some("2030-02-28 00:00:00")
        );
        assert_eq!(
            next(&[("week", "10")], "2030-01-01 00:00:00").as_deref(),
            Some("2030-03-04 00:00:00")
        );
        // Day 31 skips the months without one.
        assert_eq!(
            next(&[("day", "31")], "2030-02-01 00:00:00").as_deref(),
            Some("2030-03-31 00:00:00")
        );
    }

    #[test]
    fn each_field_is_read_alone_and_written_back_canonically() {
        let fields = compile(&[
            ("month", "1, 6"),
            ("day_of_week", "MON-fri"),
            ("hour", "09"),
        ])
        .unwrap()
        .canonical;
        assert_eq!(
            fields.iter().collect::<Vec<_>>(),
            [("month", "1,6"), ("day_of_week", "mon-fri"), ("hour", "9")]
        );
        assert!(compile(&[("hour", "9")]).unwrap().fixed_time);
        assert!(!compile(&[("minute", "*/5")]).unwrap().fixed_time);
    }

    #[test]
    fn malformed_fields_name_the_field_and_value() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[("hour", "9 1")],
                "cron field hour = \"9 1\": \"9 1\" is not a number, range",
            ),
            (
                &[("hour", "24")],
                "cron field hour = \"24\": 24 is outside 0-23",
            ),
            (&[("minute", "")], "cron field minute = \"\": empty"),
            (
                &[("minute", "1,,2")],
                "cron field minute = \"1,,2\": an empty item",
            ),
            (
                &[("second", "*/0")],
                "cron field second = \"*/0\": a step must be at least 1",
            ),
            (
                &[("second", "*/60")],
                "the step 60 is more than the field's whole range (59)",
            ),
            (
                &[("day", "L-2")],
                "cron field day = \"L-2\": \"L-2\" is not a number, range",
            ),
            (&[("month", "13")], "13 is outside 1-12"),
            (&[("day", "6th mon")], "unknown position \"6th\""),
        ];
        for (pairs, message) in cases {
            let error = compile(pairs).unwrap_err().to_string();
            assert!(error.contains(message), "{pairs:?}: {error}");
        }
        assert!(compile(&[]).is_err());
        assert!(CronFields::new().set("minutes", "1").is_err());
    }
}
