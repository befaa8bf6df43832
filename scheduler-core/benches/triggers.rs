//! `next_fire_time` of each trigger kind: `cargo bench -p scheduler-core --bench triggers`.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use scheduler_core::trigger::{CronTrigger, IntervalTrigger, Trigger, TriggerSpec};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn bench(c: &mut Criterion, name: &str, trigger: TriggerSpec, now: DateTime<Utc>) {
    // Walk a day's worth of calls from varied starting points, as the engine does.
    let nows: Vec<DateTime<Utc>> = (0..64).map(|i| now + TimeDelta::minutes(i * 37)).collect();
    c.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % nows.len();
            let now = nows[i];
            black_box(trigger.next_fire_time(Some(now - TimeDelta::seconds(1)), black_box(now)))
        });
    });
}

fn triggers(c: &mut Criterion) {
    let now = at(2026, 3, 7, 12, 0);
    let interval = IntervalTrigger::builder()
        .minutes(5)
        .start(at(2026, 1, 1, 0, 0))
        .build()
        .unwrap();
    bench(c, "next_fire_time/interval 5 min", interval.into(), now);
    let crontab = CronTrigger::new("*/5 9-17 * * mon-fri").unwrap();
    bench(
        c,
        "next_fire_time/crontab */5 9-17 * * mon-fri",
        crontab.into(),
        now,
    );
    let quartz = CronTrigger::new("0 0/15 9-17 ? * MON-FRI").unwrap();
    bench(
        c,
        "next_fire_time/quartz 0 0/15 9-17 ? * MON-FRI",
        quartz.into(),
        now,
    );
    // Across New York's spring-forward night (2026-03-08), where 02:30 does not exist.
    let dst = CronTrigger::builder("30 2 * * *")
        .timezone("America/New_York")
        .build()
        .unwrap();
    bench(
        c,
        "next_fire_time/cron 30 2 * * * America/New_York (DST)",
        dst.into(),
        now,
    );
    let jitter_free_daily = IntervalTrigger::every(Duration::from_secs(86_400)).unwrap();
    bench(
        c,
        "next_fire_time/interval 1 day, no start",
        jitter_free_daily.into(),
        now,
    );
}

criterion_group!(benches, triggers);
criterion_main!(benches);
