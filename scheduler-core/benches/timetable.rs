//! Adding and removing a schedule through the handle, with 0 and with 100,000 schedules
//! already in the timetable: `cargo bench -p scheduler-core --bench timetable`. Both should
//! cost about the same: every timetable operation is O(log n).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{JobContext, NewSchedule, Scheduler, SchedulerHandle};

fn scheduler(runtime: &tokio::runtime::Runtime, loaded: usize) -> SchedulerHandle {
    runtime.block_on(async {
        let scheduler = Scheduler::builder()
            .job("noop", |_ctx: JobContext| std::future::ready(()))
            .build()
            .start()
            .await
            .unwrap();
        let trigger = IntervalTrigger::every(Duration::from_secs(3600)).unwrap();
        let schedules = (0..loaded)
            .map(|i| NewSchedule::for_job("noop", trigger.clone()).id(format!("loaded-{i}")));
        scheduler.add_all(schedules).await.unwrap();
        scheduler
    })
}

fn add_remove(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let trigger = IntervalTrigger::every(Duration::from_secs(60)).unwrap();
    let mut group = c.benchmark_group("add+remove one schedule");
    for loaded in [0, 100_000] {
        let handle = scheduler(&runtime, loaded);
        group.bench_with_input(BenchmarkId::from_parameter(loaded), &loaded, |b, _| {
            b.to_async(&runtime).iter(|| async {
                handle
                    .add(NewSchedule::for_job("noop", trigger.clone()).id("probe"))
                    .await
                    .unwrap();
                handle.remove("probe").await.unwrap();
            });
        });
        runtime
            .block_on(handle.shutdown(Duration::from_secs(1)))
            .unwrap();
    }
    group.finish();
}

criterion_group!(benches, add_remove);
criterion_main!(benches);
