//! How the steps of a chunk run, and [`StepStrategy::Auto`]'s choice: the candidates the
//! adapter's properties allow (the persistent kernel where it runs the layer, the per-step tiles
//! of [`step_tile_candidates`]; for a gated cell, its persistent kernel and the fused step)
//! timed once on the device, the fastest kept for that adapter and shape class for the rest of
//! the process.
//!
//! A model decides once per batch size and keeps the decision ([`StepPlans`]), so that the
//! parameters, the dispatches and the index of the final state of a forward always agree.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cell::Cell;
use crate::error::{Result, RnnError};
use crate::gpu::context::{ContextInner, ErrorScope, StepStrategy, poisoned};
use crate::gpu::plan::{
    StepDevice, StepTile, grid, measure_steps, step_tile, step_tile_candidates,
};
use crate::gpu::rnn::{GpuRnn, StepParams, bind_group, dynamic_params};
use crate::layer::SimpleRnn;

/// How the steps of a chunk run: the persistent kernel, or one per-step dispatch with a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StepChoice {
    Persistent,
    Tiled(StepTile),
}

/// Batch sizes a model remembers its decision for; past this many, the oldest are forgotten
/// (the adapter-wide cache still answers for them).
const MAX_REMEMBERED_SIZES: usize = 64;

/// A model's decisions per batch size, and the per-step tile that runs any size (one row's,
/// whose loop fits the budget at the layer's width whatever the batch).
pub(crate) struct StepPlans {
    fallback: (StepTile, wgpu::ComputePipeline),
    chosen: Mutex<HashMap<usize, StepChoice>>,
}

impl StepPlans {
    pub(crate) fn new(fallback: (StepTile, wgpu::ComputePipeline)) -> Self {
        StepPlans {
            fallback,
            chosen: Mutex::new(HashMap::new()),
        }
    }

    /// The tile that runs any batch, and its pipeline.
    pub(crate) fn fallback(&self) -> (StepTile, wgpu::ComputePipeline) {
        self.fallback.clone()
    }

    /// The pipeline of `tile` for `layer`; if it cannot be built, the error is kept for the
    /// forward to report and the fallback tile runs instead.
    pub(crate) fn pipeline(
        &self,
        inner: &ContextInner,
        layer: &SimpleRnn,
        tile: StepTile,
    ) -> (StepTile, wgpu::ComputePipeline) {
        if tile == self.fallback.0 {
            return self.fallback();
        }
        match inner.step_pipeline(layer, tile) {
            Ok(pipeline) => (tile, pipeline),
            Err(e) => {
                inner.keep_error(e);
                self.fallback()
            }
        }
    }

    /// `rnn`'s decision for chunks of `nb` rows: made on the first call for that size (timing
    /// the candidates under [`StepStrategy::Auto`] unless the adapter already did), the same
    /// ever after.
    pub(crate) fn choice(&self, rnn: &GpuRnn, nb: usize) -> StepChoice {
        if let Some(c) = self.chosen.lock().ok().and_then(|c| c.get(&nb).copied()) {
            return c;
        }
        let decided = decide(rnn, nb);
        match self.chosen.lock() {
            Ok(mut chosen) => {
                if chosen.len() >= MAX_REMEMBERED_SIZES && !chosen.contains_key(&nb) {
                    chosen.clear();
                }
                // Another thread may have decided meanwhile: its decision stands.
                *chosen.entry(nb).or_insert(decided)
            }
            Err(_) => decided,
        }
    }

    /// Makes `choice` the decision for `nb` rows (tests run every tile through it).
    #[cfg(test)]
    pub(crate) fn force(&self, nb: usize, choice: StepChoice) {
        self.chosen.lock().unwrap().insert(nb, choice);
    }
}

/// The decision for `nb` rows under the context's strategy.
fn decide(rnn: &GpuRnn, nb: usize) -> StepChoice {
    let inner = &*rnn.context().inner;
    if rnn.layer().cell() != Cell::Simple {
        // A gated cell: the persistent kernel or the fused step (whose tile is fixed; the
        // fallback tile stands for it).
        let fused = StepChoice::Tiled(rnn.plans.fallback().0);
        let persistent = rnn.gated_persistent_if(nb, true).is_some();
        return match inner.options.strategy {
            StepStrategy::Auto if persistent => measured(rnn, nb, &[StepChoice::Persistent, fused])
                .unwrap_or_else(|e| {
                    inner.keep_error(e);
                    fused
                }),
            _ => fused,
        };
    }
    let m = rnn.layer().units();
    let device = inner.step_device();
    let tiled = StepChoice::Tiled(step_tile(nb, m, device).unwrap_or(rnn.plans.fallback().0));
    let persistent = rnn.persistent_steps(nb).is_some();
    match inner.options.strategy {
        StepStrategy::PerStep => tiled,
        StepStrategy::Sliced => StepChoice::Tiled(sliced_tile(nb, m, device, &rnn.plans)),
        StepStrategy::Persistent if persistent => StepChoice::Persistent,
        StepStrategy::Persistent => tiled,
        StepStrategy::Auto => {
            // The tiles of the class (the batch rounded up to a power of two), so that every
            // batch of a class chooses among the same ones.
            let class_rows = nb.next_power_of_two();
            let mut candidates: Vec<StepChoice> = Vec::new();
            if persistent {
                candidates.push(StepChoice::Persistent);
            }
            candidates.extend(
                step_tile_candidates(class_rows, m, device)
                    .into_iter()
                    .map(StepChoice::Tiled),
            );
            let sliced = StepChoice::Tiled(sliced_tile(class_rows, m, device, &rnn.plans));
            if !candidates.contains(&sliced) {
                candidates.push(sliced);
            }
            match candidates.as_slice() {
                [] => tiled,
                [only] => *only,
                _ => measured(rnn, nb, &candidates).unwrap_or_else(|e| {
                    inner.keep_error(e);
                    tiled
                }),
            }
        }
    }
}

/// [`StepStrategy::Sliced`]'s tile: the per-step tile for a device that wants as many
/// workgroups as the shape gives (split-K over up to 64 thread groups, narrow column slices).
pub(crate) fn sliced_tile(nb: usize, m: usize, device: StepDevice, plans: &StepPlans) -> StepTile {
    step_tile(
        nb,
        m,
        StepDevice {
            fill: u64::MAX,
            ..device
        },
    )
    .unwrap_or(plans.fallback().0)
}

/// What the adapter-wide cache is keyed by: the adapter, the cell, the layer width, the batch rounded up
/// to a power of two, whether the activation reduces each row (softmax), whether the
/// persistent kernel was a candidate, and whether subgroups were allowed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ShapeClass {
    adapter: String,
    cell: Cell,
    m: usize,
    rows: usize,
    row_wise: bool,
    persistent: bool,
    subgroups: Option<bool>,
}

/// Decisions by adapter and shape class, for every context of the process.
fn cache() -> &'static Mutex<HashMap<ShapeClass, StepChoice>> {
    static CACHE: OnceLock<Mutex<HashMap<ShapeClass, StepChoice>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// About how long one timed run of a candidate may take: enough steps that launches, barriers
/// and a persistent dispatch's staging weigh as in a long sequence, few enough that the
/// measurement stays small beside a forward.
const MEASURE_TARGET: Duration = Duration::from_millis(20);

/// The fastest of `candidates` for `nb` rows on this adapter: from the cache, or timed now.
fn measured(rnn: &GpuRnn, nb: usize, candidates: &[StepChoice]) -> Result<StepChoice> {
    let inner = &*rnn.context().inner;
    let info = &inner.info;
    let class = ShapeClass {
        adapter: format!(
            "{:?} {:04x}:{:04x} {} {} {}",
            info.backend, info.vendor, info.device, info.name, info.driver, info.driver_info
        ),
        cell: rnn.layer().cell(),
        m: rnn.layer().units(),
        rows: nb.next_power_of_two(),
        row_wise: rnn.layer().config().activation.is_row_wise(),
        persistent: candidates.contains(&StepChoice::Persistent),
        subgroups: inner.options.subgroups,
    };
    if let Some(c) = cache().lock().map_err(poisoned)?.get(&class) {
        return Ok(*c);
    }
    // The simple cell's steps run on scratch bind groups of its own; a gated cell's on a
    // scratch workspace.
    let bench = match rnn.layer().cell() {
        Cell::Simple => Some(Bench::new(rnn, nb)?),
        _ => None,
    };
    let time = |choice: StepChoice, steps: usize| match &bench {
        Some(bench) => bench.time(choice, steps),
        None => rnn.time_gated_steps(nb, steps, choice == StepChoice::Persistent),
    };
    // One step each, twice: the first compiles the kernels (llvmpipe compiles at the first
    // dispatch), the second gives the scale; candidates four times slower than the best are not
    // timed further.
    let mut first = Vec::with_capacity(candidates.len());
    for c in candidates {
        time(*c, 1)?;
        first.push(time(*c, 1)?);
    }
    let best_first = first.iter().min().copied().unwrap_or_default();
    let most = measure_steps(nb, rnn.layer().units() * rnn.layer().cell().gates());
    let steps = (MEASURE_TARGET.as_secs_f64() / best_first.as_secs_f64().max(1e-6))
        .clamp(1.0, most as f64) as usize;
    let mut timed: Vec<(StepChoice, Duration)> = candidates
        .iter()
        .zip(&first)
        .filter(|(_, t)| **t <= best_first * 4)
        .map(|(c, _)| (*c, Duration::MAX))
        .collect();
    for _round in 0..2 {
        for (c, best) in timed.iter_mut() {
            *best = (*best).min(time(*c, steps)?);
        }
    }
    let choice = timed
        .iter()
        .min_by_key(|(_, t)| *t)
        .map(|(c, _)| *c)
        .ok_or_else(|| RnnError::Gpu("no step schedule could be timed".into()))?;
    cache().lock().map_err(poisoned)?.insert(class, choice);
    Ok(choice)
}

/// Scratch buffers for timing the steps of `nb` rows: a zero projection of as many steps as
/// [`measure_steps`] allows, two states, and the step parameters; the layer's own U.
struct Bench<'a> {
    rnn: &'a GpuRnn,
    nb: usize,
    params: wgpu::Buffer,
    stride: u64,
    step: [wgpu::BindGroup; 2],
    softmax: [wgpu::BindGroup; 2],
}

impl<'a> Bench<'a> {
    fn new(rnn: &'a GpuRnn, nb: usize) -> Result<Self> {
        let inner = &*rnn.context().inner;
        let m = rnn.layer().units() as u64;
        let scope = ErrorScope::push(&inner.device);
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4),
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let rows = nb as u64 * m;
        let steps = measure_steps(nb, m as usize);
        let projected = buffer("rnn.auto.projected", 4 * steps as u64 * rows, U::STORAGE);
        let state = [0, 1].map(|_| buffer("rnn.auto.state", 4 * rows, U::STORAGE));
        let sequence = buffer("rnn.auto.sequence", 4, U::STORAGE);
        let mask = buffer("rnn.auto.mask", 4, U::STORAGE);
        let stride = inner.params_stride();
        let params = buffer(
            "rnn.auto.step_params",
            rnn.params_slots(steps) * stride,
            U::UNIFORM | U::COPY_DST,
        );
        let step = [0, 1].map(|i| {
            bind_group(
                inner,
                "rnn.auto.step.bind",
                &inner.step_layout,
                &[
                    rnn.recurrent_kernel_buffer().as_entire_binding(),
                    projected.as_entire_binding(),
                    state[i].as_entire_binding(),
                    state[1 - i].as_entire_binding(),
                    sequence.as_entire_binding(),
                    dynamic_params(&params),
                    mask.as_entire_binding(),
                ],
            )
        });
        let softmax = [0, 1].map(|i| {
            bind_group(
                inner,
                "rnn.auto.softmax.bind",
                &inner.softmax_layout,
                &[
                    state[i].as_entire_binding(),
                    sequence.as_entire_binding(),
                    dynamic_params(&params),
                    mask.as_entire_binding(),
                ],
            )
        });
        pollster::block_on(scope.pop())?;
        Ok(Bench {
            rnn,
            nb,
            params,
            stride,
            step,
            softmax,
        })
    }

    /// Runs `steps` steps of `choice` in one submission and waits for them: the wall time.
    fn time(&self, choice: StepChoice, steps: usize) -> Result<Duration> {
        let rnn = self.rnn;
        let inner = &*rnn.context().inner;
        let (nb, m) = (self.nb, rnn.layer().units());
        let most = u64::from(inner.limits.max_compute_workgroups_per_dimension);
        let slot = |step: usize, count: usize| StepParams {
            n: nb as u32,
            m: m as u32,
            step: step as u32,
            flags: 0,
            t_len: steps as u32,
            count: count as u32,
            k_begin: 0,
            k_end: m as u32,
        };
        let slots: Vec<StepParams> = match choice {
            StepChoice::Persistent => {
                let per = rnn.persistent_steps(nb).unwrap_or(1);
                (0..steps)
                    .step_by(per)
                    .map(|s| slot(s, per.min(steps - s)))
                    .collect()
            }
            StepChoice::Tiled(_) => (0..steps).map(|s| slot(s, 1)).collect(),
        };
        let stride = self.stride as usize;
        let mut bytes = vec![0u8; slots.len() * stride];
        for (i, p) in slots.iter().enumerate() {
            bytes[i * stride..i * stride + std::mem::size_of::<StepParams>()]
                .copy_from_slice(bytemuck::bytes_of(p));
        }
        inner.queue.write_buffer(&self.params, 0, &bytes);

        timed_pass(inner, "rnn.auto", |pass| {
            let mut current = 0;
            match choice {
                StepChoice::Persistent => {
                    let Some((shape, pipeline)) = rnn.persistent_kernel() else {
                        return Err(RnnError::Gpu("the persistent kernel was not built".into()));
                    };
                    let (x, y) = grid((nb as u64).div_ceil(u64::from(shape.rows)), most);
                    pass.set_pipeline(pipeline);
                    for i in 0..slots.len() {
                        pass.set_bind_group(0, &self.step[current], &[(i * stride) as u32]);
                        pass.dispatch_workgroups(x, y, 1);
                        current = 1 - current;
                    }
                }
                StepChoice::Tiled(tile) => {
                    let (tile, pipeline) = rnn.plans.pipeline(inner, rnn.layer(), tile);
                    let (x, y, z) = tile.workgroups(nb, m, most);
                    let softmax = rnn.layer().config().activation.is_row_wise();
                    let (sx, sy) = grid(nb as u64, most);
                    for i in 0..steps {
                        let offset = (i * stride) as u32;
                        pass.set_pipeline(&pipeline);
                        pass.set_bind_group(0, &self.step[current], &[offset]);
                        pass.dispatch_workgroups(x, y, z);
                        current = 1 - current;
                        if softmax {
                            pass.set_pipeline(&inner.softmax);
                            pass.set_bind_group(0, &self.softmax[current], &[offset]);
                            pass.dispatch_workgroups(sx, sy, 1);
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

/// Encodes one compute pass with `encode`, submits it alone and waits for it: the wall time
/// from the submission.
pub(crate) fn timed_pass(
    inner: &ContextInner,
    label: &str,
    encode: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<()>,
) -> Result<Duration> {
    let scope = ErrorScope::push(&inner.device);
    let mut encoder = inner
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        encode(&mut pass)?;
    }
    let start = Instant::now();
    inner.queue.submit([encoder.finish()]);
    inner
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| RnnError::Gpu(format!("waiting for the GPU: {e}")))?;
    let elapsed = start.elapsed();
    pollster::block_on(scope.pop())?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array3};

    use super::*;
    use crate::gpu::plan::STEP_MAX_TILE;
    use crate::{CpuRnn, GpuContext, GpuOptions, SimpleRnnConfig};

    fn context() -> GpuContext {
        GpuContext::new_blocking(GpuOptions {
            strategy: StepStrategy::PerStep,
            ..Default::default()
        })
        .expect("GPU tests need an adapter (apt-get install mesa-vulkan-drivers)")
    }

    /// Deterministic values in [-scale, scale] that do not repeat along any axis.
    fn wave(i: usize, scale: f32) -> f32 {
        ((i as f32 * 0.7548777).fract() * 2.0 - 1.0) * scale
    }

    /// Runs `(n, t, d, m)` through the CPU path and through the GPU with each of `choices`
    /// forced, comparing the sequence and the final state at the crate's tolerance.
    fn check(ctx: &GpuContext, (n, t, d, m): (usize, usize, usize, usize), choices: &[StepChoice]) {
        let kernel =
            Array2::from_shape_fn((d, m), |(i, j)| wave(i * m + j, 1.0 / (d as f32).sqrt()));
        let recurrent = Array2::from_shape_fn((m, m), |(i, j)| {
            wave(7 + i * m + j, 1.0 / (m as f32).sqrt())
        });
        let bias = Array1::from_shape_fn(m, |j| wave(3 + j, 0.1));
        let config = SimpleRnnConfig {
            return_sequences: true,
            ..Default::default()
        };
        let layer = SimpleRnn::new(kernel, recurrent, Some(bias), config).unwrap();
        let x = Array3::from_shape_fn((n, t, d), |(a, b, c)| wave(a * 31 + b * 17 + c, 1.5));
        let h0 = Array2::from_shape_fn((n, m), |(a, b)| wave(5 + a * m + b, 1.0));
        let cpu = CpuRnn::new(layer.clone())
            .forward(x.view(), Some(h0.view()))
            .unwrap();
        for choice in choices {
            let model = GpuRnn::new(ctx, layer.clone()).unwrap();
            model.plans.force(n, *choice);
            let got = model.forward(x.view(), Some(h0.view())).unwrap();
            for (what, g, c) in [
                ("sequence", got.output(), cpu.output()),
                (
                    "state",
                    got.final_state.view().into_dyn(),
                    cpu.final_state.view().into_dyn(),
                ),
            ] {
                for (i, (g, c)) in g.iter().zip(c.iter()).enumerate() {
                    assert!(
                        (g - c).abs() <= 1e-4 * c.abs().max(1.0),
                        "{choice:?} N={n} T={t} D={d} M={m} {what}[{i}]: {g} vs {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_tile_shape_matches_the_cpu_path() {
        let ctx = context();
        // Every well-formed tile on short runs, at widths that are and are not multiples of 4
        // (vec4 and element-wise loads) and batches that are and are not multiples of the rows.
        for shape in [(5, 3, 6, 67), (19, 2, 4, 128), (1, 3, 5, 9)] {
            let m = shape.3 as u64;
            let mut tiles = Vec::new();
            for rows in [1, 2, 4, 8, 16] {
                for quads in [1, 2, 4] {
                    for split in [1, 2, 4, 16, 64] {
                        let tile = StepTile { rows, quads, split };
                        if rows * quads <= STEP_MAX_TILE && tile.fits(m, 16 << 10) {
                            tiles.push(StepChoice::Tiled(tile));
                        }
                    }
                }
            }
            assert!(tiles.len() > 20, "{}", tiles.len());
            check(&ctx, shape, &tiles);
        }
    }

    #[test]
    fn the_candidate_tiles_match_the_cpu_path_on_long_and_wide_shapes() {
        let ctx = context();
        let device = ctx.inner.step_device();
        for (n, t, d, m) in [(1, 2000, 4, 64), (2, 120, 2048, 1024), (70, 6, 16, 256)] {
            let big = StepDevice {
                fill: 256,
                ..device
            };
            let mut choices: Vec<StepChoice> = step_tile_candidates(n, m, device)
                .into_iter()
                .chain(step_tile_candidates(n, m, big))
                .map(StepChoice::Tiled)
                .collect();
            choices.dedup();
            check(&ctx, (n, t, d, m), &choices);
        }
    }

    #[test]
    fn auto_decides_once_per_size_and_reuses_the_adapters_timing() {
        let layer = || {
            let kernel = Array2::from_shape_fn((3, 64), |(i, j)| wave(i * 64 + j, 0.5));
            let recurrent = Array2::from_shape_fn((64, 64), |(i, j)| wave(i * 64 + j, 0.1));
            SimpleRnn::new(kernel, recurrent, None, SimpleRnnConfig::default()).unwrap()
        };
        let auto = || {
            GpuContext::new_blocking(GpuOptions::default())
                .expect("GPU tests need an adapter (apt-get install mesa-vulkan-drivers)")
        };
        let (ctx, other) = (auto(), auto());
        let model = GpuRnn::new(&ctx, layer()).unwrap();
        let first = model.step_choice(6);
        assert_eq!(model.step_choice(6), first);
        // The timing was kept for the adapter and the class (64 units, up to 8 rows)...
        let kept = cache()
            .lock()
            .unwrap()
            .iter()
            .any(|(class, choice)| class.m == 64 && class.rows == 8 && *choice == first);
        assert!(kept, "{first:?} not in the adapter's cache");
        // ...so another context on the same adapter takes the same decision for a batch of the
        // same class.
        let again = GpuRnn::new(&other, layer()).unwrap();
        assert_eq!(again.step_choice(7), first);
        // Explicit strategies take no timing: the per-step tile is the device's pick.
        let per_step = GpuRnn::new(&context(), layer()).unwrap();
        let device = context().inner.step_device();
        assert_eq!(
            per_step.step_choice(6),
            StepChoice::Tiled(step_tile(6, 64, device).unwrap())
        );
    }

    /// Under `Auto` a gated cell times its persistent kernel against the fused step and keeps
    /// one; each of the two, forced, matches the CPU path.
    #[test]
    fn a_gated_cell_under_auto_times_its_two_kernels_and_both_match_the_cpu() {
        use crate::Cell;
        let ctx = GpuContext::new_blocking(GpuOptions::default())
            .expect("GPU tests need an adapter (apt-get install mesa-vulkan-drivers)");
        let (n, t, d, m) = (3, 40, 5, 24);
        for cell in [Cell::Lstm, Cell::Gru, Cell::GruResetBefore] {
            let g = cell.gates();
            let layer = SimpleRnn::gated(
                cell,
                Array2::from_shape_fn((d, g * m), |(i, j)| wave(i * g * m + j, 0.5)),
                Array2::from_shape_fn((m, g * m), |(i, j)| wave(3 + i * g * m + j, 0.3)),
                Some(Array1::from_shape_fn(g * m, |j| wave(11 + j, 0.2))),
                (cell == Cell::Gru).then(|| Array1::from_shape_fn(g * m, |j| wave(5 + j, 0.2))),
                SimpleRnnConfig {
                    return_sequences: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let x = Array3::from_shape_fn((n, t, d), |(a, b, c)| wave(a * 31 + b * 17 + c, 1.5));
            let want = CpuRnn::new(layer.clone()).forward(x.view(), None).unwrap();
            let model = GpuRnn::new(&ctx, layer.clone()).unwrap();
            let fused = StepChoice::Tiled(model.plans.fallback().0);
            let decided = model.step_choice(n);
            assert!(
                decided == StepChoice::Persistent || decided == fused,
                "{decided:?}"
            );
            for choice in [None, Some(StepChoice::Persistent), Some(fused)] {
                let model = GpuRnn::new(&ctx, layer.clone()).unwrap();
                if let Some(choice) = choice {
                    model.plans.force(n, choice);
                    let persistent = model.gated_persistent_for(n).is_some();
                    assert_eq!(persistent, choice == StepChoice::Persistent, "{cell}");
                }
                let got = model.forward(x.view(), None).unwrap();
                for (g, w) in got.output().iter().zip(want.output().iter()) {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{cell} {choice:?}"
                    );
                }
            }
        }
    }
}
