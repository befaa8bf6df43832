#![doc = include_str!("../README.md")]
//!
//! # This crate
//!
//! `apsched` re-exports [`scheduler_core`]: the scheduler, its triggers, jobs, stores and
//! events. The web adapters are added behind cargo features as they land.

pub use scheduler_core::*;
