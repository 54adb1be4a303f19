//! Whole Keras models from the files `model.save(...)` writes: Keras 3 `.keras` archives and
//! legacy single-file HDF5 (`.h5`), read in pure Rust, run on the CPU or a GPU.
//!
//! A model is a chain of `InputLayer`, `Embedding`, `Masking`, `SimpleRNN`,
//! `Bidirectional(SimpleRNN)`, `Dense`, `TimeDistributed(Dense)`, `Activation` and `Dropout`
//! layers (a Sequential model, or a Functional one that forms a single chain), in float32.

mod config;
mod file;
mod model;
mod run;
mod summary;
mod weights;

pub use config::MergeMode;
pub use model::{KerasLayer, KerasModel};
pub use run::{KerasRunner, ModelOutput};
