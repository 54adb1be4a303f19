//! Whole Keras models from the files `model.save(...)` writes: Keras 3 `.keras` archives and
//! legacy single-file HDF5 (`.h5`), read in pure Rust, run on the CPU or a GPU.
//!
//! A model is a Sequential chain or a Functional graph (several inputs and outputs, shared
//! layers, merges, masks computed by Keras's ops) of the layers listed in `config.rs`, in
//! float32.

mod calls;
pub(crate) mod config;
mod file;
pub(crate) mod graph;
pub(crate) mod host;
pub(crate) mod model;
pub(crate) mod ops;
mod run;
mod summary;
pub(crate) mod tensor;
mod weights;

pub use config::{ConvPadding, MergeKind, MergeMode};
pub use model::{ActivationLayer, KerasLayer, KerasModel};
pub use run::{InputArray, KerasRunner, ModelOutput};
