//! Flask-APScheduler's trigger fields, read here and by APScheduler 3.11: the fire times of
//! every case in `peer/triggers/cases.json` (recorded from the real APScheduler by
//! `peer/triggers/record.py`, hand-picked and random) must be APScheduler's, or the error
//! must be an error, except for the differences listed in [`documented`], each with its
//! reason. `.ci/run` records the corpus again from APScheduler and fails if it changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Utc};
use chrono_tz::{OffsetComponents, Tz};
use scheduler_api::flask::trigger_from_value;
use scheduler_core::trigger::Trigger;
use serde_json::Value;

#[derive(Debug)]
struct Case {
    id: String,
    timezone: Tz,
    trigger: Value,
    now: DateTime<Utc>,
    expect: Result<Vec<DateTime<Utc>>, String>,
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn cases() -> (usize, Vec<Case>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../peer/triggers/cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let corpus: Value = serde_json::from_str(&text).unwrap();
    let max_fires = corpus["max_fires"].as_u64().unwrap() as usize;
    let cases = corpus["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            id: case["id"].as_str().unwrap().to_owned(),
            timezone: case["timezone"].as_str().unwrap().parse().unwrap(),
            trigger: case["trigger"].clone(),
            now: instant(case["now"].as_str().unwrap()),
            expect: match case["expect"].get("fires") {
                Some(fires) => Ok(fires
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| instant(f.as_str().unwrap()))
                    .collect()),
                None => Err(case["expect"]["error"].as_str().unwrap().to_owned()),
            },
        })
        .collect();
    (max_fires, cases)
}

/// The fires apsched computes for the case: read as `POST /scheduler/jobs` reads a job's
/// trigger fields, in the scheduler's zone, anchored at `now`.
fn ours(case: &Case, max_fires: usize) -> Result<Vec<DateTime<Utc>>, String> {
    let mut spec =
        trigger_from_value(case.trigger.clone(), case.timezone).map_err(|e| e.to_string())?;
    spec.anchor(case.now);
    let mut fires = Vec::new();
    let mut previous = None;
    let mut now = case.now;
    while fires.len() < max_fires {
        let Some(fire) = spec.next_fire_time(previous, now) else {
            break;
        };
        fires.push(fire);
        previous = Some(fire);
        now = fire;
    }
    Ok(fires)
}

/// The zone's UTC offset at `t`.
fn offset(tz: Tz, t: DateTime<Utc>) -> TimeDelta {
    let local = t.with_timezone(&tz);
    local.offset().base_utc_offset() + local.offset().dst_offset()
}

/// Whether the zone's offset changes anywhere in `[from, to]` (sampled every 6 hours: no zone
/// changes its offset twice within that).
fn clock_change_between(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let step = TimeDelta::hours(6);
    let mut t = from;
    let first = offset(tz, from);
    while t < to {
        t = (t + step).min(to);
        if offset(tz, t) != first {
            return true;
        }
    }
    false
}

// The documented differences (README, "Differences from APScheduler"), one reason each.
const DST: &str = "DST: a clock change lies between the last fire both agree on and the first \
                   where they part; apsched follows its documented rule, APScheduler 3.11 skips \
                   or doubles fires there";
const FAR_FUTURE_ZONE: &str = "after 2099 chrono-tz's zone tables end; Python's zoneinfo \
                               extends the last DST rule";
const NANOSECOND_LIMIT: &str = "no fire times after 2262-04-11 (the scheduler counts in \
                                nanoseconds)";
const NEVER_FIRES: &str = "a trigger that can never fire is refused (APScheduler adds it and \
                           never runs it)";
const NEGATIVE_OR_ZERO: &str = "a negative or zero interval is refused (APScheduler runs a \
                                negative period backwards, a zero one every second)";
const TOO_LONG: &str = "an interval or jitter longer than 36525 days is refused";
const PARTLY_READ: &str = "cron text APScheduler reads only in part is refused: a step on a \
                           range of names, text after a name or `last`, non-ASCII digits";
const NO_CRON_FIELD: &str = "a cron trigger without any field is refused (APScheduler: every \
                             second)";
const NULL_OR_EMPTY_ZONE: &str = "\"timezone\": null is the scheduler's zone and \"\" is \
                                  refused (APScheduler: the machine's local zone for both)";
const FREE_TEXT_DATE: &str = "date-times are ISO 8601 only (dateutil's free text such as \
                              \"1 June 2030\" is refused)";

/// Whether a cron field's text holds something APScheduler's patterns skip over: a name
/// range with a step (`mon-fri/2`), text after a name (`fri#2`, `mon fri`, `last-2`), or a
/// digit outside ASCII (`９`).
fn partly_read_by_apscheduler(text: &str) -> bool {
    const POSITIONS: [&str; 6] = ["1st ", "2nd ", "3rd ", "4th ", "5th ", "last "];
    !text.is_ascii()
        || text.split(',').any(|item| {
            let item = item.trim().to_ascii_lowercase();
            let has_name = item.chars().any(|c| c.is_ascii_alphabetic());
            let plain_names = item
                .split('-')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphabetic()));
            let position = POSITIONS.iter().any(|p| {
                item.strip_prefix(p)
                    .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_alphabetic()))
            });
            has_name && !plain_names && !position
        })
}

/// Why a case may differ from APScheduler, if it is one of the documented differences.
fn documented(case: &Case, ours: &Result<Vec<DateTime<Utc>>, String>) -> Option<&'static str> {
    let field = |name: &str| case.trigger.get(name);
    if matches!(field("timezone"), Some(Value::Null))
        || field("timezone").and_then(Value::as_str) == Some("")
    {
        return Some(NULL_OR_EMPTY_ZONE);
    }
    match (&case.expect, ours) {
        (Ok(theirs), Err(error)) => {
            let has = |text: &str| error.contains(text);
            if theirs.is_empty() && (has("never fires") || has("is after end")) {
                return Some(NEVER_FIRES);
            }
            if has("is negative") || has("the period is zero") {
                return Some(NEGATIVE_OR_ZERO);
            }
            if has("longer than the limit of 36525 days") {
                return Some(TOO_LONG);
            }
            if has("needs \"expr\" or at least one of the fields") {
                return Some(NO_CRON_FIELD);
            }
            if has("invalid date-time") {
                return Some(FREE_TEXT_DATE);
            }
            let cron_texts =
                case.trigger
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(name, value)| {
                        (name != "trigger" && name != "timezone").then_some(value.as_str()?)
                    });
            if has("cron field") && cron_texts.into_iter().any(partly_read_by_apscheduler) {
                return Some(PARTLY_READ);
            }
            None
        }
        (Ok(theirs), Ok(mine)) => {
            let parted = theirs
                .iter()
                .zip(mine)
                .position(|(a, b)| a != b)
                .unwrap_or(theirs.len().min(mine.len()));
            let nanosecond_limit = DateTime::<Utc>::MAX_UTC.min(
                DateTime::parse_from_rfc3339("2262-04-11T00:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            );
            if parted == mine.len() && theirs.get(parted).is_some_and(|t| *t > nanosecond_limit) {
                return Some(NANOSECOND_LIMIT);
            }
            let first_apart = match (theirs.get(parted), mine.get(parted)) {
                (Some(a), Some(b)) => *a.min(b),
                (Some(t), None) | (None, Some(t)) => *t,
                (None, None) => return None,
            };
            if first_apart.year() >= 2100 {
                return Some(FAR_FUTURE_ZONE);
            }
            // An hour before the last agreed fire: a change right at that fire (APScheduler
            // runs it twice) counts as well.
            let last_agreed = parted.checked_sub(1).map_or(case.now, |i| theirs[i]);
            clock_change_between(
                case.timezone,
                last_agreed - TimeDelta::hours(1),
                first_apart,
            )
            .then_some(DST)
        }
        _ => None,
    }
}

#[test]
fn flask_trigger_fields_fire_as_apscheduler_fires_them() {
    let (max_fires, cases) = cases();
    assert!(cases.len() > 3000, "the corpus has {} cases", cases.len());
    let mut differences: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut undocumented = Vec::new();
    for case in &cases {
        let ours = ours(case, max_fires);
        let same = match (&case.expect, &ours) {
            (Ok(theirs), Ok(mine)) => theirs == mine,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if same {
            continue;
        }
        match documented(case, &ours) {
            Some(reason) => differences.entry(reason).or_default().push(case.id.clone()),
            None => undocumented.push(format!(
                "{}: {} in {} from {}\n    APScheduler: {:?}\n    apsched:     {:?}",
                case.id, case.trigger, case.timezone, case.now, case.expect, ours
            )),
        }
    }
    for (reason, ids) in &differences {
        println!("{} documented difference(s), {reason}: {ids:?}", ids.len());
    }
    assert!(
        undocumented.is_empty(),
        "{} of {} cases differ from APScheduler 3.11 without a documented reason:\n{}",
        undocumented.len(),
        cases.len(),
        undocumented.join("\n")
    );
}
