//! BrainSAM: segmentation of the 12 subcortical structures in T1-weighted brain MRI
//! with SAM (Segment Anything) adapted by LoRA.
//!
//! The safe Rust core lives in this crate; the C ABI (`ffi`), the C++ bridge and the
//! `brainsam` command-line tool are thin layers over it.

#![warn(missing_docs)]

pub mod cleanup;
pub mod cohort;
pub mod error;
pub mod ffi;
mod file_lock;
pub mod job;
pub mod runtime;
pub mod session;
pub mod train;

mod cxx_bridge;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod overlay;
mod render;
pub mod volume;
pub mod weights;

pub use error::{Error, Result};
