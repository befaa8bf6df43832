//! Cron trigger: crontab and Quartz expressions in an IANA time zone.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, LocalResult, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::cron_fields::{CompiledFields, CronFields};
use super::time::{resolve_local, whole_micros};
use super::{Trigger, parse_time_zone};
use crate::error::{Error, Result};

/// Which cron dialect an expression is in; chosen by its number of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CronDialect {
    /// 5 fields, minute first: `minute hour day-of-month month day-of-week`. Day of week 0 and
    /// 7 are Sunday. The nicknames `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
    /// `@hourly` are crontab too.
    Crontab,
    /// 6 or 7 fields, seconds first: `second minute hour day-of-month month day-of-week
    /// [year]`. Day of week 1 is Sunday and 7 Saturday; `?`, `L`, `W`, `#` and `0/15`-style
    /// steps are accepted.
    Quartz,
    /// Not an expression: APScheduler's fields ([`CronFields`]), with APScheduler's meaning.
    Fields,
}

const CRONTAB_FIELDS: [FieldRule; 5] = [
    FieldRule::new("minute", 0, 59),
    FieldRule::new("hour", 0, 23),
    FieldRule::new("day of month", 1, 31),
    FieldRule::new("month", 1, 12),
    FieldRule::new("day of week", 0, 7),
];

const QUARTZ_FIELDS: [FieldRule; 7] = [
    FieldRule::new("second", 0, 59),
    FieldRule::new("minute", 0, 59),
    FieldRule::new("hour", 0, 23),
    FieldRule::new("day of month", 1, 31),
    FieldRule::new("month", 1, 12),
    FieldRule::new("day of week", 1, 7),
    FieldRule::new("year", 1970, 4999),
];

const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// Fires at the times a cron expression matches, read in an IANA time zone (default UTC).
///
/// The dialect is picked by the number of fields (see [`CronDialect`]): 5 fields are crontab,
/// 6 or 7 are Quartz. Parsing and matching are done by the `croner` crate.
///
/// # Daylight saving time
///
/// The rule is Vixie cron's, as written in the Open Cron Pattern Specification:
///
/// - A *fixed-time* expression (one value each in the second, minute and hour fields, such as
///   `30 2 * * *`) fires once a day whatever the clocks do. When its wall time does not exist
///   that day (the clocks spring forward over it), it fires at the first instant after the
///   gap: `30 2 * * *` in America/New_York fires at 03:00 EDT on 2026-03-08. When its wall
///   time occurs twice (the clocks fall back), it fires at the first occurrence only.
/// - Any other expression (a wildcard, step, range or list in the second, minute or hour
///   field) fires by real time: wall times skipped by a gap do not fire, and wall times that
///   occur twice fire twice, so `0 * * * *` fires at both 01:00s of a fall-back night.
///
/// Days are counted on the wall clock, never as 24 hours of absolute time, so a daily job
/// fires every day across a transition (APScheduler's issue #606 skips a day).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use apsched::trigger::{CronTrigger, Trigger};
///
/// let weekdays_9am = CronTrigger::builder("0 9 * * mon-fri").timezone("Europe/Berlin").build()?;
/// let friday_noon = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
/// let next = weekdays_9am.next_fire_time(None, friday_noon).unwrap();
/// // Monday 09:00 in Berlin is 08:00 UTC in winter.
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap());
///
/// let err = CronTrigger::new("61 * * * *").unwrap_err();
/// assert_eq!(err.to_string(), r#"minute field: 61 is outside 0-59 in "61 * * * *""#);
/// # Ok::<(), apsched::Error>(())
/// ```
#[derive(Clone)]
pub struct CronTrigger {
    expression: String,
    dialect: CronDialect,
    matcher: Matcher,
    timezone: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    jitter: Option<Duration>,
}

/// What matches the wall times.
#[derive(Clone)]
enum Matcher {
    Expression(Box<Cron>),
    Fields(Box<CompiledFields>),
}

/// What a trigger is built from.
#[derive(Clone, Debug)]
enum Source {
    Expression(String),
    Fields(CronFields),
}

impl fmt::Debug for CronTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronTrigger")
            .field("expression", &self.expression)
            .field("dialect", &self.dialect)
            .field("timezone", &self.timezone.name())
            .field("start", &self.start)
            .field("end", &self.end)
            .field("jitter", &self.jitter)
            .finish()
    }
}

impl PartialEq for CronTrigger {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
            && self.timezone == other.timezone
            && self.start == other.start
            && self.end == other.end
            && self.jitter == other.jitter
    }
}

impl CronTrigger {
    /// An expression in UTC.
    ///
    /// # Errors
    ///
    /// See [`CronTriggerBuilder::build`].
    pub fn new(expression: &str) -> Result<Self> {
        Self::builder(expression).build()
    }

    /// A builder for an expression with a time zone, start, end or jitter.
    pub fn builder(expression: &str) -> CronTriggerBuilder {
        CronTriggerBuilder::new(Source::Expression(expression.to_owned()))
    }

    /// A builder for APScheduler's fields: each read by APScheduler 3's rules, all of them
    /// matched (see [`CronFields`]). The DST rule is this trigger's own: one value each in
    /// `hour`, `minute` and `second` is a fixed-time schedule.
    pub fn from_fields(fields: CronFields) -> CronTriggerBuilder {
        CronTriggerBuilder::new(Source::Fields(fields))
    }

    /// The expression as given; for a trigger built from fields, APScheduler's description of
    /// them (`cron[hour='9', minute='*/5']`).
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The fields it was built from, in APScheduler's canonical text, if it was.
    #[must_use]
    pub fn fields(&self) -> Option<&CronFields> {
        match &self.matcher {
            Matcher::Fields(fields) => Some(&fields.canonical),
            Matcher::Expression(_) => None,
        }
    }
}

impl CronTriggerBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            timezone: TzChoice::Zone(Tz::UTC),
            start: None,
            end: None,
            jitter: None,
        }
    }
}

impl CronTrigger {
    /// The dialect the expression was read in.
    #[must_use]
    pub fn dialect(&self) -> CronDialect {
        self.dialect
    }

    /// The time zone the expression is read in.
    #[must_use]
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The earliest instant a fire may have, if set.
    #[must_use]
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// The last instant a fire may have, if set.
    #[must_use]
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    fn within_end(&self, fire: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.end {
            Some(end) if fire > end => None,
            _ => Some(fire),
        }
    }
}

impl Trigger for CronTrigger {
    fn next_fire_time(
        &self,
        previous: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut lower = now;
        if let Some(previous) = previous {
            lower = lower.max(previous + TimeDelta::nanoseconds(1));
        }
        if let Some(start) = self.start {
            lower = lower.max(start);
        }
        // Both matchers work in whole seconds: start from the first whole second at or after
        // `lower`.
        let lower = ceil_to_second(lower)?;
        let next = match &self.matcher {
            Matcher::Expression(cron) => cron
                .find_next_occurrence(&lower.with_timezone(&self.timezone), true)
                .ok()?
                .with_timezone(&Utc),
            Matcher::Fields(fields) => next_by_fields(fields, self.timezone, lower)?,
        };
        self.within_end(next)
    }

    fn last_fire_time(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let upper = self.end.map_or(until, |end| end.min(until));
        let upper = upper.with_nanosecond(0)?;
        let last = match &self.matcher {
            Matcher::Expression(cron) => cron
                .find_previous_occurrence(&upper.with_timezone(&self.timezone), true)
                .ok()?
                .with_timezone(&Utc),
            Matcher::Fields(_) => last_by_search(self, after, upper)?,
        };
        let after_start = self.start.is_none_or(|start| last >= start);
        (last > after && after_start).then_some(last)
    }

    fn jitter(&self) -> Option<Duration> {
        self.jitter
    }
}

/// The first fire at or after `lower` of a trigger built from fields, by the DST rule of
/// [`CronTrigger`]: a fixed-time schedule whose wall time falls in a gap fires at the first
/// instant after it, and at the first occurrence of a wall time that occurs twice; any other
/// fires by real time (a gap's wall times do not fire, a repeated wall time fires twice).
fn next_by_fields(fields: &CompiledFields, tz: Tz, lower: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let real_time = !fields.fixed_time;
    let wall = lower.with_timezone(&tz).naive_local();
    // In the first pass of a repeated hour, the second pass can hold the next fire of a
    // real-time schedule at a wall time before `lower`'s.
    let mut second_pass = None;
    if let LocalResult::Ambiguous(first, later) = tz.from_local_datetime(&wall) {
        if real_time && first.with_timezone(&Utc) == lower {
            let repeated = later.with_timezone(&Utc) - first.with_timezone(&Utc);
            let mut from = wall - repeated;
            while let Some(candidate) = fields.next_wall_time(from) {
                match tz.from_local_datetime(&candidate) {
                    LocalResult::Ambiguous(_, later) if later.with_timezone(&Utc) >= lower => {
                        second_pass = Some(later.with_timezone(&Utc));
                        break;
                    }
                    _ if candidate > wall => break,
                    _ => from = candidate + TimeDelta::seconds(1),
                }
            }
        }
    }
    let mut from = wall;
    loop {
        let Some(candidate) = fields.next_wall_time(from) else {
            return second_pass;
        };
        let instant = match tz.from_local_datetime(&candidate) {
            LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, later) => {
                let (first, later) = (first.with_timezone(&Utc), later.with_timezone(&Utc));
                if first >= lower {
                    Some(first)
                } else {
                    (real_time && later >= lower).then_some(later)
                }
            }
            LocalResult::None => (!real_time).then(|| resolve_local(candidate, tz)),
        };
        if let Some(instant) = instant.filter(|at| *at >= lower) {
            return Some(second_pass.map_or(instant, |earlier| earlier.min(instant)));
        }
        from = candidate + TimeDelta::seconds(1);
    }
}

/// The latest fire in `(after, until]`, found with `next_fire_time` alone: a window before
/// `until` that grows until it holds a fire, then a bisection for the last start that still
/// reaches one. About fifty searches whatever the schedule.
fn last_by_search(
    trigger: &CronTrigger,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let reaches = |from: DateTime<Utc>| {
        trigger
            .next_fire_time(None, from)
            .filter(|fire| *fire <= until)
    };
    let floor = after + TimeDelta::microseconds(1);
    let mut window = TimeDelta::minutes(1);
    let mut low = loop {
        let from = (until - window).max(floor);
        if reaches(from).is_some() {
            break from;
        }
        if from <= floor {
            return None;
        }
        window = window.checked_mul(4)?;
    };
    let mut high = until + TimeDelta::microseconds(1);
    while high - low > TimeDelta::microseconds(1) {
        let middle = low + (high - low) / 2;
        if reaches(middle).is_some() {
            low = middle;
        } else {
            high = middle;
        }
    }
    reaches(low)
}

fn ceil_to_second(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if t.nanosecond() == 0 {
        Some(t)
    } else {
        t.with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))
    }
}

#[derive(Clone, Debug)]
enum TzChoice {
    Zone(Tz),
    Name(String),
}

/// Builds a [`CronTrigger`].
#[derive(Clone, Debug)]
#[must_use]
pub struct CronTriggerBuilder {
    source: Source,
    timezone: TzChoice,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    jitter: Option<Duration>,
}

impl CronTriggerBuilder {
    /// The IANA time zone the expression is read in, by name (`"America/New_York"`). Checked
    /// by [`build`](Self::build).
    pub fn timezone(mut self, name: &str) -> Self {
        self.timezone = TzChoice::Name(name.to_owned());
        self
    }

    /// The time zone the expression is read in.
    pub fn tz(mut self, tz: Tz) -> Self {
        self.timezone = TzChoice::Zone(tz);
        self
    }

    /// The earliest instant a fire may have (inclusive).
    pub fn start(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    /// The last instant a fire may have (inclusive).
    pub fn end(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self
    }

    /// The largest random delay added to each fire.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// [`start`](Self::start) when there is one.
    pub fn maybe_start(mut self, start: Option<DateTime<Utc>>) -> Self {
        self.start = start;
        self
    }

    /// [`end`](Self::end) when there is one.
    pub fn maybe_end(mut self, end: Option<DateTime<Utc>>) -> Self {
        self.end = end;
        self
    }

    /// [`jitter`](Self::jitter) when there is one.
    pub fn maybe_jitter(mut self, jitter: Option<Duration>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Parses the expression and builds the trigger.
    ///
    /// # Errors
    ///
    /// - [`Error::CronField`]: a field is wrong; the message names the field and the value
    ///   (`minute field: 61 is outside 0-59 in "61 * * * *"`).
    /// - [`Error::CronExpression`]: the wrong number of fields, or an unknown nickname.
    /// - [`Error::UnknownTimeZone`]: the zone name is not in the IANA database.
    /// - [`Error::StartAfterEnd`]: `start` after `end`.
    /// - [`Error::NeverFires`]: the expression matches no date at all (`0 0 30 2 *`), or none
    ///   between `start` and `end`.
    pub fn build(self) -> Result<CronTrigger> {
        let timezone = match self.timezone {
            TzChoice::Zone(tz) => tz,
            TzChoice::Name(name) => parse_time_zone(&name)?,
        };
        if let (Some(start), Some(end)) = (self.start, self.end) {
            if start > end {
                return Err(Error::StartAfterEnd { start, end });
            }
        }
        super::check_jitter(self.jitter)?;
        let (expression, dialect, matcher) = match &self.source {
            Source::Expression(expression) => {
                let (cron, dialect) = parse_expression(expression)?;
                (
                    expression.trim().to_owned(),
                    dialect,
                    Matcher::Expression(Box::new(cron)),
                )
            }
            Source::Fields(fields) => {
                let compiled = fields.compile()?;
                (
                    compiled.canonical.to_string(),
                    CronDialect::Fields,
                    Matcher::Fields(Box::new(compiled)),
                )
            }
        };
        let trigger = CronTrigger {
            expression,
            dialect,
            matcher,
            timezone,
            start: self.start.map(whole_micros),
            end: self.end.map(whole_micros),
            jitter: self.jitter.filter(|j| !j.is_zero()),
        };
        // An expression that matches nothing would otherwise be accepted and silently never
        // run (APScheduler adds such a job as paused). Search from its start, or from 1970.
        let from = self
            .start
            .unwrap_or_else(|| Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap());
        if trigger.next_fire_time(None, from).is_none() {
            let reason = if self.end.is_some() {
                format!(
                    "\"{}\" matches no time between its start and end",
                    trigger.expression
                )
            } else {
                format!("\"{}\" matches no date", trigger.expression)
            };
            return Err(Error::NeverFires(reason));
        }
        Ok(trigger)
    }
}

#[derive(Clone, Copy)]
struct FieldRule {
    name: &'static str,
    min: u32,
    max: u32,
}

impl FieldRule {
    const fn new(name: &'static str, min: u32, max: u32) -> Self {
        Self { name, min, max }
    }
}

fn parser(dialect: CronDialect) -> CronParser {
    match dialect {
        // Fields never reach croner; crontab is only the match's arm for them.
        CronDialect::Crontab | CronDialect::Fields => CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build(),
        CronDialect::Quartz => CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Optional)
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build(),
    }
}

/// Picks the dialect, checks each field with a message that names it, then lets croner parse.
pub(crate) fn parse_expression(expression: &str) -> Result<(Cron, CronDialect)> {
    let trimmed = expression.trim();
    let expression_error = |reason: String| Error::CronExpression {
        expression: expression.to_owned(),
        reason,
    };
    if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        if !NICKNAMES.contains(&lower.as_str()) {
            return Err(expression_error(format!(
                "unknown nickname {trimmed} (expected one of {})",
                NICKNAMES.join(", ")
            )));
        }
        let cron = parser(CronDialect::Crontab)
            .parse(&lower)
            .map_err(|e| expression_error(e.to_string()))?;
        return Ok((cron, CronDialect::Crontab));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let (dialect, rules): (_, &[FieldRule]) = match fields.len() {
        5 => (CronDialect::Crontab, &CRONTAB_FIELDS),
        6 | 7 => (CronDialect::Quartz, &QUARTZ_FIELDS),
        n => {
            return Err(expression_error(format!(
                "expected 5 fields (crontab: minute hour day-of-month month day-of-week) or 6 \
                 to 7 fields (Quartz: second minute hour day-of-month month day-of-week [year]), \
                 got {n}"
            )));
        }
    };
    for (field, rule) in fields.iter().zip(rules) {
        check_field(field, *rule, dialect).map_err(|reason| Error::CronField {
            field: rule.name,
            reason,
            expression: expression.to_owned(),
        })?;
    }
    let parser = parser(dialect);
    match parser.parse(trimmed) {
        Ok(cron) => Ok((cron, dialect)),
        Err(error) => {
            // croner's message does not say which field; find it by parsing each field alone.
            for (index, rule) in rules.iter().enumerate().take(fields.len()) {
                let alone: Vec<&str> = (0..fields.len())
                    .map(|i| if i == index { fields[i] } else { "*" })
                    .collect();
                if let Err(field_error) = parser.parse(&alone.join(" ")) {
                    return Err(Error::CronField {
                        field: rule.name,
                        reason: format!("\"{}\" is not accepted ({field_error})", fields[index]),
                        expression: expression.to_owned(),
                    });
                }
            }
            Err(expression_error(error.to_string()))
        }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Checks the numbers and names in one field, so the common mistakes get a message naming the
/// value and the allowed range. croner checks the rest.
fn check_field(
    field: &str,
    rule: FieldRule,
    dialect: CronDialect,
) -> std::result::Result<(), String> {
    let is_dow = rule.name == "day of week";
    let is_dom = rule.name == "day of month";
    let field = if is_dow {
        field.strip_prefix('+').unwrap_or(field)
    } else {
        field
    };
    for item in field.split(',') {
        if item.is_empty() {
            return Err(format!("empty list item in \"{field}\""));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err(format!("step 0 in \"{item}\" must be at least 1")),
                Ok(_) => {}
                Err(_) => return Err(format!("step \"{step}\" in \"{item}\" is not a number")),
            }
        }
        if matches!(base, "*" | "?" | "" | "L") {
            continue;
        }
        let mut bounds = Vec::with_capacity(2);
        for (position, part) in base.splitn(2, '-').enumerate() {
            let mut value = part;
            if is_dow {
                if let Some((day, nth)) = value.split_once('#') {
                    let nth_ok = nth.eq_ignore_ascii_case("L")
                        || nth.parse::<u32>().is_ok_and(|n| (1..=5).contains(&n));
                    if !nth_ok {
                        return Err(format!("\"#{nth}\" in \"{item}\" must be #1 to #5 or #L"));
                    }
                    value = day;
                }
            }
            if (is_dow || is_dom) && value.len() > 1 {
                value = value
                    .strip_suffix(['L', 'l'])
                    .or_else(|| {
                        if is_dom {
                            value.strip_suffix(['W', 'w'])
                        } else {
                            None
                        }
                    })
                    .unwrap_or(value);
            }
            if value.eq_ignore_ascii_case("L") {
                continue;
            }
            let number = if let Ok(n) = value.parse::<u32>() {
                n
            } else if let Some(n) = name_value(value, rule, dialect) {
                // In crontab, `MON-SUN` ends on Sunday counted as 7.
                if n == 0 && position == 1 && is_dow {
                    7
                } else {
                    n
                }
            } else {
                return Err(format!("\"{value}\" is not a number or a name"));
            };
            if number < rule.min || number > rule.max {
                return Err(format!("{value} is outside {}-{}", rule.min, rule.max));
            }
            bounds.push(number);
        }
        if let [low, high] = bounds[..] {
            if low > high {
                return Err(format!("range {base} runs backwards"));
            }
        }
    }
    Ok(())
}

fn name_value(value: &str, rule: FieldRule, dialect: CronDialect) -> Option<u32> {
    let upper = value.to_ascii_uppercase();
    let index = |names: &[&str]| names.iter().position(|n| *n == upper).map(|i| i as u32);
    match rule.name {
        "month" => index(&MONTH_NAMES).map(|i| i + 1),
        "day of week" => index(&DAY_NAMES).map(|i| match dialect {
            CronDialect::Quartz => i + 1,
            CronDialect::Crontab | CronDialect::Fields => i,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::test_support::{fires, utc};

    fn in_zone(expression: &str, zone: &str) -> CronTrigger {
        CronTrigger::builder(expression)
            .timezone(zone)
            .build()
            .unwrap()
    }

    #[test]
    fn crontab_fires_at_matching_minutes() {
        let t = CronTrigger::new("*/15 * * * *").unwrap();
        assert_eq!(t.dialect(), CronDialect::Crontab);
        assert_eq!(
            fires(&t, utc(2026, 1, 1, 10, 7, 30), 3),
            [
                utc(2026, 1, 1, 10, 15, 0),
                utc(2026, 1, 1, 10, 30, 0),
                utc(2026, 1, 1, 10, 45, 0)
            ]
        );
    }

    #[test]
    fn now_on_a_match_fires_then_and_sub_seconds_round_up() {
        let t = CronTrigger::new("0 * * * *").unwrap();
        assert_eq!(
            t.next_fire_time(None, utc(2026, 1, 1, 10, 0, 0)),
            Some(utc(2026, 1, 1, 10, 0, 0))
        );
        let just_after = utc(2026, 1, 1, 10, 0, 0) + TimeDelta::milliseconds(1);
        assert_eq!(
            t.next_fire_time(None, just_after),
            Some(utc(2026, 1, 1, 11, 0, 0))
        );
        // Strictly after `previous`, even when `now` is earlier.
        assert_eq!(
            t.next_fire_time(Some(utc(2026, 1, 1, 10, 0, 0)), utc(2026, 1, 1, 9, 0, 0)),
            Some(utc(2026, 1, 1, 11, 0, 0))
        );
    }

    #[test]
    fn crontab_sunday_is_0_and_7() {
        // 2026-11-29 is a Sunday.
        for expression in ["0 12 * * 0", "0 12 * * 7", "0 12 * * sun"] {
            let t = CronTrigger::new(expression).unwrap();
            assert_eq!(
                t.next_fire_time(None, utc(2026, 11, 26, 0, 0, 0)),
                Some(utc(2026, 11, 29, 12, 0, 0)),
                "{expression}"
            );
        }
    }

    #[test]
    fn quartz_has_seconds_years_and_sunday_1() {
        let t = CronTrigger::new("30 0 12 ? * 1").unwrap();
        assert_eq!(t.dialect(), CronDialect::Quartz);
        assert_eq!(
            t.next_fire_time(None, utc(2026, 11, 26, 0, 0, 0)),
            Some(utc(2026, 11, 29, 12, 0, 30))
        );
        let t = CronTrigger::new("0 0 12 1 1 ? 2030").unwrap();
        assert_eq!(
            fires(&t, utc(2026, 1, 1, 0, 0, 0), 5),
            [utc(2030, 1, 1, 12, 0, 0)],
            "a year field ends the trigger"
        );
        let every_10s = CronTrigger::new("0/10 * * * * ?").unwrap();
        assert_eq!(
            fires(&every_10s, utc(2026, 1, 1, 0, 0, 1), 2),
            [utc(2026, 1, 1, 0, 0, 10), utc(2026, 1, 1, 0, 0, 20)]
        );
    }

    #[test]
    fn quartz_last_weekday_and_nth() {
        // Last day of the month, the weekday nearest the 15th, the second Monday.
        let last = CronTrigger::new("0 0 0 L * ?").unwrap();
        assert_eq!(
            last.next_fire_time(None, utc(2026, 2, 2, 0, 0, 0)),
            Some(utc(2026, 2, 28, 0, 0, 0))
        );
        // 2026-11-15 is a Sunday: the nearest weekday is Monday the 16th.
        let nearest = CronTrigger::new("0 0 0 15W * ?").unwrap();
        assert_eq!(
            nearest.next_fire_time(None, utc(2026, 11, 1, 0, 0, 0)),
            Some(utc(2026, 11, 16, 0, 0, 0))
        );
        let second_monday = CronTrigger::new("0 0 9 ? * MON#2").unwrap();
        assert_eq!(
            second_monday.next_fire_time(None, utc(2026, 11, 1, 0, 0, 0)),
            Some(utc(2026, 11, 9, 9, 0, 0))
        );
    }

    #[test]
    fn nicknames() {
        let cases = [
            ("@yearly", utc(2027, 1, 1, 0, 0, 0)),
            ("@annually", utc(2027, 1, 1, 0, 0, 0)),
            ("@monthly", utc(2026, 12, 1, 0, 0, 0)),
            ("@weekly", utc(2026, 11, 29, 0, 0, 0)),
            ("@daily", utc(2026, 11, 29, 0, 0, 0)),
            ("@hourly", utc(2026, 11, 28, 11, 0, 0)),
        ];
        for (nickname, expected) in cases {
            let t = CronTrigger::new(nickname).unwrap();
            assert_eq!(
                t.next_fire_time(None, utc(2026, 11, 28, 10, 30, 0)),
                Some(expected),
                "{nickname}"
            );
        }
        let err = CronTrigger::new("@reboot").unwrap_err();
        assert!(
            err.to_string().contains("unknown nickname @reboot"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let cases = [
            (
                "61 * * * *",
                r#"minute field: 61 is outside 0-59 in "61 * * * *""#,
            ),
            (
                "* 24 * * *",
                r#"hour field: 24 is outside 0-23 in "* 24 * * *""#,
            ),
            (
                "* * 0 * *",
                r#"day of month field: 0 is outside 1-31 in "* * 0 * *""#,
            ),
            (
                "* * * 13 *",
                r#"month field: 13 is outside 1-12 in "* * * 13 *""#,
            ),
            (
                "* * * * 8",
                r#"day of week field: 8 is outside 0-7 in "* * * * 8""#,
            ),
            (
                "*/0 * * * *",
                r#"minute field: step 0 in "*/0" must be at least 1 in "*/0 * * * *""#,
            ),
            (
                "5-3 * * * *",
                r#"minute field: range 5-3 runs backwards in "5-3 * * * *""#,
            ),
            (
                "x * * * *",
                r#"minute field: "x" is not a number or a name in "x * * * *""#,
            ),
            (
                "* * * foo *",
                r#"month field: "foo" is not a number or a name in "* * * foo *""#,
            ),
            (
                "0 0 0 * * 0",
                r#"day of week field: 0 is outside 1-7 in "0 0 0 * * 0""#,
            ),
            (
                "0 0 0 * * ? 1800",
                r#"year field: 1800 is outside 1970-4999 in "0 0 0 * * ? 1800""#,
            ),
        ];
        for (expression, message) in cases {
            let err = CronTrigger::new(expression).unwrap_err();
            assert!(
                matches!(err, Error::CronField { .. }),
                "{expression}: {err:?}"
            );
            assert_eq!(err.to_string(), message);
        }
        let err = CronTrigger::new("* * *").unwrap_err();
        assert!(err.to_string().contains("expected 5 fields"), "{err}");
        assert!(err.to_string().contains("got 3"), "{err}");
    }

    #[test]
    fn croner_rejections_are_attributed_to_a_field() {
        // Crontab takes `*/5`, not Quartz's `0/5`.
        let err = CronTrigger::new("0/5 * * * *").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(r#"minute field: "0/5" is not accepted"#),
            "{message}"
        );
    }

    #[test]
    fn impossible_dates_and_empty_windows_are_errors() {
        let err = CronTrigger::new("0 0 30 2 *").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"trigger never fires: "0 0 30 2 *" matches no date"#
        );
        let err = CronTrigger::builder("0 0 1 1 *")
            .start(utc(2026, 2, 1, 0, 0, 0))
            .end(utc(2026, 12, 1, 0, 0, 0))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::NeverFires(_)), "{err}");
        let err = CronTrigger::builder("* * * * *")
            .start(utc(2026, 2, 1, 0, 0, 0))
            .end(utc(2026, 1, 1, 0, 0, 0))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::StartAfterEnd { .. }));
    }

    #[test]
    fn unknown_time_zone_is_named() {
        let err = CronTrigger::builder("* * * * *")
            .timezone("Europe/Atlantis")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::UnknownTimeZone(ref name) if name == "Europe/Atlantis"));
    }

    #[test]
    fn start_and_end_bound_the_fires() {
        let t = CronTrigger::builder("0 0 * * *")
            .start(utc(2026, 3, 1, 12, 0, 0))
            .end(utc(2026, 3, 4, 0, 0, 0))
            .build()
            .unwrap();
        assert_eq!(
            fires(&t, utc(2026, 1, 1, 0, 0, 0), 10),
            [
                utc(2026, 3, 2, 0, 0, 0),
                utc(2026, 3, 3, 0, 0, 0),
                utc(2026, 3, 4, 0, 0, 0)
            ]
        );
        assert_eq!(
            t.last_fire_time(utc(2026, 1, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0)),
            Some(utc(2026, 3, 4, 0, 0, 0))
        );
        assert_eq!(
            t.last_fire_time(utc(2026, 1, 1, 0, 0, 0), utc(2026, 3, 1, 23, 0, 0)),
            None
        );
    }

    // ===== Daylight saving time, 2026 transitions =====
    // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    // Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.

    #[test]
    fn new_york_spring_forward_fixed_time_fires_after_the_gap() {
        let t = in_zone("30 2 * * *", "America/New_York");
        assert_eq!(
            fires(&t, utc(2026, 3, 7, 12, 0, 0), 3),
            [
                utc(2026, 3, 8, 7, 0, 0),   // 03:00 EDT, the first instant after the gap
                utc(2026, 3, 9, 6, 30, 0),  // 02:30 EDT
                utc(2026, 3, 10, 6, 30, 0), // 02:30 EDT
            ]
        );
    }

    #[test]
    fn new_york_fall_back_fixed_time_fires_once() {
        let t = in_zone("30 1 * * *", "America/New_York");
        assert_eq!(
            fires(&t, utc(2026, 10, 31, 12, 0, 0), 3),
            [
                utc(2026, 11, 1, 5, 30, 0), // 01:30 EDT, the first occurrence only
                utc(2026, 11, 2, 6, 30, 0), // 01:30 EST
                utc(2026, 11, 3, 6, 30, 0),
            ]
        );
    }

    #[test]
    fn new_york_hourly_fires_at_both_one_oclocks() {
        let t = in_zone("0 * * * *", "America/New_York");
        assert_eq!(
            fires(&t, utc(2026, 11, 1, 3, 30, 0), 4),
            [
                utc(2026, 11, 1, 4, 0, 0), // 00:00 EDT
                utc(2026, 11, 1, 5, 0, 0), // 01:00 EDT
                utc(2026, 11, 1, 6, 0, 0), // 01:00 EST
                utc(2026, 11, 1, 7, 0, 0), // 02:00 EST
            ]
        );
        // Spring forward: 02:00 does not exist, so the hourly job goes 01:00 EST -> 03:00 EDT.
        assert_eq!(
            fires(&t, utc(2026, 3, 8, 5, 30, 0), 3),
            [
                utc(2026, 3, 8, 6, 0, 0),
                utc(2026, 3, 8, 7, 0, 0),
                utc(2026, 3, 8, 8, 0, 0)
            ]
        );
    }

    #[test]
    fn new_york_step_hours_keep_real_time() {
        let t = in_zone("0 */2 * * *", "America/New_York");
        // Every even wall hour: 00:00 EDT, 02:00 EST (01:00 twice is odd, so skipped), 04:00.
        assert_eq!(
            fires(&t, utc(2026, 11, 1, 3, 30, 0), 3),
            [
                utc(2026, 11, 1, 4, 0, 0),
                utc(2026, 11, 1, 7, 0, 0),
                utc(2026, 11, 1, 9, 0, 0)
            ]
        );
    }

    #[test]
    fn london_spring_forward_and_fall_back() {
        let t = in_zone("30 1 * * *", "Europe/London");
        assert_eq!(
            fires(&t, utc(2026, 3, 28, 12, 0, 0), 2),
            [
                utc(2026, 3, 29, 1, 0, 0), /* 02:00 BST */
                utc(2026, 3, 30, 0, 30, 0)
            ]
        );
        assert_eq!(
            fires(&t, utc(2026, 10, 24, 12, 0, 0), 2),
            [
                utc(2026, 10, 25, 0, 30, 0), /* 01:30 BST, once */
                utc(2026, 10, 26, 1, 30, 0)
            ]
        );
        let hourly = in_zone("0 * * * *", "Europe/London");
        assert_eq!(
            fires(&hourly, utc(2026, 10, 24, 23, 30, 0), 3),
            [
                utc(2026, 10, 25, 0, 0, 0), /* 01:00 BST */
                utc(2026, 10, 25, 1, 0, 0), /* 01:00 GMT */
                utc(2026, 10, 25, 2, 0, 0)
            ]
        );
    }

    #[test]
    fn los_angeles_midnight_fires_every_day_across_2022_03_13() {
        // APScheduler issue #606: it goes from 03-13 to 03-15.
        let t = in_zone("0 0 * * *", "America/Los_Angeles");
        assert_eq!(
            fires(&t, utc(2022, 3, 12, 12, 0, 0), 4),
            [
                utc(2022, 3, 13, 8, 0, 0), // 00:00 PST
                utc(2022, 3, 14, 7, 0, 0), // 00:00 PDT
                utc(2022, 3, 15, 7, 0, 0),
                utc(2022, 3, 16, 7, 0, 0),
            ]
        );
    }

    #[test]
    fn last_fire_time_respects_the_dst_rule() {
        let t = in_zone("30 1 * * *", "America/New_York");
        // After both 01:30s of the fall-back night, the last fire is the first 01:30.
        assert_eq!(
            t.last_fire_time(utc(2026, 10, 31, 12, 0, 0), utc(2026, 11, 1, 7, 0, 0)),
            Some(utc(2026, 11, 1, 5, 30, 0))
        );
        let gap = in_zone("30 2 * * *", "America/New_York");
        assert_eq!(
            gap.last_fire_time(utc(2026, 3, 7, 12, 0, 0), utc(2026, 3, 8, 12, 0, 0)),
            Some(utc(2026, 3, 8, 7, 0, 0))
        );
    }
}
