//! What happened to each fire: a schedule's history, newest first, and its pruning.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::AsyncCommands;
use scheduler_core::Error as CoreError;
use scheduler_core::store::{FireHistory, FireRecord, FireState, ScheduleCatalog};

use crate::{Error, Store, micros, parse_micros, store_error, time};

type CoreResult<T> = scheduler_core::Result<T>;

/// A fire's hash as a record.
fn record(fire_id: &str, fields: &HashMap<String, String>) -> Result<FireRecord, Error> {
    let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let at = |name: &str| field(name).and_then(|v| parse_micros(&v)).map(time);
    let corrupt = |reason: &str| Error::Corrupt {
        what: format!("fire {fire_id}"),
        reason: reason.to_owned(),
    };
    let state = field("state")
        .and_then(|s| FireState::parse(&s))
        .ok_or_else(|| corrupt("no state"))?;
    Ok(FireRecord::new(
        fire_id.to_owned(),
        field("sid").ok_or_else(|| corrupt("no schedule"))?,
        at("nominal").ok_or_else(|| corrupt("no nominal time"))?,
        state,
    )
    .reason(field("reason"))
    .owner(field("owner"))
    .epoch(
        field("epoch").and_then(|e| e.parse().ok()).unwrap_or(1),
        field("attempt").and_then(|a| a.parse().ok()).unwrap_or(0),
    )
    .times([at("claimed"), at("started"), at("finished")])
    .error(field("error")))
}

#[async_trait]
impl FireHistory for Store {
    async fn fires(&self, schedule_id: &str, limit: usize) -> CoreResult<Vec<FireRecord>> {
        let mut conn = self.conn();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let history = format!("{}:history:{schedule_id}", self.prefix());
        let mut ids: Vec<String> = conn
            .zrevrange(&history, 0, stop)
            .await
            .map_err(store_error)?;
        if ids.is_empty() {
            if self.get(schedule_id).await?.is_some() {
                return Ok(Vec::new());
            }
            // A claim may have written its last fire and deleted it between the two reads
            // (one script): its fires are there now, or it never was.
            ids = conn
                .zrevrange(&history, 0, stop)
                .await
                .map_err(store_error)?;
            if ids.is_empty() {
                return Err(CoreError::ScheduleNotFound(schedule_id.to_owned()));
            }
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{}:fire:{id}", self.prefix()));
        }
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(store_error)?;
        let mut records = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(&hashes) {
            if fields.is_empty() {
                continue; // pruned meanwhile
            }
            records.push(record(id, fields).map_err(store_error)?);
        }
        // Newest first, by nominal time (the sorted set's order).
        records.sort_by_key(|r| std::cmp::Reverse(micros(r.nominal_time)));
        Ok(records)
    }

    async fn prune(&self) -> CoreResult<u64> {
        let now = self.now_micros().await?;
        let age = i64::try_from(self.inner.options.keep_fires_for.as_micros()).unwrap_or(i64::MAX);
        let pruned: i64 = self
            .inner
            .scripts
            .prune
            .arg(self.prefix())
            .arg(self.inner.options.keep_fires)
            .arg(now.saturating_sub(age))
            .invoke_async(&mut self.conn())
            .await
            .map_err(store_error)?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }
}

impl Store {
    async fn now_micros(&self) -> CoreResult<i64> {
        use scheduler_core::store::FireClaims;
        Ok(micros(self.now().await?))
    }
}
