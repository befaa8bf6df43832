//! The shared conformance suite on Redis: every check of
//! `scheduler_core::store::conformance::shared`, unchanged, each on a fresh key prefix.

mod support;

use scheduler_core::store::conformance;
use store_redis::{Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conforms() {
    let Some(url) = support::redis_url("redis_conforms") else {
        return;
    };
    conformance::shared::run(|lease| {
        let url = url.clone();
        async move {
            let options = StoreOptions::default()
                .prefix(support::unique_prefix())
                .lease(lease);
            Store::connect_with(&url, options)
                .await
                .expect("connect to Redis")
        }
    })
    .await;
}
