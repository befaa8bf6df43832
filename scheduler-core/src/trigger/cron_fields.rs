//! APScheduler's cron fields (`minute="*/5", day_of_week="mon-fri"`) as a Quartz expression.
//!
//! APScheduler differs from crontab in three ways that the conversion must respect:
//! - `day_of_week` counts 0 = Monday (crontab: 0 = Sunday), and `*/2` steps from Monday;
//! - every given field must match (`day` AND `day_of_week`), where crontab ORs them;
//! - omitted fields default by position: more significant than the least significant given
//!   field means `*`, less significant means the minimum (`week`, `day_of_week` stay `*`).
//!
//! The result is written with weekday names, never numbers, so no numbering can be misread.

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

const DEFAULTS: [&str; 8] = ["*", "1", "1", "*", "*", "0", "0", "0"];

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Builds a 6- or 7-field Quartz expression from APScheduler's fields (`None` = not given).
pub(crate) fn fields_to_expression(fields: &[Option<String>; 8]) -> Result<String> {
    let Some(least_significant) = fields.iter().rposition(Option::is_some) else {
        return Err(Error::InvalidTrigger(format!(
            "a cron trigger needs \"expr\" or at least one of {}",
            FIELD_NAMES.join(", ")
        )));
    };
    let value = |i: usize| -> String {
        match &fields[i] {
            Some(v) => v.trim().to_owned(),
            None if i < least_significant => "*".to_owned(),
            None => DEFAULTS[i].to_owned(),
        }
    };
    let [year, month, day, week, day_of_week, hour, minute, second] = std::array::from_fn(value);

    if week != "*" {
        return Err(field_error(
            "week",
            &week,
            "ISO week numbers are not supported; use \"expr\" with a day-of-month or \
             day-of-week pattern",
        ));
    }

    let (dom, weekday_forms) = split_day(&day)?;
    let mut dow = weekdays_to_names(&day_of_week)?;
    if !weekday_forms.is_empty() {
        if dow != "*" {
            return Err(field_error(
                "day",
                &day,
                "weekday forms (\"last fri\", \"2nd mon\") cannot be combined with day_of_week",
            ));
        }
        dow = weekday_forms.join(",");
    } else if dom != "*" && dow != "*" {
        // APScheduler needs both to match; croner's `+` turns its OR into AND.
        dow = format!("+{dow}");
    }
    let dom = if dom.is_empty() { "*".to_owned() } else { dom };

    let mut expression = format!("{second} {minute} {hour} {dom} {month} {dow}");
    if year != "*" {
        expression.push(' ');
        expression.push_str(&year);
    }
    Ok(expression)
}

fn field_error(field: &str, value: &str, reason: &str) -> Error {
    Error::InvalidTrigger(format!("cron field {field}=\"{value}\": {reason}"))
}

/// Splits APScheduler's `day` into day-of-month items and weekday forms (`last fri` → `FRI#L`,
/// `2nd mon` → `MON#2`; `last` alone is the last day of the month, `L`).
fn split_day(day: &str) -> Result<(String, Vec<String>)> {
    if day == "*" {
        return Ok(("*".to_owned(), Vec::new()));
    }
    let mut dom = Vec::new();
    let mut weekday_forms = Vec::new();
    for item in day.split(',') {
        let item = item.trim().to_ascii_lowercase();
        let words: Vec<&str> = item.split_whitespace().collect();
        match words[..] {
            ["last"] => dom.push("L".to_owned()),
            [nth, weekday] => {
                let index = weekday_index(weekday).ok_or_else(|| {
                    field_error("day", day, &format!("\"{weekday}\" is not a weekday name"))
                })?;
                let nth = match nth {
                    "last" => "L",
                    "1st" => "1",
                    "2nd" => "2",
                    "3rd" => "3",
                    "4th" => "4",
                    "5th" => "5",
                    other => {
                        return Err(field_error(
                            "day",
                            day,
                            &format!("\"{other}\" is not one of 1st, 2nd, 3rd, 4th, 5th, last"),
                        ));
                    }
                };
                weekday_forms.push(format!("{}#{nth}", WEEKDAYS[index]));
            }
            _ => dom.push(item.clone()),
        }
    }
    if dom.is_empty() {
        Ok((String::new(), weekday_forms))
    } else {
        Ok((dom.join(","), weekday_forms))
    }
}

fn weekday_index(name: &str) -> Option<usize> {
    let upper = name.to_ascii_uppercase();
    WEEKDAYS.iter().position(|w| *w == upper)
}

/// One weekday in APScheduler's numbering (0 = Monday) or by name.
fn parse_weekday(text: &str, field: &str) -> Result<usize> {
    if let Some(index) = weekday_index(text) {
        return Ok(index);
    }
    match text.parse::<usize>() {
        Ok(n) if n <= 6 => Ok(n),
        Ok(n) => Err(field_error(
            "day_of_week",
            field,
            &format!("{n} is outside 0-6 (APScheduler counts 0 = Monday)"),
        )),
        Err(_) => Err(field_error(
            "day_of_week",
            field,
            &format!("\"{text}\" is not a weekday number or name"),
        )),
    }
}

/// Expands APScheduler's `day_of_week` to the set of days, written as names.
fn weekdays_to_names(field: &str) -> Result<String> {
    if field == "*" || field == "?" {
        return Ok("*".to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let item = item.trim();
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = step
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        field_error(
                            "day_of_week",
                            field,
                            &format!("step \"{step}\" must be a positive number"),
                        )
                    })?;
                (range.trim(), step)
            }
            None => (item, 1),
        };
        let (first, last) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                parse_weekday(a.trim(), field)?,
                parse_weekday(b.trim(), field)?,
            )
        } else {
            let day = parse_weekday(range, field)?;
            (day, if step > 1 { 6 } else { day })
        };
        // A range may wrap around the week (`sat-mon`), as APScheduler 4 allows.
        let length = (last + 7 - first) % 7 + 1;
        for offset in (0..length).step_by(step) {
            days[(first + offset) % 7] = true;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".to_owned());
    }
    let names: Vec<&str> = days
        .iter()
        .zip(WEEKDAYS)
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    Ok(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(pairs: &[(&str, &str)]) -> Result<String> {
        let mut fields: [Option<String>; 8] = Default::default();
        for (name, value) in pairs {
            let i = FIELD_NAMES.iter().position(|n| n == name).unwrap();
            fields[i] = Some((*value).to_owned());
        }
        fields_to_expression(&fields)
    }

    #[test]
    fn omitted_fields_default_by_position() {
        assert_eq!(
            convert(&[("minute", "*/5"), ("day_of_week", "mon-fri")]).unwrap(),
            "0 */5 * * * MON,TUE,WED,THU,FRI"
        );
        // APScheduler's own example: day=1, minute=20.
        assert_eq!(
            convert(&[("day", "1"), ("minute", "20")]).unwrap(),
            "0 20 * 1 * *"
        );
        assert_eq!(convert(&[("month", "6")]).unwrap(), "0 0 0 1 6 *");
        assert_eq!(
            convert(&[("hour", "9"), ("year", "2030")]).unwrap(),
            "0 0 9 * * * 2030"
        );
    }

    #[test]
    fn day_of_week_counts_from_monday() {
        assert_eq!(convert(&[("day_of_week", "0")]).unwrap(), "0 0 0 * * MON");
        assert_eq!(convert(&[("day_of_week", "6")]).unwrap(), "0 0 0 * * SUN");
        assert_eq!(
            convert(&[("day_of_week", "5-6")]).unwrap(),
            "0 0 0 * * SAT,SUN"
        );
        assert_eq!(
            convert(&[("day_of_week", "*/2")]).unwrap(),
            "0 0 0 * * MON,WED,FRI,SUN"
        );
        assert_eq!(
            convert(&[("day_of_week", "sat-mon")]).unwrap(),
            "0 0 0 * * MON,SAT,SUN"
        );
        assert_eq!(convert(&[("day_of_week", "0-6")]).unwrap(), "0 0 0 * * *");
        let err = convert(&[("day_of_week", "7")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("7 is outside 0-6 (APScheduler counts 0 = Monday)"),
            "{err}"
        );
    }

    #[test]
    fn day_and_day_of_week_must_both_match() {
        assert_eq!(
            convert(&[("day", "1-7"), ("day_of_week", "mon"), ("hour", "9")]).unwrap(),
            "0 0 9 1-7 * +MON"
        );
    }

    #[test]
    fn weekday_forms_of_day() {
        assert_eq!(convert(&[("day", "last fri")]).unwrap(), "0 0 0 * * FRI#L");
        assert_eq!(
            convert(&[("day", "2nd mon,last")]).unwrap(),
            "0 0 0 L * MON#2"
        );
        assert_eq!(convert(&[("day", "last")]).unwrap(), "0 0 0 L * *");
    }

    #[test]
    fn unsupported_and_empty() {
        assert!(
            convert(&[("week", "3")])
                .unwrap_err()
                .to_string()
                .contains("ISO week")
        );
        assert!(
            convert(&[])
                .unwrap_err()
                .to_string()
                .contains("needs \"expr\"")
        );
        assert!(convert(&[("day", "6th mon")]).is_err());
    }
}
