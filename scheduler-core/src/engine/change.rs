//! What the engine's commands hand a timetable: a new schedule to add, an edit of one, and
//! what an edit did.

use std::sync::Arc;

use crate::fires::NotRunFire;
use crate::job::Job;
use crate::schedule::{OnConflict, Schedule};

/// A new schedule, checked and filled in, with what adding it needs to know.
pub(crate) struct Prepared {
    pub(crate) schedule: Schedule,
    pub(crate) job: Arc<dyn Job>,
    pub(crate) on_conflict: OnConflict,
    /// Its first run time is the trigger's: it gets the trigger's jitter.
    pub(crate) jitter: bool,
    /// Its trigger was given no grid origin and the scheduler pinned one.
    pub(crate) anchored: bool,
}

/// What adding one schedule did.
pub(crate) struct Added {
    /// The schedule as it now is: the new one, or the one kept.
    pub(crate) schedule: Schedule,
    /// False when the one there was kept ([`OnConflict::Keep`], or an unchanged definition).
    pub(crate) written: bool,
}

/// A command's change to one schedule.
pub(crate) struct Edit {
    /// The schedule changed; `None`: it is done and goes (resumed with no time left).
    pub(crate) schedule: Option<Schedule>,
    /// Fires the change records as not run (the fires a pause skipped).
    pub(crate) not_run: Vec<NotRunFire>,
    /// Its next run time is new: it gets the trigger's jitter.
    pub(crate) retime: bool,
}

/// What an edit did.
pub(crate) struct Changed {
    pub(crate) before: Schedule,
    /// `None`: the schedule is done and gone.
    pub(crate) after: Option<Schedule>,
    pub(crate) not_run: Vec<NotRunFire>,
}

impl Changed {
    pub(crate) fn nothing(&self) -> bool {
        self.not_run.is_empty() && self.after.as_ref() == Some(&self.before)
    }
}

impl Edit {
    pub(crate) fn keep_time(schedule: Schedule) -> Self {
        Self {
            schedule: Some(schedule),
            not_run: Vec::new(),
            retime: false,
        }
    }
}
