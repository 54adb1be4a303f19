//! Running a loaded Keras model on a backend, with Keras's masks and stateful streaming.

use std::sync::Arc;

use ndarray::{Array2, Array3, ArrayD, ArrayViewD, Axis, Ix2, Ix3, concatenate};

use crate::backend::Backend;
use crate::error::{Result, RnnError};
use crate::gpu::GpuRnn;
use crate::gpu::model::ResidentModel;
use crate::keras::calls::show;
use crate::keras::config::MergeMode;
use crate::keras::host;
use crate::keras::model::{EntryKind, KerasLayer, KerasModel, ModelNode};
use crate::keras::ops::{Operand, run_op};
use crate::keras::tensor::{DType, HostTensor};
use crate::layer::{Padding, RnnForward};

/// What a model returns: its outputs in Keras's order (`model.predict` returns them as a list
/// when there are several, a `Bidirectional` with `merge_mode=None` returns forward and
/// backward, a layer with `return_state` its states after its output).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelOutput {
    /// The model's outputs, in Keras's order, as float32 (a boolean output is 0 and 1).
    pub outputs: Vec<ArrayD<f32>>,
}

/// One input array of a model with several inputs ([`KerasRunner::predict_inputs`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum InputArray<'a> {
    /// Float values (cast to the input's dtype: token ids are truncated toward zero, as Keras
    /// casts them).
    Float(ArrayViewD<'a, f32>),
    /// Integer values (token ids; converted to float32 for an input that takes floats).
    Int(ArrayViewD<'a, i64>),
}

impl<'a> From<&'a crate::NpyInput> for InputArray<'a> {
    /// A `.npy` input as it is: float or integer.
    fn from(x: &'a crate::NpyInput) -> Self {
        match x {
            crate::NpyInput::Float(a) => InputArray::Float(a.view()),
            crate::NpyInput::Int(a) => InputArray::Int(a.view()),
        }
    }
}

/// A [`KerasModel`] built on a [`Backend`]: its recurrent layers' weights uploaded once, ready
/// for any number of calls (as `model.predict`), or for streaming a long sequence in chunks.
///
/// **Stateful streaming.** Layers saved with `stateful=True` carry their final state into the
/// next call, as Keras does; [`KerasRunner::set_stateful`] turns this on for every recurrent
/// layer of any model, and [`KerasRunner::reset_state`] starts over from zeros. Feeding a
/// sequence in consecutive chunks then gives the same result as feeding it whole.
///
/// **Device-resident execution.** On a GPU backend the whole graph runs on the device: each
/// input is uploaded once (token ids are checked on the host, then looked up on the GPU), every
/// layer and op reads and writes GPU buffers, each output is read back once, and a stateful
/// layer's state stays on the GPU between calls. Where the model's buffers for an input would
/// pass the device's limits or [`crate::GpuOptions::max_chunk_bytes`] (or the input is longer
/// than 4096 steps), the call instead runs layer by layer through the host, each recurrent
/// layer chunking its work; [`KerasRunner::is_device_resident`] says which path the last call
/// took. Both give the same results.
///
/// ```
/// use ndarray::{Array2, Array3};
/// use wgpu_rnn::{Backend, KerasModel, KerasRunner};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras_models/stateful_stream");
/// let model = KerasModel::load(format!("{dir}/model.keras"))?;
/// // Backend::auto() picks a hardware GPU when there is one; the CPU here, for the doctest.
/// let mut runner = KerasRunner::new(model, &Backend::Cpu)?;
/// runner.set_stateful(true);
/// let features = 3; // what this model's input layer takes
/// let first = runner.predict(Array3::<f32>::zeros((2, 5, features)).into_dyn().view())?;
/// let next = runner.predict(Array3::<f32>::ones((2, 4, features)).into_dyn().view())?; // continues
/// runner.reset_state();
/// assert_eq!(first.outputs[0].shape()[..2], [2, 5]);
/// # let _ = (next, Array2::<f32>::zeros((1, 1)));
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
pub struct KerasRunner {
    model: KerasModel,
    backend_name: &'static str,
    /// The built recurrent layers of each model layer (one, two for Bidirectional, none).
    rnns: Vec<Vec<Arc<dyn RnnForward>>>,
    stateful_all: bool,
    /// The carried state of each recurrent layer, when stateful and held on the host (after a
    /// call on the per-layer path).
    states: Vec<Vec<Option<Array2<f32>>>>,
    /// An LSTM's carried cell state beside its state (always on the host: a stateful LSTM
    /// runs layer by layer).
    cells: Vec<Vec<Option<Array2<f32>>>>,
    /// The device-resident model, on a GPU backend.
    resident: Option<ResidentModel>,
    /// Whether the last call ran device-resident.
    last_resident: bool,
    /// Whether calls may run device-resident (see [`KerasRunner::set_device_resident`]).
    allow_resident: bool,
}

impl std::fmt::Debug for KerasRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerasRunner")
            .field("model", &self.model.name())
            .field("backend", &self.backend_name)
            .field("stateful", &self.stateful_all)
            .finish()
    }
}

impl KerasRunner {
    /// Builds the model's recurrent layers on `backend`.
    ///
    /// # Errors
    /// As [`Backend::build`] (a GPU that cannot hold the weights).
    pub fn new(model: KerasModel, backend: &Backend) -> Result<Self> {
        let mut gpu_rnns: Vec<Vec<Arc<GpuRnn>>> = Vec::new();
        let mut rnns: Vec<Vec<Arc<dyn RnnForward>>> = Vec::new();
        let mut states = Vec::new();
        for layer in model.layers() {
            let layers: Vec<_> = layer.recurrent().into_iter().cloned().collect();
            let built: Vec<Arc<dyn RnnForward>> = match backend {
                Backend::Gpu(ctx) => {
                    // Built as GpuRnn so that the resident path shares their weights.
                    let gpu = layers
                        .into_iter()
                        .map(|l| GpuRnn::new(ctx, l).map(Arc::new))
                        .collect::<Result<Vec<_>>>()?;
                    let built = gpu
                        .iter()
                        .map(|r| r.clone() as Arc<dyn RnnForward>)
                        .collect();
                    gpu_rnns.push(gpu);
                    built
                }
                Backend::Cpu => layers
                    .into_iter()
                    .map(|l| backend.build(l).map(Arc::from))
                    .collect::<Result<Vec<_>>>()?,
            };
            states.push(vec![None; built.len()]);
            rnns.push(built);
        }
        let resident = match backend {
            Backend::Gpu(ctx) => Some(ResidentModel::new(ctx, &model, &gpu_rnns)?),
            Backend::Cpu => None,
        };
        Ok(KerasRunner {
            model,
            backend_name: backend.name(),
            rnns,
            stateful_all: false,
            cells: states.clone(),
            states,
            resident,
            last_resident: false,
            allow_resident: true,
        })
    }

    /// True when the last call ran device-resident on the GPU (see the type's documentation);
    /// false on the CPU, before the first call, and when the last call took the per-layer path.
    pub fn is_device_resident(&self) -> bool {
        self.last_resident
    }

    /// Lets calls on a GPU backend run device-resident (`true`, the default) or makes every call
    /// take the layer-by-layer path through the host (`false`), for comparing the two. Carried
    /// state follows the call to whichever path runs it.
    pub fn set_device_resident(&mut self, allowed: bool) {
        self.allow_resident = allowed;
    }

    /// The model.
    pub fn model(&self) -> &KerasModel {
        &self.model
    }

    /// `"cpu"` or `"gpu"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// Makes every recurrent layer stateful (`true`), or only those saved with `stateful=True`
    /// (`false`, the default). Clears the carried state.
    pub fn set_stateful(&mut self, stateful: bool) {
        self.stateful_all = stateful;
        self.reset_state();
    }

    /// Forgets the carried state: the next call starts from zeros (Keras's `reset_state`).
    pub fn reset_state(&mut self) {
        for layer in self.states.iter_mut().chain(self.cells.iter_mut()) {
            layer.iter_mut().for_each(|s| *s = None);
        }
        if let Some(resident) = &mut self.resident {
            resident.reset_state();
        }
    }

    /// Runs a model of one input on float input: *N* × *T* × *D* for a sequence model (or the
    /// shape the model's input declares). A model whose input is token ids takes them here
    /// too, truncated to integers as Keras casts them.
    ///
    /// # Errors
    /// [`RnnError::InvalidInput`] for a model of several inputs
    /// ([`KerasRunner::predict_inputs`] runs those), a token id outside the vocabulary, or a
    /// batch size other than the one a stateful model holds state for;
    /// [`RnnError::ShapeMismatch`] when the input does not fit the model's input; the recurrent
    /// layers' errors.
    pub fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ModelOutput> {
        self.predict_inputs(&[InputArray::Float(input)])
    }

    /// Runs a model of one input on integer input: token ids (*N* × *T*) for a model that
    /// starts with an `Embedding`; other models take them as numbers.
    ///
    /// # Errors
    /// As [`KerasRunner::predict`].
    pub fn predict_ids(&mut self, ids: ArrayViewD<'_, i64>) -> Result<ModelOutput> {
        self.predict_inputs(&[InputArray::Int(ids)])
    }

    /// Runs the model on one array per input, in the order of
    /// [`KerasModel::input_names`].
    ///
    /// # Errors
    /// [`RnnError::InvalidInput`] when the number of arrays is not the number of inputs, for
    /// values an input's dtype cannot hold (a float id that is not a finite int32), a token id
    /// outside an Embedding's vocabulary, or a batch size other than the one a stateful layer
    /// holds state for; [`RnnError::ShapeMismatch`] for an array whose rank or feature axis
    /// does not fit its input, or for inputs whose batch sizes differ; the layers' errors.
    pub fn predict_inputs(&mut self, inputs: &[InputArray<'_>]) -> Result<ModelOutput> {
        let inputs = self.convert_inputs(inputs)?;
        if let Some(out) = self.try_resident(&inputs)? {
            return Ok(out);
        }
        self.host_path()?;
        let outputs = self.run_host(inputs)?;
        Ok(ModelOutput { outputs })
    }

    /// Checks each array against its input and casts it to the input's dtype, as Keras
    /// converts what `predict` is given.
    fn convert_inputs(&self, arrays: &[InputArray<'_>]) -> Result<Vec<HostTensor>> {
        let specs = self.model.inputs();
        if arrays.len() != specs.len() {
            return Err(RnnError::InvalidInput(format!(
                "the model takes {} inputs ({}), got {} arrays",
                specs.len(),
                self.model.input_names().join(", "),
                arrays.len()
            )));
        }
        let mut out = Vec::with_capacity(arrays.len());
        let mut batch = None;
        for (k, (spec, array)) in specs.iter().zip(arrays).enumerate() {
            let shape = match array {
                InputArray::Float(x) => x.shape(),
                InputArray::Int(x) => x.shape(),
            };
            let want = &spec.shape;
            // The batch and time axes take any size (streaming feeds chunks of any length);
            // the feature axis must match (token ids have none).
            let fits = shape.len() == want.len()
                && !shape.contains(&0)
                && (want.len() < 2
                    || self.model.input_takes_ids(k)
                    || want
                        .last()
                        .copied()
                        .flatten()
                        .is_none_or(|d| Some(&d) == shape.last()));
            if !fits {
                return Err(RnnError::shape(
                    if specs.len() == 1 {
                        "input".to_string()
                    } else {
                        format!("input {:?}", spec.name)
                    },
                    format!("{} (batch first; None is any size, none empty)", show(want)),
                    shape,
                ));
            }
            if *batch.get_or_insert(shape[0]) != shape[0] {
                return Err(RnnError::shape(
                    format!("input {:?}", spec.name),
                    format!("a batch of {} like the first input", batch.unwrap_or(0)),
                    shape,
                ));
            }
            let ids_error =
                |v: f32| RnnError::InvalidInput(format!("token id {v} is not an integer in range"));
            out.push(match (array, spec.dtype) {
                (InputArray::Float(x), DType::F32) => {
                    HostTensor::F32(x.as_standard_layout().into_owned())
                }
                (InputArray::Float(x), DType::I32) => {
                    if let Some(&v) = x
                        .iter()
                        .find(|v| !v.is_finite() || v.abs() >= 2_147_483_648.0)
                    {
                        return Err(ids_error(v));
                    }
                    HostTensor::I32(x.mapv(|v| v.trunc() as i32))
                }
                (InputArray::Int(x), DType::I32) => {
                    if let Some(&v) = x.iter().find(|v| i32::try_from(**v).is_err()) {
                        return Err(RnnError::InvalidInput(format!(
                            "token id {v} is outside int32"
                        )));
                    }
                    HostTensor::I32(x.mapv(|v| v as i32))
                }
                (InputArray::Int(x), DType::F32) => HostTensor::F32(x.mapv(|v| v as f32)),
                (InputArray::Float(x), DType::Bool) => HostTensor::Bool(x.mapv(|v| v != 0.0)),
                (InputArray::Int(x), DType::Bool) => HostTensor::Bool(x.mapv(|v| v != 0)),
            });
        }
        Ok(out)
    }

    /// Runs the model device-resident when it can (a GPU backend, and buffers that fit); None
    /// when the call must take the per-layer path.
    fn try_resident(&mut self, inputs: &[HostTensor]) -> Result<Option<ModelOutput>> {
        // The device path carries h between calls, not an LSTM's c: a stateful LSTM runs layer
        // by layer.
        let stateful_lstm = (0..self.model.layers().len()).any(|i| {
            self.is_stateful(i)
                && self.rnns[i]
                    .first()
                    .is_some_and(|r| r.layer().cell().has_cell_state())
        });
        let Some(resident) = self
            .resident
            .as_mut()
            .filter(|_| self.allow_resident && !stateful_lstm)
        else {
            return Ok(None);
        };
        if !resident.prepare(&self.model, inputs)? {
            return Ok(None);
        }
        let n = inputs[0].shape()[0];
        // The same check as the per-layer path's, before any work.
        for (index, per_layer) in self.states.iter().enumerate() {
            for (which, host) in per_layer.iter().enumerate() {
                let held = host
                    .as_ref()
                    .map(|s| s.nrows())
                    .or_else(|| resident.carried_batch(index, which));
                if let Some(held) = held
                    && held != n
                {
                    return Err(batch_error(&self.model, index, held, n));
                }
            }
        }
        // State carried by an earlier per-layer call moves to the device.
        for (index, per_layer) in self.states.iter_mut().enumerate() {
            for (which, host) in per_layer.iter_mut().enumerate() {
                if let Some(state) = host.take() {
                    resident.set_carried(index, which, &state);
                }
            }
        }
        let stateful: Vec<bool> = (0..self.model.layers().len())
            .map(|i| self.stateful_all || self.model.layers()[i].is_stateful())
            .collect();
        let resident = self.resident.as_mut().expect("checked above");
        let outputs = resident.run(&self.model, inputs, &stateful)?;
        self.last_resident = true;
        Ok(Some(ModelOutput { outputs }))
    }

    /// Before a call on the per-layer path: state carried on the device moves to the host.
    fn host_path(&mut self) -> Result<()> {
        self.last_resident = false;
        if let Some(resident) = &mut self.resident {
            for (index, which, state) in resident.take_carried()? {
                self.states[index][which] = Some(state);
            }
        }
        Ok(())
    }

    fn is_stateful(&self, index: usize) -> bool {
        self.stateful_all || self.model.layers()[index].is_stateful()
    }

    /// Runs the graph on the host, each recurrent layer on the backend.
    fn run_host(&mut self, inputs: Vec<HostTensor>) -> Result<Vec<ArrayD<f32>>> {
        let count = self.model.nodes().len();
        let mut values: Vec<Vec<HostTensor>> = vec![Vec::new(); count];
        let mut inputs: Vec<Option<HostTensor>> = inputs.into_iter().map(Some).collect();
        for i in 0..count {
            if !self.model.is_live(i) {
                continue;
            }
            let node = &self.model.nodes()[i];
            let entry = &self.model.entries()[node.entry];
            let operands: Vec<Operand<HostTensor>> = node
                .call
                .operands
                .iter()
                .map(|o| match o {
                    Operand::Tensor(t) => Operand::Tensor(values[t.node][t.output].clone()),
                    Operand::Scalar(s) => Operand::Scalar(*s),
                })
                .collect();
            let outputs = match &entry.kind {
                EntryKind::Input(k) => vec![inputs[*k].take().expect("each input read once")],
                EntryKind::Op(op) => vec![run_op(op, &operands, &format!("op {:?}", entry.name))?],
                EntryKind::Layer(l) => {
                    let l = *l;
                    let node = node.clone();
                    self.run_layer(l, &node, operands, &values)?
                }
            };
            values[i] = outputs;
        }
        Ok(self
            .model
            .outputs()
            .iter()
            .map(|t| values[t.node][t.output].to_f32())
            .collect())
    }

    /// One call of layer `index` on the host.
    fn run_layer(
        &mut self,
        index: usize,
        node: &ModelNode,
        operands: Vec<Operand<HostTensor>>,
        values: &[Vec<HostTensor>],
    ) -> Result<Vec<HostTensor>> {
        let mut inputs: Vec<HostTensor> = operands
            .into_iter()
            .filter_map(|o| match o {
                Operand::Tensor(t) => Some(t),
                Operand::Scalar(_) => None,
            })
            .collect();
        let value = |t: &crate::keras::graph::TensorRef| &values[t.node][t.output];
        let mask_tensor = node.call.mask.as_ref().map(value);
        let mask = mask_tensor.map(HostTensor::to_bool);
        let states: Vec<Array2<f32>> = node
            .call
            .initial_state
            .iter()
            .map(|s| {
                value(s)
                    .to_f32()
                    .into_dimensionality::<Ix2>()
                    .map_err(|_| RnnError::shape("initial state", "N × M", value(s).shape()))
            })
            .collect::<Result<_>>()?;
        let layer = &self.model.layers()[index];
        let x = inputs.remove(0);
        let f32_out = |a: ArrayD<f32>| Ok(vec![HostTensor::F32(a)]);
        match layer {
            KerasLayer::Embedding { table, .. } => f32_out(host::embedding(table, &x)?),
            KerasLayer::Masking { mask_value, .. } => {
                f32_out(host::masking(&x.to_f32(), *mask_value))
            }
            KerasLayer::Dense {
                kernel,
                bias,
                activation,
                then,
                ..
            } => f32_out(host::activation_after(
                host::dense(x.to_f32(), kernel, bias.as_ref(), *activation),
                then.as_ref(),
            )?),
            KerasLayer::Activation {
                activation, then, ..
            } => f32_out(host::activation_after(
                host::activation(x.to_f32(), *activation),
                then.as_ref(),
            )?),
            KerasLayer::Dropout { .. } => Ok(vec![x]),
            KerasLayer::RepeatVector { n, .. } => f32_out(host::repeat_vector(&x.to_f32(), *n)?),
            KerasLayer::GlobalPooling { max, keepdims, .. } => f32_out(host::global_pooling(
                &x.to_f32(),
                mask.as_ref().filter(|_| !*max),
                *max,
                *keepdims,
            )?),
            KerasLayer::Flatten { channels_first, .. } => {
                Ok(vec![host::flatten(x, *channels_first)?])
            }
            KerasLayer::Reshape { target, .. } => Ok(vec![host::reshape(x, target)?]),
            KerasLayer::LayerNormalization {
                axes,
                epsilon,
                gamma,
                beta,
                rms_scaling,
                ..
            } => f32_out(host::layer_normalization(
                &x.to_f32(),
                axes,
                *epsilon,
                gamma.as_ref(),
                beta.as_ref(),
                *rms_scaling,
            )),
            KerasLayer::BatchNormalization { axis, .. } => {
                let (inv, res) = host::batch_norm_affine(layer).expect("a BatchNormalization");
                f32_out(host::batch_normalization(&x.to_f32(), *axis, &inv, &res))
            }
            KerasLayer::PRelu { alpha, .. } => f32_out(host::prelu(&x.to_f32(), alpha)?),
            KerasLayer::Conv1D {
                kernel,
                bias,
                stride,
                dilation,
                padding,
                activation,
                then,
                ..
            } => f32_out(host::activation_after(
                host::conv1d(
                    &x.to_f32(),
                    kernel,
                    bias.as_ref(),
                    *stride,
                    *dilation,
                    *padding,
                    *activation,
                )?,
                then.as_ref(),
            )?),
            KerasLayer::Softmax { axes, .. } => {
                f32_out(host::softmax(&x.to_f32(), axes, mask_tensor)?)
            }
            KerasLayer::Merge { kind, .. } => {
                let mut all = vec![x.to_f32()];
                all.extend(inputs.iter().map(HostTensor::to_f32));
                let masks: Vec<Option<ArrayD<bool>>> = node
                    .call
                    .input_masks
                    .iter()
                    .map(|m| m.as_ref().map(|m| value(m).to_bool()))
                    .collect();
                f32_out(host::merge_masked(*kind, &all, &masks)?)
            }
            KerasLayer::SimpleRnn { return_state, .. } => {
                let return_state = *return_state;
                let x = into3(x.to_f32())?;
                let mask = recurrent_mask(mask, &x)?;
                let padding = mask
                    .as_ref()
                    .map_or(Padding::None, |m| Padding::Mask(m.view()));
                let stateful = self.is_stateful(index);
                let n = x.dim().0;
                let given = (states.first(), states.get(1));
                let out = run_recurrent(
                    &*self.rnns[index][0],
                    (&mut self.states[index][0], &mut self.cells[index][0]),
                    given,
                    stateful,
                    &x,
                    padding,
                    |held| batch_error(&self.model, index, held, n),
                )?;
                let mut outs = vec![HostTensor::F32(out.output().to_owned())];
                if return_state {
                    outs.push(HostTensor::F32(out.final_state.into_dyn()));
                    outs.extend(out.final_cell.map(|c| HostTensor::F32(c.into_dyn())));
                }
                Ok(outs)
            }
            KerasLayer::Bidirectional {
                forward,
                merge,
                return_state,
                ..
            } => {
                let (merge, return_state) = (*merge, *return_state);
                let return_sequences = forward.config().return_sequences;
                let per_direction = 1 + usize::from(forward.cell().has_cell_state());
                let x = into3(x.to_f32())?;
                let n = x.dim().0;
                let mask = recurrent_mask(mask, &x)?;
                let padding = mask
                    .as_ref()
                    .map_or(Padding::None, |m| Padding::Mask(m.view()));
                let stateful = self.is_stateful(index);
                let mut outs = Vec::with_capacity(2);
                let mut finals = Vec::new();
                for which in 0..2 {
                    let given = &states[(which * per_direction).min(states.len())..];
                    let given = if states.is_empty() {
                        (None, None)
                    } else {
                        (given.first(), given.get(1).filter(|_| per_direction == 2))
                    };
                    let out = run_recurrent(
                        &*self.rnns[index][which],
                        (
                            &mut self.states[index][which],
                            &mut self.cells[index][which],
                        ),
                        given,
                        stateful,
                        &x,
                        padding,
                        |held| batch_error(&self.model, index, held, n),
                    )?;
                    let mut y = out.output().to_owned();
                    if which == 1 && return_sequences {
                        // Bidirectional turns the backward sequence to input order.
                        y.invert_axis(Axis(1));
                        y = y.as_standard_layout().into_owned();
                    }
                    outs.push(y);
                    finals.push(HostTensor::F32(out.final_state.into_dyn()));
                    finals.extend(out.final_cell.map(|c| HostTensor::F32(c.into_dyn())));
                }
                let backward = outs.pop().expect("two outputs");
                let forward = outs.pop().expect("two outputs");
                let last = forward.ndim() - 1;
                let mut data = match merge {
                    MergeMode::Concat => vec![
                        concatenate(Axis(last), &[forward.view(), backward.view()])
                            .expect("same shapes but the last axis"),
                    ],
                    MergeMode::Sum => vec![forward + backward],
                    MergeMode::Mul => vec![forward * backward],
                    MergeMode::Ave => vec![(forward + backward) * 0.5],
                    MergeMode::Separate => vec![forward, backward],
                };
                let mut outs: Vec<HostTensor> = data.drain(..).map(HostTensor::F32).collect();
                if return_state {
                    outs.extend(finals);
                }
                Ok(outs)
            }
        }
    }
}

/// A recurrent layer's mask as the steps read it: booleans, *N* × *T*.
fn recurrent_mask(mask: Option<ArrayD<bool>>, x: &Array3<f32>) -> Result<Option<Array2<bool>>> {
    let Some(mask) = mask else {
        return Ok(None);
    };
    let (n, t, _) = x.dim();
    if mask.shape() != [n, t] {
        return Err(RnnError::shape(
            "mask",
            format!("[{n}, {t}] (N × T)"),
            mask.shape(),
        ));
    }
    Ok(Some(mask.into_dimensionality::<Ix2>().expect("two axes")))
}

/// Runs one recurrent layer from the given initial state (and cell state), else its carried
/// ones (`held`, checked against the batch: `mismatch` makes the error), and carries the final
/// ones on when `stateful`.
fn run_recurrent(
    rnn: &dyn RnnForward,
    held: (&mut Option<Array2<f32>>, &mut Option<Array2<f32>>),
    given: (Option<&Array2<f32>>, Option<&Array2<f32>>),
    stateful: bool,
    x: &Array3<f32>,
    padding: Padding<'_>,
    mismatch: impl Fn(usize) -> RnnError,
) -> Result<crate::RnnOutput> {
    let (state, cell) = held;
    let n = x.dim().0;
    if let Some(held) = [&*state, &*cell]
        .into_iter()
        .flatten()
        .find(|s| s.nrows() != n)
    {
        return Err(mismatch(held.nrows()));
    }
    let h0 = given.0.or(state.as_ref());
    let c0 = given.1.or(cell.as_ref());
    let out = rnn.forward_states(
        x.view(),
        h0.map(|h| h.view()),
        c0.map(|c| c.view()),
        padding,
    )?;
    if stateful {
        *state = Some(out.final_state.clone());
        *cell = out.final_cell.clone();
    }
    Ok(out)
}

fn batch_error(model: &KerasModel, index: usize, held: usize, n: usize) -> RnnError {
    RnnError::InvalidInput(format!(
        "layer {:?} holds state for a batch of {held}, this input has {n}; call reset_state first",
        model.layers()[index].name(),
    ))
}

fn into3(x: ArrayD<f32>) -> Result<Array3<f32>> {
    let shape = x.shape().to_vec();
    x.into_dimensionality::<Ix3>()
        .map_err(|_| RnnError::shape("recurrent layer input", "N × T × D", &shape))
}
