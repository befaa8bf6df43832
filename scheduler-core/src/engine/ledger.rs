//! A shared store's side of this instance's runs: the fires it holds, their leases, and the
//! fenced writes that start and finish them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::runs::RunControl;
use super::state::Shared;
use crate::error::error_chain;
use crate::event::{AbortedRun, Event, RunSummary};
use crate::schedule::Schedule;
use crate::store::{ClaimedFire, FireOutcome, FireState, FireToken, SharedStore};

/// The longest wait between attempts while the store fails.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A fire this instance holds, and whether it has started.
struct Holding {
    summary: RunSummary,
    started: bool,
    /// Its schedule is at most once: cut off, it is not run again.
    at_most_once: bool,
    /// Its schedule's overlap policy queues fires: when it ends, one of them may run.
    wakes: bool,
    /// Its run's control and grace, when its overlap policy may cancel it.
    cancel: Option<(RunControl, Duration)>,
}

/// An end waiting to be written, and who waits for the answer.
struct PendingEnd {
    fire: FireToken,
    outcome: FireOutcome,
    answer: oneshot::Sender<Result<bool, Arc<str>>>,
}

pub(crate) struct Ledger {
    pub(crate) store: Arc<dyn SharedStore>,
    pub(crate) owner: Arc<str>,
    held: Mutex<HashMap<FireToken, Holding>>,
    /// Woken when the last held fire is let go, so the lease renewal can end at shutdown.
    emptied: Notify,
    /// Ends that came in while a write of ends was under way: the next write takes them all.
    ends: Mutex<Vec<PendingEnd>>,
    /// Held by the run writing ends; the others wait their turn, usually to find their end
    /// written already.
    writing_ends: tokio::sync::Mutex<()>,
}

impl Ledger {
    pub(crate) fn new(store: Arc<dyn SharedStore>, owner: Arc<str>) -> Self {
        Self {
            store,
            owner,
            held: Mutex::default(),
            emptied: Notify::new(),
            ends: Mutex::default(),
            writing_ends: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<FireToken, Holding>> {
        lock(&self.held)
    }

    /// This instance holds `fire` from its claim on: its lease is renewed until let go.
    pub(crate) fn hold(&self, fire: &ClaimedFire, summary: RunSummary, schedule: &Schedule) {
        let started = fire.state == FireState::Running;
        let holding = Holding {
            summary,
            started,
            at_most_once: schedule.at_most_once,
            wakes: schedule.overlap.queue_limit() > 0,
            cancel: None,
        };
        self.lock().insert(fire.token.clone(), holding);
    }

    /// The control of the run that holds `fire`, for a cancellation the store passes on.
    pub(crate) fn watch(&self, fire: &FireToken, control: RunControl, grace: Duration) {
        if let Some(holding) = self.lock().get_mut(fire) {
            holding.cancel = Some((control, grace));
        }
    }

    /// Lets go of a fire; whether its schedule queues fires (one may run now).
    fn let_go(&self, token: &FireToken) -> bool {
        let mut held = self.lock();
        let wakes = held.remove(token).is_some_and(|h| h.wakes);
        if held.is_empty() {
            self.emptied.notify_waiters();
        }
        wakes
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The runs still going here, for the shutdown report: their jobs never returned, and
    /// their fires go to another instance when their leases run out.
    pub(crate) fn running(&self) -> Vec<AbortedRun> {
        self.lock()
            .values()
            .filter(|h| h.started)
            .map(|h| AbortedRun::new(h.summary.clone(), false, !h.at_most_once))
            .collect()
    }

    /// Before a fire runs: a start fenced by its epoch, unless the claim recorded it running.
    /// `false` when it may not run here: it changed hands, or the store failed (its lease then
    /// runs out and another instance takes it).
    pub(crate) async fn start(
        &self,
        shared: &Shared,
        fire: &ClaimedFire,
        run: &RunSummary,
    ) -> bool {
        if fire.state == FireState::Running {
            return true;
        }
        match self.store.start(&self.owner, &fire.token).await {
            Ok(true) => {
                if let Some(holding) = self.lock().get_mut(&fire.token) {
                    holding.started = true;
                }
                true
            }
            Ok(false) => {
                self.let_go(&fire.token);
                reject(shared, run, &fire.token, "before it started");
                false
            }
            Err(error) => {
                self.let_go(&fire.token);
                tracing::error!(error = %error_chain(&error), "could not mark a fire running; its lease will run out");
                false
            }
        }
    }

    /// A held fire that will not run here (shutdown began first): given back at once.
    pub(crate) async fn give_back(&self, fire: &ClaimedFire) {
        // Claimed and queued fires went back with the release at shutdown; one the claim
        // recorded running can only be given back by its run.
        if fire.state == FireState::Running {
            if let Err(error) = self
                .store
                .finish(&self.owner, &fire.token, &FireOutcome::NotStarted)
                .await
            {
                tracing::error!(error = %error_chain(&error), "could not give back a fire");
            }
        }
        self.let_go(&fire.token);
    }

    /// Records how a fire ended, retrying while the store fails: a result that is not
    /// recorded would leave the fire to be taken over and run again. Gives up at the shutdown
    /// deadline. The fire stays held (its lease renewed) until its end is written. `true` when
    /// the outcome was recorded.
    pub(crate) async fn finish(
        &self,
        shared: &Shared,
        fire: &ClaimedFire,
        outcome: &FireOutcome,
        run: &RunSummary,
    ) -> bool {
        let mut delay = Duration::from_millis(100);
        let recorded = loop {
            match self.write_end(&fire.token, outcome).await {
                Ok(true) => break true,
                Ok(false) => {
                    reject(shared, run, &fire.token, "after it ended");
                    break false;
                }
                Err(text) => {
                    tracing::error!(
                        schedule_id = %run.schedule_id,
                        nominal_time = %run.nominal_time,
                        error = %text,
                        retry_in = ?delay,
                        "could not record how a fire ended"
                    );
                    shared.emit(|| Event::StoreFailed {
                        operation: "record how a fire ended",
                        error: Arc::clone(&text),
                    });
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.abort.cancelled() => {
                    tracing::error!(schedule_id = %run.schedule_id, "gave up recording a fire's end at the shutdown deadline");
                    break false;
                }
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        };
        if self.let_go(&fire.token) {
            // A fire of its schedule may be waiting for this one: claim it now.
            shared.wake.notify_one();
        }
        recorded
    }

    /// Writes how a fire ended, together with every other end that came in meanwhile: one
    /// [`FireLeases::finish_many`](crate::store::FireLeases::finish_many) for all of them,
    /// and none waiting for a timer. At a thousand ends a second that is a few writes a
    /// second instead of a thousand. `Err` carries the store's error, for this end's retry.
    async fn write_end(&self, fire: &FireToken, outcome: &FireOutcome) -> Result<bool, Arc<str>> {
        let (answer, answered) = oneshot::channel();
        lock(&self.ends).push(PendingEnd {
            fire: fire.clone(),
            outcome: outcome.clone(),
            answer,
        });
        {
            let _turn = self.writing_ends.lock().await;
            let pending = std::mem::take(&mut *lock(&self.ends));
            if !pending.is_empty() {
                let ends: Vec<(FireToken, FireOutcome)> = pending
                    .iter()
                    .map(|p| (p.fire.clone(), p.outcome.clone()))
                    .collect();
                match self.store.finish_many(&self.owner, &ends).await {
                    Ok(finished) if finished.len() == pending.len() => {
                        for (p, finished) in pending.into_iter().zip(finished) {
                            let _ = p.answer.send(Ok(finished));
                        }
                    }
                    Ok(finished) => {
                        let text: Arc<str> = format!(
                            "the store answered {} of {} ends written together",
                            finished.len(),
                            pending.len()
                        )
                        .into();
                        for p in pending {
                            let _ = p.answer.send(Err(Arc::clone(&text)));
                        }
                    }
                    Err(error) => {
                        let text: Arc<str> = error_chain(&error).into();
                        for p in pending {
                            let _ = p.answer.send(Err(Arc::clone(&text)));
                        }
                    }
                }
            }
        }
        // The writer that took this end may have been dropped mid-write: tried again then.
        answered
            .await
            .unwrap_or_else(|_| Err("the write of this end was abandoned".into()))
    }

    /// Renews the leases of every held fire, a third of a lease apart, until shutdown has let
    /// go of them all (or its deadline passed). On the scheduler's task tracker, so shutdown
    /// waits for it.
    pub(crate) fn spawn_renewal(self: &Arc<Self>, shared: &Arc<Shared>) {
        let (ledger, shared_state) = (Arc::clone(self), Arc::clone(shared));
        let every = (self.store.lease() / 3).max(Duration::from_millis(100));
        shared.tracker.spawn(async move {
            let shared = shared_state;
            loop {
                let emptied = ledger.emptied.notified();
                tokio::pin!(emptied);
                emptied.as_mut().enable();
                if shared.is_stopping() && ledger.is_empty() {
                    return;
                }
                tokio::select! {
                    biased;
                    () = shared.abort.cancelled() => return,
                    () = &mut emptied => continue,
                    () = shared.cancel.cancelled(), if !shared.is_stopping() => continue,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(error) = ledger.renew(&shared).await {
                    tracing::warn!(error = %error_chain(&error), "renewing leases failed; fires held here may be taken over");
                }
            }
        });
    }

    /// Renews the leases of every held fire now, and cancels the runs of those a newer fire
    /// asked to stop.
    pub(crate) async fn renew(&self, shared: &Shared) -> crate::Result<()> {
        let held: Vec<FireToken> = self.lock().keys().cloned().collect();
        if held.is_empty() {
            return Ok(());
        }
        let cancelled = self.store.renew(&self.owner, &held).await?;
        for token in cancelled {
            let run = self.lock().get(&token).and_then(|holding| {
                let (control, grace) = holding.cancel.clone()?;
                Some((holding.summary.clone(), control, grace))
            });
            if let Some((summary, control, grace)) = run {
                super::dispatch::cancel_run(shared, summary, &control, grace);
            }
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn reject(shared: &Shared, run: &RunSummary, token: &FireToken, when: &str) {
    tracing::warn!(
        schedule_id = %run.schedule_id,
        nominal_time = %run.nominal_time,
        epoch = token.epoch(),
        "stale run rejected {when}: the fire was taken over by another instance"
    );
    shared.emit(|| Event::Rejected {
        schedule_id: Arc::clone(&run.schedule_id),
        run_id: run.run_id,
        nominal_time: run.nominal_time,
        epoch: token.epoch(),
    });
}
