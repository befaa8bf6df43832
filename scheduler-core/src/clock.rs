//! Wall-clock time, injected so tests can drive it.
//!
//! Every read of the current time in the scheduler goes through a [`Clock`]. Production uses
//! [`SystemClock`]; tests use [`TestClock`], which follows tokio's paused time, so a month of
//! schedule runs takes milliseconds and happens the same way every time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

/// A boxed, sendable future, as [`Clock::sleep_until`] returns.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of wall-clock time for a scheduler.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes at or after `deadline` on this clock. It must notice a change of the clock
    /// (a jump forwards) within a bounded time rather than sleeping for the old duration.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture;
}

/// The longest single sleep of [`SystemClock`]: after it the wall clock is read again, so a
/// clock change (NTP step, suspend and resume, `date -s`) delays a due run by at most this.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How close to a deadline [`SystemClock`] stops using tokio's timer, which counts whole
/// milliseconds and wakes up to about 2 ms late, and sleeps the rest on a blocking thread,
/// which is precise to tens of microseconds.
const PRECISE_WINDOW: Duration = Duration::from_millis(3);

/// The operating system's clock.
///
/// Sleeps are measured on tokio's monotonic timer but never longer than [`MAX_SLEEP`] at a
/// time, so a wall-clock jump cannot make the scheduler sleep hours past a due time. The last
/// few milliseconds before a deadline are slept precisely on tokio's blocking pool, so runs
/// start within a fraction of a millisecond of their time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let clock = *self;
        Box::pin(async move {
            loop {
                let Ok(remaining) = (deadline - clock.now()).to_std() else {
                    return;
                };
                if remaining.is_zero() {
                    return;
                }
                if remaining > PRECISE_WINDOW {
                    tokio::time::sleep((remaining - PRECISE_WINDOW).min(MAX_SLEEP)).await;
                } else if tokio::task::spawn_blocking(move || std::thread::sleep(remaining))
                    .await
                    .is_err()
                {
                    // The runtime is shutting down; nothing will run anyway.
                    return;
                }
            }
        })
    }
}

/// A clock for tests: it starts at a chosen instant and advances with tokio's time, so with
/// `#[tokio::test(start_paused = true)]` it moves exactly as far as the test lets tokio
/// advance. [`jump`](Self::jump) moves the wall clock alone, as an NTP step or a suspend would.
///
/// Create it inside the runtime whose time it follows.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use apsched::clock::{Clock, TestClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let clock = TestClock::new(start);
/// tokio::time::sleep(std::time::Duration::from_secs(3600)).await; // instant with paused time
/// assert_eq!(clock.now(), start + TimeDelta::hours(1));
/// clock.jump(TimeDelta::days(1));
/// assert_eq!(clock.now(), start + TimeDelta::hours(25));
/// # }
/// ```
#[derive(Clone)]
pub struct TestClock {
    inner: Arc<TestClockInner>,
}

struct TestClockInner {
    origin: DateTime<Utc>,
    origin_instant: tokio::time::Instant,
    offset: Mutex<TimeDelta>,
    jumped: Notify,
}

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClock")
            .field("now", &self.now())
            .finish()
    }
}

impl TestClock {
    /// A clock that reads `start` now.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(TestClockInner {
                origin: start,
                origin_instant: tokio::time::Instant::now(),
                offset: Mutex::new(TimeDelta::zero()),
                jumped: Notify::new(),
            }),
        }
    }

    /// Moves the wall clock by `by` (forwards or backwards) without tokio time passing, and
    /// wakes every sleeper so it looks at the clock again.
    pub fn jump(&self, by: TimeDelta) {
        *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
        self.inner.jumped.notify_waiters();
    }
}

impl TestClockInner {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.origin_instant.elapsed()).unwrap_or(TimeDelta::MAX);
        self.origin + elapsed + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            loop {
                // Registered before reading the clock, so a jump between the read and the
                // sleep is not lost.
                let jumped = inner.jumped.notified();
                tokio::pin!(jumped);
                jumped.as_mut().enable();
                let Ok(remaining) = (deadline - inner.now()).to_std() else {
                    return;
                };
                if remaining.is_zero() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(remaining) => {}
                    () = &mut jumped => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test(start_paused = true)]
    async fn test_clock_follows_paused_time_and_jumps_wake_sleepers() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = TestClock::new(start);
        clock.sleep_until(start + TimeDelta::seconds(90)).await;
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));

        // A sleeper for a day away wakes when the wall clock jumps past its deadline.
        let sleeper = tokio::spawn(clock.sleep_until(start + TimeDelta::days(1)));
        tokio::task::yield_now().await;
        clock.jump(TimeDelta::days(2));
        sleeper.await.unwrap();
        assert_eq!(
            clock.now(),
            start + TimeDelta::days(2) + TimeDelta::seconds(90)
        );
    }
}
