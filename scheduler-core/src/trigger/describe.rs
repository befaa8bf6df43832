//! Triggers in words, for people reading logs and the dashboard: "every 30 s",
//! "at 09:00 Mon–Fri (Europe/Berlin)". What has no short wording is shown as written.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::TimeDelta;

use super::cron::{CronDialect, CronTrigger};
use super::{Trigger, TriggerSpec};

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl TriggerSpec {
    /// The trigger in words: `every 30 s`, `every 1 h 30 min`, `at 09:00 Mon–Fri
    /// (Europe/Berlin)`, `once at 2030-01-01 09:00:00 (UTC)`; a cron expression without a
    /// short wording is shown as written, with its zone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use apsched::trigger::{CronTrigger, IntervalTrigger, TriggerSpec};
    ///
    /// let every: TriggerSpec = IntervalTrigger::every(Duration::from_secs(90))?.into();
    /// assert_eq!(every.describe(), "every 1 min 30 s");
    /// let weekdays: TriggerSpec = CronTrigger::builder("0 9 * * mon-fri")
    ///     .timezone("Europe/Berlin")
    ///     .build()?
    ///     .into();
    /// assert_eq!(weekdays.describe(), "at 09:00 Mon–Fri (Europe/Berlin)");
    /// # Ok::<(), apsched::Error>(())
    /// ```
    #[must_use]
    pub fn describe(&self) -> String {
        let mut words = match self {
            Self::Interval(t) => format!("every {}", period(t.period())),
            Self::Cron(t) => cron(t),
            Self::Date(t) => format!(
                "once at {} ({})",
                t.run_date()
                    .with_timezone(&t.timezone())
                    .format("%Y-%m-%d %H:%M:%S"),
                t.timezone().name()
            ),
            Self::Or(t) => combined("any of", t.triggers()),
            Self::And(t) => combined("all of", t.triggers()),
        };
        if let Some(jitter) = self.jitter() {
            let _ = write!(words, ", up to {} later at random", duration(jitter));
        }
        words
    }
}

fn combined(how: &str, triggers: &[TriggerSpec]) -> String {
    let parts: Vec<String> = triggers.iter().map(TriggerSpec::describe).collect();
    format!("{how}: {}", parts.join("; "))
}

/// A period in its largest units: `30 s`, `1 h 30 min`, `2 days`, `250 ms`.
fn period(period: TimeDelta) -> String {
    duration(period.to_std().unwrap_or_default())
}

fn duration(d: Duration) -> String {
    let mut rest = d.as_millis();
    let mut parts = Vec::new();
    for (unit, ms) in [
        ("week", 604_800_000_u128),
        ("day", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        let n = rest / ms;
        if n > 0 {
            rest -= n * ms;
            let plural = if (unit == "week" || unit == "day") && n > 1 {
                "s"
            } else {
                ""
            };
            parts.push(format!("{n} {unit}{plural}"));
        }
    }
    if parts.is_empty() {
        "0 s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A cron trigger's fields, as the describer reads them.
struct Fields<'a> {
    second: &'a str,
    minute: &'a str,
    hour: &'a str,
    day: &'a str,
    month: &'a str,
    weekday: &'a str,
    /// Weekday numbers count from: 0 = Monday (APScheduler), 0 or 7 = Sunday (crontab),
    /// 1 = Sunday (Quartz).
    weekday_numbers: WeekdayNumbers,
    extra: bool,
}

#[derive(Clone, Copy)]
enum WeekdayNumbers {
    MondayZero,
    SundayZero,
    SundayOne,
}

fn cron(t: &CronTrigger) -> String {
    let zone = t.timezone().name();
    let words = fields(t).and_then(|fields| wording(&fields));
    match words {
        Some(words) => format!("{words} ({zone})"),
        None => format!("cron {} ({zone})", t.expression()),
    }
}

fn fields(t: &CronTrigger) -> Option<Fields<'_>> {
    if let Some(given) = t.fields() {
        // APScheduler: fields below the most significant one given default to their first
        // value, the ones above to every value.
        let mut values: [Option<&str>; 8] = [None; 8];
        const ORDER: [&str; 8] = [
            "year",
            "month",
            "day",
            "week",
            "day_of_week",
            "hour",
            "minute",
            "second",
        ];
        for (name, value) in given.iter() {
            if let Some(i) = ORDER.iter().position(|n| *n == name) {
                values[i] = Some(value);
            }
        }
        let first_given = values.iter().position(Option::is_some)?;
        let value = |i: usize, low: &'static str| -> &str {
            values[i].unwrap_or(if i > first_given { low } else { "*" })
        };
        return Some(Fields {
            second: value(7, "0"),
            minute: value(6, "0"),
            hour: value(5, "0"),
            day: value(2, "*"),
            month: value(1, "*"),
            weekday: value(4, "*"),
            weekday_numbers: WeekdayNumbers::MondayZero,
            extra: values[0].is_some_and(|y| y != "*") || values[3].is_some_and(|w| w != "*"),
        });
    }
    let parts: Vec<&str> = t.expression().split_whitespace().collect();
    match (t.dialect(), parts.as_slice()) {
        (CronDialect::Crontab, [minute, hour, day, month, weekday]) => Some(Fields {
            second: "0",
            minute,
            hour,
            day,
            month,
            weekday,
            weekday_numbers: WeekdayNumbers::SundayZero,
            extra: false,
        }),
        (CronDialect::Quartz, [second, minute, hour, day, month, weekday, rest @ ..]) => {
            Some(Fields {
                second,
                minute,
                hour,
                day,
                month,
                weekday,
                weekday_numbers: WeekdayNumbers::SundayOne,
                extra: rest.iter().any(|year| *year != "*"),
            })
        }
        _ => None,
    }
}

fn is_every(field: &str) -> bool {
    matches!(field, "*" | "?")
}

fn numbers(field: &str) -> Option<Vec<u32>> {
    field.split(',').map(|n| n.trim().parse().ok()).collect()
}

/// `*/n`, `0/n`: every n.
fn step(field: &str) -> Option<u32> {
    let (from, n) = field.split_once('/')?;
    matches!(from, "*" | "0").then(|| n.parse().ok())?
}

fn wording(f: &Fields<'_>) -> Option<String> {
    if f.extra {
        return None;
    }
    let time = time_of_day(f)?;
    let mut words = time;
    if let Some(days) = weekdays(f.weekday, f.weekday_numbers)? {
        let _ = write!(words, " {days}");
    }
    if !is_every(f.day) {
        let day = if f.day.eq_ignore_ascii_case("l") || f.day == "last" {
            "on the last day of the month".to_owned()
        } else {
            let days = numbers(f.day)?;
            let list: Vec<String> = days.iter().map(u32::to_string).collect();
            format!(
                "on day{} {} of the month",
                if days.len() > 1 { "s" } else { "" },
                list.join(", ")
            )
        };
        let _ = write!(words, " {day}");
    }
    if !is_every(f.month) {
        let _ = write!(words, " in {}", months(f.month)?);
    }
    Some(words)
}

fn time_of_day(f: &Fields<'_>) -> Option<String> {
    let second_zero = f.second == "0";
    if !second_zero {
        if let (Some(n), true, true) = (step(f.second), is_every(f.minute), is_every(f.hour)) {
            return Some(format!("every {n} s"));
        }
        if is_every(f.second) && is_every(f.minute) && is_every(f.hour) {
            return Some("every second".to_owned());
        }
        return None;
    }
    if is_every(f.hour) {
        if is_every(f.minute) {
            return Some("every minute".to_owned());
        }
        if let Some(n) = step(f.minute) {
            return Some(format!("every {n} min"));
        }
        let minutes = numbers(f.minute)?;
        let list: Vec<String> = minutes.iter().map(|m| format!(":{m:02}")).collect();
        return Some(format!("every hour at {}", list.join(", ")));
    }
    let hours = numbers(f.hour)?;
    let minutes = numbers(f.minute)?;
    if hours.len() * minutes.len() > 6 {
        return None;
    }
    let mut times = Vec::new();
    for h in &hours {
        for m in &minutes {
            times.push(format!("{h:02}:{m:02}"));
        }
    }
    Some(format!("at {}", times.join(", ")))
}

/// The weekday field in words: `None` inside when every day; `None` outside when it cannot
/// be worded.
fn weekdays(field: &str, numbering: WeekdayNumbers) -> Option<Option<String>> {
    if is_every(field) {
        return Some(None);
    }
    let day = |item: &str| -> Option<usize> {
        let item = item.trim();
        if let Some(i) = WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(item)) {
            return Some(i);
        }
        let n: usize = item.parse().ok()?;
        Some(match numbering {
            WeekdayNumbers::MondayZero if n <= 6 => n,
            WeekdayNumbers::SundayZero if n <= 7 => (n + 6) % 7,
            WeekdayNumbers::SundayOne if (1..=7).contains(&n) => (n + 5) % 7,
            _ => return None,
        })
    };
    let mut parts = Vec::new();
    for item in field.split(',') {
        match item.split_once('-') {
            Some((from, to)) => {
                parts.push(format!("{}–{}", WEEKDAYS[day(from)?], WEEKDAYS[day(to)?]))
            }
            None => parts.push(WEEKDAYS[day(item)?].to_owned()),
        }
    }
    Some(Some(parts.join(", ")))
}

fn months(field: &str) -> Option<String> {
    let month = |item: &str| -> Option<&str> {
        let item = item.trim();
        if let Some(m) = MONTHS.iter().find(|m| m.eq_ignore_ascii_case(item)) {
            return Some(m);
        }
        let n: usize = item.parse().ok()?;
        MONTHS.get(n.checked_sub(1)?).copied()
    };
    let mut parts = Vec::new();
    for item in field.split(',') {
        match item.split_once('-') {
            Some((from, to)) => parts.push(format!("{}–{}", month(from)?, month(to)?)),
            None => parts.push(month(item)?.to_owned()),
        }
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::{CronFields, DateTrigger, IntervalTrigger};
    use chrono::{TimeZone, Utc};

    fn cron(expr: &str) -> String {
        TriggerSpec::from(CronTrigger::new(expr).unwrap()).describe()
    }

    #[test]
    fn intervals() {
        let every = |s: u64| {
            TriggerSpec::from(IntervalTrigger::every(Duration::from_secs(s)).unwrap()).describe()
        };
        assert_eq!(every(30), "every 30 s");
        assert_eq!(every(5400), "every 1 h 30 min");
        assert_eq!(every(172_800), "every 2 days");
        assert_eq!(every(604_800), "every 1 week");
        let jittered = IntervalTrigger::builder()
            .seconds(60)
            .jitter(Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(
            TriggerSpec::from(jittered).describe(),
            "every 1 min, up to 5 s later at random"
        );
    }

    #[test]
    fn crontab_and_quartz() {
        assert_eq!(cron("0 9 * * mon-fri"), "at 09:00 Mon–Fri (UTC)");
        assert_eq!(cron("30 8 * * 1-5"), "at 08:30 Mon–Fri (UTC)");
        assert_eq!(cron("0 9 * * 0"), "at 09:00 Sun (UTC)");
        assert_eq!(cron("*/5 * * * *"), "every 5 min (UTC)");
        assert_eq!(cron("15 * * * *"), "every hour at :15 (UTC)");
        assert_eq!(cron("0 2 1 * *"), "at 02:00 on day 1 of the month (UTC)");
        assert_eq!(
            cron("0 0 1 1,7 *"),
            "at 00:00 on day 1 of the month in Jan, Jul (UTC)"
        );
        assert_eq!(cron("0 0 9,17 ? * 2-6"), "at 09:00, 17:00 Mon–Fri (UTC)");
        assert_eq!(
            cron("0 0 12 L * ?"),
            "at 12:00 on the last day of the month (UTC)"
        );
        // No short wording: as written.
        assert_eq!(cron("0 9 * * 5#3"), "cron 0 9 * * 5#3 (UTC)");
    }

    #[test]
    fn apscheduler_fields() {
        let fields = CronFields::new()
            .set("hour", "9")
            .unwrap()
            .set("day_of_week", "0-4")
            .unwrap();
        let trigger = CronTrigger::from_fields(fields)
            .timezone("Europe/Berlin")
            .build()
            .unwrap();
        assert_eq!(
            TriggerSpec::from(trigger).describe(),
            "at 09:00 Mon–Fri (Europe/Berlin)"
        );
    }

    #[test]
    fn dates_and_combinations() {
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 8, 0, 0).unwrap();
        let date = TriggerSpec::from(DateTrigger::at(at));
        assert_eq!(date.describe(), "once at 2030-01-01 08:00:00 (UTC)");
    }
}
