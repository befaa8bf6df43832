//! The leases of held fires: starting, renewing, finishing and releasing them, each fenced
//! by the holder and the fire's epoch.

use std::time::Duration;

use async_trait::async_trait;
use scheduler_core::store::shared::reason;
use scheduler_core::store::{FireLeases, FireOutcome, FireToken};

use crate::{Store, store_error};

type CoreResult<T> = scheduler_core::Result<T>;

#[async_trait]
impl FireLeases for Store {
    async fn start(&self, owner: &str, fire: &FireToken) -> CoreResult<bool> {
        let started: i64 = self
            .inner
            .scripts
            .start
            .arg(self.prefix())
            .arg(self.lease_micros())
            .arg(owner)
            .arg(fire.id())
            .arg(fire.epoch())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(started == 1)
    }

    async fn renew(&self, owner: &str, fires: &[FireToken]) -> CoreResult<Vec<FireToken>> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let asked: Vec<(String, String)> = self
            .inner
            .scripts
            .renew
            .arg(self.prefix())
            .arg(self.lease_micros())
            .arg(owner)
            .arg(fires.iter().map(FireToken::id).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(asked
            .into_iter()
            .map(|(id, epoch)| FireToken::new(id, epoch.parse().unwrap_or(1)))
            .collect())
    }

    async fn finish(
        &self,
        owner: &str,
        fire: &FireToken,
        outcome: &FireOutcome,
    ) -> CoreResult<bool> {
        let finished = self
            .finish_many(owner, &[(fire.clone(), outcome.clone())])
            .await?;
        Ok(finished.first() == Some(&true))
    }

    async fn finish_many(
        &self,
        owner: &str,
        fires: &[(FireToken, FireOutcome)],
    ) -> CoreResult<Vec<bool>> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.inner.scripts.finish.prepare_invoke();
        invocation.arg(self.prefix()).arg(owner);
        for (fire, outcome) in fires {
            invocation
                .arg(fire.id())
                .arg(fire.epoch())
                .arg(outcome.final_state().map_or("", |s| s.as_str()))
                .arg(outcome.reason(owner).unwrap_or_default())
                .arg(outcome.error().unwrap_or_default())
                .arg(if *outcome == FireOutcome::NotStarted {
                    "1"
                } else {
                    "0"
                });
        }
        let finished: Vec<i64> = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(finished.into_iter().map(|f| f == 1).collect())
    }

    async fn release(&self, owner: &str) -> CoreResult<()> {
        let _: i64 = self
            .inner
            .scripts
            .release
            .arg(self.prefix())
            .arg(owner)
            .arg(reason::released(owner))
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    fn lease(&self) -> Duration {
        self.inner.options.lease
    }
}
