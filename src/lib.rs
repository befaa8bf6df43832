//! apsched facade.
pub use scheduler_core::*;
