//! Property tests for the triggers: the contract of `next_fire_time`, and cron against a naive
//! matcher written here, walking every minute (or second) in UTC and in DST zones.

use chrono::Datelike;
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use scheduler_core::Error;
use scheduler_core::trigger::{CronTrigger, IntervalTrigger, OrTrigger, Trigger, TriggerSpec};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Walks the trigger's fires in `[from, until)`.
fn trigger_fires(
    trigger: &dyn Trigger,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::new();
    let mut previous = None;
    let mut now = from;
    while let Some(fire) = trigger.next_fire_time(previous, now) {
        if fire >= until {
            break;
        }
        fires.push(fire);
        previous = Some(fire);
        now = fire;
    }
    fires
}

// ===== the next_fire_time contract =====

fn interval_strategy() -> impl Strategy<Value = IntervalTrigger> {
    (
        1i64..=10 * 24 * 3600 * 1000,
        -1_000_000i64..1_000_000,
        any::<bool>(),
    )
        .prop_map(|(period_ms, start_offset_s, with_start)| {
            let builder = IntervalTrigger::builder().milliseconds(period_ms);
            let builder = if with_start {
                builder.start(base() + TimeDelta::seconds(start_offset_s))
            } else {
                builder
            };
            builder.build().unwrap()
        })
}

fn crontab_strategy() -> impl Strategy<Value = CronSpec> {
    (
        field_strategy(0, 59),
        field_strategy(0, 23),
        field_strategy(1, 31),
        field_strategy(1, 12),
        field_strategy(0, 6),
    )
        .prop_map(|(minute, hour, dom, month, dow)| CronSpec {
            second: Field::Value(0),
            minute,
            hour,
            dom,
            month,
            dow,
            with_seconds: false,
        })
}

fn quartz_strategy() -> impl Strategy<Value = CronSpec> {
    (
        field_strategy(0, 59),
        field_strategy(0, 59),
        field_strategy(0, 23),
    )
        .prop_map(|(second, minute, hour)| CronSpec {
            second,
            minute,
            hour,
            dom: Field::Star,
            month: Field::Star,
            dow: Field::Star,
            with_seconds: true,
        })
}

fn zone_strategy() -> impl Strategy<Value = Tz> {
    prop_oneof![
        Just(Tz::UTC),
        Just(chrono_tz::America::New_York),
        Just(chrono_tz::Europe::London),
        Just(chrono_tz::Australia::Lord_Howe),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn interval_next_is_after_previous_at_or_after_now_and_on_the_grid(
        trigger in interval_strategy(),
        previous_offset_ms in proptest::option::of(-100_000_000i64..100_000_000),
        now_offset_ms in -100_000_000i64..100_000_000,
        later_ms in 0i64..100_000_000,
    ) {
        let now = base() + TimeDelta::milliseconds(now_offset_ms);
        let previous = previous_offset_ms.map(|ms| base() + TimeDelta::milliseconds(ms));
        let next = trigger.next_fire_time(previous, now).unwrap();
        prop_assert!(next >= now);
        if let Some(previous) = previous {
            prop_assert!(next > previous);
        }
        let origin = trigger.start().or(previous);
        if let Some(origin) = origin {
            let offset = (next - origin).num_milliseconds();
            prop_assert!(offset >= 0 && offset % trigger.period().num_milliseconds() == 0, "off the grid");
            // The first grid time that qualifies: one period earlier does not.
            let earlier = next - trigger.period();
            prop_assert!(earlier < origin || earlier < now || previous.is_some_and(|p| earlier <= p));
        }
        // Monotonic in `now`.
        let later = trigger.next_fire_time(previous, now + TimeDelta::milliseconds(later_ms)).unwrap();
        prop_assert!(later >= next);
    }

    #[test]
    fn cron_next_is_after_previous_at_or_after_now_and_monotonic(
        spec in crontab_strategy(),
        zone in zone_strategy(),
        now_offset_s in 0i64..(366 * 24 * 3600),
        previous_back_s in proptest::option::of(0i64..(40 * 24 * 3600)),
        later_s in 0i64..(10 * 24 * 3600),
    ) {
        let Some(trigger) = spec.try_build(zone) else { return Err(TestCaseError::reject("matches no date")) };
        let now = base() + TimeDelta::seconds(now_offset_s) + TimeDelta::milliseconds(now_offset_s % 1000);
        let previous = previous_back_s.map(|s| now - TimeDelta::seconds(s));
        let Some(next) = trigger.next_fire_time(previous, now) else { return Ok(()) };
        prop_assert!(next >= now);
        if let Some(previous) = previous {
            prop_assert!(next > previous);
        }
        if let Some(later) = trigger.next_fire_time(previous, now + TimeDelta::seconds(later_s)) {
            prop_assert!(later >= next);
        }
        let following = trigger.next_fire_time(Some(next), next);
        if let Some(following) = following {
            prop_assert!(following > next);
        }
    }

    #[test]
    fn or_of_intervals_and_crons_keeps_the_contract(
        a in interval_strategy(),
        b in crontab_strategy(),
        now_offset_s in 0i64..(366 * 24 * 3600),
    ) {
        let Some(b) = b.try_build(Tz::UTC) else { return Err(TestCaseError::reject("matches no date")) };
        let or = OrTrigger::new(vec![a.into(), TriggerSpec::from(b)]).unwrap();
        let now = base() + TimeDelta::seconds(now_offset_s);
        let fires = trigger_fires(&or, now, now + TimeDelta::days(3));
        prop_assert!(fires.first().is_none_or(|f| *f >= now));
        prop_assert!(fires.windows(2).all(|w| w[0] < w[1]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// A year of minutes: croner's answers are exactly the naive matcher's.
    #[test]
    fn crontab_agrees_with_a_minute_by_minute_matcher_for_a_year(
        spec in crontab_strategy(),
        zone in prop_oneof![Just(Tz::UTC), Just(chrono_tz::America::New_York), Just(chrono_tz::Europe::London)],
    ) {
        let Some(trigger) = spec.try_build(zone) else { return Err(TestCaseError::reject("matches no date")) };
        let from = base();
        let until = from + TimeDelta::days(365);
        let expected = naive_fires(&spec, zone, from, until, TimeDelta::minutes(1));
        let actual = trigger_fires(&trigger, from, until);
        prop_assert_eq!(actual, expected, "{}", spec.text());
    }

    /// Three days of seconds around the New York fall-back night, Quartz expressions.
    #[test]
    fn quartz_agrees_with_a_second_by_second_matcher(spec in quartz_strategy()) {
        let zone = chrono_tz::America::New_York;
        let Some(trigger) = spec.try_build(zone) else { return Err(TestCaseError::reject("matches no date")) };
        let from = Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap();
        let until = from + TimeDelta::days(2);
        let expected = naive_fires(&spec, zone, from, until, TimeDelta::seconds(1));
        let actual = trigger_fires(&trigger, from, until);
        prop_assert_eq!(actual, expected, "{}", spec.text());
    }

    /// `last_fire_time` is the last fire a forward walk finds.
    #[test]
    fn cron_last_fire_time_agrees_with_walking_forward(
        spec in crontab_strategy(),
        zone in prop_oneof![Just(Tz::UTC), Just(chrono_tz::America::New_York), Just(chrono_tz::Europe::London)],
        after_offset_h in 0i64..(365 * 24),
        span_h in 0i64..(60 * 24),
    ) {
        let Some(trigger) = spec.try_build(zone) else { return Err(TestCaseError::reject("matches no date")) };
        let after = base() + TimeDelta::hours(after_offset_h);
        let until = after + TimeDelta::hours(span_h);
        let walked = trigger_fires(&trigger, after + TimeDelta::seconds(1), until + TimeDelta::seconds(1));
        prop_assert_eq!(trigger.last_fire_time(after, until), walked.last().copied(), "{}", spec.text());
    }
}

// ===== the naive matcher =====

#[derive(Clone, Debug)]
enum Field {
    Star,
    Step(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    List(Vec<u32>),
}

fn field_strategy(min: u32, max: u32) -> impl Strategy<Value = Field> {
    // Steps of at least 2 that stay below the top: `*/7` on day-of-week would reach 7 (Sunday
    // again), a corner the matcher does not model.
    let top_step = ((max - min) / 2).max(2);
    prop_oneof![
        3 => Just(Field::Star),
        2 => (2..=top_step).prop_map(Field::Step),
        3 => (min..=max).prop_map(Field::Value),
        1 => (min..=max, min..=max).prop_map(|(a, b)| Field::Range(a.min(b), a.max(b))),
        1 => (min..=max, min..=max, 2..=top_step).prop_map(|(a, b, s)| Field::RangeStep(a.min(b), a.max(b), s)),
        2 => proptest::collection::btree_set(min..=max, 2..5).prop_map(|s| Field::List(s.into_iter().collect())),
    ]
}

impl Field {
    fn text(&self) -> String {
        match self {
            Self::Star => "*".to_owned(),
            Self::Step(s) => format!("*/{s}"),
            Self::Value(v) => v.to_string(),
            Self::Range(a, b) => format!("{a}-{b}"),
            Self::RangeStep(a, b, s) => format!("{a}-{b}/{s}"),
            Self::List(values) => values
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn matches(&self, value: u32, min: u32) -> bool {
        match self {
            Self::Star => true,
            Self::Step(s) => value >= min && (value - min) % s == 0,
            Self::Value(v) => value == *v,
            Self::Range(a, b) => (*a..=*b).contains(&value),
            Self::RangeStep(a, b, s) => (*a..=*b).contains(&value) && (value - a) % s == 0,
            Self::List(values) => values.contains(&value),
        }
    }

    /// One value, written without a wildcard or step: a "fixed" field for the DST rule.
    fn is_fixed(&self) -> bool {
        match self {
            Self::Value(_) => true,
            Self::Range(a, b) => a == b,
            Self::List(values) => values.len() == 1,
            Self::Star | Self::Step(_) | Self::RangeStep(..) => false,
        }
    }
}

#[derive(Clone, Debug)]
struct CronSpec {
    second: Field,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
    with_seconds: bool,
}

impl CronSpec {
    fn text(&self) -> String {
        let rest = format!(
            "{} {} {} {} {}",
            self.minute.text(),
            self.hour.text(),
            self.dom.text(),
            self.month.text(),
            // Quartz weekdays count from 1 = Sunday; only `*` is generated for Quartz here.
            self.dow.text()
        );
        if self.with_seconds {
            format!("{} {rest}", self.second.text())
        } else {
            rest
        }
    }

    /// The trigger, or `None` for a valid expression that matches no date (`* * 30 2 *`),
    /// which the builder rightly refuses.
    fn try_build(&self, zone: Tz) -> Option<CronTrigger> {
        match CronTrigger::builder(&self.text()).tz(zone).build() {
            Ok(trigger) => Some(trigger),
            Err(Error::NeverFires(_)) => None,
            Err(e) => panic!("{}: {e}", self.text()),
        }
    }

    fn fixed_time(&self) -> bool {
        self.second.is_fixed() && self.minute.is_fixed() && self.hour.is_fixed()
    }

    fn day_matches(&self, date: NaiveDateTime) -> bool {
        let dom = self.dom.matches(date.day(), 1);
        let dow = self.dow.matches(date.weekday().num_days_from_sunday(), 0);
        let (dom_star, dow_star) = (
            matches!(self.dom, Field::Star),
            matches!(self.dow, Field::Star),
        );
        let day = if dom_star || dow_star {
            dom && dow
        } else {
            dom || dow
        };
        day && self.month.matches(date.month(), 1)
    }

    fn time_matches(&self, t: NaiveDateTime) -> bool {
        self.second.matches(t.second(), 0)
            && self.minute.matches(t.minute(), 0)
            && self.hour.matches(t.hour(), 0)
    }
}

/// Every `step` from `from` to `until`: a fire wherever the wall clock matches, with the DST
/// rule for fixed-time expressions (first occurrence in a fold; first instant after a gap).
fn naive_fires(
    spec: &CronSpec,
    zone: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    step: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let fixed = spec.fixed_time();
    let mut fires = Vec::new();
    let mut t = from;
    let mut previous_local = (from - step).with_timezone(&zone).naive_local();
    while t < until {
        let local = t.with_timezone(&zone).naive_local();
        let mut fire = spec.time_matches(local) && spec.day_matches(local);
        if fire && fixed {
            if let LocalResult::Ambiguous(earlier, _) = zone.from_local_datetime(&local) {
                fire = earlier.with_timezone(&Utc) == t;
            }
        }
        if !fire && fixed && local - previous_local > step {
            // The clocks jumped forward: wall times in (previous_local, local) never happened.
            // The fixed time fires here if it fell in the gap on a matching day.
            let mut skipped = previous_local + step;
            while skipped < local {
                if spec.time_matches(skipped) && spec.day_matches(local) {
                    fire = true;
                    break;
                }
                skipped += step;
            }
        }
        if fire {
            fires.push(t);
        }
        previous_local = local;
        t += step;
    }
    fires
}
