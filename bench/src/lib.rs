//! The harness behind `scheduler-bench`: what the `shared-many` workload and the multi-process
//! tests share. [`cluster`] runs scheduler processes ("nodes") on one database or Redis and
//! reads what each of them ran.
//!
//! ```
//! use scheduler_bench::cluster::NodeLine;
//!
//! // Every node prints one JSON line per thing it did; the harness reads them back.
//! let line: NodeLine = serde_json::from_str(
//!     r#"{"event":"rejected","schedule":"tick-3","nominal_us":1700000000000000,"epoch":1}"#,
//! )?;
//! assert!(matches!(line, NodeLine::Rejected { epoch: 1, .. }));
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod cluster;
