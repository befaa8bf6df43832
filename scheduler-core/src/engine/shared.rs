//! The timetable of a shared store: the engine keeps no schedules of its own; it claims due
//! fires from the store (which applies the engine's [`Planner`]), runs them under a lease, and
//! records how they ended.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::change::{Added, Changed, Edit, Prepared};
use super::dispatch;
use super::ledger::{Ledger, MAX_BACKOFF};
use super::run::{Fires, RunFire, RunTask, ScheduleRuntime, new_run_id};
use super::state::Shared;
use crate::error::{Error, Result, error_chain};
use crate::event::{AbortedRun, Event, RunSummary};
use crate::fires::FireRecord;
use crate::schedule::{Overlap, Schedule};
use crate::store::{
    ClaimBatch, ClaimedRun, Claimer, OnConflict, Planner, ScheduleWrite, SharedStore,
};

/// Schedules (or expired fires) claimed per claim.
const CLAIM_BATCH: usize = 512;

/// Claims in one wake-up before the engine looks at its commands again.
const CLAIMS_PER_WAKE: usize = 64;

/// Claims between two prunings of the history.
const PRUNE_EVERY: u32 = 600;

/// A conditional write that keeps losing to other instances is given up after this many
/// tries, with an error.
const EDIT_TRIES: usize = 8;

/// The shortest wait after a look at the store that found nothing to do although something
/// seemed due: another instance was claiming it, or a row cannot be read. Without it such a
/// row would make the engine spin.
const FRUITLESS_WAIT: Duration = Duration::from_millis(50);

pub(crate) struct SharedTimetable {
    shared: Arc<Shared>,
    store: Arc<dyn SharedStore>,
    ledger: Arc<Ledger>,
    /// The job names this instance runs, sorted.
    jobs: Arc<[Arc<str>]>,
    planner: Planner,
    backoff: Option<Duration>,
    ticks: u32,
    /// Looks at the store in a row that found nothing to do although something was due.
    fruitless: u32,
    /// The due time the last wait was for.
    waiting_for: Option<DateTime<Utc>>,
    /// The due time the last fruitless look was for.
    stuck_at: Option<DateTime<Utc>>,
    /// How far ahead of their due time fires are claimed.
    ahead: Duration,
    /// Runs claimed ahead, held here until their first fire's nominal time.
    claimed_ahead: BTreeMap<DateTime<Utc>, Vec<(ClaimedRun, Fires)>>,
}

impl SharedTimetable {
    pub(crate) fn new(shared: Arc<Shared>, store: Arc<dyn SharedStore>) -> Self {
        let mut jobs: Vec<Arc<str>> = shared.jobs.keys().cloned().collect();
        jobs.sort_unstable();
        let ledger = Arc::new(Ledger::new(
            Arc::clone(&store),
            Arc::clone(&shared.instance),
        ));
        Self {
            shared,
            store,
            ledger,
            jobs: jobs.into(),
            planner: Planner::new(),
            backoff: None,
            ticks: 0,
            fruitless: 0,
            waiting_for: None,
            stuck_at: None,
            ahead: Duration::ZERO,
            claimed_ahead: BTreeMap::new(),
        }
    }

    /// Claims fires up to `ahead` before their due time, held by a third of the lease at
    /// most: a fire is claimed with its lease, and must start well inside it.
    pub(crate) fn claim_ahead(mut self, ahead: Duration) -> Self {
        self.ahead = ahead.min(self.store.lease() / 3);
        self
    }

    fn claimer(&self) -> Claimer<'_> {
        let mut claimer = Claimer::new(&self.ledger.owner, &self.jobs, CLAIM_BATCH);
        // Without a concurrency limit a claimed fire starts at once: the claim records it
        // running, which saves a write per fire before the job can start.
        claimer.start_at_once = self.shared.concurrency.is_none();
        claimer.ahead = self.ahead;
        claimer
    }

    fn store_failed(&mut self, operation: &'static str, error: &Error) {
        crate::metrics::store_failed(operation);
        let text = error_chain(error);
        let backoff = self
            .backoff
            .map_or(Duration::from_millis(250), |b| (b * 2).min(MAX_BACKOFF));
        self.backoff = Some(backoff);
        tracing::error!(operation, error = %text, retry_in = ?backoff, "job store failed");
        self.shared.emit(|| Event::StoreFailed {
            operation,
            error: text.into(),
        });
    }

    fn recovered(&mut self) {
        if self.backoff.take().is_some() {
            tracing::info!("job store works again");
            self.shared.emit(|| Event::StoreRecovered);
        }
    }

    /// At start: the lease renewal, and a word about schedules this instance cannot run.
    pub(crate) async fn start(&mut self) -> Result<()> {
        // Schedules of jobs this instance does not know are left to the instances that do;
        // say so once.
        let known: HashSet<&str> = self.jobs.iter().map(|j| &**j).collect();
        let schedules = self.store.list().await?;
        super::log_schedules(&schedules, self.shared.timezone);
        for schedule in schedules {
            let job = schedule.job_name().unwrap_or("<job value>");
            if !known.contains(job) {
                tracing::warn!(
                    schedule_id = %schedule.id(),
                    job,
                    "a stored schedule names a job that is not registered here; instances that know it run it"
                );
                self.shared.emit(|| Event::UnknownJob {
                    schedule_id: schedule.id().into(),
                    job: job.into(),
                });
            }
        }
        self.ledger.spawn_renewal(&self.shared);
        Ok(())
    }

    /// What to wait for before looking at the store again, or starting runs claimed ahead.
    pub(crate) async fn wake(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let wait = self.next_wait().await;
        let store = Arc::clone(&self.store);
        let shared = Arc::clone(&self.shared);
        // On the scheduler's clock, which sleeps the last milliseconds precisely.
        let held_until = self
            .claimed_ahead
            .first_key_value()
            .map(|(&at, _)| self.shared.clock.sleep_until(at));
        Box::pin(async move {
            let look = async {
                if !wait.is_zero() {
                    // A fire held here ended and one of its schedule may wait: look at once.
                    tokio::select! {
                        () = store.wait_for_change(wait) => {}
                        () = shared.wake.notified() => {}
                    }
                }
            };
            match held_until {
                Some(start) => tokio::select! {
                    () = look => {}
                    () = start => {}
                },
                None => look.await,
            }
        })
    }

    async fn next_wait(&mut self) -> Duration {
        if let Some(backoff) = self.backoff {
            return backoff;
        }
        // `next_due` counts leases running out too, so a dead instance's fires are seen on
        // time without a shorter re-check.
        let recheck = self.store.recheck_interval();
        match self.store.next_due(&self.jobs).await {
            Ok((now, Some(due))) => {
                let until_due = (due - now).to_std().unwrap_or_default();
                let wait = until_due.saturating_sub(self.ahead).min(recheck);
                // The same due time that the last look found nothing to do for (a row this
                // instance cannot use): back off, up to the re-check, rather than spin. A later
                // due time is news (another instance took the fire): no backoff.
                if self.stuck_at.is_some_and(|stuck| due > stuck) {
                    self.fruitless = 0;
                }
                self.waiting_for = Some(due);
                if self.fruitless > 0 {
                    let floor = FRUITLESS_WAIT * 2u32.pow(self.fruitless.min(6));
                    let backed_off = wait.max(floor.min(recheck));
                    // Looked at ahead of its time and left (its runs were going): at its
                    // due time it is decided, so the backoff does not go past it.
                    if until_due.is_zero() {
                        backed_off
                    } else {
                        backed_off.min(until_due)
                    }
                } else {
                    wait
                }
            }
            Ok((_, None)) => recheck,
            Err(error) => {
                self.store_failed("look for due fires", &error);
                self.backoff.unwrap_or(MAX_BACKOFF)
            }
        }
    }

    /// Starts the runs claimed ahead whose time has come; claims what is due or soon due (and
    /// what dead instances left), and starts what is due of it.
    pub(crate) async fn fire_due(&mut self) {
        self.start_claimed_ahead();
        let mut found = false;
        let recovering = self.backoff.is_some();
        for _ in 0..CLAIMS_PER_WAKE {
            let started = tokio::time::Instant::now();
            let claimed = self.store.claim_due(&self.claimer(), &self.planner).await;
            crate::metrics::claimed(started.elapsed());
            match claimed {
                Ok(batch) => {
                    self.recovered();
                    found |= !batch.is_empty();
                    let more = batch.more;
                    self.apply(batch);
                    if !more {
                        break;
                    }
                }
                Err(error) => {
                    self.store_failed("claim due fires", &error);
                    return;
                }
            }
        }
        if recovering {
            // While the store was away the leases of fires held here may have run out: renew
            // them before looking for expired fires, so this instance does not take over (and
            // run again) a fire it ran itself and is still reporting.
            if let Err(error) = self.ledger.renew(&self.shared).await {
                self.store_failed("renew leases", &error);
                return;
            }
        }
        match self.store.take_over(&self.claimer()).await {
            Ok(batch) => {
                found |= !batch.is_empty();
                self.apply(batch);
            }
            Err(error) => self.store_failed("take over expired fires", &error),
        }
        if found {
            self.fruitless = 0;
        } else {
            self.fruitless = self.fruitless.saturating_add(1);
            self.stuck_at = self.waiting_for;
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % PRUNE_EVERY == 0 {
            if let Err(error) = self.store.prune().await {
                self.store_failed("prune the history", &error);
            }
        }
    }

    /// Spawns the runs claimed ahead whose first fire's time has come.
    fn start_claimed_ahead(&mut self) {
        let now = self.shared.clock.now();
        let mut runs = Vec::new();
        while let Some(entry) = self.claimed_ahead.first_entry() {
            if *entry.key() > now {
                break;
            }
            for (claimed, fires) in entry.remove() {
                runs.extend(self.submit(claimed, fires));
            }
        }
        dispatch::spawn_all(&self.shared, runs);
    }

    fn apply(&mut self, batch: ClaimBatch) {
        for (schedule_id, fire) in &batch.not_run {
            dispatch::not_run(&self.shared, schedule_id, std::slice::from_ref(fire));
        }
        for (schedule_id, nominal_time) in batch.lost {
            tracing::warn!(%schedule_id, %nominal_time, "fire lost: its instance died and it is not run again");
            self.shared.emit(|| Event::Lost {
                schedule_id,
                nominal_time,
            });
        }
        for schedule_id in batch.finished {
            self.shared.emit(|| Event::Removed { schedule_id });
        }
        for (schedule_id, nominal_time) in batch.queued {
            tracing::info!(%schedule_id, %nominal_time, "fire waits: max_instances runs are going");
            self.shared.emit(|| Event::Queued {
                schedule_id,
                nominal_time,
            });
        }
        let now = self.shared.clock.now();
        let mut runs = Vec::with_capacity(batch.runs.len());
        for claimed in batch.runs {
            let Some(fires) = self.hold(&claimed) else {
                continue;
            };
            // A jittered fire starts up to its jitter after its time, as in the engine's own
            // timetable. The store's jittered due time only said when to claim it, which
            // claiming ahead makes early.
            let first = claimed.fires.first().map_or(now, |f| {
                crate::trigger::apply_jitter(
                    f.nominal_time,
                    crate::trigger::Trigger::jitter(&*claimed.schedule.trigger),
                )
            });
            if first > now {
                self.claimed_ahead
                    .entry(first)
                    .or_default()
                    .push((claimed, fires));
            } else {
                runs.extend(self.submit(claimed, fires));
            }
        }
        dispatch::spawn_all(&self.shared, runs);
    }

    /// A claimed run, held here from now on, started now.
    fn run(&self, claimed: ClaimedRun) -> Option<RunTask> {
        let fires = self.hold(&claimed)?;
        self.submit(claimed, fires)
    }

    /// Holds a claimed run's fires in the ledger (their leases renewed from now on); `None`
    /// for a job this instance does not know.
    fn hold(&self, claimed: &ClaimedRun) -> Option<Fires> {
        // Claims are only for jobs this instance knows, and a running scheduler's jobs cannot
        // change; were it unknown, the lease runs out and an instance that knows it takes it.
        self.shared.job(claimed.schedule.job.as_deref())?;
        let fires: Fires = claimed
            .fires
            .iter()
            .map(|held| {
                let run_id = new_run_id();
                let summary = RunSummary {
                    schedule_id: Arc::clone(&claimed.schedule.id),
                    run_id,
                    nominal_time: held.nominal_time,
                };
                self.ledger.hold(held, summary, &claimed.schedule);
                RunFire {
                    nominal_time: held.nominal_time,
                    run_id,
                }
            })
            .collect();
        Some(fires)
    }

    /// A held run, counted against `max_instances` and announced: ready to spawn.
    fn submit(&self, claimed: ClaimedRun, fires: Fires) -> Option<RunTask> {
        let job = self.shared.job(claimed.schedule.job.as_deref())?;
        let first = fires.as_slice().first().map(|f| f.run_id);
        let tokens: Vec<_> = claimed.fires.iter().map(|f| f.token.clone()).collect();
        let runtime = ScheduleRuntime::claimed(
            &self.shared,
            &claimed.schedule,
            job,
            Arc::clone(&self.ledger),
            claimed.fires.into_boxed_slice(),
        );
        let run = dispatch::submit(&runtime, fires);
        // Its owner cancels the run when the store says a newer fire asked it to stop.
        if let (Overlap::CancelRunning { grace }, Some(run_id)) = (claimed.schedule.overlap, first)
        {
            if let Some(control) = runtime.runs.control(run_id) {
                for token in &tokens {
                    self.ledger.watch(token, control.clone(), grace);
                }
            }
        }
        run
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Schedule>> {
        Ok(self.store.get(id).await?.map(|v| v.schedule))
    }

    pub(crate) async fn list(&self) -> Result<Vec<Schedule>> {
        self.store.list().await
    }

    /// Adds schedules in one atomic write: all of them, or none. The store applies each
    /// one's [`OnConflict`](crate::OnConflict) inside that write, so instances adding one
    /// schedule at once agree on it; what is there afterwards is read back.
    pub(crate) async fn add(&mut self, batch: Vec<Prepared>) -> Result<Vec<Added>> {
        let mut ids = HashSet::new();
        let mut writes = Vec::with_capacity(batch.len());
        for new in batch {
            if !ids.insert(Arc::clone(&new.schedule.id)) {
                return Err(Error::ConflictingId(new.schedule.id.to_string()));
            }
            let write = ScheduleWrite::new(new.schedule, new.jitter).anchored(new.anchored);
            writes.push((write, new.on_conflict));
        }
        self.store.insert(&writes).await?;
        let mut added = Vec::with_capacity(writes.len());
        for (write, on_conflict) in writes {
            let kept = match on_conflict {
                OnConflict::Keep | OnConflict::ReplaceIfChanged => self
                    .store
                    .get(write.schedule.id())
                    .await?
                    .map(|v| v.schedule),
                _ => None,
            };
            added.push(match kept {
                // What this instance wrote (its next run time too), or what it kept.
                Some(stored) if stored != write.schedule => Added {
                    schedule: stored,
                    written: false,
                },
                _ => Added {
                    schedule: write.schedule,
                    written: true,
                },
            });
        }
        Ok(added)
    }

    /// Applies an edit as a write conditioned on the schedule's version, so a change another
    /// instance made meanwhile is seen and the edit is made again on top of it.
    pub(crate) async fn change(
        &mut self,
        id: &str,
        edit: impl Fn(&Schedule, DateTime<Utc>) -> Result<Edit>,
    ) -> Result<Changed> {
        for _ in 0..EDIT_TRIES {
            let current = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
            let now = self.store.now().await?;
            let edit = edit(&current.schedule, now)?;
            let Some(after) = edit.schedule else {
                self.store.remove(id).await?;
                return Ok(Changed {
                    before: current.schedule,
                    after: None,
                    not_run: edit.not_run,
                });
            };
            if after == current.schedule && edit.not_run.is_empty() {
                return Ok(Changed {
                    before: current.schedule,
                    after: Some(after),
                    not_run: edit.not_run,
                });
            }
            let mut write = ScheduleWrite::new(after, edit.retime);
            if !edit.retime && write.schedule.next_run_time == current.schedule.next_run_time {
                // Its next fire keeps the jitter it was given.
                write.due_time = current.due_time;
            }
            if self
                .store
                .replace(&write, current.version, &edit.not_run)
                .await?
            {
                return Ok(Changed {
                    before: current.schedule,
                    after: Some(write.schedule),
                    not_run: edit.not_run,
                });
            }
        }
        Err(Error::store(format!(
            "schedule \"{id}\" kept changing under this change ({EDIT_TRIES} tries)"
        )))
    }

    pub(crate) async fn remove(&mut self, id: &str) -> Result<()> {
        self.store.remove(id).await
    }

    pub(crate) async fn remove_all(&mut self) -> Result<()> {
        self.store.remove_all().await
    }

    pub(crate) async fn run_now(&mut self, id: &str) -> Result<RunTask> {
        let current = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(id.to_owned()))?;
        let job = current.schedule.job_name().unwrap_or("<job value>");
        if !self.shared.jobs.contains_key(job) {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        let claimed = self
            .store
            .claim_now(&self.claimer(), id, &self.planner)
            .await?;
        self.run(claimed).ok_or(Error::SchedulerStopped)
    }

    pub(crate) async fn history(&self, id: &str, limit: usize) -> Result<Vec<FireRecord>> {
        self.store.fires(id, limit).await
    }

    /// Gives back the runs claimed ahead that have not started (the scheduler was paused,
    /// or is stopping): the claim recorded them running, so each goes back on its own.
    pub(crate) async fn give_back_claimed_ahead(&mut self) {
        for (_, runs) in std::mem::take(&mut self.claimed_ahead) {
            for (claimed, _) in runs {
                for fire in &claimed.fires {
                    self.ledger.give_back(fire).await;
                }
            }
        }
    }

    /// At shutdown: claims that have not started go back at once, so another instance runs
    /// them now rather than after their lease.
    pub(crate) async fn release(&mut self) {
        self.give_back_claimed_ahead().await;
        if let Err(error) = self.store.release(&self.ledger.owner).await {
            self.store_failed("release claims", &error);
        }
    }

    /// The runs still going, for the shutdown report.
    pub(crate) fn running(&self) -> Vec<AbortedRun> {
        self.ledger.running()
    }
}
