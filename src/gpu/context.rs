//! The GPU context: device, queue, bind-group layouts and pipelines, created once and shared by
//! every model built on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use wgpu::util::DeviceExt;

use crate::activation::Activation;
use crate::error::{Result, RnnError};
use crate::gpu::plan::{PROJECTION_ROWS_TILE, PersistentShape, StepDevice, StepTile};
use crate::gpu::shaders;

/// Bytes of the parameters a kernel reads at a dynamic offset of its uniform buffer (one step's,
/// one projection dispatch's); the offsets are multiples of [`ContextInner::params_stride`].
pub(crate) const DYNAMIC_PARAMS_SIZE: u64 = 32;

/// How the recurrent steps are scheduled on the GPU.
///
/// Every strategy first projects every step of a chunk with one GEMM; they differ in how the
/// recurrence `h_t = act(P_t + h_{t-1} · U)` then runs. Under any, no kernel invocation loops
/// more than a fixed budget of iterations in one dispatch and no dispatch does more than a fixed
/// amount of work (lavapipe silently ends longer loops; real drivers reset GPUs whose dispatches
/// run for seconds): long work is cut into more dispatches, never into wrong numbers. No
/// strategy makes one workgroup wait for another (WebGPU does not promise that workgroups run
/// at the same time), so none can deadlock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepStrategy {
    /// The fastest of the others for the device and the shape: the candidates the adapter's
    /// properties allow (the persistent kernel where it runs the layer; per-step tiles sized for
    /// the adapter's type and workgroup memory, and the sliced tile) are timed on the device the
    /// first time a model runs a chunk of a shape class (layer width, batch rounded up to a
    /// power of two, row-wise activation or not), a few steps each on scratch buffers, and the
    /// fastest is kept for that adapter and class for the rest of the process. The first
    /// forward of a class pays for the timing (on lavapipe, from a few milliseconds for narrow
    /// layers to about a second at 256 rows × 512 units).
    #[default]
    Auto,
    /// One dispatch per time step, a register-tiled `h · U` with the step's bias, activation,
    /// mask and stores fused: each of 64 threads keeps up to 8 rows × 8 columns of sums in
    /// registers, reads U as vec4 without bounds checks, and shares each value of h across the
    /// workgroup; the tile is picked for *N*, *M* and the adapter's type so that one step
    /// launches enough workgroups for the device, with split-K (thread groups walking shares of
    /// the *M*-long sums, added in workgroup memory) where the batch alone gives too few.
    /// Best for large batches.
    PerStep,
    /// One dispatch per run of steps: each workgroup owns a few batch rows and loops over the
    /// steps itself, the state (and U, when it fits) in workgroup memory, as many steps per
    /// dispatch as the loop budget allows (hundreds for narrow layers, a handful at *M* = 1024).
    /// Best for small batches on devices with few compute units, where per-step launches
    /// dominate. Falls back to [`StepStrategy::PerStep`] for a layer whose one-row state does
    /// not fit the device's workgroup memory or whose one step alone passes the loop budget.
    Persistent,
    /// The per-step kernel cut for as many workgroups as the shape gives: narrow slices of U's
    /// columns (down to 4 per workgroup) with split-K over up to 64 thread groups, so that even
    /// one sequence spreads a step over *M* / 4 workgroups. The state passes between steps
    /// through device memory, one dispatch per step. For small batches on large GPUs.
    Sliced,
}

/// How to choose and use a GPU.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Which adapter to prefer when there are several.
    pub power_preference: wgpu::PowerPreference,
    /// Ask for a software adapter (lavapipe, WARP) even when a hardware one exists.
    pub force_fallback_adapter: bool,
    /// The most bytes one chunk buffer (input, projection, sequence output) may take. Work that
    /// needs more is split over time and batch, so the GPU memory of a forward is bounded by about
    /// four times this whatever the sequence length. Default:
    /// [`GpuOptions::DEFAULT_MAX_CHUNK_BYTES`]. `None`: the device's storage-binding limit.
    pub max_chunk_bytes: Option<u64>,
    /// How the recurrent steps are scheduled. Default: [`StepStrategy::Auto`].
    pub strategy: StepStrategy,
    /// Whether to use subgroup operations where the adapter has them (wgpu's `SUBGROUP`
    /// feature): the persistent kernel for layers of up to 128 units then sums its partial
    /// products by shuffles, one barrier a step instead of two. It checks once per dispatch
    /// that the subgroups are laid out as it assumes and sums through workgroup memory
    /// otherwise. `None` (the default): on GPUs, not on CPU adapters (lavapipe, WARP), whose
    /// subgroups are the SIMD lanes of one core and where the layout the shuffles need was
    /// measured slower; `Some(true)`: wherever the adapter has them; `Some(false)`: never.
    pub subgroups: Option<bool>,
}

impl GpuOptions {
    /// The default [`GpuOptions::max_chunk_bytes`]: 64 MiB, large enough that chunks of any
    /// practical batch span hundreds of steps (a submission per chunk costs little), small enough
    /// for any GPU.
    pub const DEFAULT_MAX_CHUNK_BYTES: u64 = 64 << 20;
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            max_chunk_bytes: Some(Self::DEFAULT_MAX_CHUNK_BYTES),
            strategy: StepStrategy::Auto,
            subgroups: None,
        }
    }
}

/// An adapter as [`GpuContext::adapters`] reports it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AdapterSummary {
    /// wgpu's description of the adapter (name, backend, device type, driver).
    pub info: wgpu::AdapterInfo,
    /// The limits that decide how work is split: storage binding size, buffer size, workgroups.
    pub limits: wgpu::Limits,
    /// Whether the adapter has subgroup operations (wgpu's `SUBGROUP` feature), which the
    /// persistent kernel uses on GPUs ([`GpuOptions::subgroups`]).
    pub subgroups: bool,
}

/// Owns the wgpu device and queue, the bind-group layouts and the compiled pipelines. Cheap to
/// clone (an `Arc` inside); several [`crate::GpuRnn`] models can share one.
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) options: GpuOptions,
    pub(crate) projection_layout: wgpu::BindGroupLayout,
    pub(crate) step_layout: wgpu::BindGroupLayout,
    pub(crate) softmax_layout: wgpu::BindGroupLayout,
    pub(crate) gated_layout: wgpu::BindGroupLayout,
    /// The projection GEMM: `[element-wise loads, vec4 loads]`.
    pub(crate) projection: [wgpu::ComputePipeline; 2],
    /// The row-broadcast projection GEMM for CPU adapters, the same two ways.
    pub(crate) projection_rows: [wgpu::ComputePipeline; 2],
    pub(crate) softmax: wgpu::ComputePipeline,
    /// The whole-model kernels' layouts and pipelines (`shaders/embedding.wgsl`,
    /// `elementwise.wgsl`, `reduce_axis.wgsl`, `im2col.wgsl`, `rows_activation.wgsl`).
    #[cfg(feature = "keras")]
    pub(crate) model: ModelKernels,
    step_pipeline_layout: wgpu::PipelineLayout,
    /// The per-step kernel: `[U element-wise, U as vec4]`.
    step_modules: [wgpu::ShaderModule; 2],
    persistent_module: wgpu::ShaderModule,
    /// `recurrent_resident.wgsl`, its slices summed by subgroup shuffles where the device has
    /// them ([`GpuOptions::subgroups`]).
    resident_module: wgpu::ShaderModule,
    /// Whether the resident kernel sums its slices by subgroup shuffles
    /// ([`GpuOptions::subgroups`]).
    shuffle_slices: bool,
    gated_pipeline_layout: wgpu::PipelineLayout,
    gated_module: wgpu::ShaderModule,
    gated_persistent_module: wgpu::ShaderModule,
    /// Step and persistent pipelines by what their pipeline constants hold.
    step_pipelines: RwLock<HashMap<StepKey, wgpu::ComputePipeline>>,
    /// Set by the device-lost callback: every later call fails, the device is gone.
    pub(crate) lost: Arc<Mutex<Option<String>>>,
    /// Set by an error that escaped the error scopes: the next call reports it, once.
    pub(crate) uncaptured: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Finds an adapter ([`GpuContext::chosen_adapter`] says which), opens a device with the
    /// limits the adapter actually has, and compiles the pipelines.
    ///
    /// # Errors
    /// [`RnnError::NoAdapter`] when no adapter is found or it gives no device;
    /// [`RnnError::Gpu`] when a pipeline fails to build.
    pub async fn new(options: GpuOptions) -> Result<Self> {
        let instance = instance();
        let adapter = select_adapter(&instance, &options).await?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let subgroups = options.subgroups != Some(false)
            && adapter.features().contains(wgpu::Features::SUBGROUP);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-rnn"),
                required_features: if subgroups {
                    wgpu::Features::SUBGROUP
                } else {
                    wgpu::Features::empty()
                },
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| {
                RnnError::NoAdapter(format!("adapter {:?} gave no device: {e}", info.name))
            })?;
        Self::from_device(info, device, queue, options).await
    }

    /// The adapter [`GpuContext::new`] would open with `options`, without opening it: the one
    /// whose name contains the `WGPU_ADAPTER_NAME` environment variable (case-insensitive) when
    /// it is set, else wgpu's choice for [`GpuOptions::power_preference`] (a hardware adapter
    /// before a software one).
    ///
    /// # Errors
    /// [`RnnError::NoAdapter`] when there is none, or none of that name.
    pub fn chosen_adapter(options: &GpuOptions) -> Result<wgpu::AdapterInfo> {
        let instance = instance();
        pollster::block_on(select_adapter(&instance, options)).map(|a| a.get_info())
    }

    /// [`GpuContext::new`], blocking the calling thread until it is done.
    ///
    /// # Errors
    /// As [`GpuContext::new`].
    pub fn new_blocking(options: GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new(options))
    }

    /// Every adapter wgpu finds on the backends [`GpuContext::new`] considers (Vulkan, Metal,
    /// DX12, or those `WGPU_BACKEND` names), with its limits.
    pub fn adapters() -> Vec<AdapterSummary> {
        let instance = instance();
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .map(|a| AdapterSummary {
                info: a.get_info(),
                limits: a.limits(),
                subgroups: a.features().contains(wgpu::Features::SUBGROUP),
            })
            .collect()
    }

    async fn from_device(
        info: wgpu::AdapterInfo,
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: GpuOptions,
    ) -> Result<Self> {
        let lost = Arc::new(Mutex::new(None));
        let lost_by_callback = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_by_callback.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        // wgpu panics on errors nobody captures; every operation here runs inside error scopes,
        // so one that escapes is recorded and reported by the next call instead. It does not
        // take the device: the call after that runs as usual.
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_by_error = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |error| {
            if let Ok(mut slot) = uncaptured_by_error.lock() {
                slot.get_or_insert_with(|| format!("uncaptured GPU error: {error}"));
            }
        }));

        let scope = ErrorScope::push(&device);
        let limits = device.limits();
        let projection_layout = bind_group_layout(
            &device,
            "rnn.projection.layout",
            &[
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::ReadWrite,
                Binding::DynamicUniform,
            ],
        );
        let step_layout = bind_group_layout(
            &device,
            "rnn.recurrent_step.layout",
            &[
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::DynamicUniform,
                Binding::Read,
            ],
        );
        let softmax_layout = bind_group_layout(
            &device,
            "rnn.softmax_rows.layout",
            &[
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::DynamicUniform,
                Binding::Read,
            ],
        );
        // Eight storage buffers: the most every device must offer a shader stage.
        let gated_layout = bind_group_layout(
            &device,
            "rnn.gated_step.layout",
            &[
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::DynamicUniform,
                Binding::Read,
                Binding::ReadWrite,
            ],
        );
        let gated_pipeline_layout = pipeline_layout(&device, "rnn.gated_step", &gated_layout);
        let gated_module = module(&device, "rnn.gated_step", &shaders::gated_step_module());
        let gated_persistent_module = module(
            &device,
            "rnn.gated_persistent",
            &shaders::gated_persistent_module(),
        );
        let projection_pipeline_layout =
            pipeline_layout(&device, "rnn.projection", &projection_layout);
        let projection = [("rnn.projection", false), ("rnn.projection.vec4", true)].map(
            |(label, vectorized)| {
                pipeline(
                    &device,
                    label,
                    &projection_pipeline_layout,
                    &module(&device, label, &shaders::projection_module(vectorized)),
                    &[],
                )
            },
        );
        let projection_rows = [
            ("rnn.projection_rows", false),
            ("rnn.projection_rows.vec4", true),
        ]
        .map(|(label, vectorized)| {
            pipeline(
                &device,
                label,
                &projection_pipeline_layout,
                &module(&device, label, &shaders::projection_rows_module(vectorized)),
                &[("ROWS", PROJECTION_ROWS_TILE as f64)],
            )
        });
        let softmax = pipeline(
            &device,
            "rnn.softmax_rows",
            &pipeline_layout(&device, "rnn.softmax_rows", &softmax_layout),
            &module(&device, "rnn.softmax_rows", &shaders::softmax_rows_module()),
            &[],
        );
        let step_pipeline_layout = pipeline_layout(&device, "rnn.recurrent_step", &step_layout);
        let step_modules = [
            ("rnn.recurrent_step", false),
            ("rnn.recurrent_step.vec4", true),
        ]
        .map(|(label, vectorized)| {
            module(&device, label, &shaders::recurrent_step_module(vectorized))
        });
        let persistent_module = module(
            &device,
            "rnn.recurrent_persistent",
            &shaders::recurrent_persistent_module(),
        );
        // Present only where `new` asked for it: the adapter has it and the options allow it.
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let shuffle_slices = subgroups
            && options
                .subgroups
                .unwrap_or(info.device_type != wgpu::DeviceType::Cpu);
        let resident_module = module(
            &device,
            "rnn.recurrent_resident",
            &shaders::recurrent_resident_module(subgroups),
        );
        #[cfg(feature = "keras")]
        let model = ModelKernels::new(&device);
        scope.pop().await?;

        Ok(GpuContext {
            inner: Arc::new(ContextInner {
                info,
                device,
                queue,
                limits,
                options,
                projection_layout,
                step_layout,
                softmax_layout,
                gated_layout,
                projection,
                projection_rows,
                softmax,
                #[cfg(feature = "keras")]
                model,
                step_pipeline_layout,
                step_modules,
                persistent_module,
                resident_module,
                shuffle_slices,
                gated_pipeline_layout,
                gated_module,
                gated_persistent_module,
                step_pipelines: RwLock::new(HashMap::new()),
                lost,
                uncaptured,
            }),
        })
    }

    /// The adapter this context runs on.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits of the device (those of the adapter: all of them are requested).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The options this context was built with.
    pub fn options(&self) -> &GpuOptions {
        &self.inner.options
    }

    /// True when the adapter is a CPU implementation (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// True once the device is lost (a driver reset, the GPU removed, a watchdog): every call
    /// on this context, and on the models built on it, then fails with
    /// [`RnnError::DeviceLost`]. Recover by building a new context ([`GpuContext::new`]) and
    /// the models again on it ([`crate::GpuRnn::new`], [`crate::KerasRunner::new`], ...);
    /// [`crate::Backend::gpu`] or [`crate::Backend::auto`] give a fresh one.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.lock().map(|l| l.is_some()).unwrap_or(true)
    }
}

impl ContextInner {
    /// Bytes between consecutive parameter slots of a uniform buffer read at dynamic offsets:
    /// the device's offset alignment, at least [`DYNAMIC_PARAMS_SIZE`].
    pub(crate) fn params_stride(&self) -> u64 {
        u64::from(self.limits.min_uniform_buffer_offset_alignment).max(DYNAMIC_PARAMS_SIZE)
    }

    /// The recurrent-step pipeline for a simple-cell layer (its activation, slopes per unit
    /// and clip) and a tile, with U read as vec4 when *M* is a multiple of 4, compiled on first
    /// use.
    pub(crate) fn step_pipeline(
        &self,
        layer: &crate::SimpleRnn,
        tile: StepTile,
    ) -> Result<wgpu::ComputePipeline> {
        let config = layer.config();
        let kernel = Kernel::PerStep {
            tile,
            vectorized: layer.units().is_multiple_of(4),
            unit_slopes: layer.unit_slopes().is_some(),
        };
        self.cached_pipeline(StepKey::new(config.activation, config.clip, kernel))
    }

    /// What the per-step tile is picked for on this device: the workgroups one step should
    /// launch to keep it busy, from the adapter's type (wgpu says nothing of its core count),
    /// and its workgroup memory.
    pub(crate) fn step_device(&self) -> StepDevice {
        let fill = match self.info.device_type {
            // A CPU implementation runs a workgroup per thread.
            wgpu::DeviceType::Cpu => {
                2 * std::thread::available_parallelism().map_or(2, |n| n.get() as u64)
            }
            // Two workgroups per compute unit of a large discrete GPU (100-150 of them).
            wgpu::DeviceType::DiscreteGpu => 256,
            wgpu::DeviceType::IntegratedGpu => 64,
            _ => 128,
        };
        StepDevice {
            fill,
            storage_bytes: u64::from(self.limits.max_compute_workgroup_storage_size),
        }
    }

    /// The persistent recurrent pipeline for a simple-cell layer (its activation, slopes per
    /// unit, clip and width) and a layout, compiled on first use.
    pub(crate) fn persistent_pipeline(
        &self,
        layer: &crate::SimpleRnn,
        shape: PersistentShape,
    ) -> Result<wgpu::ComputePipeline> {
        let config = layer.config();
        let kernel = Kernel::Persistent {
            row_wise: match config.activation {
                Activation::Softmax => 1,
                Activation::LogSoftmax => 2,
                _ => 0,
            },
            m: layer.units() as u32,
            shape,
            unit_slopes: layer.unit_slopes().is_some(),
        };
        self.cached_pipeline(StepKey::new(config.activation, config.clip, kernel))
    }

    /// The fused gated-step pipeline for a layer (its cell, activations and options) at
    /// `rows_per_thread`; `phase` 1 or 2 picks the half of a [`crate::Cell::GruResetBefore`]
    /// step. Compiled on first use.
    pub(crate) fn gated_pipeline(
        &self,
        layer: &crate::SimpleRnn,
        phase: u32,
        rows_per_thread: u32,
    ) -> Result<wgpu::ComputePipeline> {
        self.gated_kernel(layer, phase, rows_per_thread, None)
    }

    /// The persistent gated pipeline for a layer, `rows` batch rows per workgroup with
    /// `state_floats` floats of workgroup memory. Compiled on first use.
    pub(crate) fn gated_persistent_pipeline(
        &self,
        layer: &crate::SimpleRnn,
        rows: u32,
        state_floats: u32,
    ) -> Result<wgpu::ComputePipeline> {
        // CELL 3 runs both phases of a reset-before GRU.
        self.gated_kernel(layer, 1, 1, Some((rows, state_floats)))
    }

    fn gated_kernel(
        &self,
        layer: &crate::SimpleRnn,
        phase: u32,
        rows_per_thread: u32,
        persistent: Option<(u32, u32)>,
    ) -> Result<wgpu::ComputePipeline> {
        let config = layer.config();
        let cell = match (layer.cell(), phase) {
            (crate::Cell::GruResetBefore, _) => 2 + phase,
            // A projected LSTM's second phase: the projection.
            (crate::Cell::Lstm, 2) => 5,
            (cell, _) => cell.shader_code(),
        };
        let bits = |a: Activation| {
            let (alpha, beta) = a.shader_params();
            [a.shader_code(), alpha.to_bits(), beta.to_bits()]
        };
        let kernel = Kernel::Gated {
            cell,
            rec: bits(config.recurrent_activation),
            out: bits(config.cell_output_activation()),
            input_forget: config.input_forget,
            has_vector: layer.peepholes().is_some() || layer.recurrent_bias().is_some(),
            rows_per_thread,
            persistent,
            width: layer.projection().map_or(0, |p| p.ncols() as u32),
        };
        self.cached_pipeline(StepKey::new(config.activation, config.clip, kernel))
    }

    #[cfg(feature = "keras")]
    /// The rows-activation pipeline for an activation (elementwise, softmax or log-softmax),
    /// compiled on first use.
    pub(crate) fn rows_pipeline(&self, activation: Activation) -> Result<wgpu::ComputePipeline> {
        let row_wise = match activation {
            Activation::Softmax => 1,
            Activation::LogSoftmax => 2,
            _ => 0,
        };
        self.cached_pipeline(StepKey::new(activation, None, Kernel::Rows { row_wise }))
    }

    fn cached_pipeline(&self, key: StepKey) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.step_pipelines.read().map_err(poisoned)?.get(&key) {
            return Ok(p.clone());
        }
        let mut pipelines = self.step_pipelines.write().map_err(poisoned)?;
        // Another thread may have built it between the two locks.
        if let Some(p) = pipelines.get(&key) {
            return Ok(p.clone());
        }
        let mut constants = vec![
            ("ACTIVATION", f64::from(key.code)),
            ("ACT_ALPHA", f64::from(f32::from_bits(key.alpha))),
            ("ACT_BETA", f64::from(f32::from_bits(key.beta))),
            ("ACT_GAMMA", f64::from(f32::from_bits(key.gamma))),
            ("CLIP", f64::from(f32::from_bits(key.clip))),
        ];
        let (label, module, layout) = match key.kernel {
            Kernel::PerStep {
                tile,
                vectorized,
                unit_slopes,
            } => {
                constants.extend([
                    ("UNIT_SLOPES", f64::from(u8::from(unit_slopes))),
                    ("ROWS", f64::from(tile.rows)),
                    ("QUADS", f64::from(tile.quads)),
                    ("SPLIT", f64::from(tile.split)),
                    ("PARTIAL", tile.partial_quads() as f64),
                ]);
                (
                    "rnn.recurrent_step",
                    &self.step_modules[usize::from(vectorized)],
                    &self.step_pipeline_layout,
                )
            }
            // The resident kernel never reduces rows (`persistent_shape`).
            Kernel::Persistent {
                m,
                shape,
                unit_slopes,
                ..
            } if shape.resident => {
                let m = m as usize;
                constants.extend([
                    ("UNIT_SLOPES", f64::from(u8::from(unit_slopes))),
                    ("ROWS", f64::from(shape.rows)),
                    ("SLICES", shape.slices(m) as f64),
                    ("QUADS", shape.quads(m) as f64),
                    ("STATE_QUADS", (shape.state_floats(m) / 4) as f64),
                    ("PARTIALS", shape.partials(m) as f64),
                    ("SHUFFLED", f64::from(u8::from(self.shuffle_slices))),
                ]);
                (
                    "rnn.recurrent_resident",
                    &self.resident_module,
                    &self.step_pipeline_layout,
                )
            }
            Kernel::Persistent {
                row_wise,
                m,
                shape,
                unit_slopes,
            } => {
                let m = u64::from(m);
                let u_quads = if shape.u_shared { m * m.div_ceil(4) } else { 1 };
                constants.extend([
                    ("UNIT_SLOPES", f64::from(u8::from(unit_slopes))),
                    ("ROW_WISE", f64::from(row_wise)),
                    ("ROWS", f64::from(shape.rows)),
                    ("STATE_FLOATS", shape.state_floats(m as usize) as f64),
                    ("U_SHARED", f64::from(u8::from(shape.u_shared))),
                    ("U_QUADS", u_quads as f64),
                ]);
                (
                    "rnn.recurrent_persistent",
                    &self.persistent_module,
                    &self.step_pipeline_layout,
                )
            }
            Kernel::Gated {
                cell,
                rec,
                out,
                input_forget,
                has_vector,
                rows_per_thread,
                persistent,
                width,
            } => {
                constants.extend([
                    ("CELL", f64::from(cell)),
                    ("REC_ACTIVATION", f64::from(rec[0])),
                    ("REC_ALPHA", f64::from(f32::from_bits(rec[1]))),
                    ("REC_BETA", f64::from(f32::from_bits(rec[2]))),
                    ("OUT_ACTIVATION", f64::from(out[0])),
                    ("OUT_ALPHA", f64::from(f32::from_bits(out[1]))),
                    ("OUT_BETA", f64::from(f32::from_bits(out[2]))),
                    ("INPUT_FORGET", f64::from(u8::from(input_forget))),
                    ("HAS_VECTOR", f64::from(u8::from(has_vector))),
                    ("ROWS_PER_THREAD", f64::from(rows_per_thread)),
                    ("WIDTH", f64::from(width)),
                ]);
                match persistent {
                    Some((rows, state_floats)) => {
                        constants.extend([
                            ("ROWS", f64::from(rows)),
                            ("STATE_FLOATS", f64::from(state_floats)),
                        ]);
                        (
                            "rnn.gated_persistent",
                            &self.gated_persistent_module,
                            &self.gated_pipeline_layout,
                        )
                    }
                    None => (
                        "rnn.gated_step",
                        &self.gated_module,
                        &self.gated_pipeline_layout,
                    ),
                }
            }
            #[cfg(feature = "keras")]
            Kernel::Rows { row_wise } => {
                // The rows kernel has no clip.
                constants.retain(|(name, _)| *name != "CLIP");
                constants.push(("ROW_WISE", f64::from(row_wise)));
                (
                    "model.rows_activation",
                    &self.model.rows_module,
                    &self.model.rows_pipeline_layout,
                )
            }
        };
        let scope = ErrorScope::push(&self.device);
        let built = pipeline(&self.device, label, layout, module, &constants);
        pollster::block_on(scope.pop())?;
        pipelines.insert(key, built.clone());
        Ok(built)
    }

    /// A read-only storage buffer holding `data`: weights, uploaded once per model.
    pub(crate) fn upload_weights(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    /// Keeps `error` for the next [`ContextInner::check_alive`] to report, as an error that
    /// escaped the error scopes is (a failure inside a call that cannot return one).
    pub(crate) fn keep_error(&self, error: RnnError) {
        if let Ok(mut slot) = self.uncaptured.lock() {
            slot.get_or_insert_with(|| error.to_string());
        }
    }

    /// Fails if the device was lost (always, from then on), or once after an error escaped
    /// the error scopes.
    pub(crate) fn check_alive(&self) -> Result<()> {
        if let Some(message) = self.lost.lock().map_err(poisoned)?.as_ref() {
            return Err(RnnError::DeviceLost(format!(
                "{message} (build a new GpuContext and the models on it)"
            )));
        }
        match self.uncaptured.lock().map_err(poisoned)?.take() {
            Some(message) => Err(RnnError::Gpu(message)),
            None => Ok(()),
        }
    }
}

#[cfg(feature = "keras")]
/// The layouts and fixed pipelines of the kernels a device-resident model adds to the recurrent
/// ones; the rows-activation pipelines depend on the activation and are built on first use by
/// [`ContextInner::rows_pipeline`].
pub(crate) struct ModelKernels {
    pub(crate) embedding_layout: wgpu::BindGroupLayout,
    pub(crate) elementwise_layout: wgpu::BindGroupLayout,
    pub(crate) reduce_layout: wgpu::BindGroupLayout,
    pub(crate) im2col_layout: wgpu::BindGroupLayout,
    pub(crate) rows_layout: wgpu::BindGroupLayout,
    pub(crate) embedding: wgpu::ComputePipeline,
    pub(crate) elementwise: wgpu::ComputePipeline,
    pub(crate) reduce: wgpu::ComputePipeline,
    pub(crate) im2col: wgpu::ComputePipeline,
    rows_pipeline_layout: wgpu::PipelineLayout,
    rows_module: wgpu::ShaderModule,
}

#[cfg(feature = "keras")]
impl ModelKernels {
    fn new(device: &wgpu::Device) -> Self {
        use Binding::{Read, ReadWrite, Uniform};
        let embedding_layout = bind_group_layout(
            device,
            "model.embedding.layout",
            &[Read, Read, ReadWrite, ReadWrite, Uniform],
        );
        let elementwise_layout = bind_group_layout(
            device,
            "model.elementwise.layout",
            &[ReadWrite, Read, Read, Read, Uniform],
        );
        let reduce_layout = bind_group_layout(
            device,
            "model.reduce_axis.layout",
            &[ReadWrite, Read, Uniform],
        );
        let im2col_layout =
            bind_group_layout(device, "model.im2col.layout", &[Read, ReadWrite, Uniform]);
        let rows_layout = bind_group_layout(
            device,
            "model.rows_activation.layout",
            &[ReadWrite, Uniform],
        );
        let fixed = |label: &str, layout: &wgpu::BindGroupLayout, source: &str| {
            pipeline(
                device,
                label,
                &pipeline_layout(device, label, layout),
                &module(device, label, source),
                &[],
            )
        };
        ModelKernels {
            embedding: fixed("model.embedding", &embedding_layout, shaders::EMBEDDING),
            elementwise: fixed(
                "model.elementwise",
                &elementwise_layout,
                shaders::ELEMENTWISE,
            ),
            reduce: fixed("model.reduce_axis", &reduce_layout, shaders::REDUCE_AXIS),
            im2col: fixed("model.im2col", &im2col_layout, shaders::IM2COL),
            rows_pipeline_layout: pipeline_layout(device, "model.rows_activation", &rows_layout),
            rows_module: module(
                device,
                "model.rows_activation",
                &shaders::rows_activation_module(),
            ),
            embedding_layout,
            elementwise_layout,
            reduce_layout,
            im2col_layout,
            rows_layout,
        }
    }
}

/// What a step pipeline's constants hold (floats by their bits, so the key can be hashed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct StepKey {
    code: u32,
    alpha: u32,
    beta: u32,
    gamma: u32,
    clip: u32,
    kernel: Kernel,
}

/// Which recurrent kernel, with the constants only it has.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kernel {
    /// `recurrent_step.wgsl`; `unit_slopes`: the activation's slope per unit follows U.
    PerStep {
        tile: StepTile,
        vectorized: bool,
        unit_slopes: bool,
    },
    /// `recurrent_persistent.wgsl`, or `recurrent_resident.wgsl` for a resident `shape`, with
    /// `unit_slopes` as for `PerStep`.
    Persistent {
        row_wise: u32,
        m: u32,
        shape: PersistentShape,
        unit_slopes: bool,
    },
    /// `rows_activation.wgsl`.
    #[cfg(feature = "keras")]
    Rows { row_wise: u32 },
    /// `gated_step.wgsl` or `gated_persistent.wgsl`: the cell (or phase), the gates' and the
    /// cell state's activations (code, alpha and beta, floats by their bits), the options, the
    /// rows per thread, the persistent layout.
    Gated {
        cell: u32,
        rec: [u32; 3],
        out: [u32; 3],
        input_forget: bool,
        has_vector: bool,
        rows_per_thread: u32,
        /// `gated_persistent.wgsl`'s rows per workgroup and workgroup floats, or `None` for
        /// `gated_step.wgsl`.
        persistent: Option<(u32, u32)>,
        /// A projected LSTM's state width *P*, else 0.
        width: u32,
    },
}

impl StepKey {
    fn new(activation: Activation, clip: Option<f32>, kernel: Kernel) -> Self {
        let (alpha, beta) = activation.shader_params();
        StepKey {
            code: activation.shader_code(),
            alpha: alpha.to_bits(),
            beta: beta.to_bits(),
            gamma: activation.shader_gamma().to_bits(),
            clip: clip.unwrap_or(0.0).to_bits(),
            kernel,
        }
    }
}

pub(crate) fn poisoned<T>(_: T) -> RnnError {
    RnnError::Gpu("a lock was poisoned by a panic in another thread".into())
}

/// Validation and out-of-memory scopes pushed together and popped together, so that a wgpu error
/// becomes an [`RnnError`] instead of a panic.
pub(crate) struct ErrorScope {
    validation: wgpu::ErrorScopeGuard,
    memory: wgpu::ErrorScopeGuard,
}

impl ErrorScope {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        ErrorScope { validation, memory }
    }

    pub(crate) async fn pop(self) -> Result<()> {
        let memory = self.memory.pop().await;
        let validation = self.validation.pop().await;
        match (memory, validation) {
            (Some(e), _) => Err(RnnError::Gpu(format!("out of GPU memory: {e}"))),
            (None, Some(e)) => Err(RnnError::Gpu(e.to_string())),
            (None, None) => Ok(()),
        }
    }
}

/// The environment variable that names the adapter to use (as wgpu's own examples read it).
pub const ADAPTER_NAME_VARIABLE: &str = "WGPU_ADAPTER_NAME";

/// The adapter named by [`ADAPTER_NAME_VARIABLE`], or wgpu's choice for `options`.
async fn select_adapter(instance: &wgpu::Instance, options: &GpuOptions) -> Result<wgpu::Adapter> {
    if let Some(wanted) = adapter_name_from_env() {
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .ok_or_else(|| {
                RnnError::NoAdapter(format!(
                    "{ADAPTER_NAME_VARIABLE}={wanted:?} names none of the adapters found: {names:?}"
                ))
            });
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: options.power_preference,
            force_fallback_adapter: options.force_fallback_adapter,
            compatible_surface: None,
            apply_limit_buckets: false,
        })
        .await
        .map_err(|e| {
            RnnError::NoAdapter(format!(
                "{e} (on a headless Linux machine, install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)"
            ))
        })
}

/// [`ADAPTER_NAME_VARIABLE`], lowercased, when set and not empty.
pub(crate) fn adapter_name_from_env() -> Option<String> {
    std::env::var(ADAPTER_NAME_VARIABLE)
        .ok()
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
}

/// Vulkan, Metal, DX12 (and WebGPU in a browser) unless `WGPU_BACKEND` names others: the GL
/// backend's compute support is thin, and its EGL probing is noisy on headless machines.
///
/// No display handle is given, but on Linux a headless run may still print `error:
/// XDG_RUNTIME_DIR is invalid or not set in the environment.` (twice, on stderr). It is not
/// ours and not a failure: wgpu-hal 30 enables every window-system instance extension the
/// Vulkan loader offers (`desired_extensions`, whatever the flags or display handle), Mesa's
/// implicit device-select layer sees `VK_KHR_wayland_surface` enabled and calls
/// `wl_display_connect` to find the compositor's GPU, and libwayland prints the line. wgpu has no
/// option to leave those extensions out: its one hook, `vulkan::Instance::init_with_callback`,
/// forbids removing any, and building the `VkInstance` ourselves (`Instance::from_raw`) carries
/// the same requirement. Silencing stderr or changing the environment would hide or alter what
/// the caller's own process does, so the crate does neither; `NODEVICE_SELECT=1` (the layer's
/// own switch) quiets it for a user who wants that (README, "No GPU?").
fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc.with_env())
}

#[derive(Clone, Copy)]
enum Binding {
    Read,
    ReadWrite,
    // Only the whole-model kernels take a plain uniform.
    #[cfg_attr(not(feature = "keras"), allow(dead_code))]
    Uniform,
    DynamicUniform,
}

fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    bindings: &[Binding],
) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match b {
                Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: matches!(b, Binding::Read),
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::Uniform | Binding::DynamicUniform => {
                    let dynamic = matches!(b, Binding::DynamicUniform);
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: dynamic,
                        // The model kernels' parameters differ in size; each bind group is
                        // checked against its shader's.
                        min_binding_size: if dynamic {
                            wgpu::BufferSize::new(DYNAMIC_PARAMS_SIZE)
                        } else {
                            None
                        },
                    }
                }
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

fn pipeline_layout(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
) -> wgpu::PipelineLayout {
    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    })
}

fn module(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

fn pipeline(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::PipelineLayout,
    module: &wgpu::ShaderModule,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            // Every kernel writes its workgroup memory before reading it.
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}
