//! How a forward is split into chunks so that no buffer passes the device's limits.
//!
//! Sequences are independent, so the batch splits freely; time splits because the state stays in
//! GPU buffers from one chunk to the next. Pure arithmetic, tested without a GPU.

use crate::error::{Result, RnnError};

/// Rows and columns one workgroup of the GEMM kernels covers.
pub(crate) const TILE: u64 = 16;

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
    if m.div_ceil(TILE) > limits.max_workgroups {
        return Err(RnnError::DeviceLimit(format!(
            "{m} units need {} workgroups in one dimension; the device allows {}",
            m.div_ceil(TILE),
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
    let most_rows = limits.max_workgroups.saturating_mul(TILE);
    let batch = (n as u64).min(budget / row_bytes).min(most_rows);
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
    fn steps_per_chunk_are_capped() {
        let p = plan(1, 1_000_000, 1, 1, &limits(1 << 30, None)).unwrap();
        assert_eq!(p.steps as u64, MAX_STEPS_PER_CHUNK);
    }
}
