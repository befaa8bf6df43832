//! How idle instances learn of changes: a subscription to `<prefix>:changes`, which every
//! write of the schedules (and every fire handed back) publishes to.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use scheduler_core::store::ChangeFeed;
use tokio::sync::watch;

use crate::Store;

/// Subscribes in the background, again after every failure; the receiver's value goes up at
/// each notification.
pub(crate) fn subscribe(
    client: redis::Client,
    channel: String,
) -> (watch::Receiver<u64>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = watch::channel(0_u64);
    let task = tokio::spawn(async move {
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        // Anything may have changed while no one listened.
                        sender.send_modify(|n| *n += 1);
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            sender.send_modify(|n| *n += 1);
                        }
                    }
                    tracing::debug!(%channel, "change subscription ended; subscribing again");
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot subscribe to changes; trying again");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (receiver, task)
}

#[async_trait]
impl ChangeFeed for Store {
    async fn wait_for_change(&self, timeout: Duration) {
        let mut changes = self.inner.changes.clone();
        changes.mark_unchanged();
        let _ = tokio::time::timeout(timeout, changes.changed()).await;
    }

    fn recheck_interval(&self) -> Duration {
        self.inner.options.safety_recheck
    }
}
