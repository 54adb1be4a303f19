//! Running a loaded Keras model on a backend, with Keras's masks and stateful streaming.

use std::sync::Arc;

use ndarray::{Array2, Array3, ArrayD, ArrayViewD, Axis, Ix3, Zip, concatenate};

use crate::activation::Activation;
use crate::backend::Backend;
use crate::error::{Result, RnnError};
use crate::gpu::GpuRnn;
use crate::gpu::model::{ResidentInput, ResidentModel};
use crate::keras::config::MergeMode;
use crate::keras::model::{KerasLayer, KerasModel};
use crate::layer::{Padding, RnnForward};

/// What a model returns: one array, or two for a model that ends in a `Bidirectional` with
/// `merge_mode=None` (forward output, then backward output).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelOutput {
    /// The model's outputs, in Keras's order.
    pub outputs: Vec<ArrayD<f32>>,
}

/// A [`KerasModel`] built on a [`Backend`]: its recurrent layers' weights uploaded once, ready
/// for any number of calls (as `model.predict`), or for streaming a long sequence in chunks.
///
/// **Stateful streaming.** Layers saved with `stateful=True` carry their final state into the
/// next call, as Keras does; [`KerasRunner::set_stateful`] turns this on for every recurrent
/// layer of any model, and [`KerasRunner::reset_state`] starts over from zeros. Feeding a
/// sequence in consecutive chunks then gives the same result as feeding it whole.
///
/// **Device-resident execution.** On a GPU backend the whole model runs on the device: the
/// input is uploaded once (token ids are checked on the host, then looked up on the GPU), every
/// layer — Embedding, Masking, SimpleRNN, Bidirectional and its merge, Dense, Activation — reads
/// and writes GPU buffers, the output is read back once, and a stateful layer's state stays on
/// the GPU between calls. Where the model's buffers for an input would pass the device's limits
/// or [`crate::GpuOptions::max_chunk_bytes`] (or the input is longer than 4096 steps, or not
/// *N* × *T* (× *D*)), the call instead runs layer by layer through the host, each recurrent
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
    /// An LSTM's carried cell state beside its state (always on the host: models with gated
    /// cells run layer by layer).
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

/// A value flowing between layers: the data, and the Keras mask over (batch, time) if any.
struct Flow {
    data: Vec<ArrayD<f32>>,
    mask: Option<Array2<bool>>,
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
            let layers = match layer {
                KerasLayer::SimpleRnn { layer, .. } => vec![layer.clone()],
                KerasLayer::Bidirectional {
                    forward, backward, ..
                } => vec![forward.clone(), backward.clone()],
                _ => Vec::new(),
            };
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

    /// Runs the model on float input: *N* × *T* × *D* for a sequence model (or the shape the
    /// model's input declares). A model that starts with an `Embedding` takes token ids here
    /// too, truncated to integers as Keras casts them.
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] when the input does not fit the model's input;
    /// [`RnnError::InvalidInput`] for a token id outside the vocabulary, or a batch size other
    /// than the one a stateful model holds state for; the recurrent layers' errors.
    pub fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ModelOutput> {
        if self.model.takes_token_ids() {
            let mut ids = Vec::with_capacity(input.len());
            for &v in input.iter() {
                // Keras casts float ids to int32, truncating toward zero.
                if !v.is_finite() || v.abs() >= 2_147_483_648.0 {
                    return Err(RnnError::InvalidInput(format!(
                        "token id {v} is not an integer in range"
                    )));
                }
                ids.push(v.trunc() as i64);
            }
            let ids = ArrayD::from_shape_vec(input.raw_dim(), ids)
                .expect("same number of elements as the input");
            return self.predict_ids(ids.view());
        }
        self.check_feature_input(input.shape())?;
        if let &[n, t, d] = input.shape() {
            let x = input.as_standard_layout();
            let x = x.as_slice().expect("standard layout");
            if let Some(out) = self.try_resident(&ResidentInput::Features { x, n, t, d })? {
                return Ok(out);
            }
        }
        self.host_path()?;
        self.run(Flow {
            data: vec![input.as_standard_layout().into_owned()],
            mask: None,
        })
    }

    /// Runs the model on integer input: token ids (*N* × *T*) for a model that starts with an
    /// `Embedding`; other models take them as numbers.
    ///
    /// # Errors
    /// As [`KerasRunner::predict`].
    pub fn predict_ids(&mut self, ids: ArrayViewD<'_, i64>) -> Result<ModelOutput> {
        let first = &self.model.layers()[0];
        let KerasLayer::Embedding {
            table, mask_zero, ..
        } = first
        else {
            let as_float = ids.mapv(|v| v as f32);
            return self.predict(as_float.view());
        };
        let want = self.model.input_shape();
        if ids.ndim() != want.len() || ids.shape().contains(&0) {
            return Err(RnnError::shape(
                "token ids",
                format!("{} axes, none empty (input shape {want:?})", want.len()),
                ids.shape(),
            ));
        }
        let (vocab, width) = table.dim();
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids.iter() {
            let row = usize::try_from(id)
                .ok()
                .filter(|&i| i < vocab)
                .ok_or_else(|| {
                    RnnError::InvalidInput(format!(
                        "token id {id} is outside the Embedding's vocabulary 0..{vocab}"
                    ))
                })?;
            rows.push(row);
        }
        let mask_zero = *mask_zero;
        if let &[n, t] = ids.shape() {
            // In range of the vocabulary, so of u32 too.
            let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            if let Some(out) = self.try_resident(&ResidentInput::Ids { ids: &ids, n, t })? {
                return Ok(out);
            }
        }
        self.host_path()?;
        let KerasLayer::Embedding { table, .. } = &self.model.layers()[0] else {
            unreachable!("checked above");
        };
        let mut data = Vec::with_capacity(rows.len() * width);
        for row in rows {
            data.extend_from_slice(table.row(row).as_slice().expect("standard layout"));
        }
        let mut shape = ids.shape().to_vec();
        shape.push(width);
        let embedded = ArrayD::from_shape_vec(shape, data).expect("one row per id");
        let mask = (mask_zero && ids.ndim() == 2).then(|| {
            ids.view()
                .into_dimensionality::<ndarray::Ix2>()
                .expect("two axes")
                .mapv(|id| id != 0)
        });
        self.run_from(
            1,
            Flow {
                data: vec![embedded],
                mask,
            },
        )
    }

    /// Runs the model device-resident when it can (a GPU backend, and buffers that fit); None
    /// when the call must take the per-layer path.
    fn try_resident(&mut self, input: &ResidentInput<'_>) -> Result<Option<ModelOutput>> {
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
        if !resident.prepare(input)? {
            return Ok(None);
        }
        let n = match *input {
            ResidentInput::Ids { n, .. } | ResidentInput::Features { n, .. } => n,
        };
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
            .map(|i| {
                self.stateful_all
                    || matches!(
                        self.model.layers()[i],
                        KerasLayer::SimpleRnn { stateful: true, .. }
                            | KerasLayer::Bidirectional { stateful: true, .. }
                    )
            })
            .collect();
        let resident = self.resident.as_mut().expect("checked above");
        let outputs = resident.run(input, &stateful)?;
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

    fn check_feature_input(&self, shape: &[usize]) -> Result<()> {
        let want = self.model.input_shape();
        let fits = shape.len() == want.len()
            && !shape.contains(&0)
            && want
                .iter()
                .zip(shape)
                .skip(want.len() - 1)
                .all(|(w, g)| w.is_none_or(|w| w == *g));
        if fits {
            Ok(())
        } else {
            Err(RnnError::shape(
                "input",
                format!(
                    "{want:?} (batch first; None is any size, none empty)",
                    want = want
                ),
                shape,
            ))
        }
    }

    fn run(&mut self, flow: Flow) -> Result<ModelOutput> {
        self.run_from(0, flow)
    }

    fn run_from(&mut self, first: usize, mut flow: Flow) -> Result<ModelOutput> {
        for index in first..self.model.layers().len() {
            flow = self.layer(index, flow)?;
        }
        Ok(ModelOutput { outputs: flow.data })
    }

    fn is_stateful(&self, index: usize) -> bool {
        self.stateful_all
            || matches!(
                self.model.layers()[index],
                KerasLayer::SimpleRnn { stateful: true, .. }
                    | KerasLayer::Bidirectional { stateful: true, .. }
            )
    }

    fn layer(&mut self, index: usize, flow: Flow) -> Result<Flow> {
        let Flow { mut data, mask } = flow;
        let x = data.swap_remove(0);
        Ok(match &self.model.layers()[index] {
            KerasLayer::Embedding { .. } => {
                return Err(RnnError::InvalidInput(
                    "an Embedding that is not the model's first layer".into(),
                ));
            }
            KerasLayer::Masking { mask_value, .. } => {
                let value = *mask_value;
                let x = x
                    .into_dimensionality::<Ix3>()
                    .map_err(|_| RnnError::InvalidInput("Masking needs N × T × D".into()))?;
                let mask = x.map_axis(Axis(2), |row| row.iter().any(|v| *v != value));
                let mut x = x;
                Zip::from(x.lanes_mut(Axis(2)))
                    .and(&mask)
                    .for_each(|mut row, &keep| {
                        if !keep {
                            // Keras multiplies by the mask: NaN and infinities stay NaN.
                            row.mapv_inplace(|v| v * 0.0);
                        }
                    });
                Flow {
                    data: vec![x.into_dyn()],
                    mask: Some(mask),
                }
            }
            KerasLayer::SimpleRnn { layer, .. } => {
                let x = into3(x)?;
                let padding = mask
                    .as_ref()
                    .map_or(Padding::None, |m| Padding::Mask(m.view()));
                let keep_mask = layer.config().return_sequences;
                let stateful = self.is_stateful(index);
                let out = run_recurrent(
                    &*self.rnns[index][0],
                    (&mut self.states[index][0], &mut self.cells[index][0]),
                    stateful,
                    &x,
                    padding,
                    |held| batch_error(&self.model, index, held, x.dim().0),
                )?;
                Flow {
                    data: vec![out.output().to_owned()],
                    mask: if keep_mask { mask } else { None },
                }
            }
            KerasLayer::Bidirectional { forward, merge, .. } => {
                let x = into3(x)?;
                let n = x.dim().0;
                let padding = mask
                    .as_ref()
                    .map_or(Padding::None, |m| Padding::Mask(m.view()));
                let return_sequences = forward.config().return_sequences;
                let mut outs = Vec::with_capacity(2);
                let stateful = self.is_stateful(index);
                for which in 0..2 {
                    let out = run_recurrent(
                        &*self.rnns[index][which],
                        (
                            &mut self.states[index][which],
                            &mut self.cells[index][which],
                        ),
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
                }
                let backward = outs.pop().expect("two outputs");
                let forward = outs.pop().expect("two outputs");
                let last = forward.ndim() - 1;
                let data = match merge {
                    MergeMode::Concat => vec![
                        concatenate(Axis(last), &[forward.view(), backward.view()])
                            .expect("same shapes but the last axis"),
                    ],
                    MergeMode::Sum => vec![forward + backward],
                    MergeMode::Mul => vec![forward * backward],
                    MergeMode::Ave => vec![(forward + backward) * 0.5],
                    MergeMode::Separate => vec![forward, backward],
                };
                Flow {
                    data,
                    mask: if return_sequences { mask } else { None },
                }
            }
            KerasLayer::Dense {
                kernel,
                bias,
                activation,
                ..
            } => {
                let shape = x.shape().to_vec();
                let mut y = rows(x).dot(kernel);
                if let Some(b) = bias {
                    y += b;
                }
                apply_rows(&mut y, *activation);
                let mut out_shape = shape;
                *out_shape.last_mut().expect("at least one axis") = kernel.ncols();
                Flow {
                    data: vec![
                        y.into_shape_with_order(out_shape)
                            .expect("same size")
                            .into_dyn(),
                    ],
                    mask,
                }
            }
            KerasLayer::Activation { activation, .. } => {
                let shape = x.shape().to_vec();
                let mut y = rows(x);
                apply_rows(&mut y, *activation);
                Flow {
                    data: vec![
                        y.into_shape_with_order(shape)
                            .expect("same size")
                            .into_dyn(),
                    ],
                    mask,
                }
            }
            KerasLayer::Dropout { .. } => Flow {
                data: vec![x],
                mask,
            },
        })
    }
}

/// Runs one recurrent layer from its carried state and cell state (`held`, checked against the
/// batch: `mismatch` makes the error), and carries the final ones on when `stateful`.
fn run_recurrent(
    rnn: &dyn RnnForward,
    held: (&mut Option<Array2<f32>>, &mut Option<Array2<f32>>),
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
    let out = rnn.forward_states(
        x.view(),
        state.as_ref().map(|h| h.view()),
        cell.as_ref().map(|c| c.view()),
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

/// The array as rows of its last axis, in standard layout.
fn rows(x: ArrayD<f32>) -> Array2<f32> {
    let width = x.shape().last().copied().unwrap_or(1).max(1);
    let count = x.len() / width;
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    x.into_shape_with_order((count, width))
        .expect("standard layout reshapes")
}

fn apply_rows(rows: &mut Array2<f32>, activation: Activation) {
    for mut row in rows.rows_mut() {
        activation.apply_row(row.as_slice_mut().expect("standard layout rows"));
    }
}
