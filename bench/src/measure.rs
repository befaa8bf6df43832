//! What the workloads measure: lateness without disturbing it, CPU time, memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

/// Lateness of each run in nanoseconds, kept per worker thread: a run appends to its own
/// thread's buffer, whose lock only that thread takes until the end, so recording never
/// contends. The buffers are allocated and touched up front, so recording never faults a page
/// in or reallocates during the measurement.
#[derive(Debug)]
pub(crate) struct Recorder {
    slots: Vec<Mutex<Vec<i64>>>,
}

const SLOTS: usize = 64;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// Room for `expected` records on each of the runtime's worker threads.
    pub(crate) fn new(expected: usize, workers: usize) -> Self {
        let slots = (0..SLOTS)
            .map(|i| {
                // Only the first slots are used by a small runtime; pre-touch those.
                let capacity = if i < workers + 4 { expected } else { 0 };
                let mut buffer = vec![1_i64; capacity];
                buffer.clear();
                Mutex::new(buffer)
            })
            .collect();
        Self { slots }
    }

    pub(crate) fn record(&self, lateness_ns: i64) {
        let slot = SLOT.with(|slot| *slot);
        lock(&self.slots[slot]).push(lateness_ns);
    }

    /// Every lateness recorded so far, sorted.
    pub(crate) fn collect(&self) -> Vec<i64> {
        let mut all = Vec::new();
        for slot in &self.slots {
            all.extend_from_slice(&lock(slot));
        }
        all.sort_unstable();
        all
    }

    pub(crate) fn count(&self) -> usize {
        self.slots.iter().map(|s| lock(s).len()).sum()
    }
}

/// p50, p99 and max of sorted nanoseconds, in milliseconds.
pub(crate) fn lateness_json(sorted: &[i64]) -> Value {
    let ms = |ns: i64| (ns as f64 / 1e6 * 1000.0).round() / 1000.0;
    let at = |q: f64| {
        if sorted.is_empty() {
            return Value::Null;
        }
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        json!(ms(sorted[index]))
    };
    json!({
        "p50": at(0.50),
        "p99": at(0.99),
        "max": sorted.last().map_or(Value::Null, |&ns| json!(ms(ns))),
    })
}

/// The process's resource usage, read from /proc (Linux).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// CPU time of every live thread, in nanoseconds of the scheduler's accounting
    /// (`/proc/self/task/*/schedstat`), so well below a clock tick.
    pub(crate) cpu: Duration,
    /// Times a thread went to sleep waiting for something (each is a later wake-up).
    pub(crate) voluntary_switches: u64,
    /// Peak resident memory.
    pub(crate) max_rss_kib: u64,
}

pub(crate) fn usage() -> Usage {
    let mut usage = Usage::default();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            if let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) {
                let ns: u64 = schedstat
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                usage.cpu += Duration::from_nanos(ns);
            }
            if let Some(switches) = status_field(&path.join("status"), "voluntary_ctxt_switches:") {
                usage.voluntary_switches += switches;
            }
        }
    }
    usage.max_rss_kib =
        status_field(std::path::Path::new("/proc/self/status"), "VmHWM:").unwrap_or(0);
    usage
}

fn status_field(path: &std::path::Path, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory now, from /proc (Linux), in KiB.
pub(crate) fn current_rss_kib() -> Option<u64> {
    status_field(std::path::Path::new("/proc/self/status"), "VmRSS:")
}

pub(crate) fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// CPU seconds (user + system) another process has used so far, from `/proc/<pid>/stat`.
pub(crate) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture the bench runs on.
    Some(ticks as f64 / 100.0)
}
