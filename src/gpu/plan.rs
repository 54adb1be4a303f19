//! How a forward is split into chunks so that no buffer passes the device's limits.
//!
//! Sequences are independent, so the batch splits freely; time splits because the state stays in
//! GPU buffers from one chunk to the next. Pure arithmetic, tested without a GPU.

use crate::error::{Result, RnnError};

/// Rows and columns of the output one workgroup of the projection GEMM covers
/// (`shaders/projection.wgsl`: 16 × 16 threads, 4 × 4 each).
pub(crate) const PROJECTION_TILE: u64 = 64;

/// Columns of the state one workgroup of the per-step kernel covers.
pub(crate) const STEP_TILE_COLS: u64 = 64;

/// Rows of the state one workgroup of the per-step kernel covers with one row per thread; with
/// [`STEP_ROWS_PER_THREAD_LARGE`] rows per thread it covers that many times more.
pub(crate) const STEP_TILE_ROWS: u64 = 16;

/// Rows per thread of the per-step kernel for batches past [`STEP_SMALL_BATCH`] rows.
pub(crate) const STEP_ROWS_PER_THREAD_LARGE: u32 = 4;

/// Batches up to this many rows run the per-step kernel with one row per thread, so that its
/// 64-row tile is not mostly padding.
pub(crate) const STEP_SMALL_BATCH: usize = 32;

/// Threads in one workgroup of the persistent kernel (`shaders/recurrent_persistent.wgsl`).
pub(crate) const PERSISTENT_THREADS: u64 = 256;

/// The per-step kernel's rows per thread for a chunk of `nb` rows.
pub(crate) fn step_rows_per_thread(nb: usize) -> u32 {
    if nb <= STEP_SMALL_BATCH {
        1
    } else {
        STEP_ROWS_PER_THREAD_LARGE
    }
}

/// Workgroups one per-step dispatch launches for `nb` rows of `m` units.
pub(crate) fn step_workgroups(nb: usize, m: usize) -> (u64, u64) {
    let rows = STEP_TILE_ROWS * u64::from(step_rows_per_thread(nb));
    (
        (m as u64).div_ceil(STEP_TILE_COLS),
        (nb as u64).div_ceil(rows),
    )
}

/// How the persistent kernel is laid out for a layer of `m` units: batch rows per workgroup and
/// whether U is staged in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PersistentShape {
    pub rows: u32,
    pub u_shared: bool,
}

impl PersistentShape {
    /// Floats of workgroup memory the state takes: two buffers of `rows` × `m`.
    pub(crate) fn state_floats(self, m: usize) -> u64 {
        2 * u64::from(self.rows) * m as u64
    }
}

/// The persistent layout for `m` units in `storage_bytes` of workgroup memory, or `None` when not
/// even one row's state (twice, read and written in alternate steps) fits.
///
/// Rows per workgroup aim at one (row, unit) item per thread, so a workgroup's 256 threads are busy
/// without taking batch rows that other workgroups could run in parallel; U is staged in workgroup
/// memory when it fits beside one row's state, and the rows are then cut to what is left.
pub(crate) fn persistent_shape(m: usize, storage_bytes: u64) -> Option<PersistentShape> {
    let m = m as u64;
    // Room for the alignment of the four workgroup arrays.
    let storage_bytes = storage_bytes.saturating_sub(64);
    // Per row: two state rows and the row's softmax max and sum.
    let row_bytes = 4 * (2 * m + 2);
    if row_bytes + 4 > storage_bytes {
        return None;
    }
    let u_bytes = 4 * m * m;
    let u_shared = u_bytes + row_bytes <= storage_bytes;
    let left = storage_bytes - if u_shared { u_bytes } else { 4 };
    let wanted = (PERSISTENT_THREADS / m).max(1);
    let rows = wanted.min(left / row_bytes).max(1);
    Some(PersistentShape {
        rows: rows as u32,
        u_shared,
    })
}

/// Workgroups the persistent kernel launches for `nb` rows, `rows` per workgroup, as a 2-D grid
/// within `max_per_dimension`.
pub(crate) fn persistent_workgroups(nb: usize, rows: u32, max_per_dimension: u64) -> (u32, u32) {
    grid((nb as u64).div_ceil(u64::from(rows)), max_per_dimension)
}

/// `groups` workgroups (at least one) as a 2-D grid within `max_per_dimension`: x filled
/// first, the rest in y. Kernels that index past x fold the y index back in.
pub(crate) fn grid(groups: u64, max_per_dimension: u64) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(max_per_dimension);
    (x as u32, groups.div_ceil(x) as u32)
}

/// Time steps one submission encodes at most: bounds the per-step parameter buffer.
pub(crate) const MAX_STEPS_PER_CHUNK: u64 = 4096;

/// Loop iterations, all loops together, that one invocation may run in one dispatch.
///
/// lavapipe (llvmpipe) silently leaves every loop of an invocation once it has run 65,535
/// iterations in all, and no driver promises more; a quarter of that keeps a margin for loops
/// the counts below round down. wgpu exposes no such limit, so it is the same for every adapter.
pub(crate) const LOOP_BUDGET: u64 = 16_384;

/// Multiply-adds one dispatch may do: at 100 GFLOP/s, a slow integrated GPU, about 90 ms, far
/// from the ~2 s after which Windows resets a GPU (TDR) and from mobile drivers' watchdogs.
pub(crate) const DISPATCH_FMA_BUDGET: u64 = 1 << 32;

/// Loop iterations, at most, of one 16-deep slab of K in the register-tiled GEMMs
/// (`shaders/projection.wgsl`, `shaders/recurrent_step.wgsl`): the slab loop, the four quads,
/// the 4 × 4 rows and the two 4-wide loads, counted as if none were unrolled.
const GEMM_SLAB_ITERATIONS: u64 = 32;

/// Loop iterations of a GEMM invocation outside its slabs (the bias and store loops).
const GEMM_FIXED_ITERATIONS: u64 = 64;

/// Depth of one K slab of the register-tiled GEMMs.
pub(crate) const GEMM_SLAB: u64 = 16;

/// The deepest K one GEMM dispatch walks within [`LOOP_BUDGET`], a whole number of slabs.
pub(crate) const GEMM_MAX_K_SPAN: u64 =
    (LOOP_BUDGET - GEMM_FIXED_ITERATIONS) / GEMM_SLAB_ITERATIONS * GEMM_SLAB;

// The deepest span is a whole number of slabs within the loop budget, itself well under
// lavapipe's cap.
const _: () = assert!(
    GEMM_MAX_K_SPAN.is_multiple_of(GEMM_SLAB)
        && GEMM_MAX_K_SPAN / GEMM_SLAB * GEMM_SLAB_ITERATIONS + GEMM_FIXED_ITERATIONS
            <= LOOP_BUDGET
        && LOOP_BUDGET * 2 < 65_535
);

/// The most units the per-step kernel runs: its `h · U` walks all *M* rows of U in one
/// invocation (a layer this wide has a U of 266 MB, past most devices' storage bindings).
pub(crate) const MAX_STEP_UNITS: u64 = GEMM_MAX_K_SPAN;

/// Depth of one K slab of the fused gated step (`shaders/gated_step.wgsl`).
pub(crate) const GATED_SLAB: u64 = 8;

/// Loop iterations, at most, of one slab of the fused gated step: the slab loop, the two
/// operand loads (4-wide loops), the two passes over U's gates and the 2 quads × 4 gates × 4
/// rows of multiply-adds, counted as if none were unrolled.
const GATED_SLAB_ITERATIONS: u64 = 64;

/// Loop iterations of a fused gated step invocation outside its slabs (the accumulators' reset
/// and the 4 rows × 4 units × 4 gates of the finish).
const GATED_FIXED_ITERATIONS: u64 = 128;

/// The deepest span of *h* · U one fused gated step dispatch walks within [`LOOP_BUDGET`].
pub(crate) const GATED_MAX_K_SPAN: u64 =
    (LOOP_BUDGET - GATED_FIXED_ITERATIONS) / GATED_SLAB_ITERATIONS * GATED_SLAB;

const _: () = assert!(
    GATED_MAX_K_SPAN.is_multiple_of(GATED_SLAB)
        && GATED_MAX_K_SPAN / GATED_SLAB * GATED_SLAB_ITERATIONS + GATED_FIXED_ITERATIONS
            <= LOOP_BUDGET
);

/// The depth spans `k_begin .. k_end` of a gated cell's step product over `m` units: one
/// dispatch each, in order, so that no invocation passes [`LOOP_BUDGET`]. Every span but the
/// last starts and ends on a slab boundary. (The chunk plan keeps each dispatch within
/// [`DISPATCH_FMA_BUDGET`]: it bounds the batch by *G*·*M* squared.)
pub(crate) fn gated_step_spans(m: u64) -> Vec<(u64, u64)> {
    let m = m.max(1);
    (0..m.div_ceil(GATED_MAX_K_SPAN))
        .map(|i| (i * GATED_MAX_K_SPAN, ((i + 1) * GATED_MAX_K_SPAN).min(m)))
        .collect()
}

/// Batch rows one workgroup of the persistent gated kernel (`shaders/gated_persistent.wgsl`)
/// owns for `m` units, when `buffers` state buffers of rows × `m` (h twice, then c or a
/// reset-before GRU's scratch) fit `storage_bytes` of workgroup memory; `None` when not even
/// one row's do. Rows aim at one (row, unit) item per thread, as [`persistent_shape`]'s do.
pub(crate) fn gated_persistent_rows(m: usize, buffers: u64, storage_bytes: u64) -> Option<u32> {
    let row_bytes = 4 * buffers * m as u64;
    // Room for the workgroup array's alignment.
    let storage_bytes = storage_bytes.saturating_sub(64);
    if row_bytes == 0 || row_bytes > storage_bytes {
        return None;
    }
    let wanted = (PERSISTENT_THREADS / m as u64).max(1);
    Some(wanted.min(storage_bytes / row_bytes) as u32)
}

/// The most steps one persistent gated dispatch over `nb` rows runs, `rows` per workgroup, for
/// `m` units, `gates` gates and `phases` passes over *h* per step (2 for a reset-before GRU):
/// within [`LOOP_BUDGET`] per invocation and [`DISPATCH_FMA_BUDGET`] per dispatch. 0 when not
/// even one step fits, and the per-step kernel must run the layer.
pub(crate) fn gated_persistent_steps_per_dispatch(
    m: usize,
    gates: usize,
    phases: u64,
    rows: u32,
    nb: usize,
) -> u64 {
    let m = m as u64;
    let items = (u64::from(rows) * m).div_ceil(PERSISTENT_THREADS);
    // Per phase, each item walks its k loop; one more iteration per loop for its exit.
    let per_step = 1 + phases * (1 + items * (m + 2));
    // Loading h and c, storing them.
    let once = 2 * (items + 1);
    let by_loops = LOOP_BUDGET.saturating_sub(once) / per_step;
    let fma_per_step = (nb as u64)
        .max(1)
        .saturating_mul(m * m * gates as u64)
        .max(1);
    by_loops.min((DISPATCH_FMA_BUDGET / fma_per_step).max(1))
}

/// One dispatch of a projection GEMM `P = X · W + b` (X rows × k, W k × cols): rows `row0 ..
/// row0 + rows` over `k_begin .. k_end`, adding to P (`accumulate`, for every K span after the
/// first) or to the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GemmDispatch {
    pub row0: u64,
    pub rows: u64,
    pub k_begin: u64,
    pub k_end: u64,
    pub accumulate: bool,
}

/// The dispatches of a `rows` × `k` × `cols` projection: K cut into spans of at most
/// [`GEMM_MAX_K_SPAN`] (so no invocation passes [`LOOP_BUDGET`]), rows into blocks of whole
/// 64-row tiles so that no dispatch passes [`DISPATCH_FMA_BUDGET`] or `max_workgroups` tiles.
/// Row blocks in order, each block's K spans in order.
pub(crate) fn gemm_dispatches(
    rows: u64,
    k: u64,
    cols: u64,
    max_workgroups: u64,
) -> Vec<GemmDispatch> {
    let span = k.clamp(1, GEMM_MAX_K_SPAN);
    let per_row = span.saturating_mul(cols.max(1));
    let tiles = (DISPATCH_FMA_BUDGET / per_row / PROJECTION_TILE).clamp(1, max_workgroups.max(1));
    let block = tiles * PROJECTION_TILE;
    let mut dispatches = Vec::new();
    let mut row0 = 0;
    while row0 < rows {
        let block_rows = block.min(rows - row0);
        let mut k_begin = 0;
        loop {
            let k_end = (k_begin + span).min(k);
            dispatches.push(GemmDispatch {
                row0,
                rows: block_rows,
                k_begin,
                k_end,
                accumulate: k_begin > 0,
            });
            k_begin = k_end;
            if k_begin >= k {
                break;
            }
        }
        row0 += block_rows;
    }
    dispatches
}

/// Loop iterations one invocation of the persistent kernel runs for one step, and once per
/// dispatch (staging U and the state, storing the state), at `m` units in `shape`; `row_wise`
/// for softmax and log-softmax, which reduce each row in the kernel.
fn persistent_iterations(m: u64, shape: PersistentShape, row_wise: bool) -> (u64, u64) {
    let items = (u64::from(shape.rows) * m).div_ceil(PERSISTENT_THREADS);
    let mut per_step = 1 + items * (m + 2) + 1;
    if row_wise {
        let rows = u64::from(shape.rows).div_ceil(PERSISTENT_THREADS);
        per_step += rows * (2 * m + 2) + 1 + items + 1;
    }
    let staging = if shape.u_shared {
        (m * m).div_ceil(PERSISTENT_THREADS) + 1
    } else {
        0
    };
    (per_step, staging + 2 * (items + 1))
}

/// The most steps one persistent dispatch over `nb` rows runs: within [`LOOP_BUDGET`] per
/// invocation and [`DISPATCH_FMA_BUDGET`] per dispatch. 0 when not even one step fits, and the
/// per-step kernel must run the layer.
pub(crate) fn persistent_steps_per_dispatch(
    m: usize,
    shape: PersistentShape,
    row_wise: bool,
    nb: usize,
) -> u64 {
    let m = m as u64;
    let (per_step, once) = persistent_iterations(m, shape, row_wise);
    let by_loops = LOOP_BUDGET.saturating_sub(once) / per_step;
    let fma_per_step = (nb as u64).max(1).saturating_mul(m * m).max(1);
    by_loops.min((DISPATCH_FMA_BUDGET / fma_per_step).max(1))
}

/// Whether a kernel that gives each row a workgroup of 64 threads and walks the row three times
/// (`rows_activation.wgsl`, `softmax_rows.wgsl`) stays within [`LOOP_BUDGET`] on rows of `width`.
#[cfg(feature = "keras")]
pub(crate) fn row_kernel_fits(width: usize) -> bool {
    3 * (width as u64).div_ceil(64) + 32 <= LOOP_BUDGET
}

/// The limits that shape a plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlanLimits {
    pub max_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_workgroups: u64,
    pub max_chunk_bytes: u64,
}

impl PlanLimits {
    pub(crate) fn new(limits: &wgpu::Limits, max_chunk_bytes: Option<u64>) -> Self {
        PlanLimits {
            max_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroups: u64::from(limits.max_compute_workgroups_per_dimension),
            max_chunk_bytes: max_chunk_bytes.unwrap_or(u64::MAX),
        }
    }
}

/// Batch rows and time steps of one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkPlan {
    pub batch: usize,
    pub steps: usize,
}

/// Checks that the weights of a layer with `d` features, `m` units and `gates` gates per unit
/// fit the device.
pub(crate) fn check_weights(d: usize, m: usize, gates: usize, limits: &PlanLimits) -> Result<()> {
    let bytes = |elems: u64| elems.saturating_mul(4);
    let (d, m, gm) = (d as u64, m as u64, (m * gates) as u64);
    let cap = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    if bytes(d.saturating_mul(gm)) > cap {
        return Err(RnnError::DeviceLimit(format!(
            "kernel {d} × {gm} takes {} bytes, more than one storage binding may hold ({cap})",
            bytes(d.saturating_mul(gm))
        )));
    }
    // U is followed by a gated cell's vector (peepholes or recurrent bias, 3·M).
    let recurrent = m
        .saturating_mul(gm)
        .saturating_add(if gates > 1 { 3 * m } else { 0 });
    if bytes(recurrent) > cap {
        return Err(RnnError::DeviceLimit(format!(
            "recurrent_kernel {m} × {gm} takes {} bytes, more than one storage binding may hold \
             ({cap})",
            bytes(recurrent)
        )));
    }
    if m > MAX_STEP_UNITS {
        return Err(RnnError::DeviceLimit(format!(
            "{m} units: the GPU kernels run at most {MAX_STEP_UNITS} (one step's h · U must stay \
             within a bounded loop per invocation); use the CPU backend"
        )));
    }
    if m.div_ceil(STEP_TILE_COLS) > limits.max_workgroups {
        return Err(RnnError::DeviceLimit(format!(
            "{m} units need {} workgroups in one dimension; the device allows {}",
            m.div_ceil(STEP_TILE_COLS),
            limits.max_workgroups
        )));
    }
    Ok(())
}

/// The largest chunk of an `n` × `t` forward, with `d` features and `m` units, whose buffers
/// (input, projection and sequence output, state and readback) all fit the limits.
pub(crate) fn plan(
    n: usize,
    t: usize,
    d: usize,
    m: usize,
    gates: usize,
    limits: &PlanLimits,
) -> Result<ChunkPlan> {
    check_weights(d, m, gates, limits)?;
    let gm = m * gates;
    let budget = limits
        .max_binding_bytes
        .min(limits.max_buffer_bytes)
        .min(limits.max_chunk_bytes);
    // A row of the projection has G·M floats.
    let row_bytes = 4 * (d.max(gm) as u64);
    // The per-step grid covers the batch in tiles of at least STEP_TILE_ROWS rows; the
    // projection covers steps × batch rows in tiles of PROJECTION_TILE.
    let most_batch = limits.max_workgroups.saturating_mul(STEP_TILE_ROWS);
    let most_rows = limits.max_workgroups.saturating_mul(PROJECTION_TILE);
    // One per-step dispatch does at most batch · M · G·M multiply-adds.
    let most_fma_batch = (DISPATCH_FMA_BUDGET / (m as u64 * gm as u64).max(1)).max(1);
    let batch = (n as u64)
        .min(budget / row_bytes)
        .min(most_batch)
        .min(most_fma_batch);
    if batch == 0 {
        return Err(RnnError::DeviceLimit(format!(
            "one row of {} floats ({row_bytes} bytes) does not fit a buffer of {budget} bytes",
            d.max(gm)
        )));
    }
    // One step more than the chunk holds is kept free for the state in the readback buffer.
    // Each bound is at least 1: `batch` rows fit the budget and the workgroup grid.
    let fit_budget = (budget / (row_bytes * batch)).saturating_sub(1).max(1);
    let steps = (t as u64)
        .min(fit_budget)
        .min(most_rows / batch)
        .min(MAX_STEPS_PER_CHUNK);
    Ok(ChunkPlan {
        batch: batch as usize,
        steps: steps as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(binding: u64, chunk: Option<u64>) -> PlanLimits {
        PlanLimits {
            max_binding_bytes: binding,
            max_buffer_bytes: 1 << 40,
            max_workgroups: 65535,
            max_chunk_bytes: chunk.unwrap_or(u64::MAX),
        }
    }

    #[test]
    fn gated_step_spans_cover_the_depth_within_the_loop_budget() {
        assert_eq!(gated_step_spans(64), vec![(0, 64)]);
        assert_eq!(
            gated_step_spans(GATED_MAX_K_SPAN),
            vec![(0, GATED_MAX_K_SPAN)]
        );
        for m in [1, 7, 2031, 2032, 2033, 4100, 8160, 20_000] {
            let spans = gated_step_spans(m);
            assert_eq!(spans[0].0, 0);
            assert_eq!(spans.last().unwrap().1, m);
            for w in spans.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert!(w[0].1.is_multiple_of(GATED_SLAB));
            }
            for (b, e) in spans {
                let slabs = (e - b).div_ceil(GATED_SLAB);
                assert!(slabs * GATED_SLAB_ITERATIONS + GATED_FIXED_ITERATIONS <= LOOP_BUDGET);
            }
        }
        assert_eq!(gated_step_spans(GATED_MAX_K_SPAN + 1).len(), 2);
    }

    #[test]
    fn the_persistent_gated_kernel_fits_workgroup_memory_and_the_loop_budget() {
        // 16 KiB: an LSTM (3 buffers) of 64 units takes 4 rows, one of 1024 units 1, one of
        // 2048 none.
        assert_eq!(gated_persistent_rows(64, 3, 16384), Some(4));
        assert_eq!(gated_persistent_rows(256, 4, 16384), Some(1));
        assert_eq!(gated_persistent_rows(1024, 3, 16384), Some(1));
        assert_eq!(gated_persistent_rows(2048, 3, 16384), None);
        for (m, gates, phases) in [(1, 4, 1), (64, 4, 1), (300, 3, 2), (1000, 3, 1)] {
            let Some(rows) = gated_persistent_rows(m, 2 + phases, 65536) else {
                continue;
            };
            let steps = gated_persistent_steps_per_dispatch(m, gates, phases, rows, 8);
            assert!(steps >= 1, "m={m}");
            let m = m as u64;
            let items = (u64::from(rows) * m).div_ceil(PERSISTENT_THREADS);
            let per_step = 1 + phases * (1 + items * (m + 2));
            assert!(steps * per_step + 2 * (items + 1) <= LOOP_BUDGET, "m={m}");
            assert!(steps * 8 * m * m * gates as u64 <= DISPATCH_FMA_BUDGET);
        }
        // A layer too wide for even one step per dispatch.
        assert_eq!(gated_persistent_steps_per_dispatch(20_000, 4, 1, 1, 1), 0);
    }

    #[test]
    fn small_work_is_one_chunk() {
        let p = plan(4, 100, 8, 32, 1, &limits(128 << 20, None)).unwrap();
        assert_eq!(
            p,
            ChunkPlan {
                batch: 4,
                steps: 100
            }
        );
    }

    #[test]
    fn long_sequences_split_over_time_within_the_budget() {
        let l = limits(128 << 20, Some(64 * 1024));
        let p = plan(8, 10_000, 16, 64, 1, &l).unwrap();
        assert_eq!(p.batch, 8);
        assert!((p.steps as u64 + 1) * 8 * 64 * 4 <= 64 * 1024);
        assert!(p.steps > 1 && p.steps < 10_000);
    }

    #[test]
    fn huge_batches_split_over_batch() {
        let l = limits(1 << 20, None);
        let p = plan(100_000, 3, 4, 100, 1, &l).unwrap();
        assert!(p.batch < 100_000);
        assert!(p.batch as u64 * 100 * 4 <= 1 << 20);
        assert!(p.steps >= 1);
    }

    #[test]
    fn weights_past_the_binding_limit_are_an_error() {
        let l = limits(1 << 20, None);
        assert!(matches!(
            plan(1, 1, 1, 1024, 1, &l),
            Err(RnnError::DeviceLimit(_))
        ));
        assert!(matches!(
            plan(1, 1, 1 << 20, 1, 1, &l),
            Err(RnnError::DeviceLimit(_))
        ));
    }

    #[test]
    fn the_default_chunk_budget_bounds_memory_whatever_the_length() {
        let l = limits(1 << 31, Some(crate::GpuOptions::DEFAULT_MAX_CHUNK_BYTES));
        for (n, t, d, m) in [(1, 10_000_000, 64, 64), (4096, 100_000, 256, 1024)] {
            let p = plan(n, t, d, m, 1, &l).unwrap();
            let per_step = p.batch as u64 * 4 * d.max(m) as u64;
            // Input, projection and sequence chunks, plus the state in the readback buffer.
            assert!((p.steps as u64 + 1) * per_step <= crate::GpuOptions::DEFAULT_MAX_CHUNK_BYTES);
            assert!(p.steps < t);
        }
    }

    #[test]
    fn persistent_shape_fills_the_threads_within_workgroup_memory() {
        // lavapipe's 32 KiB: U of 32 units fits (4 KiB), rows aim at 256 items per workgroup.
        let s = persistent_shape(32, 32 << 10).unwrap();
        assert_eq!(
            s,
            PersistentShape {
                rows: 8,
                u_shared: true
            }
        );
        // U of 128 units (64 KiB) does not: it is read from the storage buffer.
        let s = persistent_shape(128, 32 << 10).unwrap();
        assert_eq!(
            s,
            PersistentShape {
                rows: 2,
                u_shared: false
            }
        );
        // U of 64 units takes 16 KiB of 16 KiB plus the state: not shared.
        assert!(!persistent_shape(64, 16 << 10).unwrap().u_shared);
        // The state of one row of 4096 units (32 KiB twice) does not fit.
        assert_eq!(persistent_shape(4096, 32 << 10), None);
        for m in [1, 3, 8, 100, 1000, 2000] {
            let s = persistent_shape(m, 16 << 10).unwrap();
            let u = if s.u_shared { m * m } else { 1 } as u64;
            assert!(4 * (s.state_floats(m) + 2 * u64::from(s.rows) + u) + 64 <= 16 << 10);
            assert!(s.rows >= 1);
        }
    }

    #[test]
    fn persistent_grid_stays_within_the_dimension_limit() {
        assert_eq!(persistent_workgroups(1, 8, 65535), (1, 1));
        assert_eq!(persistent_workgroups(17, 8, 65535), (3, 1));
        let (x, y) = persistent_workgroups(200_000, 1, 65535);
        assert!(x as u64 <= 65535 && u64::from(x) * u64::from(y) >= 200_000);
    }

    #[test]
    fn gemm_dispatches_cover_every_row_and_depth_once_within_the_budgets() {
        for (rows, k, cols) in [
            (1, 1, 1),
            (64, 16, 64),
            (1000, 8160, 3),
            (7, 8161, 5),
            (100_000, 2048, 1024),
            (3, 1_200_000, 4),
            (1 << 22, 64, 64),
        ] {
            let dispatches = gemm_dispatches(rows, k, cols, 65535);
            // Every (row, depth) pair is covered exactly once, the first span of a block
            // writing and every later one accumulating.
            let mut row = 0;
            let mut i = 0;
            while row < rows {
                let block = dispatches[i].rows;
                let mut depth = 0;
                while depth < k {
                    let d = dispatches[i];
                    assert_eq!((d.row0, d.rows, d.k_begin), (row, block, depth));
                    assert_eq!(d.accumulate, depth > 0);
                    assert!(d.k_end > d.k_begin && d.k_end - d.k_begin <= GEMM_MAX_K_SPAN);
                    assert!(d.k_end == k || d.k_end.is_multiple_of(GEMM_SLAB));
                    assert!(d.rows.div_ceil(PROJECTION_TILE) <= 65535);
                    let fma = d.rows.div_ceil(PROJECTION_TILE)
                        * PROJECTION_TILE
                        * cols
                        * (d.k_end - d.k_begin);
                    assert!(fma <= DISPATCH_FMA_BUDGET || d.rows <= PROJECTION_TILE);
                    depth = d.k_end;
                    i += 1;
                }
                row += block;
            }
            assert_eq!(i, dispatches.len(), "{rows} × {k} × {cols}");
        }
    }

    #[test]
    fn persistent_dispatches_stay_within_the_loop_budget() {
        for m in [1, 8, 16, 64, 100, 128, 256, 500, 1024, 2000] {
            for row_wise in [false, true] {
                let Some(shape) = persistent_shape(m, 32 << 10) else {
                    continue;
                };
                let steps = persistent_steps_per_dispatch(m, shape, row_wise, 1);
                let (per_step, once) = persistent_iterations(m as u64, shape, row_wise);
                assert!(once + steps * per_step <= LOOP_BUDGET, "m={m}");
                if steps > 0 {
                    // Not pessimistic by more than one step.
                    assert!(once + (steps + 1) * per_step > LOOP_BUDGET, "m={m}");
                }
            }
        }
        // Small layers run hundreds of steps per dispatch, wide ones few or none.
        let small = persistent_shape(16, 32 << 10).unwrap();
        assert!(persistent_steps_per_dispatch(16, small, false, 1) >= 500);
        let wide = persistent_shape(4000, 64 << 10).unwrap();
        assert_eq!(persistent_steps_per_dispatch(4000, wide, false, 1), 0);
        // Many rows bound the steps by the work of the dispatch.
        let steps = persistent_steps_per_dispatch(64, small, false, 1 << 20);
        assert!(steps >= 1 && steps * (1 << 20) * 64 * 64 <= DISPATCH_FMA_BUDGET);
    }

    #[test]
    fn batches_are_cut_so_one_step_dispatch_does_bounded_work() {
        let p = plan(100_000, 10, 8, 4096, 1, &limits(1 << 40, None)).unwrap();
        assert!(p.batch as u64 * 4096 * 4096 <= DISPATCH_FMA_BUDGET);
        assert!(matches!(
            check_weights(4, MAX_STEP_UNITS as usize + 1, 1, &limits(1 << 40, None)),
            Err(RnnError::DeviceLimit(_))
        ));
        assert!(check_weights(4, MAX_STEP_UNITS as usize, 1, &limits(1 << 40, None)).is_ok());
    }

    #[test]
    #[cfg(feature = "keras")]
    fn row_kernels_refuse_rows_past_the_loop_budget() {
        assert!(row_kernel_fits(100_000));
        assert!(!row_kernel_fits(1 << 20));
    }

    #[test]
    fn steps_per_chunk_are_capped() {
        let p = plan(1, 1_000_000, 1, 1, 1, &limits(1 << 30, None)).unwrap();
        assert_eq!(p.steps as u64, MAX_STEPS_PER_CHUNK);
    }
}
