#![doc = include_str!("../README.md")]
//!
//! # This crate
//!
//! `apsched` re-exports [`scheduler_core`] (the scheduler, its triggers, jobs, stores and
//! events) and, behind features, the web adapters.
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `axum` | [`axum`]: serve with graceful shutdown, state, the REST API as a router |
//! | `warp` | [`warp`]: serve with graceful shutdown, filters, the REST API as a filter |
//! | `api` | [`api`]: the REST API's model, for another framework |

pub use scheduler_core::*;

/// The scheduler in an axum service (crate `adapter-axum`).
#[cfg(feature = "axum")]
pub mod axum {
    pub use adapter_axum::*;
}

/// The scheduler in a warp service (crate `adapter-warp`).
#[cfg(feature = "warp")]
pub mod warp {
    pub use adapter_warp::*;
}
