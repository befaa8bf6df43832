//! Core of apsched (WIP).
pub mod error;
pub mod trigger;
pub use error::{BoxError, Error, Result};
