//! The CPU path's inner loops: a safe face on the `gemm` crate (packed, SIMD-dispatched
//! micro-kernels up to AVX-512), and a vectorisable tanh.

use multiversion::multiversion;

/// `dst += lhs · rhs` for row-major contiguous matrices: `lhs` is `rows` × `k`, `rhs` is
/// `k` × `cols`, `dst` is `rows` × `cols`. `parallel` lets `gemm` split the work over rayon's
/// threads; callers already running one task per core pass `false`.
///
/// # Panics
/// When a slice is shorter than its shape says (a bug in the caller, not bad input).
pub(crate) fn matmul_acc(
    shape: (usize, usize, usize),
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    parallel: bool,
) {
    let cols = shape.2;
    matmul_acc_strided(shape, (dst, cols), lhs, (rhs, cols), parallel);
}

/// [`matmul_acc`] on column blocks: `dst` and `rhs` are row-major with rows `stride` floats
/// apart (a block of a wider matrix, starting at the slice's first float), `lhs` is contiguous.
///
/// # Panics
/// When a slice is shorter than its shape and stride say, or a stride is less than `cols`.
pub(crate) fn matmul_acc_strided(
    (rows, k, cols): (usize, usize, usize),
    (dst, dst_stride): (&mut [f32], usize),
    lhs: &[f32],
    (rhs, rhs_stride): (&[f32], usize),
    parallel: bool,
) {
    if rows == 0 || cols == 0 || k == 0 {
        return;
    }
    assert!(dst_stride >= cols && rhs_stride >= cols);
    assert!(
        dst.len() >= (rows - 1) * dst_stride + cols
            && lhs.len() >= rows * k
            && rhs.len() >= (k - 1) * rhs_stride + cols
    );
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach (row r < rows, column
    // c < cols, depth < k) inside the three slices, and `dst` is borrowed mutably so it aliases
    // neither input.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            true,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            rhs_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// tanh of every element, in place: a branch-free rational approximation that the compiler
/// vectorises (libm's tanhf is scalar and dominated the step time). Its error against the exact
/// tanh is under 5e-7 (checked by a test below); NaN stays NaN and ±inf gives ±1.
/// Dispatched at run time to the widest of the targets below that the CPU has, else to the
/// portable build of the same loop ([`tanh_portable`], which the tests run on every machine).
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn tanh_in_place(values: &mut [f32]) {
    tanh_portable(values);
}

/// [`tanh_in_place`] without target features: what a CPU outside the list above runs. Inlined
/// into each of the dispatched versions, which compile it with their features; every operation
/// is exactly rounded (`mul_add` is fused on every target), so all versions agree bit for bit.
#[inline(always)]
fn tanh_portable(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = tanh_rational(*v);
    }
}

/// The rational approximation of tanh that Eigen uses (and so XLA and TensorFlow on the CPU),
/// on [-7.9, 7.9]; past that tanh is within 2.5e-7 of ±1.
#[inline(always)]
fn tanh_rational(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6];
    let small = x.abs() < 4e-4;
    let c = x.clamp(-CLAMP, CLAMP);
    let c2 = c * c;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p.mul_add(c2, *a);
    }
    let p = p * c;
    let q = BETA[3]
        .mul_add(c2, BETA[2])
        .mul_add(c2, BETA[1])
        .mul_add(c2, BETA[0]);
    if small {
        x
    } else if x.abs() >= CLAMP {
        1.0f32.copysign(x)
    } else {
        p / q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_tanh_is_within_5e7_of_exact() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let mut v = [x];
            tanh_in_place(&mut v);
            let exact = f64::from(x).tanh();
            worst = worst.max((f64::from(v[0]) - exact).abs());
            x += 1.0e-4;
        }
        assert!(worst < 5e-7, "worst error {worst}");
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-30];
        tanh_in_place(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(&special[1..], &[1.0, -1.0, 0.0, -0.0, 1e-30]);
    }

    /// The portable loop, forced, gives the same bits as the version this CPU dispatches to
    /// (AVX-512, AVX2+FMA or NEON where the machine has them), so the vectorised builds cannot
    /// drift from the one other CPUs run.
    #[test]
    fn portable_tanh_matches_the_dispatched_one_bit_for_bit() {
        let inputs: Vec<f32> = (-130_000..130_000)
            .map(|i| i as f32 * 1.0e-4)
            .chain([
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
                1e-30,
                3.9e-4,
                7.9053,
            ])
            .collect();
        let mut dispatched = inputs.clone();
        tanh_in_place(&mut dispatched);
        let mut portable = inputs.clone();
        tanh_portable(&mut portable);
        for ((x, d), p) in inputs.iter().zip(&dispatched).zip(&portable) {
            let same = d.to_bits() == p.to_bits() || (d.is_nan() && p.is_nan());
            assert!(same, "tanh({x}): dispatched {d}, portable {p}");
        }
    }

    #[test]
    fn matmul_accumulates_into_the_destination() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50], added to ones.
        let mut dst = [1.0f32; 4];
        matmul_acc(
            (2, 2, 2),
            &mut dst,
            &[1., 2., 3., 4.],
            &[5., 6., 7., 8.],
            false,
        );
        assert_eq!(dst, [20., 23., 44., 51.]);
        let mut dst = vec![0.0f32; 3 * 5];
        let lhs: Vec<f32> = (0..3 * 7).map(|v| v as f32).collect();
        let rhs: Vec<f32> = (0..7 * 5).map(|v| (v % 3) as f32).collect();
        matmul_acc((3, 7, 5), &mut dst, &lhs, &rhs, true);
        for r in 0..3 {
            for c in 0..5 {
                let want: f32 = (0..7).map(|k| lhs[r * 7 + k] * rhs[k * 5 + c]).sum();
                assert_eq!(dst[r * 5 + c], want);
            }
        }
    }
}
