//! # wgpu-rnn
//!
//! Keras `SimpleRNN`, `LSTM` and `GRU` layers (and whole Keras models, PyTorch `nn.RNN` /
//! `nn.LSTM` / `nn.GRU`, ONNX `RNN`) on any GPU through wgpu (Vulkan, Metal, DX12, or a software
//! adapter such as Mesa's lavapipe), with a CPU path on ndarray beside it. Both give the numbers
//! the framework gives. A [`Cell`] says which recurrence a layer runs; both backends follow it.
//!
//! Weights follow Keras's layout: `kernel` *D* × *G*·*M*, `recurrent_kernel` *M* × *G*·*M*,
//! `bias` *G*·*M*, with *G* the cell's gates (1, 4 for LSTM, 3 for GRU). Inputs are *N* × *T* ×
//! *D* (batch, time steps, features).
//!
//! ```no_run
//! use ndarray::Array3;
//! use wgpu_rnn::{load_keras_npz, CpuRnn, GpuContext, GpuRnn, SimpleRnnConfig};
//!
//! # fn main() -> wgpu_rnn::Result<()> {
//! let config = SimpleRnnConfig { return_sequences: true, ..Default::default() };
//! let layer = load_keras_npz("simple_rnn.npz", config)?;
//! let input = Array3::<f32>::zeros((2, 10, layer.input_dim()));
//!
//! let ctx = GpuContext::new_blocking(Default::default())?;
//! let gpu = GpuRnn::new(&ctx, layer.clone())?;
//! let on_gpu = gpu.forward(input.view(), None)?;
//! let on_cpu = CpuRnn::new(layer).forward(input.view(), None)?;
//! assert_eq!(on_gpu.output().shape(), on_cpu.output().shape());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod activation;
mod backend;
mod cell;
mod cpu;
mod error;
pub mod gpu;
mod io;
#[cfg(feature = "keras")]
pub mod keras;
mod layer;
#[cfg(feature = "onnx")]
mod onnx;
mod output;
mod stack;
#[cfg(feature = "torch")]
mod torch;

pub use activation::Activation;
pub use backend::Backend;
pub use cell::Cell;
pub use cpu::CpuRnn;
pub use error::{Result, RnnError};
pub use gpu::{
    ADAPTER_NAME_VARIABLE, AdapterSummary, GpuContext, GpuOptions, GpuRnn, StepStrategy,
};
pub use io::{
    NpyInput, load_keras_npz, load_keras_npz_as, load_keras_npz_bytes, parse_npy_f32,
    parse_npy_input, parse_npy_lengths, parse_npz_inputs, read_npy_f32, read_npy_input,
    read_npy_lengths, read_npz_inputs,
};
#[cfg(feature = "keras")]
pub use keras::{
    ActivationLayer, ConvPadding, InputArray, KerasLayer, KerasModel, KerasRunner, MergeKind,
    MergeMode, ModelOutput,
};
pub use layer::{OutputOrder, Padding, RnnForward, RnnOutput, SimpleRnn, SimpleRnnConfig};
#[cfg(feature = "onnx")]
pub use onnx::{OnnxDirection, OnnxRnn, OnnxRnnAttributes, OnnxRnnOutput};
pub use output::{OutputSet, OutputSlot, write_npy_f32};
pub use stack::{RnnStack, StackOutput};
#[cfg(feature = "torch")]
pub use torch::{Nonlinearity, TorchRnn, TorchRnnConfig, TorchRnnModel, TorchRnnOutput};
