//! What the store's tests share: the Redis server from TEST_REDIS_URL (skipped without it,
//! unless REQUIRE_SERVICES=1 makes that a failure), and a fresh key prefix per test.

#![allow(dead_code, unreachable_pub)] // each test file uses part of this

/// The Redis URL, or `None` when the test should be skipped.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: TEST_REDIS_URL is not set, and REQUIRE_SERVICES=1 requires the server"
            );
            println!("{test}: skipped: TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("apsched_t_{}", uuid::Uuid::new_v4().simple())
}
