//! How a forward is split into chunks so that no buffer passes the device's limits.
//!
//! Sequences are independent, so the batch splits freely; time splits because the state stays in
//! GPU buffers from one chunk to the next. Pure arithmetic, tested without a GPU.

use crate::error::{Result, RnnError};

/// Rows and columns of the output one workgroup of the projection GEMM covers
/// (`shaders/projection.wgsl`: 16 × 16 threads, 4 × 4 each).
pub(crate) const PROJECTION_TILE: u64 = 64;

/// Threads in one workgroup of the per-step kernel (`shaders/recurrent_step.wgsl`, `WG`).
pub(crate) const STEP_THREADS: u64 = 64;

/// The most accumulator quads (rows × quads of a [`StepTile`]) one thread of the per-step kernel
/// holds (`MAX_TILE` in `shaders/recurrent_step.wgsl`).
pub(crate) const STEP_MAX_TILE: u32 = 16;

/// The most quads of columns one thread of the per-step kernel holds per row (its tile is spelt
/// out for up to [`STEP_MAX_ROWS`] rows × this many quads in `shaders/recurrent_step.wgsl`).
pub(crate) const STEP_MAX_QUADS: u32 = 2;

/// The most batch rows one per-step workgroup's tile holds.
pub(crate) const STEP_MAX_ROWS: u32 = 8;

/// The most accumulator quads per thread of a split-K tile, whose partial sums take
/// `STEP_THREADS` × this × 16 bytes of workgroup memory (8 KiB, half of what every device has).
pub(crate) const STEP_MAX_SPLIT_TILE: u32 = 8;

/// Batch rows past which the per-step grid folds its row tiles into a second dimension:
/// the per-dimension limit every WebGPU device has at least.
#[cfg(any(feature = "keras", test))]
pub(crate) const STEP_FOLD_ROWS: u64 = 65_535;

/// Rows of the state the planner assumes one per-step workgroup covers at least, when it bounds
/// a chunk's batch by the workgroup grid.
pub(crate) const STEP_TILE_ROWS: u64 = 16;

/// The register tile of the per-step kernel (`shaders/recurrent_step.wgsl`): a workgroup of
/// [`STEP_THREADS`] threads owns `rows` batch rows and `4 · quads · STEP_THREADS / split` columns;
/// its threads form `split` groups that each walk a contiguous share of *k* (split-K) and hold
/// `rows` × `quads` quads of outputs in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StepTile {
    pub rows: u32,
    pub quads: u32,
    pub split: u32,
}

impl StepTile {
    /// Threads of one split-K group.
    fn group_threads(self) -> u64 {
        STEP_THREADS / u64::from(self.split)
    }

    /// Columns of U one workgroup covers.
    pub(crate) fn columns(self) -> u64 {
        4 * u64::from(self.quads) * self.group_threads()
    }

    /// Accumulator quads one thread holds.
    fn tile(self) -> u64 {
        u64::from(self.rows) * u64::from(self.quads)
    }

    /// vec4s of workgroup memory the split-K partial sums take (`PARTIAL`; 1 without split-K,
    /// WGSL arrays are never empty).
    pub(crate) fn partial_quads(self) -> u64 {
        if self.split > 1 {
            STEP_THREADS * self.tile()
        } else {
            1
        }
    }

    /// Loop iterations one invocation runs for one step of `m` units: the walk over its share
    /// of *k*, one iteration a quad (the tile inside it is spelt out, not looped), then the
    /// reduction and the stores, counted as if no loop were unrolled.
    pub(crate) fn iterations(self, m: u64) -> u64 {
        let split = u64::from(self.split);
        let walk = m.div_ceil(4).div_ceil(split) + 1;
        let finish = if self.split == 1 {
            u64::from(self.rows) * (1 + u64::from(self.quads) * 5)
        } else {
            self.tile() + self.tile().div_ceil(split) * (2 + split + 4)
        };
        walk + finish + 2
    }

    /// Whether this tile is well formed and runs a step of `m` units within [`LOOP_BUDGET`] and
    /// `storage_bytes` of workgroup memory.
    pub(crate) fn fits(self, m: u64, storage_bytes: u64) -> bool {
        let shape_ok = (1..=STEP_MAX_ROWS).contains(&self.rows)
            && (1..=STEP_MAX_QUADS).contains(&self.quads)
            && self.split.is_power_of_two()
            && u64::from(self.split) <= STEP_THREADS
            && self.rows * self.quads <= STEP_MAX_TILE
            && (self.split == 1 || self.rows * self.quads <= STEP_MAX_SPLIT_TILE);
        shape_ok && 16 * self.partial_quads() <= storage_bytes && self.iterations(m) <= LOOP_BUDGET
    }

    /// Workgroups of one step over `nb` rows of `m` units: column slices in x, row tiles in y,
    /// folded into z past `max_per_dimension`.
    pub(crate) fn workgroups(self, nb: usize, m: usize, max_per_dimension: u64) -> (u32, u32, u32) {
        let x = (m as u64).div_ceil(self.columns());
        let (y, z) = grid(
            (nb as u64).div_ceil(u64::from(self.rows)),
            max_per_dimension,
        );
        (x as u32, y, z)
    }

    /// Workgroups of one step, all dimensions together.
    pub(crate) fn workgroup_count(self, nb: usize, m: usize) -> u64 {
        (m as u64).div_ceil(self.columns()) * (nb as u64).div_ceil(u64::from(self.rows))
    }
}

/// What the per-step kernel's tile is picked for: how many workgroups keep the device busy, and
/// its workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StepDevice {
    /// Workgroups one step should launch at least, when the shape allows.
    pub fill: u64,
    pub storage_bytes: u64,
}

/// The fewest values of *k* one split-K group walks.
pub(crate) const STEP_MIN_K_SHARE: u64 = 4;

/// The per-step tile for `nb` rows of `m` units on `device`: the first, in order of fewer
/// split-K groups then register tiles of 8 rows × 1 quad, 8 × 2, 4 × 1 and 2 × 1 (fewer rows
/// for smaller batches; on lavapipe 8 × 1 ran fastest at 64 and 256 rows), whose grid fills the
/// device; when none does, the one with the most workgroups. Every tile considered runs a step
/// within the loop budget and keeps [`STEP_MIN_K_SHARE`] values of *k* per group. `None` only
/// when no tile fits at all (past [`MAX_STEP_UNITS`]).
pub(crate) fn step_tile(nb: usize, m: usize, device: StepDevice) -> Option<StepTile> {
    let rows = (nb.clamp(1, 8) as u32).next_power_of_two();
    let shapes = [
        (rows, 1),
        (rows, 2),
        ((rows / 2).max(1), 1),
        ((rows / 4).max(1), 1),
    ];
    let mut most: Option<(u64, StepTile)> = None;
    for split in [1, 2, 4, 8, 16, 32, 64] {
        if split > 1 && (m as u64) < STEP_MIN_K_SHARE * u64::from(split) {
            break;
        }
        for (rows, quads) in shapes {
            let tile = StepTile { rows, quads, split };
            if !tile.fits(m as u64, device.storage_bytes) {
                continue;
            }
            let count = tile.workgroup_count(nb, m);
            if count >= device.fill {
                return Some(tile);
            }
            if most.is_none_or(|(c, _)| count > c) {
                most = Some((count, tile));
            }
        }
    }
    most.map(|(_, tile)| tile)
}

/// The tiles the one-time measurement behind [`crate::StepStrategy::Auto`] times for `nb` rows of
/// `m` units: [`step_tile`]'s pick for this device and for a device of 8 times as many
/// workgroups, and the neighbours of the first in rows and quads; each fits, none twice.
pub(crate) fn step_tile_candidates(nb: usize, m: usize, device: StepDevice) -> Vec<StepTile> {
    let mut tiles: Vec<StepTile> = Vec::new();
    let mut push = |tile: Option<StepTile>| {
        if let Some(t) = tile
            && t.fits(m as u64, device.storage_bytes)
            && !tiles.contains(&t)
        {
            tiles.push(t);
        }
    };
    let picked = step_tile(nb, m, device);
    push(picked);
    push(step_tile(
        nb,
        m,
        StepDevice {
            fill: device.fill.saturating_mul(8),
            ..device
        },
    ));
    if let Some(t) = picked {
        push(Some(StepTile {
            quads: if t.quads == 1 { 2 } else { 1 },
            ..t
        }));
        push(Some(StepTile {
            rows: (t.rows * 2).min(STEP_MAX_ROWS),
            quads: 1,
            ..t
        }));
        push(Some(StepTile {
            rows: (t.rows / 2).max(1),
            ..t
        }));
    }
    tiles
}

/// Workgroups one per-step dispatch of `nb` rows of `m` units launches at most in x and y, over
/// every tile the kernel may take (4 columns and 1 row at the least; the row tiles fold into z
/// past [`STEP_FOLD_ROWS`]).
#[cfg(any(feature = "keras", test))]
pub(crate) fn step_workgroups(nb: usize, m: usize) -> (u64, u64) {
    ((m as u64).div_ceil(4), (nb as u64).clamp(1, STEP_FOLD_ROWS))
}

/// Threads in one workgroup of the persistent kernels (`shaders/recurrent_persistent.wgsl`,
/// `recurrent_resident.wgsl`), prepended to both as `WG`.
pub(crate) const PERSISTENT_THREADS: u64 = 256;

/// Rows of U one thread of the register-resident persistent kernel holds
/// (`shaders/recurrent_resident.wgsl`, which spells out that many quads and asserts the value).
pub(crate) const RESIDENT_K: u64 = 16;

/// How the persistent kernel is laid out for a layer of `m` units: which kernel, batch rows per
/// workgroup and whether U is staged in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PersistentShape {
    pub rows: u32,
    /// `recurrent_persistent.wgsl` only: U in workgroup memory rather than read from its buffer.
    pub u_shared: bool,
    /// `recurrent_resident.wgsl`: U in registers, a row's product split over
    /// [`PersistentShape::slices`] × [`PersistentShape::quads`] threads.
    pub resident: bool,
}

impl PersistentShape {
    /// Floats of workgroup memory the state takes: two buffers of `rows` rows, each `m` wide
    /// (the resident kernel's padded to whole slices of U).
    pub(crate) fn state_floats(self, m: usize) -> u64 {
        let width = if self.resident {
            self.slices(m) * RESIDENT_K
        } else {
            m as u64
        };
        2 * u64::from(self.rows) * width
    }

    /// Slices of [`RESIDENT_K`] rows of U across which the resident kernel splits a row's
    /// product: a power of two, so that subgroup shuffles can sum them (8 at 128 units).
    pub(crate) fn slices(self, m: usize) -> u64 {
        (m as u64).div_ceil(RESIDENT_K).next_power_of_two()
    }

    /// Quads of columns of `m` units.
    pub(crate) fn quads(self, m: usize) -> u64 {
        (m as u64).div_ceil(4)
    }

    /// Partial sums (quads) the resident kernel keeps in workgroup memory: one per thread of its
    /// rows.
    pub(crate) fn partials(self, m: usize) -> u64 {
        u64::from(self.rows) * self.slices(m) * self.quads(m)
    }
}

/// The persistent layout for `m` units in `storage_bytes` of workgroup memory, or `None` when not
/// even one row's state (twice, read and written in alternate steps) fits. `row_wise` for
/// softmax and log-softmax, which only `recurrent_persistent.wgsl` reduces.
///
/// Up to 128 units (a row's slices times quads within the workgroup) U fits in the registers of
/// one workgroup and the resident kernel runs the layer; past that, or row-wise, U is staged in
/// workgroup memory when it fits beside one row's state, else read from its buffer. Rows per
/// workgroup aim at one item per thread, so that a workgroup's 256 threads are busy without
/// taking batch rows that other workgroups could run in parallel, within the workgroup memory.
pub(crate) fn persistent_shape(
    m: usize,
    storage_bytes: u64,
    row_wise: bool,
) -> Option<PersistentShape> {
    let m64 = m as u64;
    // Room for the alignment of the workgroup arrays.
    let storage_bytes = storage_bytes.saturating_sub(64);
    let shape = PersistentShape {
        rows: 1,
        u_shared: false,
        resident: true,
    };
    let per_row = shape.slices(m) * shape.quads(m);
    if !row_wise && per_row <= PERSISTENT_THREADS {
        // Per row: two padded state rows and a partial sum per thread.
        let row_bytes = 4 * shape.state_floats(m) + 16 * per_row;
        let rows = (PERSISTENT_THREADS / per_row).min(storage_bytes / row_bytes);
        return (rows > 0).then_some(PersistentShape {
            rows: rows as u32,
            ..shape
        });
    }
    // Per row: two state rows and the row's softmax max and sum.
    let row_bytes = 4 * (2 * m64 + 2);
    if row_bytes + 4 > storage_bytes {
        return None;
    }
    // U as quads of columns, each row padded to a whole quad.
    let u_bytes = 16 * m64 * m64.div_ceil(4);
    let u_shared = u_bytes + row_bytes <= storage_bytes;
    let left = storage_bytes - if u_shared { u_bytes } else { 4 };
    let wanted = (PERSISTENT_THREADS / m64).max(1);
    let rows = wanted.min(left / row_bytes).max(1);
    Some(PersistentShape {
        rows: rows as u32,
        u_shared,
        resident: false,
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

/// Steps `Auto` times a candidate for at most, for `nb` rows of `width` projected columns:
/// 64 where the scratch projection takes at most 4 MiB, fewer (but 8 at the least) for wider
/// batches, whose steps are long enough that 8 weigh launches as a long sequence does.
pub(crate) fn measure_steps(nb: usize, width: usize) -> usize {
    const BYTES: u64 = 4 << 20;
    let per_step = 4 * (nb as u64).max(1) * (width as u64).max(1);
    (BYTES / per_step).clamp(8, 64) as usize
}

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

/// Rows of one workgroup's tile in the row-broadcast projection GEMM
/// (`shaders/projection_rows.wgsl`, `ROWS`).
pub(crate) const PROJECTION_ROWS_TILE: u64 = 16;

/// Loop iterations of the row-broadcast GEMM per quad of K, counted as if none were unrolled:
/// the quad loop, four loads of W (each a 4-long loop in the element-wise variant) and
/// [`PROJECTION_ROWS_TILE`] rows of a load of X (the same) and a multiply-add.
const ROWS_GEMM_QUAD_ITERATIONS: u64 = 1 + 4 * 5 + PROJECTION_ROWS_TILE * 6;

/// Loop iterations of a row-broadcast GEMM invocation outside its K loop: setup, copy-out, bias
/// and stores.
const ROWS_GEMM_FIXED_ITERATIONS: u64 = 256;

/// The geometry of a projection GEMM kernel: rows and columns of a workgroup's tile, and the
/// deepest span of K one dispatch walks within [`LOOP_BUDGET`] (a whole number of slabs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GemmKernel {
    pub tile_rows: u64,
    pub tile_cols: u64,
    pub max_k_span: u64,
}

/// `shaders/projection.wgsl`: 64 × 64 tiles staged in workgroup memory, for GPUs.
pub(crate) const TILED_GEMM: GemmKernel = GemmKernel {
    tile_rows: PROJECTION_TILE,
    tile_cols: PROJECTION_TILE,
    max_k_span: GEMM_MAX_K_SPAN,
};

/// `shaders/projection_rows.wgsl`: 16 rows × 256 columns, each X value read by the whole
/// workgroup at once, for CPU implementations of the API.
pub(crate) const ROWS_GEMM: GemmKernel = GemmKernel {
    tile_rows: PROJECTION_ROWS_TILE,
    tile_cols: 256,
    max_k_span: (LOOP_BUDGET - ROWS_GEMM_FIXED_ITERATIONS) / ROWS_GEMM_QUAD_ITERATIONS * 4
        / GEMM_SLAB
        * GEMM_SLAB,
};

const _: () = assert!(
    ROWS_GEMM.max_k_span.is_multiple_of(GEMM_SLAB)
        && ROWS_GEMM.max_k_span / 4 * ROWS_GEMM_QUAD_ITERATIONS + ROWS_GEMM_FIXED_ITERATIONS
            <= LOOP_BUDGET
);

/// The most units the per-step kernel runs: its `h · U` walks all *M* rows of U in one
/// invocation (a layer this wide has a U of 266 MB, past most devices' storage bindings).
pub(crate) const MAX_STEP_UNITS: u64 = GEMM_MAX_K_SPAN;

/// Units one workgroup of the fused gated step (`shaders/gated_step.wgsl`) covers.
pub(crate) const GATED_TILE_UNITS: u64 = 64;

/// Rows per thread of the fused gated step past [`GATED_SMALL_BATCH`] rows (one below).
pub(crate) const GATED_ROWS_PER_THREAD_LARGE: u32 = 4;

/// Batches up to this many rows run the fused gated step with one row per thread, so that a
/// 64-row tile is not mostly padding.
const GATED_SMALL_BATCH: usize = 32;

/// The fused gated step's rows per thread for a chunk of `nb` rows.
pub(crate) fn gated_rows_per_thread(nb: usize) -> u32 {
    if nb <= GATED_SMALL_BATCH {
        1
    } else {
        GATED_ROWS_PER_THREAD_LARGE
    }
}

/// Workgroups one fused gated step dispatch launches for `nb` rows of `m` units: 16 threads ×
/// rows per thread rows by 64 units each.
pub(crate) fn gated_step_workgroups(nb: usize, m: usize) -> (u64, u64) {
    let rows = 16 * u64::from(gated_rows_per_thread(nb));
    (
        (m as u64).div_ceil(GATED_TILE_UNITS),
        (nb as u64).div_ceil(rows),
    )
}

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

/// The dispatches of a `rows` × `k` × `cols` projection on `kernel`: K cut into spans of at
/// most its `max_k_span` (so no invocation passes [`LOOP_BUDGET`]), rows into blocks of whole
/// row tiles so that no dispatch passes [`DISPATCH_FMA_BUDGET`] or `max_workgroups` tiles.
/// Row blocks in order, each block's K spans in order.
pub(crate) fn gemm_dispatches(
    kernel: GemmKernel,
    rows: u64,
    k: u64,
    cols: u64,
    max_workgroups: u64,
) -> Vec<GemmDispatch> {
    let span = k.clamp(1, kernel.max_k_span);
    let per_row = span.saturating_mul(cols.max(1));
    let tiles = (DISPATCH_FMA_BUDGET / per_row / kernel.tile_rows).clamp(1, max_workgroups.max(1));
    let block = tiles * kernel.tile_rows;
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
    if shape.resident {
        let quads = (u64::from(shape.rows) * shape.quads(m as usize)).div_ceil(PERSISTENT_THREADS);
        // Per quad of columns: the slices summed, then four stores (or four kept).
        let per_step = 1 + quads * (shape.slices(m as usize) + 4 + 4 + 1) + 1;
        // U's sixteen quads of four loads, zeroing both state buffers, loading and storing one.
        let staging = RESIDENT_K * 5;
        let zeroing = (shape.state_floats(m as usize) / 4).div_ceil(PERSISTENT_THREADS) + 1;
        return (per_step, staging + zeroing + 2 * (items + 1));
    }
    // Each thread computes a quad of columns at a time: the k loop, then four stores.
    let quad_items = (u64::from(shape.rows) * m.div_ceil(4)).div_ceil(PERSISTENT_THREADS);
    let mut per_step = 1 + quad_items * (m + 6) + 1;
    if row_wise {
        let rows = u64::from(shape.rows).div_ceil(PERSISTENT_THREADS);
        per_step += rows * (2 * m + 2) + 1 + items + 1;
    }
    let staging = if shape.u_shared {
        (m * m.div_ceil(4)).div_ceil(PERSISTENT_THREADS) * 5 + 1
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
    if m.div_ceil(4) > limits.max_workgroups {
        return Err(RnnError::DeviceLimit(format!(
            "{m} units need {} workgroups in one dimension; the device allows {}",
            m.div_ceil(4),
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

    const LAVAPIPE: StepDevice = StepDevice {
        fill: 4,
        storage_bytes: 32 << 10,
    };
    const BIG_GPU: StepDevice = StepDevice {
        fill: 256,
        storage_bytes: 48 << 10,
    };
    const SMALL_MEMORY: StepDevice = StepDevice {
        fill: 64,
        storage_bytes: 16 << 10,
    };

    #[test]
    fn every_step_tile_picked_stays_within_the_loop_budget_and_covers_the_state() {
        for m in [1, 3, 4, 17, 64, 128, 255, 256, 512, 1000, 1024, 4096, 8160] {
            for nb in [1, 2, 3, 8, 9, 64, 256, 70_000] {
                for device in [LAVAPIPE, BIG_GPU, SMALL_MEMORY] {
                    let candidates = step_tile_candidates(nb, m, device);
                    assert!(!candidates.is_empty(), "nb={nb} m={m}");
                    for (i, t) in candidates.iter().enumerate() {
                        assert!(!candidates[..i].contains(t));
                        assert!(t.fits(m as u64, device.storage_bytes), "{t:?} m={m}");
                        assert!(t.iterations(m as u64) <= LOOP_BUDGET);
                        assert!(16 * t.partial_quads() <= device.storage_bytes);
                        let (x, y, z) = t.workgroups(nb, m, 65535);
                        assert!(u64::from(x) * t.columns() >= m as u64);
                        assert!(u64::from(y) * u64::from(z) * u64::from(t.rows) >= nb as u64);
                        assert!(y <= 65535 && z <= 65535 && x <= 65535);
                        let (wx, wy) = step_workgroups(nb, m);
                        assert!(u64::from(x) <= wx && u64::from(y) <= wy);
                    }
                }
            }
        }
    }

    #[test]
    fn step_tile_loop_counts_are_exact_enough_to_fail() {
        // 8 rows × 1 quad at 1024 units walks 256 quads of k, then stores 8 quads.
        let t = StepTile {
            rows: 8,
            quads: 1,
            split: 1,
        };
        assert!(t.iterations(1024) > 256 + 8 * 6);
        assert!(t.fits(MAX_STEP_UNITS, 16 << 10));
        // Split-K groups walk a share each: 64 groups at 8160 units walk 32 quads.
        let split = StepTile { split: 64, ..t };
        assert!(split.iterations(8160) < 32 + 8 * 70 + 8);
        // A share of k past the loop budget does not fit.
        assert!(!t.fits(4 * LOOP_BUDGET, 16 << 10));
        // Split-K tiles need their partial sums in workgroup memory.
        let wide = StepTile {
            rows: 8,
            quads: 2,
            split: 2,
        };
        assert!(!wide.fits(64, 16 << 10));
        assert!(!StepTile { split: 3, ..t }.fits(64, 1 << 20));
        assert!(!StepTile { quads: 3, ..t }.fits(64, 1 << 20));
        assert!(!StepTile { rows: 16, ..t }.fits(64, 1 << 20));
    }

    #[test]
    fn small_batches_on_large_gpus_spread_over_many_workgroups() {
        // One sequence of 1024 units: split-K cuts a step into at least 64 workgroups.
        let t = step_tile(1, 1024, BIG_GPU).unwrap();
        assert!(t.split > 1 && t.workgroup_count(1, 1024) >= 64, "{t:?}");
        // 128 units: as many as the minimum share of k allows.
        let t = step_tile(1, 128, BIG_GPU).unwrap();
        assert!(t.workgroup_count(1, 128) >= 8, "{t:?}");
        // A large batch fills the device without split-K.
        let t = step_tile(256, 512, BIG_GPU).unwrap();
        assert_eq!(t.split, 1);
        assert!(t.workgroup_count(256, 512) >= 64);
        // On lavapipe the large batches take the 8-row, one-quad tile.
        assert_eq!(
            step_tile(256, 512, LAVAPIPE),
            Some(StepTile {
                rows: 8,
                quads: 1,
                split: 1
            })
        );
        // Few rows take a tile of as many rows, not 8 rows of padding.
        let one = StepDevice {
            fill: 1,
            ..LAVAPIPE
        };
        assert_eq!(step_tile(2, 64, one).unwrap().rows, 2);
    }

    #[test]
    fn persistent_shape_fills_the_threads_within_workgroup_memory() {
        // Up to 128 units U stays in registers: a row takes slices × quads threads and rows
        // fill the 256 threads.
        let resident = |rows| PersistentShape {
            rows,
            u_shared: false,
            resident: true,
        };
        assert_eq!(persistent_shape(128, 16 << 10, false), Some(resident(1)));
        assert_eq!(persistent_shape(64, 16 << 10, false), Some(resident(4)));
        assert_eq!(persistent_shape(32, 16 << 10, false), Some(resident(16)));
        // 129 units would take 16 × 33 threads a row.
        assert!(!persistent_shape(129, 16 << 10, false).unwrap().resident);
        // Tiny rows are cut to the workgroup memory: 2 × 16 + 16 floats' worth each.
        let s = persistent_shape(1, 16 << 10, false).unwrap();
        assert_eq!(s, resident(((16 << 10) - 64) / (4 * 32 + 16)));
        // Softmax rows run on the workgroup-memory kernel. lavapipe's 32 KiB: U of 32 units fits
        // (4 KiB), rows aim at 256 items per workgroup.
        let s = persistent_shape(32, 32 << 10, true).unwrap();
        assert_eq!(
            s,
            PersistentShape {
                rows: 8,
                u_shared: true,
                resident: false
            }
        );
        // U of 128 units (64 KiB) does not: it is read from the storage buffer.
        let s = persistent_shape(128, 32 << 10, true).unwrap();
        assert_eq!(
            s,
            PersistentShape {
                rows: 2,
                u_shared: false,
                resident: false
            }
        );
        // U of 64 units takes 16 KiB of 16 KiB plus the state: not shared.
        assert!(!persistent_shape(64, 16 << 10, true).unwrap().u_shared);
        // The state of one row of 4096 units (32 KiB twice) does not fit.
        assert_eq!(persistent_shape(4096, 32 << 10, false), None);
        for row_wise in [false, true] {
            for m in [1, 3, 8, 100, 128, 129, 1000, 2000] {
                let s = persistent_shape(m, 16 << 10, row_wise).unwrap();
                let u = if s.u_shared { 4 * m * m.div_ceil(4) } else { 1 } as u64;
                let extra = if s.resident {
                    4 * s.partials(m)
                } else {
                    2 * u64::from(s.rows) + u
                };
                assert!(4 * (s.state_floats(m) + extra) + 64 <= 16 << 10, "m={m}");
                assert!(s.rows >= 1);
                assert_eq!(s.resident, !row_wise && m <= 128, "m={m}");
                if s.resident {
                    assert!(s.partials(m) <= PERSISTENT_THREADS, "m={m}");
                }
            }
        }
    }

    #[test]
    fn auto_times_more_steps_of_small_batches_within_its_scratch_memory() {
        assert_eq!(measure_steps(1, 128), 64);
        assert_eq!(measure_steps(64, 256), 64);
        assert_eq!(measure_steps(128, 256), 32);
        assert_eq!(measure_steps(256, 4 * 512), 8);
        assert_eq!(measure_steps(1 << 20, 1 << 12), 8);
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
            for kernel in [TILED_GEMM, ROWS_GEMM] {
                let dispatches = gemm_dispatches(kernel, rows, k, cols, 65535);
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
                        assert!(d.k_end > d.k_begin && d.k_end - d.k_begin <= kernel.max_k_span);
                        assert!(d.k_end == k || d.k_end.is_multiple_of(GEMM_SLAB));
                        assert!(d.rows.div_ceil(kernel.tile_rows) <= 65535);
                        let fma = d.rows.div_ceil(kernel.tile_rows)
                            * kernel.tile_rows
                            * cols
                            * (d.k_end - d.k_begin);
                        assert!(fma <= DISPATCH_FMA_BUDGET || d.rows <= kernel.tile_rows);
                        depth = d.k_end;
                        i += 1;
                    }
                    row += block;
                }
                assert_eq!(i, dispatches.len(), "{rows} × {k} × {cols}");
            }
        }
    }

    #[test]
    fn persistent_dispatches_stay_within_the_loop_budget() {
        for m in [1, 8, 16, 64, 100, 128, 256, 500, 1024, 2000] {
            for row_wise in [false, true] {
                let Some(shape) = persistent_shape(m, 32 << 10, row_wise) else {
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
        let small = persistent_shape(16, 32 << 10, false).unwrap();
        assert!(persistent_steps_per_dispatch(16, small, false, 1) >= 500);
        let wide = persistent_shape(4000, 64 << 10, false).unwrap();
        assert_eq!(persistent_steps_per_dispatch(4000, wide, false, 1), 1);
        let wider = persistent_shape(6000, 64 << 10, false).unwrap();
        assert_eq!(persistent_steps_per_dispatch(6000, wider, false, 1), 0);
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
