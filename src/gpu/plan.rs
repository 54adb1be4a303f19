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
    let groups = (nb as u64).div_ceil(u64::from(rows)).max(1);
    let x = groups.min(max_per_dimension);
    (x as u32, groups.div_ceil(x) as u32)
}

/// Time steps one submission encodes at most: bounds the per-step parameter buffer.
pub(crate) const MAX_STEPS_PER_CHUNK: u64 = 4096;

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

/// Checks that the weights of a layer with `d` features and `m` units fit the device.
pub(crate) fn check_weights(d: usize, m: usize, limits: &PlanLimits) -> Result<()> {
    let bytes = |elems: u64| elems.saturating_mul(4);
    let (d, m) = (d as u64, m as u64);
    let cap = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    if bytes(d.saturating_mul(m)) > cap {
        return Err(RnnError::DeviceLimit(format!(
            "kernel {d} × {m} takes {} bytes, more than one storage binding may hold ({cap})",
            bytes(d * m)
        )));
    }
    if bytes(m.saturating_mul(m)) > cap {
        return Err(RnnError::DeviceLimit(format!(
            "recurrent_kernel {m} × {m} takes {} bytes, more than one storage binding may hold ({cap})",
            bytes(m * m)
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
    limits: &PlanLimits,
) -> Result<ChunkPlan> {
    check_weights(d, m, limits)?;
    let budget = limits
        .max_binding_bytes
        .min(limits.max_buffer_bytes)
        .min(limits.max_chunk_bytes);
    let row_bytes = 4 * (d.max(m) as u64);
    // The per-step grid covers the batch in tiles of at least STEP_TILE_ROWS rows; the
    // projection covers steps × batch rows in tiles of PROJECTION_TILE.
    let most_batch = limits.max_workgroups.saturating_mul(STEP_TILE_ROWS);
    let most_rows = limits.max_workgroups.saturating_mul(PROJECTION_TILE);
    let batch = (n as u64).min(budget / row_bytes).min(most_batch);
    if batch == 0 {
        return Err(RnnError::DeviceLimit(format!(
            "one row of {} floats ({row_bytes} bytes) does not fit a buffer of {budget} bytes",
            d.max(m)
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
    fn small_work_is_one_chunk() {
        let p = plan(4, 100, 8, 32, &limits(128 << 20, None)).unwrap();
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
        let p = plan(8, 10_000, 16, 64, &l).unwrap();
        assert_eq!(p.batch, 8);
        assert!((p.steps as u64 + 1) * 8 * 64 * 4 <= 64 * 1024);
        assert!(p.steps > 1 && p.steps < 10_000);
    }

    #[test]
    fn huge_batches_split_over_batch() {
        let l = limits(1 << 20, None);
        let p = plan(100_000, 3, 4, 100, &l).unwrap();
        assert!(p.batch < 100_000);
        assert!(p.batch as u64 * 100 * 4 <= 1 << 20);
        assert!(p.steps >= 1);
    }

    #[test]
    fn weights_past_the_binding_limit_are_an_error() {
        let l = limits(1 << 20, None);
        assert!(matches!(
            plan(1, 1, 1, 1024, &l),
            Err(RnnError::DeviceLimit(_))
        ));
        assert!(matches!(
            plan(1, 1, 1 << 20, 1, &l),
            Err(RnnError::DeviceLimit(_))
        ));
    }

    #[test]
    fn the_default_chunk_budget_bounds_memory_whatever_the_length() {
        let l = limits(1 << 31, Some(crate::GpuOptions::DEFAULT_MAX_CHUNK_BYTES));
        for (n, t, d, m) in [(1, 10_000_000, 64, 64), (4096, 100_000, 256, 1024)] {
            let p = plan(n, t, d, m, &l).unwrap();
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
    fn steps_per_chunk_are_capped() {
        let p = plan(1, 1_000_000, 1, 1, &limits(1 << 30, None)).unwrap();
        assert_eq!(p.steps as u64, MAX_STEPS_PER_CHUNK);
    }
}
